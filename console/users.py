"""Console users and sessions, kept with SQLAlchemy in the database of `settings.database.url`.

Passwords are hashed with argon2id (argon2-cffi); a session is a random token whose SHA-256 is
stored with its expiry, so a stolen database does not yield live cookies. Roles are ranked:
viewer < operator < admin.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["ROLES", "User", "UserStore", "UserError", "role_at_least", "bootstrap_users"]

ROLES = ("viewer", "operator", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 10

_meta = sa.MetaData()
users_table = sa.Table(
    "console_users", _meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_s", sa.Float, nullable=False),
)
# Its own metadata: created by the audit/throttle Alembic revision (and create_all here).
throttle_meta = sa.MetaData()
login_failures_table = sa.Table(  # shared by every console process: throttling lives in the database
    "console_login_failures", throttle_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, index=True),  # "account:NAME" or "client:ADDRESS"
    sa.Column("time_s", sa.Float, nullable=False, index=True),
)
sessions_table = sa.Table(
    "console_sessions", _meta,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(64), nullable=False, index=True),
    sa.Column("created_s", sa.Float, nullable=False),
    sa.Column("expires_s", sa.Float, nullable=False),
)


class UserError(ValueError):
    """A refused user operation (bad name, weak password, unknown role or user)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)


def role_at_least(have: str, need: str) -> bool:
    if need not in _RANK:
        raise UserError(f"unknown role {need!r} (one of {ROLES})")
    return _RANK.get(have, -1) >= _RANK[need]


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, engine: sa.Engine, clock: Callable[[], float] = time.time,
                 hasher: PasswordHasher | None = None, audit=None) -> None:
        """`audit`: a `dcops.alerts.storage.audit.AuditLog`; every account change is appended to it."""
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self._hasher = hasher or PasswordHasher()  # argon2id, argon2-cffi's default cost
        # verified against for unknown or disabled names: the same single argon2 check a real
        # account costs, so the time of a refusal does not tell whether a name exists
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        _meta.create_all(engine)
        throttle_meta.create_all(engine)

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float] = time.time, audit=None) -> "UserStore":
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            from pathlib import Path

            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return cls(sa.create_engine(url), clock, audit=audit)

    def _audit(self, actor: str, action: str, name: str, **data) -> None:
        if self.audit is not None:
            self.audit.append(actor=actor or "system", role=str(data.get("role", "")), action=action,
                              target_kind="console_user", target_id=name, data=data)

    # ----- users ------------------------------------------------------------------------------
    def create_user(self, name: str, password: str, role: str, actor: str = "system") -> User:
        if not _NAME.match(name or ""):
            raise UserError(f"user name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-'")
        if role not in _RANK:
            raise UserError(f"user {name!r}: unknown role {role!r} (one of {ROLES})")
        if len(password or "") < MIN_PASSWORD:
            raise UserError(f"user {name!r}: password must have at least {MIN_PASSWORD} characters")
        with self.engine.begin() as con:
            if con.execute(sa.select(users_table.c.name).where(users_table.c.name == name)).first():
                raise UserError(f"user {name!r} already exists")
            con.execute(users_table.insert().values(name=name, password_hash=self._hasher.hash(password),
                                                    role=role, disabled=False, created_s=self.clock()))
        self._audit(actor, "user.create", name, role=role)
        return User(name, role)

    def get(self, name: str) -> User | None:
        with self.engine.connect() as con:
            row = con.execute(sa.select(users_table.c.name, users_table.c.role)
                              .where(users_table.c.name == name, users_table.c.disabled.is_(False))).first()
        return User(row.name, row.role) if row else None

    def list_users(self) -> list[tuple[User, bool]]:
        with self.engine.connect() as con:
            rows = con.execute(sa.select(users_table.c.name, users_table.c.role, users_table.c.disabled)
                               .order_by(users_table.c.name)).all()
        return [(User(r.name, r.role), bool(r.disabled)) for r in rows]

    def set_role(self, name: str, role: str, actor: str = "system") -> User:
        if role not in _RANK:
            raise UserError(f"user {name!r}: unknown role {role!r} (one of {ROLES})")
        with self.engine.begin() as con:
            n = con.execute(users_table.update().where(users_table.c.name == name).values(role=role)).rowcount
        if not n:
            raise UserError(f"no user {name!r}")
        self._audit(actor, "user.set_role", name, role=role)
        return User(name, role)

    def set_disabled(self, name: str, disabled: bool, actor: str = "system") -> None:
        with self.engine.begin() as con:
            n = con.execute(users_table.update().where(users_table.c.name == name).values(disabled=disabled)).rowcount
            if disabled:
                con.execute(sessions_table.delete().where(sessions_table.c.user == name))
        if not n:
            raise UserError(f"no user {name!r}")
        self._audit(actor, "user.disable" if disabled else "user.enable", name)

    def verify(self, name: str, password: str) -> User | None:
        """The user when name and password match an enabled account, else None."""
        with self.engine.connect() as con:
            row = con.execute(sa.select(users_table).where(users_table.c.name == name)).first()
        if row is None or row.disabled:
            # Spend the same time as a real check (one verify, no hashing) so names cannot be probed.
            try:
                self._hasher.verify(self._dummy_hash, password or "")
            except (VerificationError, InvalidHashError):
                pass
            return None
        try:
            self._hasher.verify(row.password_hash, password or "")
        except (VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(row.password_hash):
            with self.engine.begin() as con:
                con.execute(users_table.update().where(users_table.c.name == name)
                            .values(password_hash=self._hasher.hash(password)))
        return User(row.name, row.role)

    # ----- failed logins (throttling, shared through the database) ----------------------------
    def record_failure(self, keys: list[str]) -> None:
        now = self.clock()
        with self.engine.begin() as con:
            con.execute(login_failures_table.insert(), [{"key": k[:200], "time_s": now} for k in keys])

    def failures(self, key: str, since_s: float) -> tuple[int, float | None]:
        """(failures of `key` since `since_s`, time of the latest one)."""
        c = login_failures_table.c
        with self.engine.connect() as con:
            row = con.execute(sa.select(sa.func.count(), sa.func.max(c.time_s))
                              .where(c.key == key[:200], c.time_s >= since_s)).first()
        return int(row[0] or 0), row[1]

    def clear_failures(self, key: str, older_than_s: float | None = None) -> None:
        c = login_failures_table.c
        with self.engine.begin() as con:
            if older_than_s is not None:
                con.execute(login_failures_table.delete().where(c.time_s < older_than_s))
            con.execute(login_failures_table.delete().where(c.key == key[:200]))

    # ----- sessions ---------------------------------------------------------------------------
    def open_session(self, user: User, ttl_s: float) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.engine.begin() as con:
            con.execute(sessions_table.delete().where(sessions_table.c.expires_s < now))
            con.execute(sessions_table.insert().values(token_sha256=_sha(token), user=user.name, created_s=now,
                                                       expires_s=now + ttl_s))
        return token

    def session_user(self, token: str | None) -> User | None:
        """The user of a live session, or None when the token is unknown, expired or disabled."""
        if not token:
            return None
        j = sessions_table.join(users_table, sessions_table.c.user == users_table.c.name)
        with self.engine.connect() as con:
            row = con.execute(sa.select(users_table.c.name, users_table.c.role, users_table.c.disabled,
                                        sessions_table.c.expires_s).select_from(j)
                              .where(sessions_table.c.token_sha256 == _sha(token))).first()
        if row is None or row.disabled or row.expires_s <= self.clock():
            return None
        return User(row.name, row.role)

    def close_session(self, token: str | None) -> None:
        if token:
            with self.engine.begin() as con:
                con.execute(sessions_table.delete().where(sessions_table.c.token_sha256 == _sha(token)))


def bootstrap_users(users: UserStore, names: dict[str, str] | None = None) -> dict[str, str]:
    """Create the demo's accounts that do not exist yet (name -> role) with random passwords.

    Returns {name: password} for the accounts created now (existing ones keep theirs).
    """
    names = names or {"admin": "admin", "operator": "operator", "viewer": "viewer"}
    created = {}
    for name, role in names.items():
        if users.get(name) is None and not any(u.name == name for u, _ in users.list_users()):
            password = secrets.token_urlsafe(12)
            users.create_user(name, password, role)
            created[name] = password
    return created
