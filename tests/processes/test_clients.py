"""The live clients without optio's processes. They skip a state older than one they showed (a
lower ``seq`` of the same run) and say when a run is paused: `optio watch` and
`node test-websocket-cli.js` over real sockets, against a Socket.IO server that sends a scripted
sequence, late state included; and `optio watch` says clearly when nothing answers. (Against the
shared system: tests/system/test_clients.py.)"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import socketio
from werkzeug.serving import make_server

from optio.testing import ROOT, VENV_BIN, Command, free_port

RUN = "5f0c2a91be3d"


def progress(seq: int, status: str, processed: int, **extra) -> dict:
    running = status in ("running", "paused")
    return {
        "running": running,
        "xTotal": 100,
        "yMinute": 600,
        "enqueued": processed,
        "processed": processed,
        "failed": 0,
        "runId": RUN,
        "status": status,
        "startedAt": 1_795_653_433_257,
        "finishedAt": None if running else 1_795_653_443_257,
        "pausedAt": 1_795_653_435_000 if status == "paused" else None,
        "pausedMs": 0 if seq < 7 else 2_000,
        "seq": seq,
        **extra,
    }


#: What the server sends each client as it connects: seq 4 arrives late, after seq 6.
SCRIPT = [
    progress(5, "running", 10),
    progress(6, "paused", 10),
    progress(4, "running", 5),
    progress(7, "completed", 100),
]


class ScriptedServer:
    """A python-socketio server (threads, werkzeug) that sends every client ``states`` as
    ``progress`` events right after its connection is accepted."""

    def __init__(self, states: list[dict]) -> None:
        # always_connect: the client is told it is connected before the handler sends anything
        self.sio = socketio.Server(async_mode="threading", always_connect=True)
        self.sio.on("connect", self._send_script)
        self.states = states
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = make_server("127.0.0.1", self.port, socketio.WSGIApp(self.sio), threaded=True)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def _send_script(self, sid, environ, auth=None) -> None:
        for state in self.states:
            self.sio.emit("progress", state, to=sid)

    def close(self) -> None:
        self.http.shutdown()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer(SCRIPT)
    yield scripted
    scripted.close()


def watch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optio.cli", "watch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_optio_watch_json_skips_the_late_state(server):
    done = watch("--json", "--url", server.base)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["seq"] for line in done.stdout.splitlines()] == [5, 6, 7]


def test_optio_watch_shows_the_pause_and_never_goes_back(server):
    done = watch("--url", server.base)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Watching run {RUN}: 100 jobs at 600/min"
    assert "processed 10/100 (10.0%)" in lines[1] and "PAUSED" not in lines[1]
    assert lines[2].endswith(" PAUSED · processed 10/100 (10.0%) · enqueued 10")
    assert "processed 100/100 (100.0%)" in lines[3]
    assert lines[4] == f"Run {RUN} completed: 100 jobs processed in 8 s."  # 10 s, 2 s paused
    assert len(lines) == 5 and not any("processed 5/" in line for line in lines)
    assert done.stderr == ""


NODE = shutil.which("node") or "node"


def test_the_node_cli_prints_a_line_instead_of_the_late_state(server):
    cli = Command([NODE, "test-websocket-cli.js", server.base])
    try:
        cli.wait_line(r'"seq":7')
        cli.popen.send_signal(signal.SIGTERM)
        assert cli.wait(10) == 0
    finally:
        cli.stop()
    shown = []
    for line in cli.out:
        text = line.split("] ", 1)[1]
        label, _, data = text.partition(": {")
        if label.startswith("📊 Progress"):
            shown.append(f"{label} seq {json.loads('{' + data)['seq']}")
        elif "ignored" in text:
            shown.append(text)
    assert shown == [
        "📊 Progress seq 5",
        "📊 Progress PAUSED seq 6",
        "(ignored an older state, seq 4 < 6)",
        "📊 Progress seq 7",
    ]


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    started: list[Command] = []
    yield started
    for command in started:
        command.stop()


def optio(*args: str) -> list[str]:
    return [str(VENV_BIN / "optio"), *args]


def test_watch_says_clearly_when_it_cannot_connect(commands):
    nobody = f"http://127.0.0.1:{free_port()}"
    watch = Command(optio("watch", "--url", nobody))
    commands.append(watch)
    assert watch.wait(20) == 3
    assert watch.out == []
    assert watch.err[0] == f"optio watch: cannot connect to {nobody}: connection refused."
    assert "Is the web process running there?" in watch.err[1]
