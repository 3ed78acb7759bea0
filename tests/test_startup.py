"""Start-up checks: an old Redis stops every process with one line, the web binds to loopback
unless told otherwise, and a hung Redis makes the API answer 503 within seconds."""

from __future__ import annotations

import logging
import os
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from optio.store.version import parse_version, version_problem
from optio.testing import Proc, RedisServer, celery_args, free_port, wait_for
from optio.webapp.serve import exposure_notice, is_loopback


def test_parse_version():
    assert parse_version("7.0.15") == (7, 0, 15)
    assert parse_version("6.2") == (6, 2, 0)
    assert parse_version("7.2.4-rc1") == (7, 2, 4)
    with pytest.raises(ValueError):
        parse_version("unknown")


@pytest.mark.parametrize("found", ["2.8.24", "5.0.7", "6.0.20", "6.1.240"])
def test_versions_below_6_2_are_refused_with_one_line(found):
    problem = version_problem(found, "db.example:6379/0")
    assert problem is not None and "\n" not in problem
    assert "Redis >= 6.2" in problem and f"is Redis {found}" in problem
    assert "db.example:6379/0" in problem


@pytest.mark.parametrize("found", ["6.2.0", "6.2.14", "7.0.15", "7.4.1", "10.0.0", "weird"])
def test_versions_from_6_2_pass(found):
    assert version_problem(found, "h:1/0") is None


def test_exposure_notice():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    level, text = exposure_notice("127.0.0.1", 3000, None)
    assert level == logging.INFO and "OPTIO_HOST=0.0.0.0" in text and "OPTIO_API_TOKEN" in text
    level, text = exposure_notice("0.0.0.0", 3000, None)
    assert level == logging.WARNING and "anyone who reaches port 3000" in text
    level, _ = exposure_notice("0.0.0.0", 3000, "secret")
    assert level == logging.INFO


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_web_binds_to_loopback_by_default_and_says_how_to_expose_it(private_redis, tmp_path):
    proc, port = _web(f"{private_redis.url}/0", tmp_path)
    try:
        wait_for(lambda: _listening(port), 20, "the web process to listen")
        assert _listening(port) == {"0100007F"}  # 127.0.0.1 only
        assert f"Serving on 127.0.0.1:{port}" in proc.log()
        assert "to serve other machines set OPTIO_HOST=0.0.0.0 together with OPTIO_API_TOKEN" in (
            proc.log()
        )
    finally:
        proc.stop()


@pytest.mark.slow
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


@pytest.mark.slow
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
