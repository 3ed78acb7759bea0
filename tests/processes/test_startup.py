"""Start-up checks: an old Redis stops every process with one line, the web binds to loopback
unless told otherwise, and a hung Redis makes the API answer 503 within seconds. (The version
check and the bind notice in-process: tests/unit/test_startup.py.)"""

from __future__ import annotations

import os
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from optio.testing import Proc, RedisServer, celery_args, free_port, wait_for


class _OldRedis(socketserver.StreamRequestHandler):
    """Speaks just enough RESP to be a Redis 5.0.7: INFO, PING, and errors for the rest."""

    def handle(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                words.append(self.rfile.read(size + 2)[:-2].decode().upper())
            if words[0] == "INFO":
                body = b"# Server\r\nredis_version:5.0.7\r\nredis_mode:standalone\r\n"
                self.wfile.write(b"$%d\r\n%s\r\n" % (len(body), body))
            elif words[0] == "PING":
                self.wfile.write(b"+PONG\r\n")
            else:
                self.wfile.write(b"-ERR unknown command '%s'\r\n" % words[0].encode())


@pytest.fixture
def old_redis() -> Iterator[str]:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), _OldRedis)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    server.shutdown()
    server.server_close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIO_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_every_process_refuses_an_old_redis_at_start(process, old_redis, tmp_path):
    args = {
        "web": [sys.executable, "-m", "optio.serve"],
        "worker": celery_args("worker", "-c", "1", "--without-gossip", "--without-mingle"),
        "beat": celery_args("beat", "-s", str(tmp_path / "schedule")),
    }[process]
    proc = Proc(process, args, _env(REDIS_URL=old_redis, PORT=str(free_port())), tmp_path)
    try:
        proc.popen.wait(30)
    finally:
        proc.stop()
    assert proc.popen.returncode not in (0, None), proc.log()
    lines = [line for line in proc.log().splitlines() if "needs Redis" in line]
    host_port = old_redis.removeprefix("redis://")
    # one line (beat hands stderr to its logger, which adds a prefix)
    assert len(lines) == 1, proc.log()
    assert lines[0].endswith(
        f"optio needs Redis >= 6.2 (the oldest tested release), but the server at {host_port} "
        "is Redis 5.0.7: upgrade it or point REDIS_URL at a newer one"
    ), proc.log()


def _listening(port: int) -> set[str]:
    """Addresses (hex, as in /proc/net/tcp) that listen on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                address, _, hex_port = local.rpartition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("startup-redis"))
    yield server
    server.stop()


def _web(redis_url: str, log_dir, **extra: str) -> tuple[Proc, int]:
    port = free_port()
    env = _env(REDIS_URL=redis_url, PORT=str(port), **extra)
    proc = Proc("web", [sys.executable, "-m", "optio.serve"], env, log_dir)
    return proc, port


def test_the_web_binds_to_loopback_by_default_and_says_how_to_expose_it(private_redis, tmp_path):
    proc, port = _web(f"{private_redis.url}/0", tmp_path)
    try:
        wait_for(lambda: _listening(port), 20, "the web process to listen")
        assert _listening(port) == {"0100007F"}  # 127.0.0.1 only
        assert f"Serving on 127.0.0.1:{port}" in proc.log()
        # eventlet patched before anything was imported: its patcher met no settings object
        assert "monkey_patching" not in proc.log() and "Traceback" not in proc.log()
        assert "to serve other machines set OPTIO_HOST=0.0.0.0 together with OPTIO_API_TOKEN" in (
            proc.log()
        )
    finally:
        proc.stop()


def test_a_public_bind_without_token_logs_a_warning(private_redis, tmp_path):
    proc, port = _web(f"{private_redis.url}/0", tmp_path, OPTIO_HOST="0.0.0.0")
    try:
        wait_for(lambda: "WARNING" in proc.log(), 20, "the start-up warning")
        assert (
            f"OPTIO_HOST=0.0.0.0 without OPTIO_API_TOKEN: anyone who reaches port {port} "
            "can start, change and stop runs" in proc.log()
        )
    finally:
        proc.stop()


def test_a_hung_redis_makes_status_and_health_answer_503_within_seconds(tmp_path):
    server = RedisServer(tmp_path)
    proc, port = _web(f"{server.url}/0", tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: requests.get(f"{base}/api/status", timeout=2).status_code == 200,
            20,
            "the web process to answer",
        )
        os.kill(server.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:
            for path in ("/api/status", "/api/health", "/api/status"):
                started = time.monotonic()
                response = requests.get(base + path, timeout=30)
                took = time.monotonic() - started
                assert response.status_code == 503, (path, response.text)
                assert "error" in response.json()
                assert took < 8, f"{path} took {took:.1f} s"
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        wait_for(
            lambda: requests.get(f"{base}/api/status", timeout=8).status_code == 200,
            20,
            "the web process to recover",
        )
    finally:
        proc.stop()
        server.stop()
