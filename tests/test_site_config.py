"""Site config validation: good files load, bad ones are refused naming file, line and field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dcops.site import load_site, site_from_text
from dcops.topology import build_inventory
from dcops.yamlconf import ConfigError
from tests.conftest import DEMO_SITE, SMALL_SITE


def test_demo_site_is_the_promised_size():
    inv = build_inventory(load_site(DEMO_SITE))
    assert len(inv.racks) == 67  # 64 air-cooled + a liquid-cooled row of 3 on CDUs
    assert 3900 <= inv.n_accel <= 4200
    vendors = set(inv.accel_tags["vendor"])
    assert vendors == {"nvidia", "rebellions"}


def _problems(text: str) -> list:
    with pytest.raises(ConfigError) as exc:
        site_from_text(text, "site.yaml")
    return exc.value.problems


def _mutate(old: str, new: str) -> str:
    text = SMALL_SITE.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_wrong_type_names_line_and_field():
    text = _mutate("capacity_kw: 200, battery_runtime_s: 600}", "capacity_kw: lots, battery_runtime_s: 600}")
    (p,) = _problems(text)
    assert p.file == "site.yaml"
    assert p.line == _line_of(text, "capacity_kw: lots")
    assert p.field == "halls.0.upses.0.capacity_kw"
    assert "number" in p.message


def test_unknown_field_is_refused_with_its_name():
    text = _mutate("    - {name: CRAC-1, kind: crac, capacity_kw: 40}", "    - {name: CRAC-1, kind: crac, capacity_kw: 40, colour: blue}")
    (p,) = _problems(text)
    assert p.field == "halls.0.cooling_units.0.colour"
    assert p.line == _line_of(text, "colour: blue")
    assert "unknown field" in p.message


def test_missing_required_field():
    text = _mutate("      - {name: PDU-A1, ups: UPS-A, capacity_kw: 80}", "      - {name: PDU-A1, ups: UPS-A}")
    (p,) = _problems(text)
    assert p.field == "halls.0.pdus.0.capacity_kw"
    assert "required" in p.message.lower()
    assert p.line == _line_of(text, "{name: PDU-A1, ups: UPS-A}")


def test_dangling_references_are_each_reported():
    text = _mutate("feeds: {A: PDU-A2, B: PDU-B2}, sensors", "feeds: {A: PDU-A2, B: PDU-X9}, sensors")
    text = text.replace("rows: [R2], redundancy: 1}", "rows: [R9], redundancy: 1}")
    probs = _problems(text)
    msgs = {p.field: p for p in probs}
    assert "unknown PDU 'PDU-X9'" in msgs["halls.0.rows.1.racks.0.feeds.B"].message
    assert msgs["halls.0.rows.1.racks.0.feeds.B"].line == _line_of(text, "PDU-X9")
    assert "unknown row 'R9'" in msgs["halls.0.cooling_zones.1.rows.0"].message
    assert msgs["halls.0.cooling_zones.1.rows.0"].line == _line_of(text, "rows: [R9]")


def test_duplicate_names_and_keys():
    text = _mutate("{name: CRAC-4, kind: cdu", "{name: CRAC-3, kind: cdu")
    assert any("used twice" in p.message for p in _problems(text))
    dup = _mutate("site: test\n", "site: test\nsite: again\n")
    (p,) = _problems(dup)
    assert "duplicate key 'site'" in p.message and p.line == 5


def test_yaml_syntax_error_names_the_line():
    text = _mutate("    rows:\n", "    rows: [\n")
    (p,) = _problems(text)
    assert "YAML syntax" in p.message and p.line is not None


def test_negative_and_impossible_values():
    text = _mutate("count: 4, tdp_w: 350", "count: 0, tdp_w: -350")
    fields = {p.field for p in _problems(text)}
    assert {"halls.0.rows.0.racks.2.servers.0.accelerators.count",
            "halls.0.rows.0.racks.2.servers.0.accelerators.tdp_w"} <= fields


def test_server_on_a_feed_the_rack_lacks():
    text = _mutate("psus: [A], accelerators", "psus: [A, B], accelerators")
    (p,) = _problems(text)
    assert "feed B" in p.message and p.field.startswith("halls.0.rows.0.racks.2.servers.0")


def test_cli_check_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "dcops.cli", "check", str(SMALL_SITE)], capture_output=True, text=True)
    assert ok.returncode == 0 and "44 accelerators" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(_mutate("capacity_kw: 80}", "capacity_kw: -80}"))
    out = subprocess.run([sys.executable, "-m", "dcops.cli", "check", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{bad}:" in out.stderr and "capacity_kw" in out.stderr and "Traceback" not in out.stderr
    missing = subprocess.run([sys.executable, "-m", "dcops.cli", "check", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
