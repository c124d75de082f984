"""`dcops agent`: one poll printed as readings; the `agent` role publishing to the bus."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from dcops.catalogue import METRICS
from dcops.cli import main

REPO = Path(__file__).resolve().parents[2]
RBLN = REPO / "tests" / "data" / "rbln"
SITE = REPO / "tests" / "data" / "small-site.yaml"
KEYS = {"accelerator", "vendor", "model", "metric", "unit", "value"}


def _json(capsys, argv):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, (json.loads(cap.out) if cap.out.strip() else None), cap.err


def test_once_json_from_saved_rbln_stat(capsys):
    rc, recs, _ = _json(capsys, ["agent", "--once", "--format", "json", "--no-nvml",
                                 "--rbln-stat-json", str(RBLN / "rbln-stat-atom-max.json")])
    assert rc == 0
    assert all(set(r) == KEYS for r in recs)
    assert {r["accelerator"] for r in recs} == {f"9A7E21C4-0B3D-4C5F-8E61-7D2B9F40{k:04d}" for k in range(4)} | {
        "3C4D8F12-6A1B-4E7E-9B0D-2F6C1A9E0101"}
    power = [r for r in recs if r["metric"] == "accel_power_w"]
    assert len(power) == 2  # the four-die card once, on the card's first die
    assert power[0]["value"] == pytest.approx(412.88421) and power[0]["unit"] == "W"
    mem = [r for r in recs if r["metric"] == "accel_mem_total_bytes"][0]
    assert mem["unit"] == "bytes" and mem["value"] == 68719476736
    for r in recs:
        assert r["unit"] == METRICS[r["metric"]].unit


def test_once_against_the_simulated_gpu_server(capsys):
    rc, recs, _ = _json(capsys, ["agent", "--once", "--format", "json", "--standin-site", str(SITE),
                                 "--standin-host", "R1-03-S01"])
    assert rc == 0
    gpus = {r["accelerator"] for r in recs}
    assert len(gpus) == 4 and all(g.startswith("GPU-") for g in gpus)
    assert {r["model"] for r in recs} == {"L40S"} and {r["vendor"] for r in recs} == {"nvidia"}
    units = {r["metric"]: r["unit"] for r in recs}
    assert units["accel_energy_j_total"] == "J" and units["accel_sm_clock_mhz"] == "MHz"
    assert units["accel_temp_degc"] == "degC" and units["accel_util_pct"] == "%"


def test_table_output_for_operators(capsys):
    rc = main(["agent", "--once", "--no-nvml", "--rbln-stat-json", str(RBLN / "rbln-stat-ca22-x4.json")])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(out) == 4 * 9
    assert out[2].split()[-3:] == ["accel_power_w", "18.109794", "W"]


def test_nothing_found_says_why(capsys):
    rc = main(["agent", "--once", "--no-nvml", "--rbln-stat-json", str(RBLN / "rbln-stat-truncated.json")])
    err = capsys.readouterr().err
    assert rc == 1 and "not valid JSON" in err


def test_no_source_at_all(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    rc = main(["agent", "--once", "--no-nvml"])
    err = capsys.readouterr().err
    assert rc == 1 and "rbln-stat is not on PATH" in err and "no accelerator source works" in err


def test_bad_arguments(capsys, tmp_path):
    assert main(["agent", "--once", "--standin-site", str(SITE)]) == 2
    assert "go together" in capsys.readouterr().err
    assert main(["agent", "--once", "--standin-site", str(SITE), "--standin-host", "R9-99"]) == 2
    assert "'R9-99' is not a server" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: x\nhalls: []\n")
    assert main(["agent", "--once", "--site", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_role_publishes_to_the_sites_bus(monkeypatch, small_site):
    import dcops.collectors.agent_cli as cli
    import dcops.collectors.host_agent as ha
    from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu
    from dcops.codec import decode
    from dcops.wiring import open_bus

    backend = StaticBackend([typical_gpu(i) for i in range(4)])
    monkeypatch.setattr(ha, "load_pynvml", lambda: NvmlStandin(backend))
    monkeypatch.setattr(cli.socket, "gethostname", lambda: "R1-02-S02")
    monkeypatch.setenv("PATH", "/nonexistent")
    cfg = small_site.model_copy(update={"settings": small_site.settings.model_copy(update={"interval_s": 0.05})})
    bus = open_bus(cfg.settings.bus)
    samples, events = bus.consumer("samples", "role-test"), bus.consumer("events", "role-test")
    stop = threading.Event()
    th = threading.Thread(target=cli.run_role, args=(cfg, stop))
    th.start()
    got = []
    for _ in range(200):
        got += samples.poll(0.02, 100)
        if len(got) >= 2:
            break
    backend.push_xid(2, 48)
    evs = []
    for _ in range(200):
        evs += [e for m in events.poll(0.02, 100) for e in decode(m.value)]
        if evs:
            break
    stop.set()
    th.join(5)
    assert not th.is_alive()
    batch = decode(got[0].value)
    assert got[0].key == "R1-02" and set(batch.tags["device"]) == {"R1-02-S02"} and len(batch) == 4
    assert [(e.kind, e.attributes["xid"], e.target["accel"]) for e in evs] == [("xid", 48, "2")]


def test_identity_of_npus(capsys):
    rc, ids, _ = _json(capsys, ["agent", "--once", "--identity", "--format", "json", "--no-nvml",
                                "--rbln-stat-json", str(RBLN / "rbln-stat-ca22-x4.json")])
    assert rc == 0 and len(ids) == 4
    assert ids[1] == {"accelerator": "3C4D8F12-6A1B-4E7E-9B0D-2F6C1A9E0002", "vendor": "rebellions",
                      "model": "RBLN-CA22", "index": 1, "card": "00000000241100B3", "status": "normal",
                      "pci_bus_id": "0000:5e:00.0", "firmware": "1.3.73", "kmd_version": "1.3.73"}


def test_identity_of_gpus(monkeypatch):
    import dcops.collectors.host_agent as ha
    from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu

    monkeypatch.setattr(ha, "load_pynvml", lambda: NvmlStandin(StaticBackend([typical_gpu(0), typical_gpu(1, mig_mode=1)])))
    monkeypatch.setenv("PATH", "/nonexistent")
    agent = ha.discover("gpu-node-07")
    ids = agent.identities()
    assert [d["mig_mode"] for d in ids] == ["disabled", "enabled"]
    assert ids[0]["serial"] == "1650923000000" and ids[0]["pci_bus_id"] == "00000000:18:00.0"
    assert ids[0]["driver_version"] == "550.90.07" and ids[0]["vbios_version"] == "96.00.89.00.01"
    assert ids[1]["accelerator"].startswith("GPU-") and ids[1]["model"] == "NVIDIA H100 80GB HBM3"


def test_capabilities_say_which_accelerators_can_be_capped(capsys):
    """`dcops agent --capabilities`: GPUs with their constraints, NPUs with the reason they cannot."""
    import json as _json

    from dcops.cli import main

    site = str(Path(__file__).resolve().parents[1] / "data" / "small-site.yaml")
    assert main(["agent", "--capabilities", "--format", "json", "--standin-site", site, "--standin-host", "R1-01-S01"]) == 0
    rows = _json.loads(capsys.readouterr().out)["accelerators"]
    assert rows and all(r["settable"] and r["min_w"] < r["default_w"] <= r["max_w"] for r in rows)
    from dcops.site import load_site
    from dcops.topology import build_inventory

    inv = build_inventory(load_site(site))
    npu = next(s.name for s in inv.servers if s.attrs["kind"] == "npu_server")
    assert main(["agent", "--capabilities", "--format", "json", "--standin-site", site, "--standin-host", npu]) == 0
    rows = _json.loads(capsys.readouterr().out)["accelerators"]
    assert rows and not any(r["settable"] for r in rows) and "rbln-stat" in rows[0]["reason"]
