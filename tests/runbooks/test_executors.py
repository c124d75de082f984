"""Executors against real peers: a local HTTP server (webhook, GPU power cap through the agent's
control endpoint, HMAC signature) and real subprocesses (allow-listed command, drain)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dcops.alerts.runbooks.executors import (EXECUTORS, ActionContext, CommandOptions, ExecutorConfig, ExecutorError,
                                       ExecutorRuntime, PowerCapOptions, WebhookOptions)

CTX = ActionContext("run1", "inc1", "step1", "alice",
                    {"component": "R2-01-S01:3", "server": "R2-01-S01", "rack": "R2-01", "row": "R2"})


@pytest.fixture
def http_peer():
    got: list[tuple[str, str, dict, bytes]] = []

    class H(BaseHTTPRequestHandler):
        def _any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append((self.command, self.path, dict(self.headers), body))
            code = 500 if self.path.endswith("/fail") else 200
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"accepted" if code == 200 else b"boom")

        do_POST = do_PUT = _any

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", got
    srv.shutdown()
    srv.server_close()


def test_webhook_is_signed_and_templated(http_peer):
    base, got = http_peer
    rt = ExecutorRuntime(ExecutorConfig(webhook_secret="s3cret"))
    o = WebhookOptions(url=base + "/hooks/{rack}", payload={"text": "drain {server}", "n": 2})
    res = EXECUTORS["webhook"].run(o, CTX, rt)
    assert res.ok and res.data["status"] == 200
    method, path, headers, body = got[0]
    assert (method, path) == ("POST", "/hooks/R2-01")
    want = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Dcops-Signature"] == want
    assert json.loads(body) == {"text": "drain R2-01-S01", "n": 2, "incident": "inc1", "run": "run1", "step": "step1",
                                "user": "alice"}
    assert "s3cret" not in repr(rt.config)  # secrets are not printed
    bad = EXECUTORS["webhook"].run(WebhookOptions(url=base + "/fail"), CTX, rt)
    assert not bad.ok and "HTTP 500" in bad.output


def test_power_cap_needs_an_agent_url_and_a_token_key():
    with pytest.raises(ExecutorError, match="no agent_url"):
        EXECUTORS["gpu_power_cap"].run(PowerCapOptions(watts=450), CTX, ExecutorRuntime())
    with pytest.raises(ExecutorError, match="agent_token_key"):
        EXECUTORS["gpu_power_cap"].run(PowerCapOptions(watts=450), CTX,
                                       ExecutorRuntime(ExecutorConfig(agent_url="http://127.0.0.1:9/{server}")))
    with pytest.raises(ExecutorError, match="not an accelerator"):
        EXECUTORS["gpu_power_cap"].run(PowerCapOptions(watts=450, accel="{rack}"), CTX, ExecutorRuntime(
            ExecutorConfig(agent_url="http://127.0.0.1:9/{server}", agent_token_key="k")))
    with pytest.raises(ValueError, match="exactly one"):
        PowerCapOptions(watts=450, fraction=0.5)
    assert EXECUTORS["gpu_power_cap"].destructive  # four-eyes approval by default


def test_unreachable_peer_is_a_failed_action():
    rt = ExecutorRuntime(ExecutorConfig(http_timeout_s=2))
    res = EXECUTORS["webhook"].run(WebhookOptions(url="http://127.0.0.1:9/x"), CTX, rt)
    assert not res.ok and "failed" in res.output


def test_command_runs_only_from_the_allow_list():
    rt = ExecutorRuntime(ExecutorConfig(allowed_commands={"hello": ("/bin/echo", "hello {server}; rm -rf /")}))
    res = EXECUTORS["command"].run(CommandOptions(command="hello"), CTX, rt)
    assert res.ok and res.output == "hello R2-01-S01; rm -rf /"  # one argv element, never a shell
    with pytest.raises(ExecutorError, match="not on the allow-list"):
        EXECUTORS["command"].run(CommandOptions(command="reboot"), CTX, rt)
    missing = ActionContext("r", "i", "s", "u", {"component": "CRAC-1"})
    with pytest.raises(ExecutorError, match="no value for server"):
        EXECUTORS["command"].run(CommandOptions(command="hello"), missing, rt)


def test_command_timeout_and_missing_binary():
    rt = ExecutorRuntime(ExecutorConfig(allowed_commands={"slow": ("/bin/sleep", "5"), "nope": ("/no/such/bin",)},
                                        command_timeout_s=0.3))
    assert "timed out" in EXECUTORS["command"].run(CommandOptions(command="slow"), CTX, rt).output
    assert "not found" in EXECUTORS["command"].run(CommandOptions(command="nope"), CTX, rt).output


def test_registry_declares_destructive_defaults():
    assert {n for n, s in EXECUTORS.items() if s.destructive} == {"drain_node", "gpu_power_cap"}
    with pytest.raises(ExecutorError, match="no drain_command"):
        EXECUTORS["drain_node"].run(EXECUTORS["drain_node"].options(), CTX, ExecutorRuntime())


def test_executor_config_file(tmp_path):
    from dcops.alerts.runbooks.executors import load_executor_config
    from dcops.yamlconf import ConfigError
    p = tmp_path / "executors.yaml"
    p.write_text("allowed_commands:\n  hello: [/bin/echo, '{server}']\ndrain_command: [/bin/true]\nwebhook_secret: x\n")
    cfg = load_executor_config(p)
    assert cfg.allowed_commands["hello"] == ("/bin/echo", "{server}") and cfg.webhook_secret.get_secret_value() == "x"
    p.write_text("allowed_commands:\n  hello: /bin/echo\ndrain_comand: [/bin/true]\n")
    with pytest.raises(ConfigError) as ei:
        load_executor_config(p)
    text = str(ei.value)
    assert f"{p}:2: allowed_commands.hello:" in text and f"{p}:3: drain_comand: unknown field" in text
