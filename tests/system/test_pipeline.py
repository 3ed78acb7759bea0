"""End to end: real Redis, celery worker and beat, the web process and Socket.IO clients."""

from __future__ import annotations

import threading
import time

import pytest

from optio import names
from optio.names import results_key
from optio.redis_state import RunStore
from optio.testing import Watcher, jobs_per_tick, most_ahead_of_schedule, start, status, wait_for

FIVE = ("running", "xTotal", "yMinute", "enqueued", "processed")


@pytest.fixture
def watcher(idle_system):
    w = Watcher(idle_system.base)
    yield w
    w.close()


def test_a_run_completes_with_exact_counts_and_live_events(idle_system, watcher):
    wait_for(lambda: watcher.events, 5, "the state sent on connect")
    run_id = start(idle_system, 40, 2400)
    final = watcher.wait_final(run_id, 30)

    assert (final["enqueued"], final["processed"], final["xTotal"]) == (40, 40, 40)
    assert final["status"] == "completed" and final["finishedAt"] >= final["startedAt"]
    ours = [s for s in watcher.states() if s.get("runId") == run_id]
    assert len(ours) >= 3, "expected several live events during the run"
    for state in ours:
        assert set(FIVE) <= set(state)
        assert isinstance(state["running"], bool) and isinstance(state["processed"], int)
    for before, after in zip(ours, ours[1:], strict=False):
        assert after["enqueued"] >= before["enqueued"]
        assert after["processed"] >= before["processed"]
    assert any(0 < s["processed"] < 40 for s in ours), "counts should be seen moving"
    assert ours[-1]["running"] is False
    assert idle_system.redis.hlen(results_key(run_id)) == 40
    assert idle_system.get("/api/status").json() == final


def test_a_client_connecting_after_the_run_gets_the_final_state_at_once(idle_system, watcher):
    run_id = start(idle_system, 5, 6000)
    final = watcher.wait_final(run_id, 30)
    with Watcher(idle_system.base) as late:
        first = wait_for(lambda: late.events, 5, "the state sent on connect")[0][1]
        assert first == final


def test_the_rate_is_respected_at_600_per_minute(idle_system, watcher):
    x, y = 60, 600
    run_id = start(idle_system, x, y)
    final = watcher.wait_final(run_id, 60)
    assert final["processed"] == x
    duration = (final["finishedAt"] - final["startedAt"]) / 1000
    expected = (x - 1) * 60 / y  # job 0 at once, job x-1 after (x-1) intervals
    # an honest band for a noisy 2-core box: tick granularity plus scheduling jitter
    assert expected * 0.9 <= duration <= expected + 3, duration
    # never ahead of schedule by more than one tick's worth
    ahead = most_ahead_of_schedule(watcher.events, run_id, y)
    assert ahead <= jobs_per_tick(y) + 1, ahead


def test_a_rate_change_applies_mid_run(idle_system, watcher):
    run_id = start(idle_system, 40, 30)  # would take 78 s
    wait_for(lambda: idle_system.get("/api/status").json()["enqueued"] >= 1, 10, "first job")
    response = idle_system.put("/api/run", {"y": 3000})
    assert response.status_code == 200, response.text
    assert response.json()["yMinute"] == 3000
    final = watcher.wait_final(run_id, 20)
    assert final["processed"] == 40 and final["yMinute"] == 3000


def test_stop_ends_enqueuing_at_once(idle_system, watcher):
    run_id = start(idle_system, 10_000, 600)
    wait_for(lambda: idle_system.get("/api/status").json()["processed"] >= 5, 15, "progress")
    response = idle_system.post("/api/stop")
    assert response.status_code == 200
    stopped = response.json()
    assert (stopped["running"], stopped["status"]) == (False, "stopped")
    # two more ticks (0.5 s each) enqueue nothing
    ticks = [idle_system.redis.get(names.LAST_TICK_KEY)]

    def next_tick() -> bool:
        tick = idle_system.redis.get(names.LAST_TICK_KEY)
        if tick != ticks[-1]:
            ticks.append(tick)
        return len(ticks) >= 3

    wait_for(next_tick, 5, "two later ticks")
    after = idle_system.get("/api/status").json()
    assert after["runId"] == run_id and after["enqueued"] == stopped["enqueued"]


def test_concurrent_starts_start_one_run_each(idle_system):
    """Six starts at once: six runs side by side, each with its own id, each completed exactly."""
    answers: list = []

    def post():
        answers.append(idle_system.post("/api/run", {"x": 3, "y": 6000}))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201] * 6
    ids = {a.json()["runId"] for a in answers}
    assert len(ids) == 6

    def all_completed() -> bool:
        states = [idle_system.get(f"/api/runs/{run_id}").json() for run_id in ids]
        return all(s["status"] == "completed" and s["processed"] == 3 for s in states)

    wait_for(all_completed, 30, "the six runs to complete")
    assert idle_system.get("/api/runs?active=1").json()["runs"] == []


def test_health_reports_redis_and_the_last_tick(idle_system):
    response = idle_system.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["checks"]["redis"] == "ok"
    assert body["checks"]["lastTickAgeSeconds"] < 5


def test_a_flood_of_updates_is_coalesced_and_ends_on_the_latest(idle_system, watcher):
    """500 states published in a burst reach clients as at most ~20 emits/s, the last one last.
    They are real: 500 changes of a paused run's y (the relay sends a state of a run that is not
    in the store, or out of sequence, only as the store has it)."""
    wait_for(lambda: watcher.events, 5, "the state sent on connect")
    run_id = start(idle_system, 100_000, 60)
    assert idle_system.post("/api/pause").status_code == 200
    wait_for(lambda: watcher.states()[-1].get("status") == "paused", 5, "the paused state")
    seen = len(watcher.events)
    runs = RunStore(idle_system.redis).runs
    started = time.monotonic()
    for y in range(61, 561):
        runs.update_run(y=y)
    wait_for(lambda: watcher.states()[-1].get("yMinute") == 560, 10, "the latest state to arrive")
    elapsed = time.monotonic() - started
    got = [s for _, s in watcher.events[seen:] if s.get("runId") == run_id]
    idle_system.post("/api/stop")
    assert got[-1]["yMinute"] == 560
    assert len(got) <= 20 * elapsed + 2, f"{len(got)} emits in {elapsed:.2f} s"
    assert [s["yMinute"] for s in got] == sorted(s["yMinute"] for s in got)


def test_finished_runs_leave_no_key_without_expiry_and_health_never_scans(idle_system):
    s = idle_system

    def persistent_keys() -> set[str]:
        return {
            k for k in s.redis.scan_iter(f"{names.NAMESPACE}:*", count=1000) if s.redis.ttl(k) == -1
        }

    def run_one() -> None:
        run_id = start(s, 5, 60_000)
        wait_for(lambda: not (st := status(s))["running"] and st["runId"] == run_id, 30, "done")

    run_one()
    after_one = persistent_keys()
    for _ in range(4):
        run_one()
    assert persistent_keys() == after_one

    def scans() -> int:
        return int(s.redis.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))

    before = scans()
    for _ in range(5):
        assert s.get("/api/health").status_code == 200
    assert scans() == before
