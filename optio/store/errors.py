"""The refusals of the store's verbs; the web maps each to its HTTP status."""

from __future__ import annotations


class RunActiveError(Exception):
    """A run is already active."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} is already running; stop it first (POST /api/stop)")
        self.run_id = run_id


class NoActiveRunError(Exception):
    """The operation needs a running run and there is none."""

    def __init__(self, message: str = "no run is running") -> None:
        super().__init__(message)


class NotPausedError(Exception):
    """Resume needs a paused run and there is none."""

    def __init__(self) -> None:
        super().__init__("no run is paused")


class UnknownRunError(Exception):
    """No run has this id (never started, or deleted: OPTIO_KEEP_RUNS, OPTIO_RUN_TTL)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id}")
        self.run_id = run_id


class RetryRefusedError(Exception):
    """retry-failed cannot run now; the message says why."""


class XBelowEnqueuedError(Exception):
    """The new total is below what is already enqueued."""

    def __init__(self, x: int, enqueued: int) -> None:
        super().__init__(f"x ({x}) cannot be below the {enqueued} jobs already enqueued")
        self.enqueued = enqueued


class XFixedByItemsError(Exception):
    """A run started with items has one job per item: its total cannot change."""

    def __init__(self, x: int) -> None:
        super().__init__(f"x of a run with items is its number of items ({x:,}); it cannot change")
        self.x = x
