"""Alembic environment for dcops: the target schema is the union of the alerting tables
(`dcops.alerts.storage.tables.Base`), the runbook run tables (`dcops.alerts.runbooks.tables.RunbookBase`) and the audit
log (`dcops.alerts.storage.audit.AuditBase`). Tables that are not ours (APScheduler's job store) are ignored.

The URL comes from `-x url=...`, else `config.attributes["url"]` or the ini's sqlalchemy.url
(set by callers such as tests), else `$DCOPS_DATABASE_URL`, else `sqlite:///var/dcops.sqlite`.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from dcops.alerts.storage.audit import AuditBase
from dcops.alerts.storage.tables import Base
from dcops.alerts.runbooks.tables import RunbookBase

config = context.config
TARGET = [Base.metadata, RunbookBase.metadata, AuditBase.metadata]
OURS = {t for md in TARGET for t in md.tables}


def _url() -> str:
    return (context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
            or config.get_main_option("sqlalchemy.url") or os.environ.get("DCOPS_DATABASE_URL")
            or "sqlite:///var/dcops.sqlite")


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table":
        return name in OURS
    return True


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=TARGET, literal_binds=True, include_object=include_object,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_engine(_url(), poolclass=pool.NullPool)
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connectable)


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=TARGET, include_object=include_object,
                      render_as_batch=conn.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
