"""``Throttle``: what a job raises when the system it calls says "slow down"."""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any

#: HTTP statuses that mean "slow down" (``Throttle.from_response``): 429 Too Many Requests, and
#: 503 Service Unavailable, which a server sends when overloaded or in maintenance, often with
#: a Retry-After (RFC 9110, 15.6.4). Others (500, 502, 504 ...) are errors: raise them.
THROTTLE_STATUSES = frozenset({429, 503})

#: The longest ``Throttle(key=...)``.
MAX_KEY_LENGTH = 200

#: Retry-After as delta-seconds (RFC 9110 says digits; a decimal fraction is accepted too).
_SECONDS = re.compile(r"\d+(\.\d+)?")


class Throttle(Exception):  # noqa: N818 (a signal, not an error: named as users will raise it)
    """Raised by a job function when the downstream refused the call for now (HTTP 429, a
    "slow down" answer).

    The job is not failed and uses no attempt: it runs again after ``retry_after`` seconds when
    given (e.g. the server's ``Retry-After``; ``Throttle.from_response`` reads it), else after
    the run's current spacing; and the whole run slows down (the effective rate is cut, then
    climbs back: see docs/GUIDE.md, "Throttling"). It is counted once, when it succeeds.

    ``retry_after`` is a number of seconds from 0 to ``math.inf`` (as long as allowed): the
    worker caps it at OPTIO_THROTTLE_MAX_WAIT (300 s), and one job's wait never delays the
    others. A negative number or NaN raises ValueError, anything but a number TypeError: in a
    job function, that fails the job (with its attempts), as any other error would.

    ``key`` names the downstream (e.g. ``"api.example.com"``): runs whose jobs raise Throttle
    with the same key share one adaptive rate for it, split between them by weight, instead of
    each run slowing down on its own (at most MAX_KEY_LENGTH characters, no ``|``).
    """

    def __init__(self, retry_after: float | None = None, *, key: str | None = None) -> None:
        if key is not None and (
            not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "|" in key
        ):
            raise ValueError(
                f"key must be a non-empty string of at most {MAX_KEY_LENGTH} characters "
                f"without '|', not {key!r}"
            )
        self.key = key
        if retry_after is not None:
            if not isinstance(retry_after, Real) or isinstance(retry_after, bool):
                raise TypeError(
                    f"retry_after must be a number of seconds or None, not {retry_after!r}"
                )
            if not retry_after >= 0:  # NaN too
                raise ValueError(
                    f"retry_after must be a number of seconds >= 0, not {retry_after!r}"
                )
            retry_after = float(retry_after)
        self.retry_after = retry_after
        super().__init__(
            "throttled by the downstream"
            + (f" (retry after {retry_after:g} s)" if retry_after is not None else "")
        )

    @classmethod
    def from_response(
        cls,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | Any,
        *,
        now: float | None = None,
        key: str | None = None,
    ) -> Throttle | None:
        """The Throttle to raise for an HTTP answer, or None when it does not say "slow down".

        ``status`` 429 or 503 (THROTTLE_STATUSES) gives a Throttle; any other None. Its
        ``retry_after`` is the first ``Retry-After`` header (any case) read as delta-seconds
        ("120"; a fraction, "2.5", is accepted) or as an HTTP-date (IMF-fixdate, RFC 850 or
        asctime, all GMT) counted from ``now`` (epoch seconds; default: this machine's clock),
        0 for a date in the past; None when the header is absent or neither (the job then runs
        again after the run's spacing). ``headers``: a mapping (requests', a dict), an
        ``email.message.Message`` (urllib's, http.client's) or (name, value) pairs.

        Usage: ``if (throttle := Throttle.from_response(r.status_code, r.headers)): raise
        throttle``; ``key``: as the constructor's.
        """
        if status not in THROTTLE_STATUSES:
            return None
        value = _header(headers, "retry-after")
        clock = time.time() if now is None else now
        return cls(None if value is None else parse_retry_after(value, clock), key=key)


def _header(headers: Any, name: str) -> str | None:
    """The first value of header ``name`` (lower case), whatever holds the headers."""
    pairs = headers.items() if hasattr(headers, "items") else headers
    for key, value in pairs:
        if str(key).lower() == name:
            return str(value)
    return None


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from epoch second ``now`` by a Retry-After ``value``; None when it is
    neither delta-seconds nor an HTTP-date."""
    value = value.strip()
    if _SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime and "-0000": HTTP dates are GMT
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)
