"""Sampling profiles of running processes with py-spy, summarized from collapsed stacks.

Profiles are wall-clock (``--idle``): a worker that waits on a Redis round trip shows the
wait, which is what bounds a one-message-per-job pipeline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from optio.testing import VENV_BIN

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    found = VENV_BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def record(pids: dict[str, int], seconds: float, out_dir: Path) -> dict[str, Path]:
    """Record all ``pids`` at once for ``seconds``; returns the raw (collapsed) file of each."""
    exe = py_spy()
    if exe is None:
        print("bench: py-spy is not installed; no profile taken", file=sys.stderr)
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    running = {}
    for name, pid in pids.items():
        path = out_dir / f"{name}.txt"
        args = [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100"]
        args += ["--nonblocking", "--idle", "-f", "raw", "-o", str(path)]
        running[name] = (
            subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            path,
        )
    out = {}
    for name, (popen, path) in running.items():
        try:
            popen.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)
        if path.exists():
            out[name] = path
    return out


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for part in stack.split(";"):
        m = FRAME.match(part.strip())
        if m:
            file = m.group("file")
            short = "/".join(file.split("/")[-2:]) if "/" in file else file
            out.append((m.group("func"), short))
        else:
            out.append((part.strip(), ""))
    return out


#: Leaf frames that mean the thread is waiting for work, not doing or waiting on any.
IDLE_LEAVES = (
    "Connection._recv (billiard/connection.py)",  # pool child waiting for its next task
    "_epoll.poll (utils/eventio.py)",  # worker's event loop with nothing to do
    "Condition.wait (threading.py)",  # heartbeat thread sleeping
    "Event.wait (threading.py)",
    "Hub.do_poll (hubs/epolls.py)",  # eventlet's hub with no green thread ready to run
)


#: Files of process start-up and dispatch frames, left out of ``inclusive`` (they hold all).
FRAMEWORK_FILES = (
    "click/",
    "bootsteps.py",
    "billiard/process.py",
    "billiard/popen_fork.py",
    "billiard/pool.py",
    "bin/",
    "__main__.py",
    "worker/worker.py",
    "concurrency/",
    "threading.py",
    "asynchronous/hub.py",
    "worker/loops.py",
    "consumer/consumer.py",
    "app/trace.py",
    "billiard/context.py",
    "<module>",
    "eventlet/",
)


def summarize(path: Path, top: int = 14) -> dict[str, Any]:
    """Share of samples idle (waiting for work), and where the busy samples are.

    Shares are % of all samples (wall time). ``inclusive`` lists the functions on the stack
    of busy samples (a function and everything it calls), leaving out start-up and dispatch
    frames (FRAMEWORK_FILES); ``self`` lists the innermost frames.
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f"{func} ({file})" for func, file in _frames(stack)]
        if not frames or any(frames[-1].startswith(leaf) for leaf in IDLE_LEAVES):
            continue
        busy += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    if total == 0:
        return {"samples": 0, "idle_pct": None, "inclusive": [], "self": []}

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    varied = Counter(
        {k: v for k, v in inclusive.items() if not any(f in k for f in FRAMEWORK_FILES)}
    )
    return {
        "samples": total,
        "idle_pct": round(100 * (total - busy) / total, 1),
        "busy_pct": round(100 * busy / total, 1),
        "inclusive": share(varied),
        "self": share(own),
    }


def profile(pids: dict[str, int], seconds: float, out_dir: Path) -> dict[str, Any]:
    files = record(pids, seconds, out_dir)
    return {name: {"file": str(path), **summarize(path)} for name, path in files.items()}
