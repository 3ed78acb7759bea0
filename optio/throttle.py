"""``Throttle``: what a job raises when the system it calls says "slow down"."""

from __future__ import annotations


class Throttle(Exception):  # noqa: N818 (a signal, not an error: named as users will raise it)
    """Raised by a job function when the downstream refused the call for now (HTTP 429, a
    "slow down" answer).

    The job is not failed and uses no attempt: it runs again after ``retry_after`` seconds when
    given (e.g. the server's ``Retry-After``), else after the run's current spacing; and the
    whole run slows down (the effective rate is cut, then climbs back: see docs/GUIDE.md,
    "Throttling"). It is counted once, when it succeeds.
    """

    def __init__(self, retry_after: float | None = None) -> None:
        if retry_after is not None and not retry_after >= 0:
            raise ValueError(f"retry_after must be a number of seconds >= 0, not {retry_after!r}")
        self.retry_after = retry_after
        super().__init__(
            "throttled by the downstream"
            + (f" (retry after {retry_after:g} s)" if retry_after is not None else "")
        )
