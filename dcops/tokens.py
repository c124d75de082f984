"""Signed bearer tokens for dcops' control APIs (the accelerator agent's power limits).

`v1.<claims>.<signature>`: the claims are base64url JSON `{"sub", "scope", "exp"}`, the
signature HMAC-SHA256 over `v1.<claims>` with a key the caller and the agent share (from the
secrets resolver, never logged). Short lifetimes (a minute for a runbook action) make a
leaked token worth little; the subject is who asked, and lands in the agent's audit trail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Callable

__all__ = ["SCOPE", "TokenError", "mint_token", "verify_token"]

SCOPE = "power"


class TokenError(ValueError):
    """A bearer token that is missing, malformed, badly signed, expired or of another scope."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(key: bytes, subject: str, ttl_s: float, clock: Callable[[], float] = time.time,
               scope: str = SCOPE) -> str:
    """A bearer token for `subject`, valid for `ttl_s` seconds: `v1.<claims>.<signature>`."""
    if not key:
        raise ValueError("no signing key")
    claims = _b64(json.dumps({"sub": subject, "scope": scope, "exp": int(clock() + ttl_s)},
                             separators=(",", ":"), sort_keys=True).encode())
    sig = hmac.new(key, f"v1.{claims}".encode(), hashlib.sha256).digest()
    return f"v1.{claims}.{_b64(sig)}"


def verify_token(key: bytes, token: str, clock: Callable[[], float] = time.time, scope: str = SCOPE) -> str:
    """The token's subject, or TokenError saying what is wrong with it."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "v1":
        raise TokenError("malformed token")
    want = hmac.new(key, f"v1.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, TypeError):
        raise TokenError("malformed token") from None
    if not hmac.compare_digest(want, given):
        raise TokenError("bad signature")
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenError("token names no subject")
    if claims.get("scope") != scope:
        raise TokenError(f"token is not for scope {scope!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= clock():
        raise TokenError("token expired")
    return claims["sub"]
