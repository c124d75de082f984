"""Store adapter errors never carry credentials (issue 20: secrets in exception messages)."""

from __future__ import annotations

import socket

import pytest

from dcops.store.base import StoreUnavailable
from dcops.store.influx_store import InfluxStore, redact


def test_redact_masks_userinfo_query_tokens_and_auth_headers():
    text = ("http://dcops:s3cretpw@influx:8086/write?db=x&token=t0ken99&p=pw77 "
            "headers {'Authorization': 'Token abc123secret'}")
    out = redact(text)
    for secret in ("s3cretpw", "t0ken99", "pw77", "abc123secret"):
        assert secret not in out
    assert "influx:8086" in out and "db=x" in out


def test_unreachable_influx_error_names_the_host_not_the_password():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreUnavailable) as exc:
        InfluxStore(f"http://dcops:s3cretpw@127.0.0.1:{port}", "db", token="tok-s3cret", timeout_s=1)
    assert f"127.0.0.1:{port}" in str(exc.value)
    assert "s3cretpw" not in str(exc.value) and "tok-s3cret" not in str(exc.value)
