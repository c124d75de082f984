"""Console users and sessions, kept in the database of `settings.database.url`.

Passwords are hashed with argon2id (argon2-cffi); a session is a random token whose SHA-256 is
stored with its expiry, so a stolen database does not yield live cookies. Roles are ranked:
viewer < operator < admin. The rows and the statements on them are the alerts storage's
(`dcops.alerts.storage.accounts`): this module holds no SQL.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dcops.alerts.storage.accounts import AccountRecords

__all__ = ["ROLES", "User", "UserStore", "UserError", "role_at_least", "bootstrap_users"]

ROLES = ("viewer", "operator", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 10


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
    def __init__(self, engine, clock: Callable[[], float] = time.time,
                 hasher: PasswordHasher | None = None, audit=None) -> None:
        """`engine`: a SQLAlchemy engine on the incident database (or its `AccountRecords`);
        `audit`: a `dcops.alerts.storage.audit.AuditLog`; every account change is appended to it."""
        self.records = engine if isinstance(engine, AccountRecords) else AccountRecords(engine)
        self.engine = self.records.engine
        self.audit = audit
        self.clock = clock
        self._hasher = hasher or PasswordHasher()  # argon2id, argon2-cffi's default cost
        # verified against for unknown or disabled names: the same single argon2 check a real
        # account costs, so the time of a refusal does not tell whether a name exists
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float] = time.time, audit=None) -> "UserStore":
        return cls(AccountRecords.from_url(url), clock, audit=audit)

    @property
    def where(self) -> str:
        """The database the accounts are in, as it may be shown (no password)."""
        return self.records.where

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
        if not self.records.add(name, self._hasher.hash(password), role, self.clock()):
            raise UserError(f"user {name!r} already exists")
        self._audit(actor, "user.create", name, role=role)
        return User(name, role)

    def get(self, name: str) -> User | None:
        row = self.records.get(name)
        return User(row.name, row.role) if row is not None and not row.disabled else None

    def list_users(self) -> list[tuple[User, bool]]:
        return [(User(name, role), disabled) for name, role, disabled in self.records.all()]

    def set_role(self, name: str, role: str, actor: str = "system") -> User:
        if role not in _RANK:
            raise UserError(f"user {name!r}: unknown role {role!r} (one of {ROLES})")
        if not self.records.set_role(name, role):
            raise UserError(f"no user {name!r}")
        self._audit(actor, "user.set_role", name, role=role)
        return User(name, role)

    def set_disabled(self, name: str, disabled: bool, actor: str = "system") -> None:
        if not self.records.set_disabled(name, disabled):
            raise UserError(f"no user {name!r}")
        self._audit(actor, "user.disable" if disabled else "user.enable", name)

    def verify(self, name: str, password: str) -> User | None:
        """The user when name and password match an enabled account, else None."""
        row = self.records.get(name)
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
            self.records.set_password_hash(name, self._hasher.hash(password))
        return User(row.name, row.role)

    # ----- failed logins (throttling, shared through the database) ----------------------------
    def record_failure(self, keys: list[str]) -> None:
        self.records.add_failures(keys, self.clock())

    def failures(self, key: str, since_s: float) -> tuple[int, float | None]:
        """(failures of `key` since `since_s`, time of the latest one)."""
        return self.records.failures(key, since_s)

    def clear_failures(self, key: str, older_than_s: float | None = None) -> None:
        self.records.clear_failures(key, older_than_s)

    # ----- sessions ---------------------------------------------------------------------------
    def open_session(self, user: User, ttl_s: float) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self.records.add_session(_sha(token), user.name, now, now + ttl_s)
        return token

    def session_user(self, token: str | None) -> User | None:
        """The user of a live session, or None when the token is unknown, expired or disabled."""
        if not token:
            return None
        row = self.records.session(_sha(token))
        if row is None or row.disabled or row.expires_s <= self.clock():
            return None
        return User(row.name, row.role)

    def close_session(self, token: str | None) -> None:
        if token:
            self.records.remove_session(_sha(token))


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
