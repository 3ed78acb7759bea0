"""The machine and the versions a benchmark ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.profiling import py_spy
from optio.testing import ROOT

PACKAGES = [
    "celery",
    "kombu",
    "redis",
    "Flask",
    "Flask-SocketIO",
    "python-socketio",
    "python-engineio",
    "eventlet",
]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def describe(redis_version: str) -> dict:
    spy = py_spy()
    spy_version = None
    if spy:
        done = subprocess.run([spy, "--version"], capture_output=True, text=True, timeout=10)
        spy_version = done.stdout.strip().removeprefix("py-spy ")
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "mem_gib": mem_total_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "redis_server": redis_version,
        "packages": {name: _version(name) for name in PACKAGES},
        "py_spy": spy_version,
        "optio_commit": _git("rev-parse", "--short", "HEAD"),
        "optio_uncommitted_changes": bool(_git("status", "--porcelain", "--", "optio")),
        "fd_limit": _fd_limit(),
    }


def _fd_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
