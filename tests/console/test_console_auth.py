"""Login, sessions, roles and CSRF checks, through Flask's test client against the real app."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from dcops.alerts.storage.accounts import users_table
from dcops.console.auth import COOKIE, MAX_FAILURES, Auth
from dcops.console.users import UserError, UserStore, bootstrap_users
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
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _post(client, name, password, addr="10.0.0.1"):
    return client.post("/login", data={"username": name, "password": password}, headers=SAME, base_url=BASE,
                       environ_base={"REMOTE_ADDR": addr})


def test_backoff_never_locks_out_the_right_password(filled_store, small_inventory, users):
    from dcops.console.app import create_app
    from dcops.console.auth import BACKOFF_MAX_S

    clock = _Clock()
    users.clock = clock
    app = create_app(filled_store, small_inventory, auth=Auth(users, session_ttl_s=3600, clock=clock))
    c = app.server.test_client()
    for i in range(40):  # an attacker hammers the admin account from many addresses
        r = _post(c, "admin", "not-the-password", addr=f"10.1.{i}.1")
        if r.status_code == 429:
            clock.t += float(r.headers["Retry-After"])
    r = _post(c, "admin", PASSWORDS["admin"], addr="192.168.5.5")
    if r.status_code == 429:  # at most one capped backoff, then the right password works
        assert int(r.headers["Retry-After"]) <= BACKOFF_MAX_S + 1
        clock.t += float(r.headers["Retry-After"])
        r = _post(c, "admin", PASSWORDS["admin"], addr="192.168.5.5")
    assert r.status_code == 302 and COOKIE in r.headers["Set-Cookie"]


def test_spraying_many_names_from_one_client_is_throttled(app):
    from dcops.console.auth import CLIENT_FREE_FAILURES

    c = app.server.test_client()
    codes = [_post(c, f"user{i}", "guess-guess-1", addr="10.9.9.9").status_code
             for i in range(CLIENT_FREE_FAILURES + 3)]
    assert codes[:CLIENT_FREE_FAILURES] == [401] * CLIENT_FREE_FAILURES
    assert set(codes[CLIENT_FREE_FAILURES:]) == {429}
    assert _post(c, "viewer", PASSWORDS["viewer"], addr="10.8.8.8").status_code == 302  # others unaffected


def test_throttle_is_shared_between_console_processes(filled_store, small_inventory, users):
    """Two Auth objects over one database (two console processes) see each other's failures."""
    from dcops.console.app import create_app

    a = create_app(filled_store, small_inventory, auth=Auth(users)).server.test_client()
    b = create_app(filled_store, small_inventory, auth=Auth(users)).server.test_client()
    for i in range(MAX_FAILURES):
        assert _post(a if i % 2 else b, "operator", "wrong-password", addr=f"10.2.{i}.1").status_code == 401
    assert _post(a, "operator", "wrong-password", addr="10.3.0.1").status_code == 429
    assert _post(b, "operator", "wrong-password", addr="10.3.0.2").status_code == 429


def test_unknown_names_take_as_long_as_known_ones():
    import statistics
    import time as _time

    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1)  # ~10 ms a verify
    u = UserStore(sa.create_engine("sqlite://"), hasher=hasher)
    u.create_user("alice", "correct-horse-battery", "operator")

    # Known and unknown names alternate, so a change in the machine's load (CI shares its cores)
    # weighs on both medians alike instead of on whichever ran second.
    times: dict[str, list[float]] = {"alice": [], "nobody-here": []}
    for i in range(61):
        for name in ("alice", "nobody-here") if i % 2 else ("nobody-here", "alice"):
            t0 = _time.perf_counter()
            assert u.verify(name, "wrong-password-123") is None
            if i:  # the first round warms up
                times[name].append(_time.perf_counter() - t0)
    known, unknown = statistics.median(times["alice"]), statistics.median(times["nobody-here"])
    ratio = unknown / known
    print(f"login timing: known {known * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms, ratio {ratio:.2f}")
    assert 0.8 < ratio < 1.25, f"unknown {unknown * 1000:.1f} ms vs known {known * 1000:.1f} ms"


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
