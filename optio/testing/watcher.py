"""Listeners of the progress feed: a real Socket.IO client (``Watcher``), and a subscriber of the
Redis channel itself (``Published``)."""

from __future__ import annotations

import json
import time

from optio import names
from optio.testing.procs import wait_for


class Watcher:
    """A python-socketio client over WebSocket (or long-polling with another ``origin``);
    ``run``: it follows that run (``?run=<id>``) instead of the current one."""

    def __init__(self, base: str, origin: str | None = None, run: str | None = None) -> None:
        import socketio

        self.events: list[tuple[float, dict]] = []
        #: the ``runs`` events received (the lists of active runs)
        self.runs: list[dict] = []
        self.unknown: list[dict] = []
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.2)
        self.client.on("progress", lambda data: self.events.append((time.time(), data)))
        self.client.on("runs", self.runs.append)
        self.client.on("unknown_run", self.unknown.append)
        if run is not None:
            base = f"{base}/?run={run}"
        if origin:
            # claim another origin over long-polling: the websocket transport adds its own
            self.client.connect(
                base, headers={"Origin": origin}, transports=["polling"], wait_timeout=10
            )
        else:
            self.client.connect(base, transports=["websocket"], wait_timeout=10)

    def follow(self, run: str | None) -> None:
        """Follow run ``run`` from now on (None: the current run), by a ``follow`` event."""
        self.client.emit("follow", {"run": run})

    def listed(self) -> list[dict]:
        """The active runs of the last ``runs`` event, newest first."""
        return self.runs[-1]["runs"] if self.runs else []

    def states(self) -> list[dict]:
        return [state for _, state in self.events]

    def wait_final(self, run_id: str, timeout: float) -> dict:
        def final():
            for _, state in reversed(self.events):
                if state.get("runId") == run_id and not state["running"]:
                    return state
            return None

        return wait_for(final, timeout, f"the final state of run {run_id}")

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()


class Published:
    """Collects the states published on optio:progress for one run id."""

    def __init__(self, client) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(names.CHANNEL)
        self.states: list[dict] = []
        self.all: list[dict] = []

    def drain(self, run_id: str, expect: int) -> list[dict]:
        def got_enough():
            while (m := self.pubsub.get_message(timeout=0.05)) is not None:
                state = json.loads(m["data"])
                self.all.append(state)
                if state["runId"] == run_id:
                    self.states.append(state)
            return len(self.states) >= expect

        wait_for(got_enough, 5, f"{expect} published states")
        return self.states
