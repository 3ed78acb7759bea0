"""The webhook outbox: runs whose completion webhook is due, and each delivery's outcome."""

from __future__ import annotations

from optio.names import NO_RUN
from optio.store.connection import retrying
from optio.store.scripts import Part, now_arg


class Outbox(Part):
    SCRIPTS = ("claim_webhooks", "record_webhook")

    @retrying
    def claim_webhooks(self, claim_ms: int, most: int = 10, *, now_ms: int | None = None) -> list:
        """Run ids whose completion webhook is due, claimed for ``claim_ms`` by the caller.
        (The outbox belongs to no run: the script gets the key list of names.NO_RUN.)"""
        return self._run("claim_webhooks", NO_RUN, [now_arg(now_ms), claim_ms, most])

    @retrying
    def record_webhook(self, run_id: str, outcome: str, *, due_ms: int = 0, error: str = "") -> int:
        """Record a delivery attempt: 'delivered', 'failed', or 'retry' at ``due_ms``."""
        return int(self._run("record_webhook", run_id, [run_id, outcome, due_ms, error[:500]]))
