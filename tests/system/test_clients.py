"""Command-line clients against the shared system: `optio watch`, `node test-websocket-cli.js`.
(Against a scripted server, or nothing: tests/processes/test_clients.py.)"""

from __future__ import annotations

import os
import pty
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from optio.testing import ROOT, VENV_BIN, Command, start, wait_for


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    started: list[Command] = []
    yield started
    for command in started:
        command.stop()


def optio(*args: str) -> list[str]:
    return [str(VENV_BIN / "optio"), *args]


def test_watch_follows_the_next_run_to_completion(idle_system, commands):
    watch = Command(optio("watch", "--url", idle_system.base))
    commands.append(watch)
    watch.wait_line(r"^No run is running.*Waiting for the next one")
    run_id = start(idle_system, 40, 2400)

    assert watch.wait(30) == 0, watch.err
    assert watch.wait_line(r"^Watching run ") == f"Watching run {run_id}: 40 jobs at 2,400/min"
    progress = [line for line in watch.out if re.match(r"\d\d:\d\d:\d\d ", line)]
    assert progress, watch.out
    assert all(re.match(r"\d\d:\d\d:\d\d processed \d+/40 \(", line) for line in progress)
    assert watch.out == [watch.out[0], watch.out[1], *progress, watch.out[-1]]
    assert re.match(r"\d\d:\d\d:\d\d processed 40/40 \(100\.0%\)", progress[-1])
    assert watch.out[-1].startswith(f"Run {run_id} completed: 40 jobs processed in ")
    assert not any("\r" in line or "█" in line for line in watch.out), "no bar when piped"
    assert watch.err == []


def test_watch_joins_a_running_run_and_fails_when_it_is_stopped(idle_system, commands):
    run_id = start(idle_system, 10_000, 600)
    watch = Command(optio("watch", "--url", idle_system.base))
    commands.append(watch)
    watch.wait_line(rf"^Watching run {run_id}: 10,000 jobs at 600/min")
    watch.wait_line(r"processed [1-9]")
    assert idle_system.post("/api/stop").status_code == 200

    assert watch.wait(15) == 1
    assert watch.err[-1].startswith(f"optio watch: run {run_id} was stopped at ")
    assert watch.err[-1].endswith(" of 10,000 jobs processed")


def test_watch_once_prints_the_state_and_exits(idle_system, commands):
    run_id = start(idle_system, 5, 6000)
    wait_for(lambda: idle_system.get("/api/status").json()["status"] == "completed", 20, "the end")
    once = Command(optio("watch", "--once", "--url", idle_system.base))
    commands.append(once)
    assert once.wait(15) == 0, once.err
    assert once.out == [
        f"run {run_id} completed: processed 5/5 (100.0%), enqueued 5, rate 6,000/min"
    ]

    as_json = Command(optio("watch", "--once", "--json", "--url", idle_system.base))
    commands.append(as_json)
    assert as_json.wait(15) == 0
    assert f'"runId":"{run_id}"' in as_json.out[0] and '"processed":5' in as_json.out[0]


def test_watch_takes_its_address_from_optio_url(idle_system, commands):
    watch = Command(optio("watch", "--once"), env={"OPTIO_URL": idle_system.base})
    commands.append(watch)
    assert watch.wait(15) == 0, watch.err
    assert len(watch.out) == 1


def test_watch_draws_a_progress_bar_on_a_terminal(idle_system):
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        optio("watch", "--url", idle_system.base),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    os.close(follower)
    screen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: b"Waiting for the next one" in screen, 15, "the waiting line")
        run_id = start(idle_system, 60, 3000)
        assert proc.wait(30) == 0
        reader.join(5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        os.close(leader)
    text = screen.decode("utf-8", errors="replace")
    assert "\r[" in text and "█" in text, text[-500:]
    assert re.search(r"\[█{24}\] processed 60/60 \(100\.0%\)", text), text[-500:]
    assert f"Run {run_id} completed: 60 jobs processed" in text


#: scripts/setup.sh installs node and the npm packages; a missing node fails these tests.
NODE = shutil.which("node") or "node"


def test_the_node_cli_prints_live_progress(idle_system, commands):
    """README Method 2: `node test-websocket-cli.js`, socket.io-client from npm."""
    cli = Command([NODE, "test-websocket-cli.js", idle_system.base])
    commands.append(cli)
    cli.wait_line(rf"Connecting to {re.escape(idle_system.base)}")
    cli.wait_line(r"✅ Connected!")
    cli.wait_line(r"📊 Progress: \{")  # the state sent on connect
    run_id = start(idle_system, 20, 6000)
    ours = rf'📊 Progress: (?=.*"runId":"{run_id}")'
    cli.wait_line(ours + '(?=.*"status":"running")', 15)
    final = cli.wait_line(ours + '(?=.*"status":"completed")', 20)
    assert '"processed":20' in final and '"enqueued":20' in final
    assert re.match(r"\[\d\d:\d\d:\d\d\.\d{3}\] ", final)

    cli.popen.send_signal(signal.SIGINT)
    assert cli.wait(10) == 0
    assert cli.out[-1].endswith("Bye.")


def test_the_node_cli_takes_its_address_from_optio_url(idle_system, commands):
    cli = Command([NODE, "test-websocket-cli.js"], env={"OPTIO_URL": idle_system.base})
    commands.append(cli)
    cli.wait_line(r"✅ Connected!")
    assert cli.out[0].endswith(f"Connecting to {idle_system.base} ...")
    cli.popen.send_signal(signal.SIGTERM)
    assert cli.wait(10) == 0
