"""XID catalogue (data) and the XID watcher thread over the pynvml stand-in."""

from __future__ import annotations

import threading

import pytest

from dcops.collectors.nvml_agent import NvmlAgent
from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu
from dcops.collectors.xid_events import ACTION_LADDER, XidWatcher, load_xid_catalogue
from dcops.catalogue import EVENT_KINDS
from dcops.codec import decode_events, encode_events
from dcops.yamlconf import ConfigError

REQUIRED = [8, 13, 31, 32, 43, 45, 46, 48, 54, 62, 63, 64, 68, 74, 79, 92, 94, 95, 109, 119, 120, 136, 140,
            154, 162, 163, 164, 165]


@pytest.fixture(scope="module")
def catalogue():
    return load_xid_catalogue()


def test_catalogue_covers_the_xids_operators_meet(catalogue):
    missing = [x for x in REQUIRED if x not in catalogue]
    assert not missing, f"XID catalogue lacks {missing}"
    for x in REQUIRED:
        info = catalogue.lookup(x)
        assert info.action in ACTION_LADDER and info.meaning and info.name


def test_application_versus_hardware_and_the_ladder(catalogue):
    assert catalogue.lookup(13).application_fault and catalogue.lookup(13).action == "restart_app"
    assert catalogue.lookup(31).application_fault
    dbe = catalogue.lookup(48)
    assert not dbe.application_fault and dbe.cause == "hardware" and dbe.severity == "critical"
    assert dbe.ladder == ("reset_gpu", "reboot_node", "contact_support")
    off_bus = catalogue.lookup(79)
    assert off_bus.action == "reboot_node" and off_bus.ladder[-1] == "contact_support"
    assert catalogue.lookup(45).cause == "secondary" and catalogue.lookup(45).ladder == ("ignore",)
    for x in (162, 163, 164, 165):
        assert catalogue.lookup(x).cause == "power"


def test_unknown_xid_is_escalated_not_dropped(catalogue):
    info = catalogue.lookup(4242)
    assert info.action == "contact_support" and "not in" in info.name


def test_bad_catalogue_names_file_line_and_field(tmp_path):
    bad = tmp_path / "xid.yaml"
    bad.write_text("xids:\n  48:\n    name: DBE\n    cause: hardware\n    action: reboot_everything\n"
                   "    severity: critical\n    meaning: x\n")
    with pytest.raises(ConfigError) as err:
        load_xid_catalogue(bad)
    text = str(err.value)
    assert f"{bad}:5: xids.48.action" in text and "reset_gpu" in text


def _watcher(n_gpus=2):
    gpus = [typical_gpu(i) for i in range(n_gpus)]
    backend = StaticBackend(gpus)
    nvml = NvmlStandin(backend)
    agent = NvmlAgent(nvml, "gpu-node-07", clock=lambda: 5)
    agent.start()
    got = []
    w = XidWatcher(nvml, agent.handles, agent.targets, got.extend, clock=lambda: 7, timeout_ms=20)
    w.register()
    return w, backend, nvml, agent, got, gpus


def test_xid_becomes_an_event_with_meaning_and_action():
    w, backend, _, _, _, gpus = _watcher()
    assert w.wait_once(0) == []  # nothing pending: a timeout, not an error
    backend.push_xid(1, 79)
    (ev,) = w.wait_once(0)
    assert ev.kind == "xid" and ev.kind in EVENT_KINDS and ev.time_ns == 7
    assert ev.severity == "critical" and ev.target["accel"] == "1" and ev.target["device"] == "gpu-node-07"
    a = ev.attributes
    assert a["xid"] == 79 and a["uuid"] == gpus[1].uuid and a["action"] == "reboot_node"
    assert a["application_fault"] is False and "fallen off the bus" in a["name"]
    assert "XID 79" in ev.message and "reboot node" in ev.message
    assert decode_events(encode_events([ev]))[0].attributes["xid"] == 79


def test_watcher_thread_delivers_and_stops():
    w, backend, nvml, agent, got, _ = _watcher()
    stop = threading.Event()
    th = w.start(stop)
    backend.push_xid(0, 13)
    backend.push_xid(1, 48)
    nvml.wake()
    for _ in range(200):
        if len(got) == 2:
            break
        threading.Event().wait(0.01)
    stop.set()
    th.join(2)
    assert not th.is_alive()
    assert [e.attributes["xid"] for e in got] == [13, 48]
    assert got[0].attributes["application_fault"] is True
    agent.count_xids(got)
    batch, _ = agent.poll()
    assert list(batch.fields["accel_xid_total"]) == [1.0, 1.0]


def test_watcher_survives_nvml_errors():
    w, backend, nvml, _, got, _ = _watcher()
    real = nvml.nvmlEventSetWait_v2
    calls = {"n": 0}

    def failing(es, t):
        calls["n"] += 1
        if calls["n"] == 1:
            raise nvml.NVMLError(nvml.NVML_ERROR_UNKNOWN)
        return real(es, t)

    nvml.nvmlEventSetWait_v2 = failing
    w.retry_s = 0.01
    stop = threading.Event()
    th = w.start(stop)
    backend.push_xid(0, 94)
    for _ in range(200):
        if got:
            break
        threading.Event().wait(0.01)
    stop.set()
    th.join(2)
    assert [e.attributes["xid"] for e in got] == [94] and calls["n"] >= 2
