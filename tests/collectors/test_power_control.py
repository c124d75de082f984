"""Power limits as an outage response: the controller (clamp, read back, restore, expiry, audit)
over the NVML stand-in, and the agent's control API over real HTTP (auth, rate limit, errors)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from waitress.server import create_server

from dcops.collectors.nvml_constants import _CONSTANTS
from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu
from dcops.collectors.power_api import ControlApi, JsonlAudit
from dcops.collectors.power_control import (CapRequest, NvmlPowerBackend, PowerController, PowerLimitUnsupported,
                                            UnsupportedPowerBackend)
from dcops.tokens import TokenError, mint_token, verify_token

KEY = b"k3y-for-tests-only"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _nvml(n: int = 2, **changes):
    gpus = [typical_gpu(i, **changes) for i in range(n)]
    nvml = NvmlStandin(StaticBackend(gpus))
    nvml.nvmlInit()
    return nvml, gpus


def _controller(clock, audit=None, n=2, **changes):
    nvml, gpus = _nvml(n, **changes)
    records = [] if audit is None else audit
    ctl = PowerController("gpu-host-1", [NvmlPowerBackend(nvml, [g.uuid for g in gpus])],
                          audit=records.append, clock=clock)
    return ctl, gpus, records


def test_fraction_of_default_is_clamped_to_the_constraints_and_read_back():
    clock = Clock()
    ctl, gpus, records = _controller(clock)
    res = ctl.apply(CapRequest((0,), 600, "alice", "CRAC-H1-2 lost", fraction=0.2, incident="inc-1"))
    assert res[0].ok and res[0].clamped
    assert res[0].requested_w == pytest.approx(140.0)  # 20 % of the 700 W default
    assert res[0].applied_w == 200.0  # the GPU's minimum
    assert gpus[0].values["accel_power_limit_w"] == 200.0
    assert gpus[1].values["accel_power_limit_w"] == 700.0  # only the one asked for
    rec = records[-1]
    assert rec["action"] == "power_cap_set" and rec["requested_by"] == "alice" and rec["incident"] == "inc-1"
    assert (rec["before_w"], rec["after_w"], rec["clamped"]) == (700.0, 200.0, True)


def test_restore_puts_back_the_limit_from_before_the_first_cap_even_after_renewals():
    clock = Clock()
    ctl, gpus, records = _controller(clock)
    gpus[0].values["accel_power_limit_w"] = 650.0  # an operator's own limit before the incident
    ctl.apply(CapRequest((0,), 600, "alice", "first", watts=500))
    ctl.apply(CapRequest((0,), 600, "bob", "tighter", watts=400))
    assert gpus[0].values["accel_power_limit_w"] == 400.0
    res = ctl.restore([0], "carol", "CRAC back")
    assert res[0].ok and res[0].applied_w == 650.0
    assert gpus[0].values["accel_power_limit_w"] == 650.0
    assert [r["action"] for r in records] == ["power_cap_set", "power_cap_set", "power_cap_restored"]
    assert "capped" not in ctl.state()[0]


def test_a_cap_nobody_renews_reverts_when_its_lease_ends():
    clock = Clock()
    ctl, gpus, records = _controller(clock)
    ctl.apply(CapRequest((), 300, "runbook", "ride-through", watts=450))
    assert [g.values["accel_power_limit_w"] for g in gpus] == [450.0, 450.0]
    clock.t += 200
    ctl.apply(CapRequest((1,), 300, "runbook", "renewed", watts=450))  # GPU 1 renewed, GPU 0 not
    clock.t += 150
    expired = ctl.expire()
    assert [r.accel for r in expired] == [0]
    assert [g.values["accel_power_limit_w"] for g in gpus] == [700.0, 450.0]
    clock.t += 200
    assert [r.accel for r in ctl.expire()] == [1]
    assert [g.values["accel_power_limit_w"] for g in gpus] == [700.0, 700.0]
    assert [r["action"] for r in records].count("power_cap_expired") == 2


def test_no_permission_is_reported_as_such_and_changes_nothing():
    clock = Clock()
    ctl, gpus, records = _controller(clock, set_error=_CONSTANTS["NVML_ERROR_NO_PERMISSION"])
    res = ctl.apply(CapRequest((0,), 60, "alice", "test", watts=500))
    assert not res[0].ok and "root" in res[0].error and "permission" in res[0].error
    assert gpus[0].values["accel_power_limit_w"] == 700.0
    assert records[-1]["action"] == "power_cap_refused"
    assert "capped" not in ctl.state()[0]


def test_unsupported_devices_say_why_instead_of_pretending():
    npu = UnsupportedPowerBackend("rebellions", ["npu-0", "npu-1"], "rbln-stat offers no power-limit control")
    ctl = PowerController("npu-host", [npu], clock=Clock())
    caps = ctl.capabilities()
    assert [c["settable"] for c in caps] == [False, False]
    assert "rbln-stat" in caps[0]["reason"]
    res = ctl.apply(CapRequest((), 60, "alice", "test", fraction=0.8))
    assert not any(r.ok for r in res) and "rbln-stat" in res[0].error
    with pytest.raises(PowerLimitUnsupported):
        npu.get_limit(0)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(watts=None, fraction=None), "exactly one"),
    (dict(watts=500, fraction=0.5), "exactly one"),
    (dict(watts=float("nan")), "positive"),
    (dict(fraction=1.5), "(0, 1]"),
    (dict(watts=500, ttl_s=0), "ttl_s"),
    (dict(watts=500, reason=" "), "who asked and why"),
])
def test_bad_requests_are_refused_naming_the_field(kwargs, msg):
    base = dict(accels=(0,), ttl_s=60.0, requested_by="alice", reason="why")
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        CapRequest(**{**base, **kwargs})


def test_tokens_are_signed_scoped_and_expire():
    clock = Clock()
    tok = mint_token(KEY, "alice", 60, clock)
    assert verify_token(KEY, tok, clock) == "alice"
    with pytest.raises(TokenError, match="signature"):
        verify_token(b"other-key", tok, clock)
    with pytest.raises(TokenError, match="scope"):
        verify_token(KEY, mint_token(KEY, "alice", 60, clock, scope="admin"), clock)
    clock.t += 61
    with pytest.raises(TokenError, match="expired"):
        verify_token(KEY, tok, clock)
    with pytest.raises(TokenError, match="malformed"):
        verify_token(KEY, "v1.garbage", clock)


@pytest.fixture()
def api_server(tmp_path):
    clock = Clock()
    ctl, gpus, _ = _controller(clock, audit=None)
    audit = JsonlAudit(tmp_path / "audit.jsonl")
    ctl.audit = audit
    api = ControlApi({"gpu-host-1": ctl}, KEY, rate=1.0, burst=5, clock=clock)
    server = create_server(api, host="127.0.0.1", port=0, threads=2)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    yield url, api, clock, gpus, tmp_path / "audit.jsonl"
    server.close()


def _auth(clock, sub="alice", ttl=60, key=KEY):
    return {"Authorization": "Bearer " + mint_token(key, sub, ttl, clock)}


def test_api_refuses_unauthenticated_forged_and_expired_requests(api_server):
    url, api, clock, gpus, _ = api_server
    body = {"accels": [0], "watts": 400, "ttl_s": 600, "reason": "test"}
    assert httpx.post(f"{url}/v1/power-limit", json=body).status_code == 401
    r = httpx.post(f"{url}/v1/power-limit", json=body, headers=_auth(clock, key=b"forged"))
    assert r.status_code == 401 and "signature" in r.json()["error"]
    old = _auth(clock, ttl=5)
    clock.t += 10
    r = httpx.post(f"{url}/v1/power-limit", json=body, headers=old)
    assert r.status_code == 401 and "expired" in r.json()["error"]
    assert gpus[0].values["accel_power_limit_w"] == 700.0


def test_api_caps_reads_back_restores_and_audits(api_server):
    url, api, clock, gpus, audit_path = api_server
    h = _auth(clock, sub="runbook:alice")
    r = httpx.post(f"{url}/v1/power-limit", json={"accels": "all", "fraction": 0.8, "ttl_s": 900,
                                                  "reason": "CRAC-H1-2 lost", "incident": "inc-7"}, headers=h)
    assert r.status_code == 200, r.text
    assert [x["applied_w"] for x in r.json()["results"]] == [560.0, 560.0]
    state = httpx.get(f"{url}/v1/power-limit", headers=h).json()["accelerators"]
    assert state[0]["limit_w"] == 560.0 and state[0]["capped"]["restore_to_w"] == 700.0
    assert state[0]["capped"]["requested_by"] == "runbook:alice"
    r = httpx.post(f"{url}/hosts/gpu-host-1/v1/power-limit/restore", json={"accels": [1], "reason": "done"}, headers=h)
    assert r.status_code == 200 and gpus[1].values["accel_power_limit_w"] == 700.0
    clock.t += 901
    api.expire_all()  # what the expiry loop does every second
    assert gpus[0].values["accel_power_limit_w"] == 700.0
    lines = [json.loads(x) for x in audit_path.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["power_cap_set", "power_cap_set", "power_cap_restored", "power_cap_expired"]
    assert all(x["requested_by"] for x in lines) and lines[0]["incident"] == "inc-7"
    assert lines[0]["prev"] == "" and all(x["prev"] for x in lines[1:])  # chained


@pytest.mark.parametrize("body,msg", [
    ({"accels": [0], "watts": 400, "reason": "x"}, "ttl_s"),
    ({"accels": [0], "watts": "400", "ttl_s": 60, "reason": "x"}, "'watts' must be a number"),
    ({"accels": [0], "watts": 400, "ttl_s": 60}, "'reason'"),
    ({"accels": [-1], "watts": 400, "ttl_s": 60, "reason": "x"}, "'accels'"),
    ({"accels": [0], "watts": 400, "ttl_s": 60, "reason": "x", "shell": "rm -rf /"}, "unknown field"),
    ([1, 2], "JSON object"),
])
def test_api_bad_bodies_get_400_naming_the_field(api_server, body, msg):
    url, _, clock, gpus, _ = api_server
    r = httpx.post(f"{url}/v1/power-limit", json=body, headers=_auth(clock))
    assert r.status_code == 400 and msg in r.json()["error"], r.text
    assert gpus[0].values["accel_power_limit_w"] == 700.0


def test_api_rate_limits_each_subject(api_server):
    url, _, clock, _, _ = api_server
    h = _auth(clock, sub="noisy")
    codes = [httpx.get(f"{url}/v1/capabilities", headers=h).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    assert httpx.get(f"{url}/v1/capabilities", headers=_auth(clock, sub="other")).status_code == 200
    clock.t += 2  # two tokens back
    assert httpx.get(f"{url}/v1/capabilities", headers=h).status_code == 200


def test_api_is_never_served_without_a_key():
    ctl, _, _ = _controller(Clock())
    with pytest.raises(ValueError, match="never served open"):
        ControlApi({"h": ctl}, b"")
