"""How run states read in a terminal: one summary line, a table of runs, durations and rates.

Pure functions of the states the API and the ``progress`` event carry; the ``optio`` commands
print what they return.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def rate_text(per_minute: float) -> str:
    if per_minute >= 100:
        return f"{per_minute:,.0f}"
    return f"{per_minute:,.1f}".rstrip("0").rstrip(".")


def percent(state: dict[str, Any]) -> float:
    total = state.get("xTotal") or 0
    return int(state["processed"] * 1000 / total) / 10 if total else 0.0


def now_ms() -> int:
    return int(time.time() * 1000)


def active_seconds(state: dict[str, Any], now: int | None = None) -> float:
    """Seconds the run has been running, paused time excluded: until it ended, else until
    ``now`` (ms since the epoch; default this machine's clock, which may differ a little from
    the Redis clock of the state's timestamps)."""
    started = state.get("startedAt")
    if not started:
        return 0.0
    end = state.get("finishedAt") or (now_ms() if now is None else now)
    paused_at = state.get("pausedAt")
    paused = (state.get("pausedMs") or 0) + (max(0, end - paused_at) if paused_at else 0)
    return max(0, end - started - paused) / 1000


def summary(state: dict[str, Any]) -> str:
    """One line describing any state."""
    if not state.get("runId"):
        return "idle: no run has been started"
    total = state["xTotal"]
    text = (
        f"run {state['runId']} {state['status']}: processed {state['processed']:,}/{total:,} "
        f"({percent(state):.1f}%), enqueued {state['enqueued']:,}, "
        f"rate {rate_text(state['yMinute'])}/min"
    )
    if state.get("failed"):
        text += f", failed {state['failed']:,}"
    if state.get("retried"):
        text += f", retried {state['retried']:,}"
    if throttled_below_y(state):
        text += (
            f", throttled {state['throttled']:,} times: rate now {rate_text(state['rateNow'])}/min"
        )
    if state.get("status") == "running" and state.get("heldBack"):
        text += (
            f", held back: enqueuing {rate_text(state.get('rateEnqueued', 0))}/min "
            f"({held_back_why(state)})"
        )
    return text


#: What each heldBackBy says, for people.
HELD_BACK_BY = {
    "workers": "the workers are behind",
    "cap": "OPTIO_MAX_OUTSTANDING jobs wait in the broker",
    "scheduler": "the scheduler is behind",
}


def held_back_why(state: dict[str, Any]) -> str:
    """Why a held-back run is held back (its heldBackBy), in words."""
    return HELD_BACK_BY.get(state.get("heldBackBy") or "", "behind the schedule")


def throttled_below_y(state: dict[str, Any]) -> bool:
    """A running run whose effective rate was cut below y by throttles (optio.Throttle)."""
    return bool(
        state.get("running")
        and state.get("throttled")
        and state.get("rateNow", state.get("yMinute", 0)) < state.get("yMinute", 0)
    )


def local_time(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


#: Columns of ``optio runs``: header, and whether the values are right-aligned (numbers).
RUN_COLUMNS = (
    ("RUN", False),
    ("STATUS", False),
    ("PROCESSED", True),
    ("FAILED", True),
    ("Y/MIN", True),
    ("DURATION", False),
    ("STARTED", False),
)


def run_row(state: dict[str, Any], now: int | None = None) -> tuple[str, ...]:
    return (
        str(state.get("runId")),
        str(state.get("status")),
        f"{state.get('processed', 0):,}/{state.get('xTotal', 0):,}",
        f"{state.get('failed', 0):,}",
        rate_text(state.get("yMinute") or 0),
        duration(active_seconds(state, now)),
        local_time(state.get("startedAt")),
    )


def runs_table(runs: Iterable[dict[str, Any]], now: int | None = None) -> list[str]:
    """The lines of ``optio runs``: a header, then one aligned row per run (durations exclude
    paused time; start times are this machine's local time)."""
    rows = [run_row(state, now) for state in runs]
    return table([name for name, _ in RUN_COLUMNS], rows, [right for _, right in RUN_COLUMNS])


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
