"""The Standard Webhooks verification algorithm, written from the spec (not from the library
dcops signs with), so a test receiver checks what any compliant receiver would check.

Spec (standard-webhooks.md, "Verifying webhook authenticity"): signed content is
`msg_id + "." + timestamp + "." + body`; the key is base64 after the `whsec_` prefix;
`webhook-signature` is a space-delimited list of `v1,<base64 HMAC-SHA256>`; reject a timestamp
outside the tolerance (5 minutes) and compare signatures in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Mapping


def key_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def reference_verify(secret: str | bytes, headers: Mapping[str, str], body: bytes, now_s: float | None = None,
                     tolerance_s: float = 300.0) -> bool:
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not (msg_id and ts and sigs) or not ts.isdigit():
        return False
    now_s = time.time() if now_s is None else now_s
    if abs(now_s - int(ts)) > tolerance_s:
        return False
    content = f"{msg_id}.{ts}.".encode() + body
    expected = hmac.new(key_bytes(secret), content, hashlib.sha256).digest()
    for item in sigs.split(" "):
        version, _, sig = item.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(sig, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(expected, given):
            return True
    return False
