"""Completion webhooks: when a run ends (completed or stopped), POST its final state as JSON to
OPTIO_WEBHOOK_URL, signed with ``X-Optio-Signature: sha256=<HMAC-SHA256 of the body keyed with
OPTIO_WEBHOOK_SECRET>``.

The run's end puts it in the outbox (``finish_run`` in ``store/lua/_prelude.lua``, when the run was
started with a webhook configured). Every tick claims the deliveries that are due
(``claim_webhooks.lua``: one claimer per delivery, also with two beats) and makes each in a thread
of its own, so a receiver that never answers does not hold the tick. A delivery that fails with a
refused connection, a timeout, a 5xx, 408 or 429 is tried again with backoff for
OPTIO_WEBHOOK_RETRY_SECONDS after the run's end; any other answer is final. The outcome is in
the run's state: ``webhook`` is ``pending``, then ``delivered`` or ``failed`` (the reason is in
GET /api/runs/<id> as ``webhookError``). A claimer that dies during a request loses its claim
after OPTIO_WEBHOOK_TIMEOUT + CLAIM_MARGIN_SECONDS, and the next tick delivers again: receivers
that must act once use ``X-Optio-Delivery`` (the same for every attempt of one run's end).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from optio.store.outbox import Outbox

log = logging.getLogger("optio")

#: A claim outlives one request by this much, so a slow answer is not delivered twice.
CLAIM_MARGIN_SECONDS = 5.0
#: Most deliveries one tick starts.
MOST_PER_TICK = 10
#: Longest wait between two attempts (seconds).
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class Outcome:
    """What one POST gave: delivered, or why not and whether trying again may help."""

    delivered: bool
    retry: bool = False
    reason: str = ""


def signature(body: bytes, secret: str) -> str:
    """The X-Optio-Signature value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(state: dict[str, Any]) -> bytes:
    """The body sent: the run's final state (without the webhook's own outcome)."""
    final = {k: v for k, v in state.items() if k != "webhook"}
    return json.dumps(final, separators=(",", ":"), sort_keys=True).encode()


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
            return Outcome(True)
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code in (408, 429)
        return Outcome(False, retry, f"answered {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
        reason = getattr(exc, "reason", exc)
        return Outcome(False, True, f"no answer: {reason}")


def backoff(seconds_since_end: float) -> float:
    """Seconds until the next attempt: about as long as the run has been over (1 s, 2 s, 4 s,
    ...), at most MAX_BACKOFF_SECONDS."""
    return min(MAX_BACKOFF_SECONDS, max(1.0, seconds_since_end))


def deliver(runs: Outbox, run_id: str) -> str:
    """Make one attempt to deliver run ``run_id``'s webhook and record it; returns the
    outcome recorded ('delivered', 'failed' or 'retry')."""
    state = runs.run_state(run_id)
    if state is None:
        runs.record_webhook(run_id, "failed", error="the run is gone")
        return "failed"
    settings = runs.settings
    if not settings.webhook_url:
        runs.record_webhook(
            run_id, "failed", error="OPTIO_WEBHOOK_URL is not set in the scheduler's environment"
        )
        return "failed"
    body = payload(state)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "optio-webhook",
        "X-Optio-Event": f"run.{state['status']}",
        "X-Optio-Delivery": f"{run_id}-{state.get('finishedAt')}",
    }
    if settings.webhook_secret:
        headers["X-Optio-Signature"] = signature(body, settings.webhook_secret)
    outcome = post(settings.webhook_url, body, headers, settings.webhook_timeout)
    if outcome.delivered:
        runs.record_webhook(run_id, "delivered")
        log.info("[webhook] Delivered the end of run %s (%s)", run_id, state["status"])
        return "delivered"
    now = runs.server_time_ms()
    since_end = max(0.0, (now - (state.get("finishedAt") or now)) / 1000)
    wait = backoff(since_end)
    if outcome.retry and since_end + wait <= settings.webhook_retry_seconds:
        runs.record_webhook(run_id, "retry", due_ms=now + int(wait * 1000), error=outcome.reason)
        log.warning("[webhook] Run %s: %s; trying again in %.0f s", run_id, outcome.reason, wait)
        return "retry"
    runs.record_webhook(run_id, "failed", error=outcome.reason)
    log.error("[webhook] Run %s: gave up: %s", run_id, outcome.reason)
    return "failed"


def dispatch(runs: Outbox) -> list[threading.Thread]:
    """Claim the deliveries that are due and start each in a thread; returns the threads."""
    claim_ms = int((runs.settings.webhook_timeout + CLAIM_MARGIN_SECONDS) * 1000)
    threads = []
    for run_id in runs.claim_webhooks(claim_ms, MOST_PER_TICK):
        thread = threading.Thread(
            target=_deliver_logged,
            args=(runs, run_id),
            name=f"optio-webhook-{run_id}",
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    return threads


def _deliver_logged(runs: Outbox, run_id: str) -> None:
    try:
        deliver(runs, run_id)
    except Exception:  # the claim runs out and the next tick tries again
        log.exception("[webhook] Delivery of run %s failed", run_id)
