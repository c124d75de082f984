"""Login, sessions, roles and CSRF checks, through Flask's test client against the real app."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from dcops.console.auth import COOKIE, MAX_FAILURES, Auth
from dcops.console.users import UserError, UserStore, bootstrap_users, users_table
from tests.console.support import HOST, PASSWORDS, login

BASE = f"http://{HOST}"
SAME = {"Origin": BASE}


def save_user_payload(name: str, password: str, role: str) -> dict:
    """What the browser posts when the Users page's Save button is clicked."""
    return {
        "output": "..admin_users-result.children...admin_users-list.children..",
        "outputs": [{"id": "admin_users-result", "property": "children"},
                    {"id": "admin_users-list", "property": "children"}],
        "inputs": [{"id": "admin_users-save", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["admin_users-save.n_clicks"],
        "state": [{"id": "admin_users-name", "property": "value", "value": name},
                  {"id": "admin_users-password", "property": "value", "value": password},
                  {"id": "admin_users-role", "property": "value", "value": role}],
    }


def post_callback(client, payload, headers=SAME):
    return client.post("/_dash-update-component", data=json.dumps(payload), content_type="application/json",
                       headers=headers, base_url=BASE)


def test_pages_and_callbacks_need_login(app):
    c = app.server.test_client()
    r = c.get("/devices?name=R1-01", base_url=BASE)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    assert "%2Fdevices%3Fname%3DR1-01" in r.headers["Location"]
    assert c.get("/_dash-layout", base_url=BASE).status_code == 401
    r = post_callback(c, save_user_payload("eve", "x" * 12, "admin"))
    assert r.status_code == 401
    assert app.server.config["DCOPS_AUTH"].users.get("eve") is None


def test_login_sets_strict_httponly_cookie_and_opens_pages(app):
    c = app.server.test_client()
    r = c.post("/login", data={"username": "viewer", "password": PASSWORDS["viewer"], "next": "/fleet"},
               headers=SAME, base_url=BASE)
    assert r.status_code == 302 and r.headers["Location"] == "/fleet"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = c.get("/fleet", base_url=BASE)
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    layout = c.get("/_dash-layout", base_url=BASE)
    assert layout.status_code == 200 and b"viewer (viewer)" in layout.data
    # a viewer's menu has no admin page; an admin's has
    assert b"shell-nav-admin_users" not in layout.data
    admin = login(app, "admin")
    assert b"shell-nav-admin_users" in admin.get("/_dash-layout", base_url=BASE).data


def test_wrong_password_refused_and_throttled(app):
    c = app.server.test_client()
    for _ in range(MAX_FAILURES):
        r = c.post("/login", data={"username": "operator", "password": "wrong-password"}, headers=SAME,
                   base_url=BASE)
        assert r.status_code == 401 and b"Invalid user name or password" in r.data
        assert "Set-Cookie" not in r.headers
    r = c.post("/login", data={"username": "operator", "password": PASSWORDS["operator"]}, headers=SAME,
               base_url=BASE)
    assert r.status_code == 429


def test_viewer_and_operator_cannot_post_admin_callback(app):
    users = app.server.config["DCOPS_AUTH"].users
    for role in ("viewer", "operator"):
        c = login(app, role)
        r = post_callback(c, save_user_payload(f"mallory-{role}", "long-enough-pw", "admin"))
        assert r.status_code == 403, (role, r.data[:200])
        assert users.get(f"mallory-{role}") is None
    c = login(app, "admin")
    r = post_callback(c, save_user_payload("newop", "long-enough-pw", "operator"))
    assert r.status_code == 200, r.data[:300]
    assert users.get("newop").role == "operator"
    assert b"Created newop (operator)" in r.data


def test_cross_site_posts_refused(app):
    c = login(app, "admin")
    users = app.server.config["DCOPS_AUTH"].users
    for headers in ({}, {"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"},
                    {"Origin": "null"}):
        r = post_callback(c, save_user_payload("csrf-victim", "long-enough-pw", "admin"), headers=headers)
        assert r.status_code == 403, headers
    assert users.get("csrf-victim") is None
    r = c.post("/login", data={"username": "admin", "password": PASSWORDS["admin"]},
               headers={"Origin": "http://evil.example"}, base_url=BASE)
    assert r.status_code == 403
    # same-origin Referer without Origin is accepted
    r = post_callback(c, save_user_payload("via-referer", "long-enough-pw", "viewer"), headers={"Referer": BASE + "/"})
    assert r.status_code == 200


def test_sessions_expire_and_logout_ends_them(filled_store, small_inventory):
    from dcops.console.app import create_app

    now = [1_000_000.0]
    users = UserStore(sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool), clock=lambda: now[0])
    users.create_user("viewer", PASSWORDS["viewer"], "viewer")
    app = create_app(filled_store, small_inventory, auth=Auth(users, session_ttl_s=600, clock=lambda: now[0]))
    c = login(app, "viewer")
    assert c.get("/_dash-layout", base_url=BASE).status_code == 200
    now[0] += 601
    assert c.get("/_dash-layout", base_url=BASE).status_code == 401
    c = login(app, "viewer")
    assert c.get("/_dash-layout", base_url=BASE).status_code == 200
    assert c.post("/logout", headers=SAME, base_url=BASE).status_code == 302
    assert c.get("/_dash-layout", base_url=BASE).status_code == 401


def test_login_page_escapes_what_it_echoes(app):
    c = app.server.test_client()
    r = c.post("/login", data={"username": '<script>alert(1)</script>', "password": "x",
                               "next": '"><script>alert(2)</script>'}, headers=SAME, base_url=BASE)
    assert b"<script>alert" not in r.data and b"&lt;script&gt;alert(1)" in r.data
    r = c.get("/login?next=//evil.example/", base_url=BASE)
    assert b'value="/"' in r.data  # no open redirect


def test_passwords_stored_as_argon2_hashes(users):
    with users.engine.connect() as con:
        stored = dict(con.execute(sa.select(users_table.c.name, users_table.c.password_hash)).all())
    assert stored["admin"].startswith("$argon2id$") and PASSWORDS["admin"] not in stored["admin"]
    assert users.verify("admin", PASSWORDS["admin"]).role == "admin"
    assert users.verify("admin", "not-the-password") is None
    assert users.verify("nobody", PASSWORDS["admin"]) is None


def test_user_validation_errors_name_the_problem(users):
    with pytest.raises(UserError, match="at least 10"):
        users.create_user("bob", "short", "viewer")
    with pytest.raises(UserError, match="unknown role 'root'"):
        users.create_user("bob", "long-enough-pw", "root")
    with pytest.raises(UserError, match="already exists"):
        users.create_user("admin", "long-enough-pw", "admin")
    with pytest.raises(UserError, match="user name"):
        users.create_user("bad name!", "long-enough-pw", "viewer")
    users.set_disabled("viewer", True)
    assert users.verify("viewer", PASSWORDS["viewer"]) is None


def test_bootstrap_users_creates_missing_accounts_once():
    users = UserStore(sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool))
    created = bootstrap_users(users)
    assert set(created) == {"admin", "operator", "viewer"}
    for name, pw in created.items():
        assert users.verify(name, pw).role == name
    assert bootstrap_users(users) == {}


def test_create_app_refuses_no_auth(filled_store, small_inventory):
    from dcops.console.app import create_app

    with pytest.raises(ValueError, match="never runs without login"):
        create_app(filled_store, small_inventory, auth=None)
