"""Routing trees, on-call rotations with overrides, and alerting-config validation."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dcops.alerts.config import alerting_from_text
from dcops.alerts.notification.oncall import on_call, receivers_for_target
from dcops.alerts.notification.routing import RouteMatch, match_routes
from dcops.yamlconf import ConfigError

CFG = """
receivers:
  - {name: noc, type: webhook, url: "http://127.0.0.1:1/noc"}
  - {name: facilities, type: pagerduty, routing_key: "abc"}
  - {name: gpu-team, type: slack, url: "http://127.0.0.1:1/slack"}
  - {name: alice-mail, type: email, sender: dcops@x.org, to: [alice@x.org]}
  - {name: bob-mail, type: email, sender: dcops@x.org, to: [bob@x.org]}
route:
  receiver: noc
  routes:
    - {matchers: ['kind=~"ups|pdu|cooling"'], receiver: facilities, escalation: fac, continue: true}
    - {matchers: ['kind=~"ups|pdu|cooling"', 'severity="critical"'], receiver: noc}
    - {matchers: ['vendor="nvidia"'], receiver: gpu-team}
users:
  alice: {receivers: [alice-mail]}
  bob: {receivers: [bob-mail]}
schedules:
  - name: fac-primary
    rotation: {users: [alice, bob], start: "2026-11-02T09:00:00Z"}
    overrides:
      - {user: bob, start: "2026-11-03T00:00:00Z", end: "2026-11-04T00:00:00Z"}
escalation_policies:
  - name: fac
    repeat: 1
    levels:
      - {after_s: 300, targets: ["schedule:fac-primary"]}
      - {after_s: 900, targets: ["receiver:noc", "user:bob"]}
"""


def _ns(*a) -> int:
    return int(datetime(*a, tzinfo=timezone.utc).timestamp() * 1e9)


def test_routes():
    cfg = alerting_from_text(CFG)
    assert match_routes(cfg.route, {"kind": "ups", "severity": "major"}) == [RouteMatch("facilities", "fac")]
    assert match_routes(cfg.route, {"kind": "ups", "severity": "critical"}) == [RouteMatch("facilities", "fac"),
                                                                               RouteMatch("noc", None)]
    assert match_routes(cfg.route, {"kind": "accel", "vendor": "nvidia"}) == [RouteMatch("gpu-team", None)]
    assert match_routes(cfg.route, {"kind": "accel", "vendor": "rebellions"}) == [RouteMatch("noc", None)]


def test_weekly_rotation_and_override():
    sched = alerting_from_text(CFG).schedules[0]
    assert on_call(sched, _ns(2026, 11, 2, 10)) == "alice"       # week 1
    assert on_call(sched, _ns(2026, 11, 3, 12)) == "bob"         # override
    assert on_call(sched, _ns(2026, 11, 5, 12)) == "alice"
    assert on_call(sched, _ns(2026, 11, 9, 10)) == "bob"         # week 2
    assert on_call(sched, _ns(2026, 11, 16, 10)) == "alice"      # week 3
    assert on_call(sched, _ns(2026, 10, 30, 10)) == "bob"        # before the start: runs backwards


def test_escalation_targets_resolve_to_receivers():
    cfg = alerting_from_text(CFG)
    assert receivers_for_target(cfg, "schedule:fac-primary", _ns(2026, 11, 9, 10)) == (("bob-mail",), "bob")
    assert receivers_for_target(cfg, "receiver:noc", 0) == (("noc",), None)
    assert receivers_for_target(cfg, "user:alice", 0) == (("alice-mail",), "alice")


@pytest.mark.parametrize("text, where", [
    ("route: {receiver: nobody}\n", "<string>:1: route.receiver: unknown receiver 'nobody'"),
    ("receivers:\n  - {name: a, type: webhook, url: 'http://x'}\n  - {name: a, type: webhook, url: 'http://y'}\n",
     "<string>:3: receivers.1.name: receiver 'a' is defined twice"),
    ("receivers:\n  - {name: a, type: carrier-pigeon}\n", "<string>:2: receivers.0"),
    ("route:\n  routes:\n    - {matchers: ['kind~ups']}\n", "<string>:3: route.routes.0.matchers"),
    ("escalation_policies:\n  - name: p\n    levels:\n      - {after_s: 1, targets: ['team:x']}\n",
     "<string>:4: escalation_policies.0.levels.0.targets"),
])
def test_alerting_config_errors_name_line_and_field(text, where):
    with pytest.raises(ConfigError) as ei:
        alerting_from_text(text)
    assert any(str(p).startswith(where) for p in ei.value.problems), [str(p) for p in ei.value.problems]


def test_secrets_are_not_printed():
    cfg = alerting_from_text(CFG)
    assert "abc" not in repr(cfg.receiver("facilities"))


def test_shipped_example_config_is_valid(capsys, monkeypatch, tmp_path):
    from dcops.alerts.rules import cli as rules_cli
    from tests.conftest import REPO

    class A:
        rules_command = "alerting"
        file = str(REPO / "alerts" / "data" / "alerting.example.yaml")
    monkeypatch.setenv("DCOPS_NOC_WEBHOOK_SECRET", "s3cret")
    assert rules_cli.run(A) == 1          # its secrets are references: unset, the check names the first
    assert "DCOPS_SLACK_WEBHOOK_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("DCOPS_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX")
    (tmp_path / "pd").write_text("R0UT1NGKEY0123456789abcdefABCDEF\n")
    text = (REPO / "alerts" / "data" / "alerting.example.yaml").read_text()
    A.file = str(tmp_path / "alerting.yaml")
    (tmp_path / "alerting.yaml").write_text(text.replace("/run/secrets/pd_facilities_routing_key", str(tmp_path / "pd")))
    assert rules_cli.run(A) == 0
    assert "OK: 5 receivers" in capsys.readouterr().out
    A.file = str(REPO / "alerts" / "data" / "rules" / "default.yaml")   # a rule file is not an alerting config
    assert rules_cli.run(A) == 1
    assert "rules: unknown field" in capsys.readouterr().err
