"""Completion webhooks: the signed body and the retry backoff."""

from __future__ import annotations


def test_webhook_signature_and_backoff():
    import hashlib
    import hmac

    from optio.worker.webhooks import backoff, payload, signature

    body = payload({"runId": "a", "status": "completed", "webhook": "pending"})
    assert b"webhook" not in body
    assert signature(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert [backoff(s) for s in (0, 0.5, 3, 30, 500)] == [1, 1, 3, 30, 60]
