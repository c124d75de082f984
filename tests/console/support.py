"""Shared constants and helpers of the console tests."""

from __future__ import annotations

PASSWORDS = {"admin": "admin-pass-123", "operator": "operator-pass-123", "viewer": "viewer-pass-123"}
HOST = "127.0.0.1:8050"


def login(app, name: str):
    """A Flask test client signed in as `name`."""
    client = app.server.test_client()
    r = client.post("/login", data={"username": name, "password": PASSWORDS[name], "next": "/"},
                    headers={"Origin": f"http://{HOST}"}, base_url=f"http://{HOST}")
    assert r.status_code == 302, r.data
    return client
