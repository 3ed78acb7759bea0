"""Heartbeats of workers and beat processes: one sorted set per kind, read by /api/health.

``optio:heartbeats:<kind>`` (``names.heartbeats_key``) maps a process name to the moment (Redis
clock, ms) its heartbeat runs out. Reading who is alive costs O(live processes), never a scan
of the keyspace.
"""

from __future__ import annotations

import redis

from optio.names import heartbeats_key

WORKER = "worker"
BEAT = "beat"


def _now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def beat(client: redis.Redis, kind: str, name: str, ttl: float) -> None:
    """Say that process ``name`` is alive for the next ``ttl`` seconds."""
    now = _now_ms(client)
    key = heartbeats_key(kind)
    with client.pipeline() as pipe:
        pipe.zadd(key, {name: now + int(ttl * 1000)})
        pipe.zremrangebyscore(key, "-inf", now)  # those that stopped beating
        pipe.expire(key, max(1, int(ttl) + 1))  # gone with the last process
        pipe.execute()


def forget(client: redis.Redis, kind: str, name: str) -> None:
    client.zrem(heartbeats_key(kind), name)


def alive(client: redis.Redis, kind: str) -> list[str]:
    """Names of the processes of ``kind`` whose heartbeat has not run out."""
    return sorted(client.zrangebyscore(heartbeats_key(kind), f"({_now_ms(client)}", "+inf"))
