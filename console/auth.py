"""Login, sessions and roles for the console, enforced on the server.

`Auth.install(server)` adds `/login` and `/logout` to the Dash app's Flask server and a
`before_request` guard that runs for every request, pages, assets and every Dash callback
(`/_dash-update-component`) alike:

- no live session: pages redirect to `/login`, everything else gets 401;
- a POST whose Origin (or, lacking it, Referer) is not this host is refused (403); together
  with `SameSite=Strict`, `HttpOnly` session cookies this makes cross-site requests useless;
- state-changing callbacks call `require_role("operator")` / `require_role("admin")`, which
  raises 403 for a weaker role, whatever the browser shows or hides.

Operator text is never rendered as HTML: Dash renders strings as text, and the login page
escapes what it echoes.
"""

from __future__ import annotations

import logging
import time
from typing import Callable
from urllib.parse import urlencode, urlsplit

import flask
from markupsafe import escape
from werkzeug.exceptions import Forbidden, Unauthorized

from dcops.console.users import User, UserStore

__all__ = ["AUTH_KEY", "Auth", "current_user", "require_role", "users_of_app"]

log = logging.getLogger("dcops.console.auth")
audit = logging.getLogger("dcops.console.audit")

COOKIE = "dcops_session"
AUTH_KEY = "DCOPS_AUTH"  # the Auth of an app, in its Flask config
PUBLIC_PATHS = ("/login",)
# Login throttling (shared by every console process through the users database): failures are
# counted per account and per client address within FAILURE_WINDOW_S. Past the free attempts
# each further attempt must wait a delay that doubles per failure, capped, after the latest
# failure; the right password works again as soon as the delay has passed, so nobody can lock
# an account out (an attacker only slows it to one try per cap). Spraying many names from one
# client is bounded by the client's own count.
MAX_FAILURES = 5  # free failed attempts per account before backoff starts
CLIENT_FREE_FAILURES = 20  # free failed attempts per client address (any user names)
FAILURE_WINDOW_S = 900.0
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0


def backoff_s(failures: int, free: int) -> float:
    """The wait after the latest failure before the next attempt is heard."""
    if failures < free:
        return 0.0
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** (failures - free))

_LOGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dcops - sign in</title>
<style>body{{font-family:system-ui,sans-serif;background:#1f2a36;display:flex;align-items:center;
justify-content:center;height:100vh;margin:0}}form{{background:#fff;padding:2rem;border-radius:8px;width:320px}}
input{{width:100%;padding:.5rem;margin:.3rem 0 1rem;box-sizing:border-box}}button{{width:100%;padding:.6rem;
background:#1565c0;color:#fff;border:0;border-radius:4px}}.err{{color:#b71c1c}}</style></head>
<body><form method="post" action="/login"><h2>dcops NOC console</h2>{error}
<label>User<input id="login-user" name="username" value="{username}" autocomplete="username" autofocus></label>
<label>Password<input id="login-password" name="password" type="password" autocomplete="current-password"></label>
<input type="hidden" name="next" value="{next}"><button id="login-submit" type="submit">Sign in</button></form></body></html>
"""


def current_user() -> User | None:
    """The signed-in user of this request (set by the guard), or None outside a request."""
    if not flask.has_request_context():
        return None
    return getattr(flask.g, "dcops_user", None)


def require_role(role: str) -> User:
    """The current user if they hold `role` or higher; otherwise 403 (401 when signed out)."""
    user = current_user()
    if user is None:
        raise Unauthorized("sign in first")
    if not user.can(role):
        audit.warning("refused: user=%s role=%s needed=%s path=%s", user.name, user.role, role, flask.request.path)
        raise Forbidden(f"this needs the {role} role; {user.name} is {user.role}")
    return user


def users_of_app():
    """The UserStore of the app serving this request."""
    return flask.current_app.config[AUTH_KEY].users


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",  # no clickjacking of operator buttons
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _security_headers(resp: flask.Response) -> flask.Response:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    if flask.request.path.startswith("/_dash-update-component"):
        resp.headers["Cache-Control"] = "no-store"
    return resp


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after login (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Auth:
    def __init__(self, users: UserStore, *, session_ttl_s: float = 8 * 3600, cookie_secure: bool = False,
                 clock: Callable[[], float] = time.time, audit_log=None) -> None:
        self.users = users
        self.audit_log = audit_log  # alerts.storage.audit.AuditLog: logins go into the tamper-evident trail
        self.session_ttl_s = float(session_ttl_s)
        self.cookie_secure = cookie_secure
        self.clock = clock

    # ----- wiring -----------------------------------------------------------------------------
    def install(self, server: flask.Flask) -> None:
        server.config[AUTH_KEY] = self
        server.before_request(self._guard)
        server.after_request(_security_headers)
        server.add_url_rule("/login", "dcops_login", self._login, methods=["GET", "POST"])
        server.add_url_rule("/logout", "dcops_logout", self._logout, methods=["POST"])

    def _same_origin(self) -> bool:
        source = flask.request.headers.get("Origin") or flask.request.headers.get("Referer")
        if not source or source == "null":
            return False
        return urlsplit(source).netloc == flask.request.host

    def _guard(self):
        req = flask.request
        if req.method not in ("GET", "HEAD", "OPTIONS") and not self._same_origin():
            log.warning("refused cross-site %s %s (Origin=%r Referer=%r)", req.method, req.path,
                        req.headers.get("Origin"), req.headers.get("Referer"))
            return flask.Response("cross-site request refused", status=403, mimetype="text/plain")
        if req.path in PUBLIC_PATHS:
            return None
        user = self.users.session_user(req.cookies.get(COOKIE))
        flask.g.dcops_user = user
        if user is not None:
            return None
        if req.method == "GET" and not req.path.startswith("/_dash-"):
            return flask.redirect("/login?" + urlencode({"next": req.full_path.rstrip("?")}))
        return flask.Response('{"error": "sign in first"}', status=401, mimetype="application/json")

    def _record(self, action: str, user: str, details: dict) -> None:
        if self.audit_log is None:
            return
        try:
            self.audit_log.append(actor=(user or "(none)")[:100], role=str(details.get("role", "")), action=action,
                                  target_kind="console_user", target_id=(user or "(none)")[:64], data=details)
        except Exception:  # the login itself must not fail because the trail is away; say so loudly
            log.exception("could not write %s of %s to the audit trail", action, user)

    # ----- pages ------------------------------------------------------------------------------
    def _page(self, error: str = "", username: str = "", next_: str = "/", status: int = 200):
        html = _LOGIN_HTML.format(error=f'<p class="err" id="login-error">{escape(error)}</p>' if error else "",
                                  username=escape(username), next=escape(_safe_next(next_)))
        resp = flask.Response(html, status=status, mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Frame-Options"] = "DENY"
        return resp

    @staticmethod
    def _keys(name: str, client: str) -> tuple[str, str]:
        return f"account:{name}", f"client:{client}"

    def throttle_wait(self, name: str, client: str) -> float:
        """Seconds until this account and client may try again (0: now)."""
        now = self.clock()
        since = now - FAILURE_WINDOW_S
        wait = 0.0
        for key, free in zip(self._keys(name, client), (MAX_FAILURES, CLIENT_FREE_FAILURES)):
            n, last = self.users.failures(key, since)
            if last is not None:
                wait = max(wait, last + backoff_s(n, free) - now)
        return max(0.0, wait)

    def _login(self):
        req = flask.request
        if req.method == "GET":
            return self._page(next_=req.args.get("next", "/"))
        name = req.form.get("username", "")
        password = req.form.get("password", "")
        next_ = req.form.get("next", "/")
        client = req.remote_addr or "unknown"
        wait = self.throttle_wait(name, client)
        if wait > 0:
            audit.warning("login throttled: user=%s client=%s wait=%.0fs", name, client, wait)
            resp = self._page(f"Too many failed attempts; try again in {int(wait) + 1} s.", name, next_, 429)
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        user = self.users.verify(name, password)
        account, client_key = self._keys(name, client)
        if user is None:
            self.users.record_failure([account, client_key])
            audit.info("login failed: user=%s client=%s", name, client)
            self._record("login_failed", name, {"client": client})
            return self._page("Invalid user name or password.", name, next_, 401)
        self.users.clear_failures(account, older_than_s=self.clock() - FAILURE_WINDOW_S)
        self._record("login", user.name, {"client": client, "role": user.role})
        token = self.users.open_session(user, self.session_ttl_s)
        audit.info("login: user=%s role=%s", user.name, user.role)
        resp = flask.redirect(_safe_next(next_))
        resp.set_cookie(COOKIE, token, max_age=int(self.session_ttl_s), httponly=True, samesite="Strict",
                        secure=self.cookie_secure, path="/")
        return resp

    def _logout(self):
        token = flask.request.cookies.get(COOKIE)
        user = self.users.session_user(token)
        self.users.close_session(token)
        if user:
            audit.info("logout: user=%s", user.name)
            self._record("logout", user.name, {})
        resp = flask.redirect("/login")
        resp.delete_cookie(COOKIE, path="/", samesite="Strict", httponly=True, secure=self.cookie_secure)
        return resp
