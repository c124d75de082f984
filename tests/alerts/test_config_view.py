"""The operators' view of receivers, routes and on-call never shows a secret."""

from __future__ import annotations

from datetime import datetime, timezone

from dcops.alerts.config import AlertingConfig
from dcops.alerts.config_view import oncall_view, receivers_view, routes_view
from dcops.yamlconf import parse_yaml

CFG = """
receivers:
  - {name: noc, type: webhook, url: "https://noc.example.net:8443/dcops/hook?token=abc", secret: "hook-secret"}
  - {name: chat, type: slack, url: "https://hooks.slack.com/services/T0/B0/SLACKSECRET", channel: "#noc"}
  - {name: pd, type: pagerduty, routing_key: "PDKEY123"}
  - {name: alice-mail, type: email, sender: dcops@example.net, to: [alice@example.net], host: smtp.example.net, port: 587, tls: starttls, password: "mailpw"}
route:
  receiver: noc
  routes:
    - {matchers: ['kind=~"ups|pdu"'], receiver: pd, escalation: facilities, continue: true}
    - {matchers: ['severity="critical"'], receiver: chat}
users:
  alice: {receivers: [alice-mail]}
  bob: {receivers: [pd]}
schedules:
  - {name: primary, rotation: {users: [alice, bob], start: "2026-01-05T09:00:00+00:00"}}
escalation_policies:
  - {name: facilities, levels: [{after_s: 600, targets: ["schedule:primary"]}]}
"""


def cfg():
    data, _ = parse_yaml(CFG)
    return AlertingConfig.model_validate(data)


def test_receivers_show_where_not_secrets():
    views = receivers_view(cfg())
    text = repr(views)
    for secret in ("hook-secret", "SLACKSECRET", "PDKEY123", "mailpw", "token=abc"):
        assert secret not in text
    by = {v.name: v for v in views}
    assert by["noc"].destination == "https://noc.example.net:8443/dcops/hook" and by["noc"].signed
    assert by["chat"].destination == "Slack #noc"
    assert "routing key hidden" in by["pd"].destination
    assert by["alice-mail"].destination == "e-mail to alice@example.net via smtp.example.net:587"


def test_routes_are_flattened_with_inherited_receivers():
    rows = routes_view(cfg())
    assert [(r.depth, r.receiver, r.escalation, r.continues) for r in rows] == [
        (0, "noc", "", False), (1, "pd", "facilities", True), (1, "chat", "", False)]
    assert rows[0].matchers == "(everything)"


def test_who_is_on_call_now():
    t = int(datetime(2026, 1, 13, 12, tzinfo=timezone.utc).timestamp() * 1e9)  # second week: bob
    (view,) = oncall_view(cfg(), t)
    assert (view.schedule, view.on_call, view.receivers) == ("primary", "bob", "pd")
