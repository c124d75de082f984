"""Helpers shared by the benchmarks: peak RSS and the one-JSON-line result."""

from __future__ import annotations

import json
import resource
import sys


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(result: dict) -> None:
    """Print the benchmark's figures as its last line, one JSON object."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True))
