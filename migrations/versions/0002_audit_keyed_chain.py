"""audit hardening: keyed chain column, operator_actions append-only guard, login-failure throttle table

Self-contained revision of the "hardening" work (issue 20): `audit_log.mac` names the HMAC key
of each record (NULL: plain SHA-256), `operator_actions` refuses UPDATE/DELETE/TRUNCATE like
`audit_log`, and `console_login_failures` shares login throttling between console processes.

Revision ID: 0002_audit
Revises: 0001
Create Date: 2026-12-03 08:40:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0002_audit'
down_revision = '0001'
branch_labels = None
depends_on = None

# Frozen copy of dcops.alerts.storage.audit.OPERATOR_ACTIONS_GUARD_SQL as of this revision.
_GUARD = {
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS operator_actions_no_update BEFORE UPDATE ON operator_actions "
        "BEGIN SELECT RAISE(ABORT, 'operator_actions is append-only: UPDATE refused'); END",
        "CREATE TRIGGER IF NOT EXISTS operator_actions_no_delete BEFORE DELETE ON operator_actions "
        "BEGIN SELECT RAISE(ABORT, 'operator_actions is append-only: DELETE refused'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION dcops_operator_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = 'operator_actions is append-only: ' || TG_OP || ' refused'; END $$",
        "DROP TRIGGER IF EXISTS operator_actions_no_update ON operator_actions",
        "CREATE TRIGGER operator_actions_no_update BEFORE UPDATE OR DELETE ON operator_actions "
        "FOR EACH ROW EXECUTE FUNCTION dcops_operator_actions_append_only()",
        "DROP TRIGGER IF EXISTS operator_actions_no_truncate ON operator_actions",
        "CREATE TRIGGER operator_actions_no_truncate BEFORE TRUNCATE ON operator_actions "
        "FOR EACH STATEMENT EXECUTE FUNCTION dcops_operator_actions_append_only()",
    ),
}
_UNGUARD = {
    "sqlite": ("DROP TRIGGER IF EXISTS operator_actions_no_update",
               "DROP TRIGGER IF EXISTS operator_actions_no_delete"),
    "postgresql": ("DROP TRIGGER IF EXISTS operator_actions_no_update ON operator_actions",
                   "DROP TRIGGER IF EXISTS operator_actions_no_truncate ON operator_actions",
                   "DROP FUNCTION IF EXISTS dcops_operator_actions_append_only()"),
}


def upgrade() -> None:
    # the audit_log guard refuses UPDATE, not ALTER: adding a column keeps every record intact
    with op.batch_alter_table('audit_log') as batch:
        batch.add_column(sa.Column('mac', sa.String(length=40), nullable=True))
    op.create_table('console_login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('time_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_console_login_failures_key'), 'console_login_failures', ['key'], unique=False)
    op.create_index(op.f('ix_console_login_failures_time_s'), 'console_login_failures', ['time_s'], unique=False)
    for sql in _GUARD.get(op.get_bind().dialect.name, ()):
        op.execute(sql)


def downgrade() -> None:
    for sql in _UNGUARD.get(op.get_bind().dialect.name, ()):
        op.execute(sql)
    op.drop_index(op.f('ix_console_login_failures_time_s'), table_name='console_login_failures')
    op.drop_index(op.f('ix_console_login_failures_key'), table_name='console_login_failures')
    op.drop_table('console_login_failures')
    with op.batch_alter_table('audit_log') as batch:
        batch.drop_column('mac')
