"""The tick's reads and writes for the shares of the deployment's ceilings and of the
throttle keys' rates between the active runs (optio/worker/shares.py computes the shares)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optio.names import THROTTLES_KEY, run_key
from optio.store.connection import retrying
from optio.store.scripts import Part

#: The fields of one key in names.THROTTLES_KEY (``<key>|<field>``).
KEY_FIELDS = ("rate", "at", "top", "last", "raised", "going", "late")


@dataclass(frozen=True)
class Load:
    """One active run as the shares of the ceilings see it (optio/worker/shares.py)."""

    FIELDS = (
        "status",
        "rateNow",
        "yMinute",
        "weight",
        "maxInFlight",
        "deadline",
        "xTotal",
        "reserved",
        "processed",
        "failed",
        "throttleKey",
    )

    run_id: str
    running: bool
    #: jobs/min the run asks for now: its effective rate (y, or cut by throttles)
    rate: float
    weight: float
    #: its own bound on jobs out at once (0: none)
    max_in_flight: int
    #: ms, or None
    deadline: int | None
    #: jobs not reserved yet
    unreserved: int
    #: jobs reserved and not counted yet (in the broker, running, or waiting for a retry)
    outstanding: int
    #: the downstream its jobs named when throttled (Throttle(key=...)), or None
    throttle_key: str | None = None

    @classmethod
    def of(cls, run_id: str, row: Sequence[str | None]) -> Load:
        status, rate, y, weight, most, deadline, x, reserved, processed, failed, key = row
        return cls(
            run_id,
            status == "running",
            float(rate or y or 0),
            float(weight or 1),
            int(most or 0),
            int(deadline) if deadline else None,
            int(x or 0) - int(reserved or 0),
            int(reserved or 0) - int(processed or 0) - int(failed or 0),
            key or None,
        )


@dataclass(frozen=True)
class KeyRate:
    """The adaptive rate of one downstream key (names.THROTTLES_KEY): jobs/min over all its
    runs, when it was last cut, the rate refused then, its last throttle, its last climb (ms)."""

    rate: float
    cut_at: int
    top: float
    last: int
    raised: int


@dataclass(frozen=True)
class Grant:
    """What one tick gives a run: at most ``rate`` jobs/min (None: no ceiling binds it) and at
    most ``out`` jobs out at once after the tick (None: no bound but its own maxInFlight);
    ``ceiling``: the rate is its share of OPTIO_MAX_RATE (else only of a throttle key's)."""

    rate: float | None = None
    out: int | None = None
    ceiling: bool = False


class Shares(Part):
    """What the tick reads of the active runs, and the rates of the throttle keys."""

    @retrying
    def loads(self, run_ids: Sequence[str]) -> list[Load]:
        """What the shares of the deployment's ceilings are computed from, for each active run
        (in the order given; a run gone meanwhile is left out)."""
        with self.client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hmget(run_key(run_id), *Load.FIELDS)
            rows = pipe.execute()
        return [Load.of(run_id, row) for run_id, row in zip(run_ids, rows, strict=True) if row[0]]

    @retrying
    def key_rates(self, keys: Sequence[str]) -> dict[str, KeyRate]:
        """The adaptive rate of each of ``keys`` that has one (a key never cut, or climbed
        back, has none: its runs go at their own rates)."""
        fields = [f"{key}|{name}" for key in keys for name in KEY_FIELDS]
        values = self.client.hmget(THROTTLES_KEY, fields) if fields else []
        out = {}
        for i, key in enumerate(keys):
            rate, cut_at, top, last, raised, _, _ = values[i * 7 : i * 7 + 7]
            if rate is not None:
                out[key] = KeyRate(
                    float(rate), int(cut_at or 0), float(top or 0), int(last or 0), int(raised or 0)
                )
        return out

    @retrying
    def set_key(
        self, key: str, *, going: float, rate: float | None = None, now_ms: int = 0
    ) -> None:
        """Record what ``key``'s runs go at (jobs/min, the sum), and a climb of its rate to
        ``rate`` at ``now_ms``."""
        mapping = {f"{key}|going": repr(float(going))}
        if rate is not None:
            mapping.update({f"{key}|rate": repr(float(rate)), f"{key}|raised": str(now_ms)})
        self.client.hset(THROTTLES_KEY, mapping=mapping)

    @retrying
    def drop_key(self, key: str) -> None:
        """``key``'s rate climbed back above what its runs ask: no rate of its own any more."""
        self.client.hdel(THROTTLES_KEY, *(f"{key}|{name}" for name in KEY_FIELDS))
