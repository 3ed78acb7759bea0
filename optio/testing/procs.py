"""Real processes for tests and the benchmark: free ports, polling with a deadline, a process
in its own group ended by that group (``Proc``, its output in a log file), a client command
whose output lines are read as they come (``Command``), and a private redis-server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import redis

from optio.testing.devredis import server_args, wait_until_answering

#: The checkout the processes run in (the folder of Procfile, tests/ and bench/).
ROOT = Path(__file__).resolve().parents[2]
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
    """A process in its own process group, logging to ``log_dir/name.log``, ended by its group.

    ``stdout`` (e.g. ``subprocess.PIPE``) takes the output instead of the log; stderr still logs.
    ``cwd``: where it runs (the checkout unless told).
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
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
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


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the prefork pool of a celery worker)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out += [int(p) for p in text.split()]
    except FileNotFoundError:
        pass
    return sorted(set(out))


def celery_args(*args: str, app: str = "optio.tasks") -> list[str]:
    """``celery -A app ...`` from this virtualenv (the Procfile's worker and beat)."""
    return [str(VENV_BIN / "celery"), "-A", app, *args]


def worker_args(
    name: str, concurrency: int, *, heartbeat: bool = True, app: str = "optio.tasks"
) -> list[str]:
    """``celery worker`` as optio's tests and benchmark start it (``heartbeat``: False adds
    ``--without-heartbeat``: no Celery event heartbeats on the broker)."""
    args = celery_args("worker", "-l", "INFO", "-c", str(concurrency), "-n", f"{name}@%h", app=app)
    args += ["--without-gossip", "--without-mingle"]
    if not heartbeat:
        args.append("--without-heartbeat")
    return args


class RedisServer:
    """A redis-server of our own on a free loopback port (never the machine's Redis), started
    at once, that can be stopped and started again on the same port.

    ``persistent``: an append-only file in ``data_dir`` (survives a restart), else no saving.
    ``databases``: how many numbered databases it has (redis-server's default is 16).
    ``url`` names no database: clients use database 0 unless they add ``/n``.
    """

    def __init__(self, data_dir: Path, *, persistent: bool = True, databases: int = 16) -> None:
        self.dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.databases = databases
        self.args = server_args(self.port, data_dir, persistent=persistent)
        self.args += ["--databases", str(databases)]
        self.proc: Proc | None = None
        self.start()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "redis-server is stopped"
        return self.proc.pid

    @cached_property
    def client(self) -> redis.Redis:
        """A client of database 0 that decodes answers to str."""
        return redis.Redis.from_url(self.url, decode_responses=True)

    def version(self) -> str:
        return self.client.info("server")["redis_version"]

    def start(self) -> None:
        self.proc = Proc("redis", self.args, dict(os.environ), self.dir)
        wait_until_answering(self.url)

    def stop(self) -> None:
        """SIGTERM: redis-server writes its append-only file out and exits."""
        if "client" in self.__dict__:
            self.__dict__.pop("client").close()  # the next use makes a new one
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


class Command:
    """A client process whose output lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 15, stream: str = "out") -> str:
        lines = self.out if stream == "out" else self.err
        regex = re.compile(pattern)

        def found():
            return next((line for line in lines if regex.search(line)), None)

        return wait_for(found, timeout, f"a line matching {pattern!r} in {stream}: {lines[-5:]}")

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
