"""GET /api/health: what the system needs to make progress (Redis, the broker, a worker, a
beat, recent ticks), as 200 or 503."""

from __future__ import annotations

import redis
from flask import jsonify

from optio.broker.delivery import broker_kind
from optio.store import heartbeats
from optio.webapp import schemas
from optio.webapp.operations import json_answer, operation
from optio.webapp.security import redacted_url, scrubbed
from optio.webapp.services import services


@operation(
    "getHealth",
    "What the system needs to make progress",
    "Redis answers, a worker and a beat have a live heartbeat, and a tick ran within "
    "OPTIO_HEALTH_TICK_MAX_AGE seconds. Never needs a token.",
    tag="system",
    token=False,
    answers={
        200: json_answer("All is well.", schemas.Health),
        503: json_answer("What is wrong, in `error`.", schemas.Health),
    },
)
def health():
    """What the system needs to make progress: Redis, a worker, a beat, recent ticks."""
    try:
        runs = services().store.schedule
        now = runs.server_time_ms()
        last = runs.last_tick_ms()
        workers = heartbeats.alive(runs.client, heartbeats.WORKER)
        beats = heartbeats.alive(runs.client, heartbeats.BEAT)
    except redis.RedisError as exc:
        body = {
            "status": "unavailable",
            "checks": {"redis": f"no answer: {scrubbed(str(exc))}"},
            "error": f"Redis does not answer at {redacted_url(services().settings.redis_url)}",
        }
        return jsonify(body), 503
    checks: dict = {"redis": "ok", "workers": workers, "beats": beats, "lastTick": last}
    problems = []
    broker_url = services().settings.broker_url
    broker = services().broker_problem()
    checks["broker"] = f"no answer: {scrubbed(broker, broker_url)}" if broker else "ok"
    checks["brokerType"] = broker_kind(broker_url)
    if broker:
        problems.append(f"the broker does not answer at {redacted_url(broker_url)}")
    if not workers:
        problems.append("no worker heartbeat: start `celery -A optio.tasks worker`")
    if not beats:
        problems.append("no beat heartbeat: start `celery -A optio.tasks beat`")
    if last is None:
        problems.append("no scheduler tick recorded yet")
    else:
        age = max(0.0, (now - last) / 1000)
        checks["lastTickAgeSeconds"] = round(age, 3)
        if age > services().settings.health_tick_max_age:
            problems.append(f"no scheduler tick for {age:.0f} s")
    if problems:
        return jsonify({"status": "degraded", "checks": checks, "error": "; ".join(problems)}), 503
    return jsonify({"status": "ok", "checks": checks})
