"""Alembic environment for dcops: the target schema is every table dcops uses (`dcops.dbschema.target_metadata`):
the alerting tables, the runbook run tables, the audit log, the console's accounts, sessions and login throttle,
and APScheduler's escalation job table. Tables that are not ours are ignored.

The URL comes from `-x url=...`, else `config.attributes["url"]` or the ini's sqlalchemy.url
(set by callers such as tests), else `$DCOPS_DATABASE_URL`, else `sqlite:///var/dcops.sqlite`.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from dcops.dbschema import target_metadata

config = context.config
TARGET = target_metadata()
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
