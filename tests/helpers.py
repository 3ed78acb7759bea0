"""Helpers for tests that run real processes: free ports, process groups, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} ({last_error!r})")


class Proc:
    """A process in its own process group, logging to a file, ended by its group id.

    ``stdout`` (e.g. ``subprocess.PIPE``) takes the output instead of the log; stderr still logs.
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        stdin: int | None = None,
        stdout: int | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=stdout if stdout is not None else self._log,
            stderr=self._log if stdout is not None else subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group, SIGKILL it after ``timeout``; also ends children left behind."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def celery_args(*args: str) -> list[str]:
    return [str(VENV_BIN / "celery"), "-A", "optio.tasks", *args]


class Watcher:
    """A real python-socketio client that records every ``progress`` event it receives."""

    def __init__(self, base: str, origin: str | None = None) -> None:
        import socketio

        self.events: list[tuple[float, dict]] = []
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.2)
        self.client.on("progress", lambda data: self.events.append((time.time(), data)))
        if origin:
            # claim another origin over long-polling: the websocket transport adds its own
            self.client.connect(
                base, headers={"Origin": origin}, transports=["polling"], wait_timeout=10
            )
        else:
            self.client.connect(base, transports=["websocket"], wait_timeout=10)

    def states(self) -> list[dict]:
        return [state for _, state in self.events]

    def wait_final(self, run_id: str, timeout: float) -> dict:
        def final():
            for _, state in reversed(self.events):
                if state.get("runId") == run_id and not state["running"]:
                    return state
            return None

        return wait_for(final, timeout, f"the final state of run {run_id}")

    def close(self) -> None:
        self.client.disconnect()


class RedisServer:
    """A redis-server of a test's own, with append-only persistence, that can be restarted."""

    def __init__(self, data_dir: Path) -> None:
        from optio.devredis import server_args

        self.dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.args = server_args(self.port, data_dir, persistent=True)
        self.proc: Proc | None = None
        self.start()

    def start(self) -> None:
        from optio.devredis import wait_until_answering

        self.proc = Proc("redis", self.args, dict(os.environ), self.dir)
        wait_until_answering(self.url)

    def stop(self) -> None:
        """SIGTERM: redis-server writes its append-only file out and exits."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


# -- a run against a real system (the System of conftest.py) --------------------------------


def start(system, x: int, y: float) -> str:
    response = system.post("/api/run", {"x": x, "y": y})
    assert response.status_code == 201, response.text
    return response.json()["runId"]


def status(system) -> dict:
    return system.get("/api/status").json()


def wait_processed(system, at_least: int, timeout: float) -> dict:
    return wait_for(
        lambda: (s := status(system))["processed"] >= at_least and s, timeout, f"{at_least} done"
    )


def wait_finished(system, run_id: str, timeout: float) -> dict:
    def finished():
        state = status(system)
        return state["runId"] == run_id and not state["running"] and state

    return wait_for(finished, timeout, f"run {run_id} to finish", interval=0.2)


def past_schedule(state: dict) -> float:
    """Seconds the run finished after its exact schedule's last job was due."""
    due_end = state["startedAt"] / 1000 + (state["xTotal"] - 1) * 60 / state["yMinute"]
    return state["finishedAt"] / 1000 - due_end


def executions(system, run_id: str) -> dict[int, int]:
    """Job id -> how many times the job function really ran (tests.fault_jobs:counted)."""
    raw = system.redis.hgetall(f"test:executions:{run_id}")
    return {int(k): int(v) for k, v in raw.items()}


def starts(system, run_id: str) -> list[tuple[int, float]]:
    """(job id, ms since the epoch) of every execution start, in order."""
    out = []
    for item in system.redis.lrange(f"test:starts:{run_id}", 0, -1):
        job, _, at = item.partition(":")
        out.append((int(job), float(at)))
    return out


def assert_exactly_once(system, run_id: str, x: int) -> dict:
    """processed == x, one stored result per job, one bit per job; returns the figures."""
    from optio.redis_state import done_key, results_key

    state = status(system)
    r = system.redis
    figures = {
        "processed": state["processed"],
        "failed": state["failed"],
        "enqueued": state["enqueued"],
        "results": r.hlen(results_key(run_id)),
        "bits": r.bitcount(done_key(run_id)),
        "executions": sum(executions(system, run_id).values()),
    }
    assert state["status"] == "completed"
    assert figures["processed"] == x and figures["failed"] == 0
    assert figures["results"] == x and figures["bits"] == x
    assert figures["enqueued"] == x
    return figures
