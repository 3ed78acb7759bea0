"""The ``optio`` commands as users run them (a subprocess each) against the real processes:
one summary line or a table, ``--json``, and the exit codes 0, 1, 2 and 3."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from optio.testing import ROOT, System, free_port, wait_for

TOKEN = "cli-test-token"
#: Jobs 1, 6, 11, ... fail twice; with two attempts they end failed, a retry makes them succeed.
ENV = {
    "OPTIO_JOB_FUNC": "tests.fault_jobs:fails_twice",
    "OPTIO_JOB_ATTEMPTS": "2",
    "OPTIO_RETRY_BACKOFF": "0.1",
}


@pytest.fixture(scope="module")
def cli_system(redis_server, redis_db, tmp_path_factory) -> Iterator[System]:
    """optio's web, worker and beat, with the job function above, on a free database."""
    url = f"{redis_server.url}/{redis_db()}"
    with System(url, tmp_path_factory.mktemp("cli"), **ENV) as system:
        yield system.start_all()


@pytest.fixture
def system(cli_system) -> System:
    """The module's system with no run active."""
    cli_system.ensure_idle()
    return cli_system


def optio(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m optio.cli ARGS`` from this checkout; OPTIO_URL and OPTIO_API_TOKEN only as
    given."""
    base = {k: v for k, v in os.environ.items() if k not in ("OPTIO_URL", "OPTIO_API_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "optio.cli", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def ok(*args: str, **env: str) -> str:
    done = optio(*args, **env)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert done.stderr == ""
    return done.stdout


def refused(system: System, *args: str) -> str:
    """Run a command the server refuses; returns its stderr."""
    done = optio(*args, "--url", system.base)
    assert done.returncode == 1, (args, done.stdout, done.stderr)
    assert done.stdout == ""
    return done.stderr


def line(run_id: str, status: str) -> str:
    """A summary line of ``run_id`` in ``status``, as a regular expression."""
    return rf"run {run_id} {status}: processed [\d,]+/[\d,]+ \([\d.]+%\), enqueued [\d,]+, rate "


def test_a_run_from_start_to_stop(system):
    url = ("--url", system.base)
    started = ok("run", "10,000", "600", *url)
    found = re.fullmatch(r"run (\w+) running: processed \d+/10,000 \(.*, rate 600/min\n", started)
    assert found, started
    run_id = found.group(1)
    assert re.match(line(run_id, "running"), ok("status", *url))

    assert re.match(line(run_id, "paused"), ok("pause", *url))
    state = json.loads(ok("status", "--json", *url))
    assert (state["runId"], state["status"], state["running"]) == (run_id, "paused", True)
    assert isinstance(state["seq"], int) and state["pausedAt"]
    error = system.post("/api/pause").json()["error"]  # already paused: refused
    assert refused(system, "pause") == f"optio pause: {error}\n"

    assert re.match(line(run_id, "running"), ok("resume", *url))
    # jobs 1, 6, 11, ... of this module's runs fail for good: ", failed N" may follow the rate
    updated = ok("update", "--y", "1,200", *url)
    assert re.fullmatch(line(run_id, "running") + r"1,200/min(, failed [\d,]+)?\n", updated), (
        updated
    )
    table = ok("runs", *url).splitlines()
    assert table[0].split() == ["RUN", "STATUS", "PROCESSED", "FAILED", "Y/MIN", "DURATION"] + [
        "STARTED"
    ]
    row = table[1].split()
    assert row[:3] == [run_id, "running", row[2]] and row[2].endswith("/10,000"), table
    assert row[4] == "1,200"

    assert re.match(line(run_id, "stopped"), ok("stop", *url))
    error = system.post("/api/stop").json()["error"]
    assert refused(system, "stop") == f"optio stop: {error}\n"


def test_two_runs_at_once_are_controlled_by_id(system):
    url = ("--url", system.base)
    first = json.loads(ok("run", "1000", "6", "--weight", "2", "--json", *url))
    timed = ("--deadline", "3600", "--max-in-flight", "2")
    second = json.loads(ok("run", "1000", *timed, "--json", *url))
    assert (first["weight"], second["maxInFlight"]) == (2, 2) and "deadline" in second
    one, two = first["runId"], second["runId"]
    table = ok("runs", "--active", *url).splitlines()
    assert [row.split()[0] for row in table[1:]] == [two, one]

    error = system.post("/api/stop").json()["error"]  # several active: name one
    assert refused(system, "stop") == f"optio stop: {error}\n"
    assert re.match(line(one, "paused"), ok("pause", one, *url))
    assert system.get(f"/api/runs/{two}").json()["status"] == "running"
    assert re.match(line(one, "paused") + "12/min", ok("update", one, "--y", "12", *url))
    error = system.put(f"/api/runs/{two}", {"y": 5}).json()["error"]  # a deadline run's y
    assert refused(system, "update", two, "--y", "5") == f"optio update: {error}\n"
    assert re.match(line(one, "running"), ok("resume", one, *url))
    assert re.match(line(two, "stopped"), ok("stop", two, *url))
    assert json.loads(ok("runs", "--active", "--json", *url))["runs"][0]["runId"] == one
    assert re.match(line(one, "stopped"), ok("stop", *url))  # the one active: no id needed
    assert ok("runs", "--active", *url) == "no active runs\n"
    error = system.post("/api/runs/0123456789ab/stop").json()["error"]
    assert refused(system, "stop", "0123456789ab") == f"optio stop: {error}\n"


def test_watch_follows_the_run_named_on_the_command_line(system):
    url = ("--url", system.base)
    older = json.loads(ok("run", "1000", "6", "--json", *url))["runId"]
    newer = json.loads(ok("run", "1000", "12", "--json", *url))["runId"]
    shown = json.loads(ok("watch", "--once", "--json", *url))
    assert shown["runId"] == newer  # without an id: the run clients are shown, the newest
    named = json.loads(ok("watch", older, "--once", "--json", *url))
    assert (named["runId"], named["xTotal"], named["yMinute"]) == (older, 1000, 6)

    watching = subprocess.Popen(
        [sys.executable, "-m", "optio.cli", "watch", older, *url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        first = watching.stdout.readline()  # blocks until the watch shows the run it follows
        assert first.startswith(f"Watching run {older}: 1,000 jobs at 6/min"), first
        ok("stop", newer, *url)  # the newer run ends first: not this watch's business
        ok("stop", older, *url)
        out, err = watching.communicate(timeout=20)
    finally:
        if watching.poll() is None:
            os.killpg(watching.pid, 9)
            watching.wait(5)
    assert watching.returncode == 1, (out, err)
    assert re.fullmatch(
        rf"optio watch: run {older} was stopped at \d of 1,000 jobs processed\n", err
    ), err
    assert newer not in first + out

    done = optio("watch", "0123456789ab", *url)
    assert done.returncode == 1
    assert "has no run 0123456789ab" in done.stderr


def test_json_prints_the_servers_answer_on_one_line(system):
    url = ("--url", system.base)
    started = ok("run", "5", "6000", "--json", *url)
    assert started.count("\n") == 1
    state = json.loads(started)
    assert state["xTotal"] == 5 and state["status"] == "running"
    wait_for(lambda: system.get("/api/status").json()["status"] == "completed", 30, "the end")
    for command in ("status", "runs"):
        out = ok(command, "--json", *url)
        assert out.count("\n") == 1 and json.loads(out)
    page = json.loads(ok("runs", "--json", "--limit", "1", *url))
    assert [run["runId"] for run in page["runs"]] == [state["runId"]]
    assert page["next"] in (None, state["runId"])


def test_refusals_exit_1_with_the_servers_error(system):
    for command, path in (("pause", "/api/pause"), ("resume", "/api/resume")):
        error = system.post(path).json()["error"]  # nothing runs: refused
        assert refused(system, command) == f"optio {command}: {error}\n"
        assert refused(system, command, "--json") == f"optio {command}: {error}\n"
    unknown = system.post("/api/runs/0123456789ab/retry-failed")
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert refused(system, "retry-failed", "0123456789ab") == f"optio retry-failed: {error}\n"


def test_retry_failed_runs_the_failed_jobs_again(system):
    url = ("--url", system.base)
    run_id = json.loads(ok("run", "20", "6000", "--json", *url))["runId"]

    def finished():
        state = system.get("/api/status").json()
        return state["runId"] == run_id and not state["running"] and state

    first = wait_for(finished, 60, "the run to complete")
    assert (first["status"], first["processed"], first["failed"]) == ("completed", 16, 4)

    retried = ok("retry-failed", run_id, *url)
    assert re.match(line(run_id, "running"), retried), retried
    final = wait_for(finished, 60, "the retried run to complete")
    assert (final["status"], final["processed"], final["failed"]) == ("completed", 20, 0)
    assert final["retried"] == 4

    error = system.post(f"/api/runs/{run_id}/retry-failed").json()["error"]  # none failed now
    assert refused(system, "retry-failed", run_id) == f"optio retry-failed: {error}\n"
    row = ok("runs", "--limit", "1", *url).splitlines()[1].split()
    assert row[:4] == [run_id, "completed", "20/20", "0"]


def test_runs_pages_with_before(system):
    url = ("--url", system.base)
    for _ in range(2):
        ok("run", "1", "6000", *url)
        wait_for(lambda: not system.get("/api/status").json()["running"], 30, "the run to end")
    newest, older = json.loads(ok("runs", "--json", "--limit", "2", *url))["runs"]
    first_page = ok("runs", "--limit", "1", *url).splitlines()
    assert first_page[1].startswith(newest["runId"] + "  ")
    assert first_page[-1] == f"older runs: optio runs --before {newest['runId']}"
    second_page = ok("runs", "--limit", "1", "--before", newest["runId"], *url).splitlines()
    assert second_page[1].startswith(older["runId"] + "  ")


def test_cannot_connect_exits_3_and_says_where_and_why():
    nobody = f"http://127.0.0.1:{free_port()}"
    done = optio("status", "--url", nobody)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.splitlines()[0] == (
        f"optio status: cannot connect to {nobody}: connection refused."
    )
    done = optio("pause", "--json", OPTIO_URL=nobody)
    assert done.returncode == 3 and nobody in done.stderr


class NotOptio(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>some other service</html>")

    def log_message(self, *args) -> None:
        pass


def test_another_service_at_the_address_exits_3():
    server = HTTPServer(("127.0.0.1", 0), NotOptio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        done = optio("status", "--url", url)
    finally:
        server.shutdown()
        thread.join(5)
    assert done.returncode == 3
    assert done.stderr.splitlines()[0] == (
        f"optio status: cannot connect to {url}: the answer (HTTP 200) is not optio's JSON."
    )


def test_bad_arguments_exit_2_and_send_nothing(system):
    before = system.get("/api/status").json()
    for args in (["run", "1.5", "60"], ["run", "10", "0"], ["update"], ["runs", "--limit", "0"]):
        done = optio(*args, "--url", system.base)
        assert done.returncode == 2, (args, done.stderr)
        assert "error:" in done.stderr and done.stdout == ""
    assert system.get("/api/status").json() == before


def test_the_token_is_sent_as_a_bearer_header(web_alone):
    web = web_alone(OPTIO_API_TOKEN=TOKEN)
    without = optio("pause", "--url", web.base)
    assert without.returncode == 1
    assert without.stderr.startswith("optio pause: missing or wrong API token")
    assert "--token or OPTIO_API_TOKEN" in without.stderr
    for done in (
        optio("pause", "--url", web.base, "--token", TOKEN),
        optio("pause", "--url", web.base, OPTIO_API_TOKEN=TOKEN),
    ):
        assert done.returncode == 1  # past the token: nothing runs to pause
        assert "token" not in done.stderr.lower(), done.stderr
