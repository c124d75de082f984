"""bench/device_check.py, the script run on a real GPU host, runs every step over the stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_device_check_passes_over_the_standin():
    p = subprocess.run([sys.executable, str(REPO / "bench" / "device_check.py"), "--standin", "--xid-wait", "0.5"],
                       capture_output=True, text=True, timeout=180, cwd=REPO)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 0, out
    assert out["passed"] == ["agent_cli", "fields", "xid_wait", "power_limit"]
    assert out["fields"]["missing_without_reason"] == {} and out["fields"]["not_supported"]
    assert out["power_limit"]["capped_w"] == 0.9 * out["power_limit"]["default_w"]
    assert out["power_limit"]["restored_w"] == out["power_limit"]["before_w"]
