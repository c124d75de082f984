"""bench/outages.py --quick runs end to end and prints its figures as one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_outages_quick():
    p = subprocess.run([sys.executable, str(REPO / "bench" / "outages.py"), "--quick", "--only", "pdu-both-legs",
                        "quiet-half-hour"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    c, b = out["correlated"], out["baseline_no_correlation"]
    assert out["deterministic"] is True and out["cpu_s_per_simulated_hour"] > 0
    assert c["incidents"] == 1 and c["right_root_pct"] == 100.0 and c["redundancy_severity_right"] == 1
    assert b["incidents"] > c["incidents"]  # without correlation every symptom pages
    assert c["pages_per_quiet_day"] == 0.0
