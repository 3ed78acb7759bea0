"""Run control against real processes: pause and resume, history across restarts, retry of
failed jobs, completion webhooks; over the real HTTP API, counting executions. (The Lua scripts
in-process: tests/unit/test_run_control.py.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from optio.names import LAST_TICK_KEY, attempts_key, holders_key, messages_key
from optio.testing import (
    assert_exactly_once,
    executions,
    free_port,
    start,
    starts,
    status,
    wait_finished,
    wait_for,
    wait_processed,
)
from optio.testing.system import TEST_TICK_SECONDS


def post_ok(system, path: str) -> dict:
    response = system.post(path)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.05"})
def test_pause_stops_job_starts_and_resume_goes_on_at_y(broker_system, record):
    s = broker_system
    s.start_all()
    x, y = 240, 1200  # 20 jobs/s; two pool processes run 40/s
    run_id = start(s, x, y)
    wait_processed(s, 40, 30)
    paused = post_ok(s, "/api/pause")
    assert (paused["status"], paused["running"]) == ("paused", True)
    paused_at = paused["pausedAt"]
    # the jobs running at the pause finish; after that nothing moves
    wait_for(lambda: s.redis.hlen(holders_key(run_id)) == 0, 10, "running messages to park")
    # and the paced tick under way at the pause has ended (it may send one more message before
    # it hears of the pause): a tick began a tick's time after the pause
    wait_for(
        lambda: float(s.redis.get(LAST_TICK_KEY) or 0) >= paused_at + TEST_TICK_SECONDS * 1000,
        10,
        "a tick after the pause",
    )
    settled = status(s)
    time.sleep(2.0)  # the window in which nothing may happen (not a wait for a condition)
    later = status(s)
    assert (later["enqueued"], later["processed"]) == (settled["enqueued"], settled["processed"])
    # no job started later than one job plus one count after the pause
    late = [at - paused_at for _, at in starts(s, run_id) if at > paused_at]
    assert max(late, default=0) < 50 + 20 + 250, late

    resumed = post_ok(s, "/api/resume")
    assert (resumed["status"], resumed["pausedAt"]) == ("running", None)
    assert resumed["pausedMs"] >= 2000
    resumed_at = time.time() * 1000
    wait_for(lambda: status(s)["processed"] > later["processed"], 10, "jobs after the resume")
    time.sleep(2.0)  # measure two seconds of the resumed run
    grown = status(s)["enqueued"] - later["enqueued"]
    # at most y for 2 s, plus a tick's worth and the parked messages: no catch-up burst
    parked = settled["enqueued"] - settled["processed"]
    assert grown <= 2 * y / 60 + y / 60 + parked + 5, (grown, parked)
    state = wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    assert executions(s, run_id) == dict.fromkeys(range(x), 1)
    active_s = (state["finishedAt"] - state["startedAt"] - state["pausedMs"]) / 1000
    record(
        f"pause, then resume ({s.broker} broker)",
        f"x={x}, y={y}/min, 50 ms jobs, -c 2; paused at processed={paused['processed']} "
        f"for {state['pausedMs'] / 1000:.1f} s",
        latest_start_after_pause_ms=f"{max(late, default=0):.0f}",
        enqueued_in_2s_after_resume=grown,
        active_s=f"{active_s:.1f}",
        resumed_after_ms=f"{resumed_at - paused_at:.0f}",
        **figures,
    )


@pytest.mark.env({"OPTIO_JOB_SECONDS": "1.5", "OPTIO_LEASE_SECONDS": "3"})
def test_a_worker_killed_while_paused_loses_nothing(fault_system, record):
    s = fault_system
    s.start_web()
    s.start_worker("worker", 1)
    s.start_worker("worker2", 1)
    s.start_beat()
    x = 12
    run_id = start(s, x, 600)
    wait_processed(s, 2, 30)
    wait_for(lambda: s.redis.hlen(holders_key(run_id)) >= 1, 10, "a job running")
    post_ok(s, "/api/pause")
    s.procs["worker"].signal(signal.SIGKILL)  # mid-job, or just done: either way nothing is lost
    # its lease runs out, the tick sends the message again, the other worker parks it
    wait_for(lambda: s.redis.hlen(holders_key(run_id)) == 0, 30, "every lease to end")
    paused = status(s)
    assert paused["status"] == "paused"
    post_ok(s, "/api/resume")
    wait_finished(s, run_id, 60)
    ran = executions(s, run_id)
    figures = assert_exactly_once(s, run_id, x) | {"executions": sum(ran.values())}
    # only the job the killed worker ran may have run twice
    assert sum(ran.values()) - x <= 1 and sorted(ran) == list(range(x)), ran
    record(
        "worker SIGKILLed while paused",
        f"x={x}, y=600/min, 1.5 s jobs, two workers -c 1, lease 3 s",
        processed_at_pause=paused["processed"],
        **figures,
    )


#: The score of a parked message (names.py, messages zset; PARKED in _prelude.lua).
PARKED = 9e15


@pytest.mark.env(
    {
        "OPTIO_JOB_FUNC": "tests.fault_jobs:fails_once",
        "OPTIO_JOB_SECONDS": "0.3",
        # the pause must land before the retry is due, also on a loaded machine
        "OPTIO_RETRY_BACKOFF": "3",
    }
)
def test_a_retry_pending_at_a_pause_runs_its_job_once_after_the_resume(fault_system, record):
    """Issue 19, case 3: job 3 fails once, the run is paused right after the failure; its retry
    and the rest of its first message are parked, both are sent at the resume, and job 3 runs
    once (it used to run in both, in two processes at once). -c 4: nothing waits for a free
    process after the resume."""
    s = fault_system
    s.start_all(concurrency=4)
    x, y = 20, 60_000  # 10 jobs per message
    run_id = start(s, x, y)
    wait_for(lambda: s.redis.hget(attempts_key(run_id), "3"), 30, "job 3 to fail", interval=0.01)
    paused = post_ok(s, "/api/pause")
    retry = "3:1:r1"  # due 3 s after the failure: sent while paused, and parked
    wait_for(
        lambda: (
            (s.redis.zscore(messages_key(run_id), retry) or 0) >= PARKED
            and s.redis.hlen(holders_key(run_id)) == 0
        ),
        30,
        "the retry and the running messages to be parked",
    )
    parked = s.redis.zcount(messages_key(run_id), PARKED, "+inf")
    post_ok(s, "/api/resume")
    wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    assert executions(s, run_id) == dict.fromkeys(range(x), 1)
    record(
        "a retry pending at a pause (issue 19, case 3)",
        f"x={x}, y={y}/min (10 jobs per message), 0.3 s jobs, -c 4; job 3 fails once, paused "
        f"at once (processed={paused['processed']}), resumed once the retry was parked",
        parked_messages=parked,
        **figures,
    )


@pytest.mark.env({"OPTIO_JOB_FUNC": "tests.fault_jobs:fails_twice", "OPTIO_JOB_ATTEMPTS": "2"})
def test_retry_failed_reruns_the_failed_jobs_until_the_run_completes(fault_system):
    s = fault_system
    s.start_all()
    x = 20
    run_id = start(s, x, 6000)
    first = wait_finished(s, run_id, 60)
    assert (first["status"], first["processed"], first["failed"]) == ("completed", 16, 4)
    detail = s.get(f"/api/runs/{run_id}").json()
    assert [e["job"] for e in detail["errors"]] == [1, 6, 11, 16]
    assert all("fails for now" in e["error"] for e in detail["errors"])

    again = post_ok(s, f"/api/runs/{run_id}/retry-failed")
    assert (again["status"], again["running"], again["failed"], again["retried"]) == (
        "running",
        True,
        0,
        4,
    )
    final = wait_finished(s, run_id, 60)
    assert (final["status"], final["processed"], final["failed"]) == ("completed", 20, 0)
    assert s.get(f"/api/runs/{run_id}").json()["errors"] == []
    assert sum(executions(s, run_id).values()) == x  # the successful runs: one per job
    # nothing left to retry; an unknown run
    refused = s.post(f"/api/runs/{run_id}/retry-failed")
    assert refused.status_code == 409 and "no failed jobs" in refused.json()["error"]
    unknown = s.post("/api/runs/0123456789ab/retry-failed")
    assert unknown.status_code == 404 and unknown.json() == {"error": "no run 0123456789ab"}


def test_history_survives_a_restart_of_every_process(fault_system):
    s = fault_system
    s.start_all()
    finals = {}
    for x in (3, 5, 7):
        run_id = start(s, x, 6000)
        finals[run_id] = wait_finished(s, run_id, 60)
    stopped = start(s, 1000, 60)
    wait_processed(s, 1, 30)
    post_ok(s, "/api/stop")
    finals[stopped] = s.get(f"/api/runs/{stopped}").json()

    s.stop_all()
    s.server.stop()
    s.server.start()
    s.start_all()
    listed = s.get("/api/runs?limit=10").json()
    assert [r["runId"] for r in listed["runs"]] == list(reversed(finals)) and listed["next"] is None
    for state in listed["runs"]:
        want = finals[state["runId"]]
        for field in ("status", "xTotal", "processed", "failed", "startedAt", "finishedAt"):
            assert state[field] == want[field], (field, state, want)
    page = s.get("/api/runs?limit=2").json()
    assert [r["runId"] for r in page["runs"]] == list(reversed(finals))[:2]
    rest = s.get(f"/api/runs?limit=2&before={page['next']}").json()
    assert [r["runId"] for r in rest["runs"]] == list(reversed(finals))[2:]


class Receiver:
    """A local webhook receiver: fails the first ``failures`` requests with 500, or never
    answers at all (``hang``); records every request."""

    def __init__(self, failures: int = 0, hang: bool = False) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.failures, self.hang = failures, hang
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                if receiver.hang:
                    receiver.release.wait(60)
                    return
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request):
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


SECRET = "s3cret-for-tests"


def test_a_webhook_that_fails_twice_is_delivered_once_with_two_beats(
    fault_system, receiver, record
):
    hook = receiver(failures=2)
    s = fault_system
    s.env.update(OPTIO_WEBHOOK_URL=hook.url, OPTIO_WEBHOOK_SECRET=SECRET)
    s.start_all()
    s.start_beat("beat2")
    run_id = start(s, 5, 6000)
    ended = wait_finished(s, run_id, 60)
    assert ended["webhook"] == "pending"
    delivered = wait_for(
        lambda: (st := s.get(f"/api/runs/{run_id}").json())["webhook"] == "delivered" and st,
        30,
        "the webhook to be delivered",
    )
    time.sleep(3)  # a window for a duplicate delivery to show up (none may)
    assert len(hook.requests) == 3, [h.get("X-Optio-Delivery") for h, _ in hook.requests]
    headers, body = hook.requests[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Optio-Signature"] == expected
    sent = json.loads(body)
    assert (sent["runId"], sent["status"], sent["processed"]) == (run_id, "completed", 5)
    assert len({h["X-Optio-Delivery"] for h, _ in hook.requests}) == 1
    record(
        "completion webhook failing twice, two beats",
        "x=5; receiver answers 500 twice, then 204",
        requests=len(hook.requests),
        outcome=delivered["webhook"],
    )


def run_until_the_webhook_is_given_up(s, x: int, timeout: float) -> dict:
    """Run x jobs to completion and wait for the run's webhook to end ``failed``."""
    run_id = start(s, x, 6000)
    wait_finished(s, run_id, 60)
    return wait_for(
        lambda: (st := s.get(f"/api/runs/{run_id}").json())["webhook"] == "failed" and st,
        timeout,
        "the webhook to be given up",
    )


def test_a_webhook_that_never_answers_ends_failed(fault_system, receiver):
    hook = receiver(hang=True)
    s = fault_system
    s.env.update(
        OPTIO_WEBHOOK_URL=hook.url,
        OPTIO_WEBHOOK_TIMEOUT="1",
        OPTIO_WEBHOOK_RETRY_SECONDS="6",
    )
    s.start_all()
    final = run_until_the_webhook_is_given_up(s, 3, 40)
    assert "timed out" in final["webhookError"], final["webhookError"]
    assert 2 <= len(hook.requests) <= 6


def test_a_refused_connection_is_retried_then_failed(fault_system):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        s = fault_system
        s.env.update(
            OPTIO_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook", OPTIO_WEBHOOK_RETRY_SECONDS="3"
        )
        s.start_all()
        final = run_until_the_webhook_is_given_up(s, 2, 30)
    assert "refused" in final["webhookError"].lower(), final["webhookError"]
