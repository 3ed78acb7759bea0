"""Many python-socketio clients in one process, recording when each first sees a state.

``python -m bench.sio_clients URL COUNT``: connects COUNT clients over WebSocket, prints
``READY n`` and then, for every line ``dump`` read on stdin, one JSON line: per client, the
monotonic time at which it first saw each ``xTotal`` value >= MARKER_BASE (the benchmark's
markers). EOF on stdin disconnects everyone and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import socketio

#: Values of xTotal at or above this are latency markers written by the benchmark.
MARKER_BASE = 1_000_000_000
#: Connections opened at once (the server accepts them one by one).
CONNECT_AT_ONCE = 25


class Recorder:
    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}
        self.events = 0

    def on_progress(self, state: dict) -> None:
        now = time.monotonic()
        self.events += 1
        x = state.get("xTotal") or 0
        if x >= MARKER_BASE and x not in self.first_seen:
            self.first_seen[x] = now


async def connect_one(url: str, gate: asyncio.Semaphore) -> tuple[socketio.AsyncClient, Recorder]:
    rec = Recorder()
    client = socketio.AsyncClient(reconnection=False)

    async def on_progress(data: dict) -> None:
        rec.on_progress(data)

    client.on("progress", on_progress)
    async with gate:
        await client.connect(url, transports=["websocket"], wait_timeout=30)
    return client, rec


async def main(url: str, count: int) -> None:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    pairs = await asyncio.wait_for(
        asyncio.gather(*(connect_one(url, gate) for _ in range(count))), timeout=300
    )
    print(f"READY {len(pairs)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if line.strip() == "dump":
            out = {
                "connected": sum(1 for c, _ in pairs if c.connected),
                "events": sum(r.events for _, r in pairs),
                "first_seen": [{str(k): v for k, v in r.first_seen.items()} for _, r in pairs],
            }
            print(json.dumps(out), flush=True)
    await asyncio.gather(*(c.disconnect() for c, _ in pairs), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
