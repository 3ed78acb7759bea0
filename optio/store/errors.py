"""The refusals of the store's verbs; the web maps each to its HTTP status."""

from __future__ import annotations


class RunActiveError(Exception):
    """A run of this id exists already (a start given the id of an items upload twice)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} exists already")
        self.run_id = run_id


class SeveralActiveError(Exception):
    """A control that names no run while several are active: which one is not guessed."""

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(
            f"{len(run_ids)} runs are active ({', '.join(run_ids)}): name one (/api/runs/<id>/...)"
        )
        self.run_ids = run_ids


class DeadlineRunError(Exception):
    """A deadline run's rate is derived from its deadline: y cannot be set."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} has a deadline: its rate follows from it, y cannot be set")
        self.run_id = run_id


class NoActiveRunError(Exception):
    """The operation needs a running run and there is none."""

    def __init__(self, message: str = "no run is running") -> None:
        super().__init__(message)


class NotPausedError(Exception):
    """Resume needs a paused run and there is none (or the run named is not paused)."""

    def __init__(self, run_id: str | None = None) -> None:
        super().__init__(f"run {run_id} is not paused" if run_id else "no run is paused")


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
