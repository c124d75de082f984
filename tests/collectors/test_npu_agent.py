"""NPU agent on recorded `rbln-stat -j` outputs, including multi-die, old, malformed and partial ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dcops.collectors.accel_common import readings
from dcops.collectors.npu_agent import (NpuAgent, NpuParseError, NpuToolError, load_npu_adapters, parse_document,
                                  run_tool)
from dcops.yamlconf import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data" / "rbln"


@pytest.fixture(scope="module")
def rbln():
    return load_npu_adapters()["rbln-stat"]


def _text(name):
    return (DATA / name).read_text()


def _agent(rbln, name, **kw):
    return NpuAgent(lambda: _text(name), rbln, "npu-node-03", clock=lambda: 11, **kw)


def test_parse_current_rbln_stat(rbln):
    parsed = parse_document(_text("rbln-stat-ca22-x4.json"), rbln)
    assert parsed.problems == ()
    d = parsed.devices[1]
    assert d.index == 1 and d.model == "RBLN-CA22" and d.up and d.card == "00000000241100B3"
    assert d.values["accel_temp_degc"] == 54.0
    assert d.values["accel_power_w"] == pytest.approx(97.401128)  # microwatts string -> W
    assert d.values["accel_pstate"] == 0.0 and d.values["accel_util_pct"] == pytest.approx(83.4)
    assert d.values["accel_mem_used_bytes"] == 11811160064 and d.values["accel_mem_total_bytes"] == 17179869184
    assert d.values["accel_pcie_link_gen"] == 5.0 and d.values["accel_pcie_link_width"] == 16.0
    assert parsed.devices[3].values["accel_pcie_link_gen"] == 4.0
    assert d.identity == {"pci_bus_id": "0000:5e:00.0", "firmware": "1.3.73", "kmd_version": "1.3.73"}


def test_multi_die_card_power_counted_once(rbln):
    agent = _agent(rbln, "rbln-stat-atom-max.json")
    batch, events = agent.poll()
    assert events == [] and len(batch) == 5
    power = batch.fields["accel_power_w"]
    # Four dies of one ATOM Max share sid 0000000025020011: power on die 0 only.
    assert power[0] == pytest.approx(412.88421) and np.isnan(power[1:4]).all()
    assert power[4] == pytest.approx(21.004512)
    assert np.nansum(power) == pytest.approx(412.88421 + 21.004512)
    assert list(batch.fields["accel_temp_degc"][:4]) == [47.0, 48.0, 49.0, 50.0]
    recs = [r for r in readings(batch) if r["metric"] == "accel_power_w"]
    assert len(recs) == 2 and recs[0]["accelerator"] == "9A7E21C4-0B3D-4C5F-8E61-7D2B9F400000"
    assert recs[0]["vendor"] == "rebellions" and recs[0]["model"] == "RBLN-CA25" and recs[0]["unit"] == "W"


def test_older_rbln_stat_with_string_npu_and_error_status(rbln):
    agent = _agent(rbln, "rbln-stat-old-npu-string.json")
    batch, events = agent.poll()
    assert list(batch.tags["accel"]) == ["0", "1"]
    assert list(batch.fields["accel_up"]) == [1.0, 0.0]  # status "error"
    assert [e.kind for e in events] == ["accel_lost"] and "error" in events[0].message
    assert batch.fields["accel_pstate"][0] == 2.0
    assert agent.problems == ()


def test_malformed_values_cost_only_those_values(rbln):
    parsed = parse_document(_text("rbln-stat-malformed-values.json"), rbln)
    assert [d.index for d in parsed.devices] == [0, 1, 3]  # device 2 lost its uuid
    probs = "\n".join(parsed.problems)
    assert "devices[0].temperature: 'N/A' is not a number" in probs
    assert "devices[1].card_power: '97401128' has no unit; expected one of uW, mW, W" in probs
    assert "devices[2]: missing 'uuid'; device skipped" in probs
    assert "devices[3].pci.link_speed: 'fast'" in probs
    assert "devices[3].memory.used: missing" in probs
    d0 = parsed.devices[0]
    assert "accel_temp_degc" not in d0.values and d0.values["accel_power_w"] == pytest.approx(18.109794)


def test_truncated_output_is_a_clear_error(rbln):
    with pytest.raises(NpuParseError, match=r"not valid JSON at line \d+ column \d+.*truncated"):
        parse_document(_text("rbln-stat-truncated.json"), rbln)
    with pytest.raises(NpuParseError, match="empty output"):
        parse_document("  \n", rbln)
    with pytest.raises(NpuParseError, match=r"no 'devices' in the output \(keys: \['contexts'\]\)"):
        parse_document('{"contexts": []}', rbln)
    with pytest.raises(NpuParseError, match="'devices' is a dict, expected a list"):
        parse_document('{"devices": {}}', rbln)


def test_die_missing_from_output_is_lost_then_recovered(rbln):
    import json

    doc = json.loads(_text("rbln-stat-ca22-x4.json"))
    outputs = [doc, {**doc, "devices": doc["devices"][:3]}, doc]
    agent = NpuAgent(lambda: outputs.pop(0), rbln, "npu-node-03", clock=lambda: 1)
    agent.poll()
    batch, events = agent.poll()
    assert [e.kind for e in events] == ["accel_lost"] and events[0].target["accel"] == "3"
    assert len(batch) == 4 and batch.fields["accel_up"][3] == 0.0
    _, events = agent.poll()
    assert [e.kind for e in events] == ["accel_recovered"]


def test_inventory_tags_for_npu_hosts(rbln, small_inventory):
    agent = NpuAgent(lambda: _text("rbln-stat-ca22-x4.json"), rbln, "R2-02-S01", inventory=small_inventory,
                     clock=lambda: 1)
    batch, _ = agent.poll()
    assert set(batch.tags["rack"]) == {"R2-02"} and set(batch.tags["vendor"]) == {"rebellions"}
    assert batch.tags["uuid"][0] == "3C4D8F12-6A1B-4E7E-9B0D-2F6C1A9E0001"


def test_another_vendor_is_added_as_data(tmp_path):
    (tmp_path / "a.yaml").write_text("""
adapters:
  acme-smi:
    vendor: other
    command: [acme-smi, --json]
    devices: report.npus
    index: id
    uuid: serial
    model: product
    card: board
    status: health
    up_status: [OK]
    fields:
      - {metric: accel_temp_degc, path: sensors.temp_c, unit: degC}
      - {metric: accel_power_w, path: sensors.board_power_mw, unit: mW, per_card: true}
      - {metric: accel_mem_used_bytes, path: hbm.used, unit: bytes}
""")
    acme = load_npu_adapters(tmp_path / "a.yaml")["acme-smi"]
    doc = {"report": {"npus": [
        {"id": "npu0", "serial": "S-1", "product": "Acme X2", "board": "B7", "health": "OK",
         "sensors": {"temp_c": 40, "board_power_mw": 45000}, "hbm": {"used": "2GiB"}},
        {"id": "npu1", "serial": "S-2", "product": "Acme X2", "board": "B7", "health": "DEGRADED",
         "sensors": {"temp_c": 44.5, "board_power_mw": 45000}, "hbm": {"used": "512MiB"}}]}}
    batch, events = NpuAgent(lambda: doc, acme, "h", clock=lambda: 1, source="acme").poll()
    assert list(batch.fields["accel_temp_degc"]) == [40.0, 44.5]
    assert batch.fields["accel_power_w"][0] == 45.0 and math.isnan(batch.fields["accel_power_w"][1])
    assert list(batch.fields["accel_mem_used_bytes"]) == [2 * 2**30, 512 * 2**20]
    assert list(batch.fields["accel_up"]) == [1.0, 0.0] and [e.kind for e in events] == ["accel_lost"]


def test_bad_adapter_file_names_line_and_field(tmp_path):
    (tmp_path / "a.yaml").write_text("""adapters:
  x:
    vendor: other
    command: [x]
    devices: d
    index: i
    uuid: u
    model: m
    fields:
      - {metric: accel_temperature, path: t, unit: degC}
      - {metric: accel_power_w, path: p, unit: furlongs}
""")
    with pytest.raises(ConfigError) as err:
        load_npu_adapters(tmp_path / "a.yaml")
    text = str(err.value)
    assert "a.yaml:10: adapters.x.fields.0.metric: metric 'accel_temperature' is not an accel metric" in text
    assert "a.yaml:11: adapters.x.fields.1.unit" in text


def test_run_tool_errors_name_the_command():
    with pytest.raises(NpuToolError, match="rbln-stat-does-not-exist not found"):
        run_tool(["rbln-stat-does-not-exist", "-j"])
    with pytest.raises(NpuToolError, match="exited with 3"):
        run_tool(["sh", "-c", "echo boom >&2; exit 3"])
    assert run_tool(["cat", str(DATA / "rbln-stat-ca22-x4.json")]).startswith("{")
