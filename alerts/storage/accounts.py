"""Console accounts, sessions and failed logins: their tables and every statement on them.

The console keeps what an account means (password hashing, roles, session tokens, throttling
rules, the audit trail) in `dcops.console.users`; the rows live here, beside the other tables of
the incident database, so the console holds no SQL. Sessions are stored by the SHA-256 of their
token, never the token. The users and sessions tables come from Alembic revision 0003, the
failed-login table from the audit/throttle revision; scratch databases (tests, benchmarks) get
them from `create_all` in `AccountRecords`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

__all__ = ["AccountRecords", "AccountRow", "SessionRow", "accounts_metadata", "login_failures_metadata",
           "users_table", "sessions_table", "login_failures_table"]

accounts_metadata = sa.MetaData()
users_table = sa.Table(
    "console_users", accounts_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_s", sa.Float, nullable=False),
)
sessions_table = sa.Table(
    "console_sessions", accounts_metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(64), nullable=False, index=True),
    sa.Column("created_s", sa.Float, nullable=False),
    sa.Column("expires_s", sa.Float, nullable=False),
)
# Its own metadata: created by the audit/throttle Alembic revision.
login_failures_metadata = sa.MetaData()
login_failures_table = sa.Table(  # shared by every console process: throttling lives in the database
    "console_login_failures", login_failures_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, index=True),  # "account:NAME" or "client:ADDRESS"
    sa.Column("time_s", sa.Float, nullable=False, index=True),
)
KEY_CHARS = 200  # failure keys longer than this are cut (a client address is attacker-chosen)


@dataclass(frozen=True)
class AccountRow:
    name: str
    role: str
    disabled: bool
    password_hash: str


@dataclass(frozen=True)
class SessionRow:
    name: str
    role: str
    disabled: bool
    expires_s: float


class AccountRecords:
    """The account, session and failed-login rows of one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        accounts_metadata.create_all(engine)
        login_failures_metadata.create_all(engine)

    @classmethod
    def from_url(cls, url: str) -> "AccountRecords":
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return cls(sa.create_engine(url))

    @property
    def where(self) -> str:
        """The database, as it may be shown (no password)."""
        return self.engine.url.render_as_string(hide_password=True)

    # ----- accounts ---------------------------------------------------------------------------
    def add(self, name: str, password_hash: str, role: str, created_s: float) -> bool:
        """Add an enabled account; False when the name is taken."""
        with self.engine.begin() as con:
            if con.execute(sa.select(users_table.c.name).where(users_table.c.name == name)).first():
                return False
            con.execute(users_table.insert().values(name=name, password_hash=password_hash, role=role,
                                                    disabled=False, created_s=created_s))
        return True

    def get(self, name: str) -> AccountRow | None:
        with self.engine.connect() as con:
            row = con.execute(sa.select(users_table).where(users_table.c.name == name)).first()
        return AccountRow(row.name, row.role, bool(row.disabled), row.password_hash) if row else None

    def all(self) -> list[tuple[str, str, bool]]:
        """(name, role, disabled) of every account, by name."""
        with self.engine.connect() as con:
            rows = con.execute(sa.select(users_table.c.name, users_table.c.role, users_table.c.disabled)
                               .order_by(users_table.c.name)).all()
        return [(r.name, r.role, bool(r.disabled)) for r in rows]

    def set_role(self, name: str, role: str) -> bool:
        """False when there is no such account."""
        with self.engine.begin() as con:
            return bool(con.execute(users_table.update().where(users_table.c.name == name).values(role=role)).rowcount)

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disabling also ends the account's sessions. False when there is no such account."""
        with self.engine.begin() as con:
            n = con.execute(users_table.update().where(users_table.c.name == name).values(disabled=disabled)).rowcount
            if disabled:
                con.execute(sessions_table.delete().where(sessions_table.c.user == name))
        return bool(n)

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self.engine.begin() as con:
            con.execute(users_table.update().where(users_table.c.name == name).values(password_hash=password_hash))

    # ----- failed logins ----------------------------------------------------------------------
    def add_failures(self, keys: list[str], time_s: float) -> None:
        with self.engine.begin() as con:
            con.execute(login_failures_table.insert(), [{"key": k[:KEY_CHARS], "time_s": time_s} for k in keys])

    def failures(self, key: str, since_s: float) -> tuple[int, float | None]:
        """(failures of `key` since `since_s`, time of the latest one)."""
        c = login_failures_table.c
        with self.engine.connect() as con:
            row = con.execute(sa.select(sa.func.count(), sa.func.max(c.time_s))
                              .where(c.key == key[:KEY_CHARS], c.time_s >= since_s)).first()
        return int(row[0] or 0), row[1]

    def clear_failures(self, key: str, older_than_s: float | None = None) -> None:
        """Forget `key`'s failures, and everyone's before `older_than_s` when given."""
        c = login_failures_table.c
        with self.engine.begin() as con:
            if older_than_s is not None:
                con.execute(login_failures_table.delete().where(c.time_s < older_than_s))
            con.execute(login_failures_table.delete().where(c.key == key[:KEY_CHARS]))

    # ----- sessions ---------------------------------------------------------------------------
    def add_session(self, token_sha256: str, name: str, created_s: float, expires_s: float) -> None:
        """Store a session, dropping the ones expired by `created_s`."""
        with self.engine.begin() as con:
            con.execute(sessions_table.delete().where(sessions_table.c.expires_s < created_s))
            con.execute(sessions_table.insert().values(token_sha256=token_sha256, user=name, created_s=created_s,
                                                       expires_s=expires_s))

    def session(self, token_sha256: str) -> SessionRow | None:
        j = sessions_table.join(users_table, sessions_table.c.user == users_table.c.name)
        with self.engine.connect() as con:
            row = con.execute(sa.select(users_table.c.name, users_table.c.role, users_table.c.disabled,
                                        sessions_table.c.expires_s).select_from(j)
                              .where(sessions_table.c.token_sha256 == token_sha256)).first()
        return SessionRow(row.name, row.role, bool(row.disabled), row.expires_s) if row else None

    def remove_session(self, token_sha256: str) -> None:
        with self.engine.begin() as con:
            con.execute(sessions_table.delete().where(sessions_table.c.token_sha256 == token_sha256))
