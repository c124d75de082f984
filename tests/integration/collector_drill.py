"""A collector process for the crash drill: publishes counted steps through a KafkaBus.

`python -m tests.integration.collector_drill BOOTSTRAP SPOOL_DIR PUBLISHED_FILE FIRST_STEP N_STEPS T0`

Each step is one `step_batch` published by rack (the collectors' publish path). After `publish`
returns for a step, its number is appended to PUBLISHED_FILE (flushed): that file is what the
collector considers sent. With N_STEPS 0 the process only replays what its spool holds, flushes
and exits.
"""

from __future__ import annotations

import sys
import time

from dcops.kafka_bus import KafkaBus
from dcops.bus import publish_by_rack
from dcops.settings import BusSettings
from tests.integration.kafka_drill import NS, step_batch


def main(argv: list[str]) -> int:
    bootstrap, spool_dir, published, first, n_steps, t0 = argv
    first, n_steps, t0 = int(first), int(n_steps), int(t0)
    settings = BusSettings(kind="kafka", bootstrap_servers=(bootstrap,), spool_dir=spool_dir, partitions=4)
    # production defaults for delivery: a record waits up to 30 s inside kafka-python before it fails
    bus = KafkaBus(settings, "collector", delivery_timeout_s=30, request_timeout_s=3, max_block_s=2,
                   keeper_interval_s=0.5)
    with open(published, "a", buffering=1) as out:
        for step in range(first, first + n_steps):
            publish_by_rack(bus, step_batch(t0 + step * NS))
            out.write(f"{step}\n")
            time.sleep(0.02)
    bus.close(timeout_s=60)
    return 0 if bus.spool_depth == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
