"""Alertmanager webhook bodies -> alarm signals, with label sets from real exporters
(the dcgm-exporter and RBLN exporter recordings in tests/data/prom/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dcops.alerts.alarms.manager import AlarmManager
from dcops.alerts.inbound import AlertmanagerPayload, resolve_component, signals_from_alertmanager

PROM = Path(__file__).resolve().parents[1] / "data" / "prom"
NOW = 1_795_000_000.0  # 2026-11-19


def exporter_labels(file: str, metric: str) -> list[dict[str, str]]:
    """Every label set of `metric` in a recorded exporter page."""
    out = []
    for fam in text_string_to_metric_families((PROM / file).read_text()):
        out += [dict(s.labels) for s in fam.samples if s.name == metric]
    assert out, f"{metric} not in {file}"
    return out


def alert(labels, status="firing", starts="2026-11-18T10:00:00Z", ends="0001-01-01T00:00:00Z", fp="", **extra):
    return {"status": status, "labels": labels, "annotations": {"summary": "GPU hot", "runbook_url": "https://rb/gpu-hot"},
            "startsAt": starts, "endsAt": ends, "generatorURL": "http://prom:9090/graph?g0.expr=DCGM_FI_DEV_GPU_TEMP",
            "fingerprint": fp, **extra}


def payload(*alerts, **env):
    return AlertmanagerPayload.model_validate({"version": "4", "status": "firing", "receiver": "dcops",
                                               "groupKey": '{}:{alertname="GpuHot"}', "externalURL": "http://am:9093",
                                               "alerts": list(alerts), **env})


def dcgm_on(host: str, gpu: str = "0") -> dict[str, str]:
    """dcgm-exporter's label set for one GPU, as the exporter on `host` would report it."""
    base = next(l for l in exporter_labels("dcgm-exporter-h100.txt", "DCGM_FI_DEV_GPU_TEMP") if l["gpu"] == gpu)
    return {**base, "Hostname": host, "alertname": "GpuHot", "severity": "critical"}


def test_dcgm_labels_name_the_accelerator_not_nvidia0(small_inventory):
    for host in ("R1-01-S01", "R1-02-S01.dc1.example"):   # FQDN as some hosts report it
        lab = dcgm_on(host)
        assert lab["device"] == "nvidia0"                   # the label that merged every host's GPU0 before
        comp, used = resolve_component(lab, small_inventory)
        assert comp == f"{host.split('.')[0]}:0" and used == "Hostname+gpu"
    comp, used = resolve_component(dcgm_on("gpu-node-07"), None)   # no inventory: still host:gpu
    assert (comp, used) == ("gpu-node-07:0", "Hostname+gpu")


def test_rbln_node_exporter_and_kube_labels(small_inventory):
    rbln = exporter_labels("rbln-exporter.txt", "rbln_device_temperature_celsius")[1]
    assert resolve_component(rbln, None) == ("npu-node-03:1", "hostname+npu")
    node_exp = {"alertname": "DiskFull", "instance": "R1-02-S01:9100", "device": "sda", "mountpoint": "/"}
    assert resolve_component(node_exp, small_inventory) == ("R1-02-S01", "instance")
    kube = {"alertname": "KubeNodeNotReady", "node": "R1-01-S02", "instance": "10.0.0.5:8080", "pod": "ksm-0"}
    assert resolve_component(kube, small_inventory) == ("R1-01-S02", "node")
    # unknown to the inventory: the first present label still names it, and says which
    assert resolve_component({"alertname": "X", "instance": "[fd00::7]:9100"}, small_inventory) == ("fd00::7", "instance")


def test_two_hosts_gpu0_are_two_alarms_and_resolving_one_keeps_the_other(small_inventory):
    mgr = AlarmManager(small_inventory)
    a1, a2 = dcgm_on("R1-01-S01"), dcgm_on("R1-02-S01")
    sigs, refused = signals_from_alertmanager(payload(alert(a1, fp="aaa1"), alert(a2, fp="bbb2")), small_inventory, NOW)
    assert refused == []
    mgr.apply(sigs)
    active = {a.component: a for a in mgr.alarms.values() if a.active}
    assert {"R1-01-S01:0", "R1-02-S01:0"} <= set(active)
    a = active["R1-01-S01:0"]
    assert a.labels["component_label"] == "Hostname+gpu" and a.labels["component_resolved"] == "true"
    assert a.labels["generator_url"].startswith("http://prom:9090/graph") and a.labels["alertmanager_url"] == "http://am:9093"
    assert a.labels["alertmanager_fingerprint"] == "aaa1" and a.proposed_repair_actions == ("https://rb/gpu-hot",)
    sigs, _ = signals_from_alertmanager(payload(alert(a1, "resolved", ends="2026-11-18T10:05:00Z", fp="aaa1"),
                                                status="resolved"), small_inventory, NOW)
    mgr.apply(sigs)
    assert not mgr.alarms[active["R1-01-S01:0"].id].active
    assert mgr.alarms[active["R1-02-S01:0"].id].active


def test_two_alerts_on_one_component_resolve_separately(small_inventory):
    """Two filesystems of one host: one alarm (component, cause), two sources by fingerprint."""
    mgr = AlarmManager(small_inventory)
    root = {"alertname": "DiskFull", "instance": "R1-02-S01:9100", "severity": "warning"}
    d1, d2 = {**root, "device": "sda", "mountpoint": "/"}, {**root, "device": "sdb", "mountpoint": "/data"}
    mgr.apply(signals_from_alertmanager(payload(alert(d1), alert(d2)), small_inventory, NOW)[0])
    (alarm,) = [a for a in mgr.alarms.values() if a.component == "R1-02-S01"]
    assert alarm.active and alarm.rule.count("alertmanager:DiskFull@") == 2   # fingerprints from the label sets
    mgr.apply(signals_from_alertmanager(payload(alert(d1, "resolved", ends="2026-11-18T11:00:00Z"), status="resolved"),
                                        small_inventory, NOW)[0])
    assert mgr.alarms[alarm.id].active                                        # sdb still firing
    mgr.apply(signals_from_alertmanager(payload(alert(d2, "resolved", ends="2026-11-18T11:01:00Z"), status="resolved"),
                                        small_inventory, NOW)[0])
    assert not mgr.alarms[alarm.id].active


def test_truncated_group_raises_a_visible_warning_until_it_arrives_whole(small_inventory):
    mgr = AlarmManager(small_inventory)
    mgr.apply(signals_from_alertmanager(payload(alert(dcgm_on("R1-01-S01")), truncatedAlerts=7), small_inventory, NOW)[0])
    (warn,) = [a for a in mgr.alarms.values() if a.component == "alertmanager:dcops"]
    assert warn.active and warn.severity.value == "warning" and "truncated 7 alert(s)" in warn.specific_problem
    mgr.apply(signals_from_alertmanager(payload(alert(dcgm_on("R1-01-S01"))), small_inventory, NOW + 60)[0])
    assert not mgr.alarms[warn.id].active


@pytest.mark.parametrize("starts", ["2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-01-01T00:00:00Z"])
def test_out_of_range_times_are_refused_alone(starts):
    good, bad = alert(dcgm_on("R1-01-S01"), fp="g"), alert(dcgm_on("R1-02-S01"), starts=starts, fp="b")
    sigs, refused = signals_from_alertmanager(payload(good, bad, alert({"alertname": "Nested", "x": {"y": 1}})), None, NOW)
    assert [r.index for r in refused] == [1, 2] and refused[0].fingerprint == "b"
    assert "alerts.1.startsAt" in refused[0].problems[0] and "alerts.2.labels.x" in refused[1].problems[0]
    assert [s.component for s in sigs if s.active] == ["R1-01-S01:0", "alertmanager:dcops"]   # good one + refused warning
    assert all(0 < s.time_ns < 2**63 for s in sigs)


def test_far_future_start_is_refused_as_clock_skew():
    sigs, refused = signals_from_alertmanager(payload(alert(dcgm_on("h1"), starts="2027-06-01T00:00:00Z")), None, NOW)
    assert len(refused) == 1 and "in the future" in refused[0].problems[0]
