"""Action executors for runbook steps, registered in the explicit `EXECUTORS` dict.

Each executor declares its option schema (validated when a runbook is loaded), whether it is
destructive by default (then the engine requires a second person's approval), and a `run`
function `(options, ActionContext, ExecutorRuntime) -> ActionResult`.

Safety by construction:
- `command` and `drain_node` run only argv templates from the site's `ExecutorConfig`
  (`allowed_commands`, `drain_command`), never a shell and never a command line written in a
  runbook; runbooks only name the allow-listed command.
- `webhook` and `gpu_power_cap` send JSON over HTTP, signed with HMAC-SHA256 when a secret is
  configured (`X-Dcops-Signature: sha256=<hex>`); the secret is a `SecretStr` and never logged.
- Templates (`{server}`, `{rack}`, ...) are filled from `TEMPLATE_VARIABLES` only.

Add an executor by writing an options model and a run function and adding a row to `EXECUTORS`.

The site's `ExecutorConfig` is a YAML file (`load_executor_config`), e.g.

    allowed_commands:
      notify_facilities: [/usr/local/bin/ticket, --queue, hvac, "{component} down in {zone}"]
      shed_load: [/usr/local/bin/capctl, --ups, "{component}", --watts, "450"]
    drain_command: [kubectl, drain, "{server}", --ignore-daemonsets, --delete-emptydir-data]
    agent_url: "http://{server}:9101"
    webhook_secret: "env-or-vault-provided"
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Literal, Mapping

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["TEMPLATE_VARIABLES", "ExecutorConfig", "ExecutorRuntime", "ActionContext", "ActionResult", "ExecutorSpec",
           "EXECUTORS", "fill", "ExecutorError", "load_executor_config"]

TEMPLATE_VARIABLES = ("component", "device", "server", "accel", "accel_index", "rack", "row", "hall", "zone", "site",
                      "incident", "run", "user")
_MAX_OUTPUT = 4000


class ExecutorError(RuntimeError):
    """An action could not be prepared (unknown command, missing variable, no configuration)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExecutorConfig(_Model):
    """Site-side configuration of what actions may do (not in runbooks: an operator's runbook
    can name a command but never write one)."""

    allowed_commands: dict[str, tuple[str, ...]] = Field(default_factory=dict,
                                                         description="name -> argv template, e.g. ['/usr/bin/ipmitool', ...]")
    drain_command: tuple[str, ...] = Field((), description="argv template to drain a node, e.g. kubectl drain {server}")
    agent_url: str = Field("", description="accelerator agent control URL template, e.g. http://{server}:9101")
    webhook_secret: SecretStr | None = None
    command_timeout_s: float = Field(120.0, gt=0)
    http_timeout_s: float = Field(10.0, gt=0)


def load_executor_config(path) -> ExecutorConfig:
    """The site's executor configuration, validated (file, line and field for every error)."""
    from dcops.yamlconf import load_yaml
    return load_yaml(path, ExecutorConfig)


@dataclass(frozen=True)
class ActionContext:
    run_id: str
    incident_id: str
    step_id: str
    user: str
    variables: Mapping[str, str]


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    output: str
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass
class ExecutorRuntime:
    """What executors need at run time: the site's config and an HTTP client (injected)."""

    config: ExecutorConfig = field(default_factory=ExecutorConfig)
    http: httpx.Client | None = None

    def client(self) -> httpx.Client:
        if self.http is None:
            self.http = httpx.Client(timeout=self.config.http_timeout_s)
        return self.http


def fill(template: str, variables: Mapping[str, str]) -> str:
    missing = [n for n in _names(template) if not variables.get(n)]
    if missing:
        raise ExecutorError(f"template {template!r}: no value for {', '.join(missing)} in this incident")
    from dcops.templates import render, template_problem

    problem = template_problem(template)
    if problem:
        raise ExecutorError(f"template {template!r}: {problem}")
    return render(template, variables)


def _names(template: str) -> list[str]:
    import string
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_OUTPUT else text[:_MAX_OUTPUT] + f"... ({len(text) - _MAX_OUTPUT} more chars)"


def _run_argv(argv: list[str], timeout_s: float) -> ActionResult:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, shell=False, check=False)
    except FileNotFoundError:
        return ActionResult(False, f"command not found: {argv[0]}", {"argv": argv})
    except subprocess.TimeoutExpired:
        return ActionResult(False, f"timed out after {timeout_s:.0f} s", {"argv": argv})
    out = (p.stdout or "") + (("\n[stderr]\n" + p.stderr) if p.stderr else "")
    return ActionResult(p.returncode == 0, _truncate(out.strip()), {"argv": argv, "returncode": p.returncode})


def _post(rt: ExecutorRuntime, method: str, url: str, payload: Mapping) -> ActionResult:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    secret = rt.config.webhook_secret
    if secret is not None:
        sig = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        headers["X-Dcops-Signature"] = f"sha256={sig}"
    try:
        r = rt.client().request(method, url, content=body, headers=headers, timeout=rt.config.http_timeout_s)
    except httpx.HTTPError as exc:
        return ActionResult(False, f"{method} {url} failed: {type(exc).__name__}: {exc}", {"url": url})
    return ActionResult(200 <= r.status_code < 300, _truncate(f"HTTP {r.status_code} {r.text}".strip()),
                        {"url": url, "status": r.status_code})


# ----- command (allow-list) ----------------------------------------------------------------

class CommandOptions(_Model):
    command: str = Field(min_length=1, description="name of an entry of ExecutorConfig.allowed_commands")


def run_command(o: CommandOptions, ctx: ActionContext, rt: ExecutorRuntime) -> ActionResult:
    argv_t = rt.config.allowed_commands.get(o.command)
    if argv_t is None:
        raise ExecutorError(f"command {o.command!r} is not on the allow-list (allowed: "
                            f"{', '.join(rt.config.allowed_commands) or 'none configured'})")
    return _run_argv([fill(a, ctx.variables) for a in argv_t], rt.config.command_timeout_s)


# ----- drain a node --------------------------------------------------------------------------

class DrainOptions(_Model):
    node: str = Field("{server}", description="template naming the node to drain")


def run_drain(o: DrainOptions, ctx: ActionContext, rt: ExecutorRuntime) -> ActionResult:
    if not rt.config.drain_command:
        raise ExecutorError("no drain_command is configured for this site")
    variables = dict(ctx.variables, server=fill(o.node, ctx.variables))
    return _run_argv([fill(a, variables) for a in rt.config.drain_command], rt.config.command_timeout_s)


# ----- GPU power cap through its agent -----------------------------------------------------

class PowerCapOptions(_Model):
    watts: float = Field(gt=50, le=2000)
    accel: str = Field("{component}", description="template naming the accelerator (<server>:<index>)")


def run_power_cap(o: PowerCapOptions, ctx: ActionContext, rt: ExecutorRuntime) -> ActionResult:
    if not rt.config.agent_url:
        raise ExecutorError("no agent_url is configured for this site")
    accel = fill(o.accel, ctx.variables)
    server, sep, index = accel.rpartition(":")
    if not sep or not index.isdigit():
        raise ExecutorError(f"{accel!r} is not an accelerator id (<server>:<index>)")
    url = fill(rt.config.agent_url, dict(ctx.variables, server=server)).rstrip("/") + "/v1/power-limit"
    return _post(rt, "POST", url, {"accel": int(index), "server": server, "watts": o.watts,
                                   "requested_by": ctx.user, "incident": ctx.incident_id, "run": ctx.run_id})


# ----- webhook -------------------------------------------------------------------------------

class WebhookOptions(_Model):
    url: str = Field(pattern=r"^https?://", description="template; http(s) only")
    method: Literal["POST", "PUT"] = "POST"
    payload: dict[str, str | int | float | bool] = Field(default_factory=dict, description="string values are templates")


def run_webhook(o: WebhookOptions, ctx: ActionContext, rt: ExecutorRuntime) -> ActionResult:
    payload = {k: fill(v, ctx.variables) if isinstance(v, str) else v for k, v in o.payload.items()}
    payload.update(incident=ctx.incident_id, run=ctx.run_id, step=ctx.step_id, user=ctx.user)
    return _post(rt, o.method, fill(o.url, ctx.variables), payload)


@dataclass(frozen=True)
class ExecutorSpec:
    name: str
    options: type[BaseModel]
    destructive: bool
    run: Callable[[BaseModel, ActionContext, ExecutorRuntime], ActionResult]
    summary: str


EXECUTORS: Mapping[str, ExecutorSpec] = MappingProxyType({
    "webhook": ExecutorSpec("webhook", WebhookOptions, False, run_webhook, "signed JSON to an HTTP endpoint"),
    "command": ExecutorSpec("command", CommandOptions, False, run_command, "a command from the site's allow-list"),
    "gpu_power_cap": ExecutorSpec("gpu_power_cap", PowerCapOptions, False, run_power_cap,
                                  "set a GPU power limit through its agent"),
    "drain_node": ExecutorSpec("drain_node", DrainOptions, True, run_drain, "drain a node through the configured command"),
})
