"""The one module that imports sushy (OpenStack's Redfish library): a BMC connection.

sushy does what a Redfish client must get right and we should not hand-roll: the service root,
session authentication with a fallback to HTTP Basic where the BMC's SessionService refuses,
re-authentication when the BMC drops or rotates the session token (a 401 on a GET logs in again
once and repeats the request), TLS verification (on by default; a per-BMC CA bundle, or an
explicit `verify: false`), timeouts and retries of connection errors. Resources are read as
JSON through its connector (`GET path`), because dcops maps both power/thermal models and the
vendor quirks itself (`redfish_map`), including resources sushy has no object for (Sensors,
EnvironmentMetrics, HPE OEM).

Errors become `RedfishFetchError` / `BmcUnavailable` with the BMC and path named; credentials
never appear in them (sushy's own debug log sanitises headers; dcops logs no request bodies).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from dcops.collectors.redfish_map import RedfishFetchError, norm_path

__all__ = ["BmcTarget", "BmcUnavailable", "RedfishConnection"]

log = logging.getLogger(__name__)


class BmcUnavailable(RuntimeError):
    """The BMC cannot be reached or refuses us (connection, TLS, authentication)."""


@dataclass(frozen=True)
class BmcTarget:
    """One BMC: where, as whom, how to trust it, and which server of the site it manages."""

    name: str                       # the server's name in the site (or the host, for a one-off poll)
    url: str                        # https://bmc-host[:port]
    username: str | None = None
    password: str | None = None     # already resolved from the secrets resolver; never printed
    verify: bool | str = True       # True: system CAs; a path: this BMC's CA bundle; False: explicit opt-out
    timeout_s: float = 10.0
    auth: str = "session"           # session (falls back to basic) | basic | none
    psu_feeds: tuple[tuple[str, str], ...] = ()  # (PSU bay id, feed) pairs; default: bays in order on the server's feeds

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"BmcTarget(name={self.name!r}, url={self.url!r}, username={self.username!r}, verify={self.verify!r})"


class RedfishConnection:
    """A logged-in connection to one BMC; `fetch(path)` is what `redfish_map.read_bmc` calls."""

    def __init__(self, target: BmcTarget) -> None:
        import requests
        import sushy
        from sushy import auth as sushy_auth
        from sushy import exceptions as sushy_exc

        self.target = target
        self._exc = sushy_exc
        self._requests_exc = requests.exceptions
        authn = None
        if target.auth != "none" and target.username is not None:
            cls = sushy_auth.BasicAuth if target.auth == "basic" else sushy_auth.SessionOrBasicAuth
            authn = cls(username=target.username, password=target.password or "")
        try:
            self.root = sushy.Sushy(target.url.rstrip("/") + "/redfish/v1/", auth=authn, verify=target.verify,
                                    server_side_retries=1, server_side_retries_delay=0,
                                    read_timeout=target.timeout_s, connect_timeout=target.timeout_s)
        except (sushy_exc.SushyError, self._requests_exc.RequestException, ValueError) as exc:
            raise BmcUnavailable(f"{target.name} ({target.url}): {self._describe(exc)}") from None
        self.conn = self.root._conn  # noqa: SLF001 - sushy's connector is the documented way to GET any resource

    def _describe(self, exc: Exception) -> str:
        text = getattr(exc, "message", None) or str(exc)
        if self.target.password:
            text = text.replace(self.target.password, "***")
        return f"{type(exc).__name__}: {text}"[:300]

    def fetch(self, path: str) -> dict | None:
        path = norm_path(path)
        try:
            r = self.conn.get(path, timeout=self.target.timeout_s)
        except self._exc.ResourceNotFoundError:
            return None
        except self._exc.AccessError as exc:
            raise BmcUnavailable(f"{self.target.name}: access refused at {path}: {self._describe(exc)}") from None
        except self._exc.ConnectionError as exc:
            raise BmcUnavailable(f"{self.target.name}: {path}: {self._describe(exc)}") from None
        except self._exc.HTTPError as exc:
            raise RedfishFetchError(f"HTTP {getattr(exc, 'status_code', '?')}: {self._describe(exc)}") from None
        try:
            return r.json()
        except (ValueError, json.JSONDecodeError):
            raise RedfishFetchError(f"not JSON ({len(r.content)} bytes, content-type "
                                    f"{r.headers.get('Content-Type', '?')})") from None

    def close(self) -> None:
        try:
            self.root.close()
        except Exception:  # noqa: BLE001 - logging out of a BMC that went away is not an error
            pass
