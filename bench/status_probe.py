"""Times ``GET /api/status`` over one keep-alive connection.

``python -m bench.status_probe HOST PORT SECONDS PER_SECOND`` prints one JSON line with the
latency of every request in milliseconds and the errors met.
"""

from __future__ import annotations

import http.client
import json
import sys
import time


def probe(host: str, port: int, seconds: float, per_second: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    conn = http.client.HTTPConnection(host, port, timeout=5)
    gap = 1.0 / per_second
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/api/status")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"HTTP {response.status}")
            latencies.append((time.perf_counter() - t0) * 1000)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
        next_at += gap
        time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()
    return {"latencies_ms": latencies, "errors": errors[:20], "error_count": len(errors)}


if __name__ == "__main__":
    host, port, seconds, rate = sys.argv[1:5]
    print(json.dumps(probe(host, int(port), float(seconds), float(rate))), flush=True)
