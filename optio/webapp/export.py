"""The results export (``GET /api/runs/<runId>/results``): one row per job, in job order, as
JSON Lines or CSV, streamed a slice of jobs at a time (bounded memory, whatever the run's size).

The rows come from :meth:`optio.store.outcomes.Outcomes.read`; each job's item from an
``ItemsFor`` callable, ``items_for(first, count)`` -> the items of jobs first .. first+count-1
(JSON values, in order), or None when the run has none (every row's item is then null).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from optio.store.outcomes import Outcome

#: Jobs read per step: one script call, one chunk of the answer.
SLICE = 1000
#: The columns, in order (CSV's header; the keys of each JSON line).
COLUMNS = ("job", "item", "status", "result", "error", "attempts", "ms", "finishedAt")
#: What ``status=`` asks for -> the statuses listed.
STATUSES = {
    "finished": ("processed", "failed"),
    "processed": ("processed",),
    "failed": ("failed",),
    "all": ("processed", "failed", "pending"),
}
#: Media type of each format.
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv"}  # (Flask adds charset=utf-8 to text/)

ItemsFor = Callable[[int, int], Sequence[Any] | None]


def no_items(first: int, count: int) -> None:
    """The items of a run started with x alone: none."""
    return None


def _json(value: Any) -> str:
    """JSON text that UTF-8 can encode: a lone surrogate (JSON allows ``"\\udcff"``) stays
    escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = json.dumps(value, separators=(",", ":"))
    return text


def _number(value: float | None) -> str:
    return "null" if value is None else str(value)  # (ints, and finite floats: JSON as they print)


def jsonl_line(outcome: Outcome, item: Any) -> str:
    """One job's row as a JSON line (the result, JSON text already, goes in as it is)."""
    error = outcome.error
    return (
        f'{{"job":{outcome.job},"item":{"null" if item is None else _json(item)},'
        f'"status":"{outcome.status}","result":{outcome.result or "null"},'
        f'"error":{"null" if error is None else _json(error)},'
        f'"attempts":{_number(outcome.attempts)},"ms":{_number(outcome.ms)},'
        f'"finishedAt":{_number(outcome.finished_at)}}}\n'
    )


def _cell(value: Any) -> Any:
    return "" if value is None else value


def csv_row(outcome: Outcome, item: Any) -> list[Any]:
    """One job's row as CSV cells: item and result as JSON text, an empty cell for null."""
    return [
        outcome.job,
        "" if item is None else _json(item),
        outcome.status,
        outcome.result or "",
        _cell(outcome.error),
        _cell(outcome.attempts),
        _cell(outcome.ms),
        _cell(outcome.finished_at),
    ]


def _items(items_for: ItemsFor, first: int, count: int) -> Sequence[Any]:
    return items_for(first, count) or ()


def _nth(items: Sequence[Any], n: int) -> Any:
    return items[n] if n < len(items) else None


def rows(
    read: Callable[[int, int], list[Outcome]],
    x: int,
    status: str,
    items_for: ItemsFor = no_items,
    *,
    slice_size: int = SLICE,
) -> Iterator[list[tuple[Outcome, Any]]]:
    """The (outcome, item) of jobs 0 .. x-1 whose status ``status`` asks for (STATUSES), one
    list per slice of ``slice_size`` jobs; ``read(first, count)`` reads a slice's outcomes."""
    wanted = STATUSES[status]
    for first in range(0, x, slice_size):
        count = min(slice_size, x - first)
        outcomes = [o for o in read(first, count) if o.status in wanted]
        if not outcomes:
            continue
        items = _items(items_for, first, count) if items_for is not no_items else ()
        yield [(o, _nth(items, o.job - first)) for o in outcomes]


def jsonl(chunks: Iterator[list[tuple[Outcome, Any]]]) -> Iterator[str]:
    """JSON Lines, one piece of text per slice."""
    for chunk in chunks:
        yield "".join(jsonl_line(outcome, item) for outcome, item in chunk)


def csv_text(chunks: Iterator[list[tuple[Outcome, Any]]]) -> Iterator[str]:
    """CSV: the header row at once, then one piece of text per slice."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield out.getvalue()
    for chunk in chunks:
        out.seek(0)
        out.truncate()
        writer.writerows(csv_row(outcome, item) for outcome, item in chunk)
        yield out.getvalue()


FORMATS = {"jsonl": jsonl, "csv": csv_text}
