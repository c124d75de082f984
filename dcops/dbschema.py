"""The database schema, owned by Alembic: every table dcops uses is created and upgraded by the
migrations in `migrations/` (installed as `dcops.migrations`), never by `create_all` in a service.

    upgrade(url)          bring the database to the newest revision (adopting one whose tables an older
                          dcops created without Alembic)
    state(url)            (current revision or None, head revision)
    require_current(url)  raise `SchemaBehind`, saying what to run, unless the database is at head

Service wiring (`dcops role`, `dcops up`, `dcops demo`) calls `prepare()` before a role opens the
database: it upgrades an embedded SQLite file itself and refuses to start against a shared server
database that is behind unless told to migrate (`--migrate`), since every process of a site uses it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData, create_engine, inspect, pool
from sqlalchemy.engine import make_url

__all__ = ["SchemaBehind", "SchemaState", "migrations_dir", "prepare", "require_current", "state",
           "target_metadata", "upgrade"]


class SchemaBehind(RuntimeError):
    """The database is not at the revision this dcops needs; the text says which and what to run."""


@dataclass(frozen=True)
class SchemaState:
    url: str          # password hidden
    current: str | None
    head: str
    legacy: bool      # dcops tables present, but no Alembic revision recorded

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def target_metadata() -> list[MetaData]:
    """The SQLAlchemy metadata of every table the migrations own (what `alembic revision --autogenerate`
    compares against)."""
    from dcops.alerts.notification.escalation import job_metadata
    from dcops.alerts.runbooks.tables import RunbookBase
    from dcops.alerts.storage.audit import AuditBase
    from dcops.alerts.storage.tables import Base
    from dcops.alerts.storage.accounts import accounts_metadata, login_failures_metadata

    return [Base.metadata, RunbookBase.metadata, AuditBase.metadata, accounts_metadata, login_failures_metadata,
            job_metadata()]


def migrations_dir() -> Path:
    """The Alembic script directory: the installed `dcops.migrations` package (the repository's
    `migrations/` folder in a checkout)."""
    spec = importlib.util.find_spec("dcops.migrations")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if (Path(loc) / "env.py").exists():
                return Path(loc)
    here = Path(__file__).resolve().parents[1] / "migrations"
    if (here / "env.py").exists():
        return here
    raise FileNotFoundError("dcops.migrations is not installed (reinstall dcops: pip install .)")


def _config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = url
    return cfg


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database)
    return None


def _ensure_sqlite_dir(url: str) -> None:
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def state(url: str) -> SchemaState:
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(url)).get_current_head()
    path = _sqlite_file(url)
    if path is not None and not path.exists():  # reading the state never creates a database
        return SchemaState(_shown(url), None, head, False)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            legacy = current is None and bool(_owned_tables() & set(inspect(conn).get_table_names()))
    finally:
        engine.dispose()
    return SchemaState(_shown(url), current, head, legacy)


def _owned_tables() -> set[str]:
    return {t for md in target_metadata() for t in md.tables}


def _missing_tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        have = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    return _owned_tables() - have


def upgrade(url: str, revision: str = "head") -> SchemaState:
    """Upgrade to `revision`. A database whose tables an older dcops made with `create_all` (no
    Alembic revision recorded) is adopted: with every table in place it is stamped at head; with
    some missing it is refused, naming them (nothing guesses which revision it was)."""
    from alembic import command

    _ensure_sqlite_dir(url)
    before = state(url)
    cfg = _config(url)
    if before.legacy:
        missing = _missing_tables(url)
        if missing:
            raise SchemaBehind(f"{before.url}: dcops tables exist without an Alembic revision and "
                               f"{', '.join(sorted(missing))} are missing; find the revision they match and run "
                               f"`dcops db stamp REVISION`, then `dcops db upgrade`")
        command.stamp(cfg, "head")
        return state(url)
    command.upgrade(cfg, revision)
    return state(url)


def stamp(url: str, revision: str) -> SchemaState:
    """Record `revision` without running migrations (adopting a database made outside Alembic)."""
    from alembic import command

    _ensure_sqlite_dir(url)
    command.stamp(_config(url), revision)
    return state(url)


def require_current(url: str, hint: str = "dcops db upgrade -c SITE") -> SchemaState:
    st = state(url)
    if not st.up_to_date:
        at = st.current or ("tables without an Alembic revision" if st.legacy else "an empty database")
        raise SchemaBehind(f"the database {st.url} is at {at}; this dcops needs revision {st.head}: "
                           f"run `{hint}` first")
    return st


def prepare(url: str, *, migrate: bool | None = None, hint: str = "dcops db upgrade -c SITE") -> SchemaState:
    """Before a service opens the database: upgrade it (`migrate`, default: only an SQLite file, which
    belongs to this host alone) or refuse with `SchemaBehind` when it is behind."""
    if migrate is None:
        migrate = make_url(url).get_backend_name() == "sqlite"
    if migrate:
        st = state(url)
        return st if st.up_to_date else upgrade(url)
    return require_current(url, hint)
