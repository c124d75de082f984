"""The real-GPU check: run it on a host with an NVIDIA driver, as root, from a checkout.

    python bench/device_check.py [--xid-wait 5] [--gpu 0]
    python bench/device_check.py --standin      # the same steps over the NVML stand-in (CI)

It installs nothing: it needs the checkout and the Python packages dcops imports for these
modules (nvidia-ml-py, numpy, pyarrow, pydantic, PyYAML, waitress). Steps, each reported:

1. `dcops agent --once --format json --strict` (a subprocess, exactly as an operator runs it):
   exit 0 and a reading for every GPU;
2. every NVML read of the catalogue (`nvml_agent.READS`) is present for every GPU, or was
   answered NOT_SUPPORTED (then listed with that reason); a binding error fails the check;
3. XID events are waited for for a few seconds (none is expected on a healthy GPU; the check
   is that the event set registers and the wait returns);
4. the power limit of one GPU is set 10 % below its default through the agent's controller
   (clamped to the constraints), read back, then restored and read back again.

The last line is one JSON object: what passed, the numbers, and the reasons for what did not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _nvml(standin: bool):
    if standin:
        from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu

        return NvmlStandin(StaticBackend([typical_gpu(0), typical_gpu(1)]))
    from dcops.collectors.nvml_agent import load_pynvml

    return load_pynvml()


def step_cli(standin: bool) -> dict:
    if standin:
        cmd = [sys.executable, "-m", "dcops.cli", "agent", "--once", "--format", "json", "--strict",
               "--standin-site", str(REPO / "tests" / "data" / "small-site.yaml"),
               "--standin-host", "R1-01-S01"]
    else:
        cmd = [sys.executable, "-m", "dcops.cli", "agent", "--once", "--format", "json", "--strict"]
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    try:
        recs = json.loads(p.stdout or "[]")
    except ValueError:
        recs = []
    gpus = sorted({r["accelerator"] for r in recs if r.get("vendor") == "nvidia"})
    return {"ok": p.returncode == 0 and bool(gpus), "rc": p.returncode, "gpus": len(gpus), "readings": len(recs),
            "stderr": p.stderr.strip()[-500:]}


def step_fields(nvml) -> dict:
    from dcops.collectors.nvml_agent import READS, NvmlAgent, NvmlBindingError

    agent = NvmlAgent(nvml, "device-check", strict=True)
    ids = agent.start()
    try:
        batch, _ = agent.poll()
    except NvmlBindingError as exc:
        agent.close()
        return {"ok": False, "gpus": len(ids), "binding_error": str(exc)}
    missing, unsupported = {}, {}
    for i in range(len(ids)):
        for r in READS:
            absent = [m for m in r.metrics if m in batch.fields and math.isnan(float(batch.fields[m][i]))]
            if not absent:
                continue
            if r.call in agent._skip[i]:  # noqa: SLF001 - NOT_SUPPORTED (or FUNCTION_NOT_FOUND), permanent
                unsupported.setdefault(r.call, "NOT_SUPPORTED by this GPU/driver")
            elif len(absent) < len(r.metrics):
                continue  # a call that fills some fields only where they apply (e.g. NVLink data CRC)
            else:
                missing.setdefault(f"gpu{i}", []).append(r.call)
    agent.close()
    return {"ok": bool(ids) and not missing and not agent.problems, "gpus": len(ids),
            "models": sorted({g.model for g in ids}), "driver": ids[0].driver_version if ids else "",
            "not_supported": unsupported, "missing_without_reason": missing, "problems": agent.problems}


def step_xids(nvml, wait_s: float) -> dict:
    from dcops.collectors.nvml_agent import NvmlAgent
    from dcops.collectors.xid_events import XidWatcher

    agent = NvmlAgent(nvml, "device-check")
    agent.start()
    got: list = []
    watcher = XidWatcher(nvml, agent.handles, agent.targets, got.extend, timeout_ms=200)
    registered = watcher.register()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        got += watcher.wait_once(200)
    agent.close()
    return {"ok": True, "registered_gpus": registered, "waited_s": wait_s, "xid_events": len(got),
            "xids": sorted({int(e.attributes.get("xid", 0)) for e in got})}


def step_power(nvml, gpu: int) -> dict:
    from dcops.collectors.power_control import CapRequest, NvmlPowerBackend, PowerController

    nvml.nvmlInit()
    try:
        records: list[dict] = []
        ctl = PowerController("device-check", [NvmlPowerBackend(nvml)], audit=records.append)
        caps = ctl.capabilities()
        row = caps[gpu]
        if not row["settable"]:
            return {"ok": False, "reason": row["reason"]}
        before = ctl.state()[gpu]["limit_w"]
        res = ctl.apply(CapRequest((gpu,), 120, "device-check", "device check: 10 % below default", fraction=0.9))[0]
        if not res.ok:
            return {"ok": False, "reason": res.error, "constraints": row}
        capped = ctl.state()[gpu]["limit_w"]
        back = ctl.restore([gpu], "device-check", "device check done")[0]
        after = ctl.state()[gpu]["limit_w"]
        want = min(max(0.9 * row["default_w"], row["min_w"]), row["max_w"])
        return {"ok": back.ok and abs(capped - want) <= 1.0 and abs(after - before) <= 1.0, "gpu": gpu,
                "default_w": row["default_w"], "min_w": row["min_w"], "max_w": row["max_w"], "before_w": before,
                "capped_w": capped, "restored_w": after, "audit_records": len(records)}
    finally:
        nvml.nvmlShutdown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--standin", action="store_true", help="run over the NVML stand-in (no GPU needed)")
    ap.add_argument("--xid-wait", type=float, default=5.0, help="seconds to wait for XID events")
    ap.add_argument("--gpu", type=int, default=0, help="the GPU whose power limit is changed and restored")
    args = ap.parse_args(argv)
    out: dict = {"bench": "device_check", "standin": args.standin}
    steps = (("agent_cli", lambda: step_cli(args.standin)),
             ("fields", lambda: step_fields(_nvml(args.standin))),
             ("xid_wait", lambda: step_xids(_nvml(args.standin), args.xid_wait)),
             ("power_limit", lambda: step_power(_nvml(args.standin), args.gpu)))
    for name, fn in steps:
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - report every step, whatever breaks
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    out["passed"] = [n for n, _ in steps if out[n].get("ok")]
    out["failed"] = [n for n, _ in steps if not out[n].get("ok")]
    print(json.dumps(out, sort_keys=True, default=str))
    return 0 if not out["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
