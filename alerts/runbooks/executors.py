"""Action executors for runbook steps, registered in the explicit `EXECUTORS` dict.

Each executor declares its option schema (validated when a runbook is loaded), whether it is
destructive by default (then the engine requires a second person's approval), and a `run`
function `(options, ActionContext, ExecutorRuntime) -> ActionResult`.

Safety by construction:
- `command` and `drain_node` run only argv templates from the site's `ExecutorConfig`
  (`allowed_commands`, `drain_command`), never a shell and never a command line written in a
  runbook; runbooks only name the allow-listed command.
- `webhook` sends JSON over HTTP, signed with HMAC-SHA256 when a secret is configured
  (`X-Dcops-Signature: sha256=<hex>`); the secret is a `SecretStr` and never logged.
- `gpu_power_check` / `gpu_power_cap` / `gpu_power_restore` talk to each server's agent control
  API (`dcops.collectors.power_api`) with a short-lived bearer token signed by
  `agent_token_key`, naming the operator as subject and the run/step/incident as the reason;
  caps carry a lease (`ttl_s`) after which the agent reverts them by itself. Capping is
  destructive by default (four-eyes approval).
- Templates (`{server}`, `{rack}`, ...) are filled from `TEMPLATE_VARIABLES` only.

Add an executor by writing an options model and a run function and adding a row to `EXECUTORS`.

The site's `ExecutorConfig` is a YAML file (`load_executor_config`), e.g.

    allowed_commands:
      notify_facilities: [/usr/local/bin/ticket, --queue, hvac, "{component} down in {zone}"]
      shed_load: [/usr/local/bin/capctl, --ups, "{component}", --watts, "450"]
    drain_command: [kubectl, drain, "{server}", --ignore-daemonsets, --delete-emptydir-data]
    agent_url: "http://{server}:9101"
    agent_token_key: "env-or-vault-provided"
    webhook_secret: "env-or-vault-provided"
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dcops.secrets import Secret

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
    agent_token_key: Secret | None = Field(None, description="key the agents verify control tokens with")
    webhook_secret: Secret | None = None
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
    inventory: Any = None  # dcops.topology.Inventory: expands rack/zone scopes into servers

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


# ----- accelerator power caps through each server's agent control API -----------------------

class PowerCapOptions(_Model):
    """Which accelerators: `accel` names a target of kind `scope` (a template: an accelerator id
    `<server>:<index>`, a server, a rack or a cooling zone); all GPU servers under it are asked."""

    scope: Literal["accelerator", "server", "rack", "zone"] = "accelerator"
    accel: str = Field("{component}", description="template naming the target (of kind `scope`)")
    watts: float | None = Field(None, gt=50, le=2000)
    fraction: float | None = Field(None, gt=0.1, le=1.0, description="of each device's default limit")
    ttl_s: float = Field(1800.0, gt=0, le=86400, description="the cap reverts unless renewed within this")

    @model_validator(mode="after")
    def _one_value(self):
        if (self.watts is None) == (self.fraction is None):
            raise ValueError("give exactly one of 'watts' and 'fraction'")
        return self


class PowerScopeOptions(_Model):
    scope: Literal["accelerator", "server", "rack", "zone"] = "accelerator"
    accel: str = Field("{component}", description="template naming the target (of kind `scope`)")


def _targets(o, ctx: ActionContext, rt: ExecutorRuntime) -> dict[str, list[int] | str]:
    """server -> accelerator indices ("all" for every accelerator of the server)."""
    name = fill(o.accel, ctx.variables)
    if o.scope == "accelerator":
        server, sep, index = name.rpartition(":")
        if not sep or not index.isdigit():
            raise ExecutorError(f"{name!r} is not an accelerator id (<server>:<index>)")
        return {server: [int(index)]}
    if o.scope == "server" and rt.inventory is None:
        return {name: "all"}
    inv = rt.inventory
    if inv is None:
        raise ExecutorError(f"scope {o.scope!r} needs the site inventory (not given to the executors)")
    if name not in inv:
        raise ExecutorError(f"{name!r} is not a component of this site")
    c = inv.get(name)
    if c.kind != o.scope and not (o.scope == "accelerator" and c.kind == "accel"):
        raise ExecutorError(f"{name!r} is a {c.kind}, not a {o.scope}")
    servers = [s for s in inv.servers if (s.name == name if o.scope == "server" else
                                          s.rack == name if o.scope == "rack" else
                                          inv.get(s.rack).attrs.get("zone") == name)]
    if not servers:
        raise ExecutorError(f"no servers under {o.scope} {name!r}")
    return {s.name: "all" for s in sorted(servers, key=lambda s: s.name)}


def _agent_call(rt: ExecutorRuntime, ctx: ActionContext, method: str, server: str, path: str,
                payload: Mapping | None) -> tuple[bool, dict | str]:
    if not rt.config.agent_url:
        raise ExecutorError("no agent_url is configured for this site")
    if rt.config.agent_token_key is None:
        raise ExecutorError("no agent_token_key is configured: agents accept signed requests only")
    from dcops.tokens import mint_token

    url = fill(rt.config.agent_url, dict(ctx.variables, server=server)).rstrip("/") + path
    token = mint_token(rt.config.agent_token_key.get_secret_value().encode(), ctx.user or "runbook", 60.0)
    try:
        r = rt.client().request(method, url, json=payload, headers={"Authorization": f"Bearer {token}"},
                                timeout=rt.config.http_timeout_s)
    except httpx.HTTPError as exc:
        return False, f"{server}: agent unreachable ({type(exc).__name__})"
    try:
        body = r.json()
    except ValueError:
        body = {"error": r.text[:200]}
    if not 200 <= r.status_code < 300:
        return False, f"{server}: HTTP {r.status_code} {body.get('error', '') if isinstance(body, dict) else body}".strip()
    return True, body


def _why(ctx: ActionContext) -> dict:
    return {"reason": f"runbook run {ctx.run_id} step {ctx.step_id} by {ctx.user}", "incident": ctx.incident_id,
            "step": ctx.step_id}


def _per_server(o, ctx, rt, method, path, payload_of) -> ActionResult:
    lines, data, ok_all = [], {}, True
    for server, accels in _targets(o, ctx, rt).items():
        ok, body = _agent_call(rt, ctx, method, server, path, payload_of(accels))
        ok_all &= ok
        data[server] = body
        if not ok:
            lines.append(str(body))
            continue
        for r in body.get("results", []) if isinstance(body, dict) else []:
            lines.append(f"{server}:{r.get('accel')} " + (
                f"{r.get('previous_w', '?')} W -> {r.get('applied_w', '?')} W" + (" (clamped)" if r.get("clamped") else "")
                if r.get("ok") else f"failed: {r.get('error', '')}"))
    return ActionResult(ok_all, _truncate("\n".join(lines)), {"servers": data})


def run_power_cap(o: PowerCapOptions, ctx: ActionContext, rt: ExecutorRuntime) -> ActionResult:
    value = {"watts": o.watts} if o.watts is not None else {"fraction": o.fraction}
    return _per_server(o, ctx, rt, "POST", "/v1/power-limit",
                       lambda accels: {"accels": accels, "ttl_s": o.ttl_s, **value, **_why(ctx)})


def run_power_restore(o: PowerScopeOptions, ctx: ActionContext, rt: ExecutorRuntime) -> ActionResult:
    return _per_server(o, ctx, rt, "POST", "/v1/power-limit/restore",
                       lambda accels: {"accels": accels, "reason": _why(ctx)["reason"]})


def run_power_check(o: PowerScopeOptions, ctx: ActionContext, rt: ExecutorRuntime) -> ActionResult:
    """Pre-check: every agent answers and can cap at least the accelerators asked for."""
    lines, data, ok_all = [], {}, True
    for server, accels in _targets(o, ctx, rt).items():
        ok, body = _agent_call(rt, ctx, "GET", server, "/v1/capabilities", None)
        data[server] = body
        if not ok:
            ok_all = False
            lines.append(str(body))
            continue
        rows = [a for a in body.get("accelerators", []) if accels == "all" or a.get("accel") in accels]
        cannot = [a for a in rows if not a.get("settable")]
        ok_all &= bool(rows) and not cannot
        lines.append(f"{server}: {len(rows) - len(cannot)} of {len(rows)} accelerators can be capped" +
                     "".join(f"; {a.get('accel')}: {a.get('reason', '')}" for a in cannot[:3]))
    return ActionResult(ok_all, _truncate("\n".join(lines)), {"servers": data})


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
    "gpu_power_cap": ExecutorSpec("gpu_power_cap", PowerCapOptions, True, run_power_cap,
                                  "cap accelerator power (an accelerator, server, rack or zone) through the agents"),
    "gpu_power_restore": ExecutorSpec("gpu_power_restore", PowerScopeOptions, False, run_power_restore,
                                      "restore the power limits dcops capped (rollback)"),
    "gpu_power_check": ExecutorSpec("gpu_power_check", PowerScopeOptions, False, run_power_check,
                                    "pre-check: agents reachable and their accelerators' power can be capped"),
    "drain_node": ExecutorSpec("drain_node", DrainOptions, True, run_drain, "drain a node through the configured command"),
})
