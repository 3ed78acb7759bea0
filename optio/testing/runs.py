"""A run against a real System: start it, read its state, wait for it, count its executions."""

from __future__ import annotations

from collections.abc import Iterable

from optio.names import done_key, results_key, run_key
from optio.redis_state import RunStore
from optio.testing.procs import wait_for
from optio.testing.system import TEST_TICK_SECONDS, System


def executions_key(run_id: str) -> str:
    """Hash: job id -> how many times the job function really ran (tests.fault_jobs)."""
    return f"test:executions:{run_id}"


def starts_key(run_id: str) -> str:
    """List of "job id:ms since the epoch", one per execution start (tests.fault_jobs)."""
    return f"test:starts:{run_id}"


def start(system: System, x: int, y: float) -> str:
    """POST /api/run; returns the new run's id."""
    response = system.post("/api/run", {"x": x, "y": y})
    assert response.status_code == 201, response.text
    return response.json()["runId"]


def status(system: System) -> dict:
    return system.get("/api/status").json()


def wait_processed(system: System, at_least: int, timeout: float) -> dict:
    return wait_for(
        lambda: (s := status(system))["processed"] >= at_least and s, timeout, f"{at_least} done"
    )


def wait_finished(system: System, run_id: str, timeout: float, *, poll_redis: bool = False) -> dict:
    """The run's final state once it is no longer running.

    Polls ``GET /api/status`` every 0.2 s; ``poll_redis`` polls the run's status field in Redis
    every 0.1 s instead, so that the web process measured by the benchmark serves no requests.
    """
    if poll_redis:
        wait_for(
            lambda: system.redis.hget(run_key(run_id), "status") != "running",
            timeout,
            f"run {run_id} to finish",
            interval=0.1,
        )
        state = RunStore(system.redis).runs.run_state(run_id)
        assert state is not None, f"run {run_id} is gone"
        return state

    def finished():
        state = status(system)
        return state["runId"] == run_id and not state["running"] and state

    return wait_for(finished, timeout, f"run {run_id} to finish", interval=0.2)


def past_schedule(state: dict) -> float:
    """Seconds the run finished after its exact schedule's last job was due."""
    due_end = state["startedAt"] / 1000 + (state["xTotal"] - 1) * 60 / state["yMinute"]
    return state["finishedAt"] / 1000 - due_end


def executions(system: System, run_id: str) -> dict[int, int]:
    """Job id -> how many times the job function really ran (tests.fault_jobs:counted)."""
    raw = system.records.hgetall(executions_key(run_id))
    return {int(k): int(v) for k, v in raw.items()}


def settled_executions(system: System, run_id: str, timeout: float = 30) -> dict[int, int]:
    """``executions`` once every execution that started has ended (as many recorded starts as
    executions: a copy still running when the run finished is counted too)."""

    def settled() -> dict[int, int] | None:
        ran = executions(system, run_id)
        return ran if len(starts(system, run_id)) == sum(ran.values()) else None

    return wait_for(settled, timeout, "every started execution to end")


def starts(system: System, run_id: str) -> list[tuple[int, float]]:
    """(job id, ms since the epoch) of every execution start, in order."""
    out = []
    for item in system.records.lrange(starts_key(run_id), 0, -1):
        job, _, at = item.partition(":")
        out.append((int(job), float(at)))
    return out


def assert_exactly_once(system: System, run_id: str, x: int) -> dict:
    """processed == x, one stored result per job, one bit per job; returns the figures."""
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


def most_ahead_of_schedule(states: Iterable[tuple[float, dict]], run_id: str, y: float) -> float:
    """The most jobs any state of ``run_id`` had enqueued beyond the exact schedule (job 0 at the
    start, then y a minute); each state comes with the epoch second it was seen at."""
    return max(
        state["enqueued"] - (1 + (at - state["startedAt"] / 1000) * y / 60)
        for at, state in states
        if state.get("runId") == run_id
    )


def jobs_per_tick(y: float) -> float:
    """One tick's worth of jobs at y a minute, at the tick of the systems tests start."""
    return y / 60 * TEST_TICK_SECONDS
