"""Publishes the watched run's state at a steady rate, as a busy pipeline's workers do.

``python -m bench.noise REDIS_URL PER_SECOND SECONDS``: every message is the state read from
Redis at that moment, so it carries every change made before it. Makes the relay coalesce,
as it does while jobs are being counted.
"""

from __future__ import annotations

import json
import sys
import time

from optio import config
from optio.redis_state import RunStore, connect


def main(url: str, per_second: float, seconds: float) -> None:
    client = connect(url)
    store = RunStore(client)
    run_id = store.current_run_id()
    gap = 1.0 / per_second
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        client.publish(config.CHANNEL, json.dumps(store.run_state(run_id)))
        next_at += gap
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
