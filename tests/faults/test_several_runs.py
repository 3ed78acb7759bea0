"""Several runs at once, with real redis-server, celery worker and beat processes (issue 22):
fair shares of the deployment's ceiling, weights, maxInFlight, deadline runs, a pause of one
run, a killed worker under three runs. The job functions record when each execution starts
(and ends); the measures come from those times. Tolerances are for a loaded 2-core machine
(10 % on rates, as the issue asks; the figures go to the reliability table)."""

from __future__ import annotations

import signal
import time

import pytest

from optio.names import LAST_TICK_KEY, done_key
from optio.redis_state import RunStore
from optio.testing import executions, starts, wait_for
from optio.testing.limited import KEY, LimitedServer
from optio.testing.pacing import most_in_window
from optio.testing.system import TEST_TICK_SECONDS
from tests.fault_jobs import ends_key

TIMED = "tests.fault_jobs:timed"


def ticking(system, concurrency: int = 2) -> RunStore:
    """Start the web, a worker (``concurrency`` pool processes) and beat; the system's store,
    once beat ticks (a run started before beat's first tick waits)."""
    system.start_web()
    system.start_worker("worker", concurrency)
    system.start_beat()
    wait_for(lambda: system.redis.get(LAST_TICK_KEY), 30, "beat's first tick")
    return RunStore(system.redis)


def finished(store: RunStore, run_id: str, timeout: float) -> dict:
    """The run's final state once it has ended."""
    return wait_for(
        lambda: (st := store.runs.run_state(run_id))["status"] not in ("running", "paused") and st,
        timeout,
        f"run {run_id} to end",
        interval=0.2,
    )


def start_times(system, run_id: str) -> list[float]:
    """Seconds since the epoch of each execution start of the run, in order."""
    return sorted(at / 1000 for _, at in starts(system, run_id))


def rate_between(times: list[float], since: float, until: float) -> float:
    """Jobs/min started in [since, until)."""
    return sum(1 for t in times if since <= t < until) * 60 / (until - since)


def assert_exact(system, store: RunStore, run_id: str, x: int, *, extra_ok: int = 0) -> dict:
    """The run completed with every job counted once; executions: once each (``extra_ok``
    more where a worker really died)."""
    state = store.runs.run_state(run_id)
    ran = executions(system, run_id)
    assert state["status"] == "completed", state
    assert (state["processed"], state["failed"]) == (x, 0)
    assert system.redis.bitcount(done_key(run_id)) == x
    assert set(ran) == set(range(x))
    assert sum(ran.values()) - x <= extra_ok, f"{sum(ran.values()) - x} extra executions"
    return state


@pytest.mark.env({"OPTIO_MAX_RATE": "6000"})
def test_three_runs_share_the_ceiling_fairly(fault_system, record):
    """x = 600 at 600/min, x = 30 at 60/min and x = 6,000 at 60,000/min under a ceiling of
    6,000/min: the two small runs get what they ask, the big one the rest (5,340/min) until
    they end; each run exact, each started within a tick or so."""
    s = fault_system
    store = ticking(s)
    runs = {
        "a": (600, 600.0),
        "b": (30, 60.0),
        "c": (6000, 60_000.0),
    }
    ids = {name: store.runs.start_run(x, y) for name, (x, y) in runs.items()}
    states = {name: finished(store, run_id, 180) for name, run_id in ids.items()}
    times = {name: start_times(s, run_id) for name, run_id in ids.items()}
    for name, run_id in ids.items():
        assert_exact(s, store, run_id, runs[name][0])
    first_start = {name: times[name][0] - states[name]["startedAt"] / 1000 for name in ids}
    assert max(first_start.values()) <= 4 * TEST_TICK_SECONDS, first_start
    # while all three run (the first 30 s, less the first two s of catching up), the ceiling
    # binds: a and b get their y, c the rest
    began = min(st["startedAt"] for st in states.values()) / 1000
    window = (began + 2, began + 28)
    measured = {name: rate_between(times[name], *window) for name in ids}
    shares = {"a": 600, "b": 60, "c": 5340}
    for name, share in shares.items():
        assert measured[name] == pytest.approx(share, rel=0.10), (name, measured)
    # the sum never exceeds the ceiling by more than a tick's jobs (over any 5 s), measured
    # from job starts: these lag their sends by up to another tick's worth on a loaded box
    # (a backlog in the two pool processes, then caught up), which the bound allows too
    every = sorted(t for name in ids for t in times[name])
    tick_jobs = 6000 / 60 * TEST_TICK_SECONDS
    most = most_in_window(every, 5.0)
    assert most <= 6000 / 12 + 2 * tick_jobs, f"{most} jobs in 5 s"
    record(
        "three runs under OPTIO_MAX_RATE=6000",
        "x=600 at 600/min, x=30 at 60/min, x=6,000 at 60,000/min; worker -c 2",
        rates_per_min={k: round(v) for k, v in measured.items()},
        shares=shares,
        first_start_s={k: round(v, 2) for k, v in first_start.items()},
        most_in_5s=most,
    )


@pytest.mark.env({"OPTIO_MAX_RATE": "2400"})
def test_weights_split_the_ceiling(fault_system, record):
    """Two runs asking far more than a ceiling of 2,400/min, weights 3 and 1: 1,800 and 600."""
    s = fault_system
    store = ticking(s)
    heavy = store.runs.start_run(100_000, 60_000, weight=3)
    light = store.runs.start_run(100_000, 60_000, weight=1)
    began = time.time()
    wait_for(lambda: time.time() - began >= 20 and True, 30, "20 s of the two runs")
    store.runs.stop_run(heavy)
    store.runs.stop_run(light)
    window = (began + 3, began + 18)
    rates = [rate_between(start_times(s, run), *window) for run in (heavy, light)]
    assert rates[0] / rates[1] == pytest.approx(3, rel=0.10), rates
    assert sum(rates) == pytest.approx(2400, rel=0.10), rates
    assert store.runs.run_state(heavy)["weight"] == 3
    record(
        "weights 3:1 under OPTIO_MAX_RATE=2400",
        "two runs at 60,000/min asked, 20 s; worker -c 2",
        rates_per_min=[round(r) for r in rates],
        ratio=round(rates[0] / rates[1], 2),
    )


@pytest.mark.env({"OPTIO_JOB_FUNC": TIMED, "OPTIO_JOB_SECONDS": "1"})
def test_max_in_flight_bounds_the_jobs_running_at_once(fault_system, record):
    """maxInFlight=2 with 1 s jobs and four pool processes: never more than 2 of the run's
    jobs running at once (from their start and end times), and 2 do run together."""
    s = fault_system
    store = ticking(s, 4)
    run_id = store.runs.start_run(8, 600, max_in_flight=2)
    finished(store, run_id, 60)
    assert_exact(s, store, run_id, 8)
    events = [(at, 1) for _, at in starts(s, run_id)]
    for item in s.records.lrange(ends_key(run_id), 0, -1):
        events.append((float(item.partition(":")[2]), -1))
    running = most = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at a tie
        running += step
        most = max(most, running)
    assert most == 2, f"{most} jobs ran at once"
    record(
        "maxInFlight=2",
        "x=8 at 600/min, 1 s jobs, worker -c 4",
        most_running_at_once=most,
    )


def test_a_deadline_run_finishes_by_its_deadline_without_bursts(fault_system, record):
    """3,000 jobs due in 60 s: finished within 60 s +- 2 s, no 1 s window above twice its
    average rate (50 jobs/s), and onTrack all along."""
    s = fault_system
    store = ticking(s)
    now = store.runs.server_time_ms()
    run_id = store.runs.start_run(3000, deadline_ms=now + 60_000)
    seen = []

    def ended():
        state = store.runs.run_state(run_id)
        seen.append(state)
        return state["status"] != "running" and state

    state = wait_for(ended, 90, "the deadline run to end", interval=0.5)
    assert_exact(s, store, run_id, 3000)
    took = (state["finishedAt"] - now) / 1000
    assert took == pytest.approx(60, abs=2)
    most = most_in_window(start_times(s, run_id), 1.0)
    assert most <= 2 * 50, f"{most} jobs started within 1 s"
    assert all(st["onTrack"] for st in seen if st["status"] == "running")
    record(
        "a deadline run",
        "x=3,000 due in 60 s; worker -c 2",
        finished_after_s=round(took, 2),
        most_starts_in_1s=most,
    )


@pytest.mark.env({"OPTIO_MAX_RATE": "1200"})
def test_a_deadline_the_ceiling_cannot_meet_says_so(fault_system, record):
    """600 jobs due in 15 s need 2,400/min; the ceiling gives 1,200: the run says it is not on
    track, with a projected finish within 5 % of the real one (about 30 s)."""
    s = fault_system
    store = ticking(s)
    now = store.runs.server_time_ms()
    run_id = store.runs.start_run(600, deadline_ms=now + 15_000)

    def projected():
        state = store.runs.run_state(run_id)
        return state["processed"] >= 100 and state

    early = wait_for(projected, 30, "100 jobs of the deadline run")
    assert early["onTrack"] is False and early["shareRate"] == 1200
    state = finished(store, run_id, 60)
    assert_exact(s, store, run_id, 600)
    real = state["finishedAt"] - now
    guess = early["projectedFinish"] - now
    assert guess == pytest.approx(real, rel=0.05), (guess, real)
    record(
        "a deadline the ceiling cannot meet",
        "x=600 due in 15 s, OPTIO_MAX_RATE=1200; worker -c 2",
        projected_s=round(guess / 1000, 2),
        finished_s=round(real / 1000, 2),
    )


def test_a_pause_of_one_run_does_not_slow_the_others(fault_system, record):
    s = fault_system
    store = ticking(s)
    paused = store.runs.start_run(10_000, 1200)
    going = store.runs.start_run(10_000, 1200)
    began = time.time()
    wait_for(lambda: time.time() - began >= 8 and True, 20, "8 s of both runs")
    store.runs.pause_run(paused)
    at = time.time()
    wait_for(lambda: time.time() - at >= 8 and True, 20, "8 s of the pause")
    times = start_times(s, going)
    before = rate_between(times, began + 2, at)
    during = rate_between(times, at + 1, at + 8)
    paused_times = start_times(s, paused)
    store.runs.stop_run(paused)
    store.runs.stop_run(going)
    assert during == pytest.approx(1200, rel=0.10) and before == pytest.approx(1200, rel=0.10)
    assert not [t for t in paused_times if t >= at + 1]  # the paused run started nothing
    record(
        "a pause of one of two runs",
        "two runs at 1,200/min, one paused after 8 s; worker -c 2",
        other_rate_before=round(before),
        other_rate_during=round(during),
    )


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.05"})
def test_a_killed_worker_under_three_runs_leaves_each_exact(fault_system, record):
    s = fault_system
    store = ticking(s)
    worker = s.procs["worker"]
    ids = [store.runs.start_run(300, 1200) for _ in range(3)]
    wait_for(
        lambda: all(store.runs.run_state(r)["processed"] >= 60 for r in ids),
        60,
        "60 jobs of each run",
    )
    worker.signal(signal.SIGKILL)  # the whole process group: main process and pool children
    worker.popen.wait(10)
    s.start_worker("worker-2", 2)
    extras = []
    for run_id in ids:
        finished(store, run_id, 120)
        state = assert_exact(s, store, run_id, 300, extra_ok=4)
        extras.append(sum(executions(s, run_id).values()) - state["xTotal"])
    record(
        "SIGKILL of the worker under three runs",
        "three runs x=300 at 1,200/min, 50 ms jobs, worker -c 2 killed, another started",
        extra_executions=extras,
    )


def test_runs_calling_one_downstream_share_its_rate(fault_system, record):
    """Two runs at 6,000/min each call one server allowing 20 calls/s; their jobs raise
    Throttle(key=...): one adaptive rate for both, shared evenly, uses the server well."""
    server = LimitedServer(20)
    s = fault_system
    try:
        s.env.update(
            OPTIO_JOB_FUNC="optio.testing.limited:call_limited_keyed",
            OPTIO_TEST_LIMITED_URL=server.url,
        )
        store = ticking(s)
        ids = [store.runs.start_run(100_000, 6000) for _ in range(2)]
        began = time.time()
        wait_for(lambda: time.time() - began >= 15 and True, 30, "15 s of the runs")
        at_15 = [store.runs.run_state(r)["processed"] for r in ids]
        refused_15 = server.refused
        wait_for(lambda: time.time() - began >= 45 and True, 60, "45 s of the runs")
        at_45 = [store.runs.run_state(r)["processed"] for r in ids]
        refused = server.refused - refused_15
        for run_id in ids:
            store.runs.stop_run(run_id)
    finally:
        server.close()
    done = [b - a for a, b in zip(at_15, at_45, strict=True)]
    used = sum(done) / (30 * 20)
    assert used >= 0.8, (done, used)
    assert min(done) / max(done) >= 0.8, done  # an even split: one rate shared
    assert refused <= 0.1 * sum(done), refused
    keyed = s.redis.hgetall("optio:throttles")
    assert f"{KEY}|rate" in keyed or store.runs.run_state(ids[0])["throttled"] > 0
    record(
        "two runs calling one downstream (Throttle key)",
        "two runs at 6,000/min, a server allowing 20/s, 30 s measured after 15 s; worker -c 2",
        processed_each=done,
        capacity_used=f"{used:.1%}",
        refused=refused,
    )
