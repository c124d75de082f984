"""console accounts and sessions, APScheduler's escalation job table

Until this revision the console created `console_users` and `console_sessions` itself and
APScheduler created `dcops_escalation_jobs` on start; now Alembic owns every table dcops uses.
A database whose tables those services already created is adopted by `dcops db upgrade`
(see dcops/dbschema.py), not migrated twice.

Revision ID: 0003_console_jobs
Revises: 0002_audit
Create Date: 2026-12-07 12:40:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003_console_jobs'
down_revision = '0002_audit'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_users',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('console_sessions',
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('created_s', sa.Float(), nullable=False),
    sa.Column('expires_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('token_sha256')
    )
    op.create_index(op.f('ix_console_sessions_user'), 'console_sessions', ['user'], unique=False)
    # APScheduler 3's SQLAlchemyJobStore table (apscheduler/jobstores/sqlalchemy.py), frozen here
    op.create_table('dcops_escalation_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_dcops_escalation_jobs_next_run_time'), 'dcops_escalation_jobs', ['next_run_time'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_dcops_escalation_jobs_next_run_time'), table_name='dcops_escalation_jobs')
    op.drop_table('dcops_escalation_jobs')
    op.drop_index(op.f('ix_console_sessions_user'), table_name='console_sessions')
    op.drop_table('console_sessions')
    op.drop_table('console_users')
