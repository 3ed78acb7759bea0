"""Each job's outcome as the run keeps it, and the reads of the results export.

A job's record in the results hash (``optio:run:<id>:results``, job id -> record) is one text,
written by the HSET that counts its message's jobs (mark_processed.lua), or by the script that
fails it for good (``count_failed`` in _prelude.lua)::

    <finishedAt>|<ms>|<result>

``finishedAt``: ms since the epoch (Redis clock) when the outcome was recorded, within
MARK_EVERY_SECONDS or two of the job's end; ``ms``: the run time of its last attempt ('' when
unknown: a message given up after OPTIO_MAX_DELIVERIES); ``result``: the function's return value
as JSON text, '' for None (and for failed jobs). Whether a job failed is its entry in the errors
hash; its attempts are in the attempts hash (failed attempts so far). A record written before
outcomes were kept (the result's text alone) reads as that text, with no time.

The worker builds the ``<ms>|<result>`` part (:func:`encode`); the script puts the time in
front. One field per job in the one HSET of a count: no command per job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from optio.store.connection import retrying
from optio.store.scripts import Part
from optio.store.text import storable

#: A lone surrogate (what UTF-8 cannot encode) inside JSON text: written as its escape, as
#: text.storable does, so ``"name-\udcff"`` reads back as the 12 characters ``name-\udcff``.
_SURROGATE = re.compile("[\ud800-\udfff]")
_RECORD = re.compile(r"(\d+)\|([0-9.]*)\|", re.ASCII)


def ms_text(seconds: float | None) -> str:
    """A run time as the record holds it: milliseconds, to the microsecond ('' = unknown)."""
    if seconds is None:
        return ""
    text = f"{seconds * 1000:.3f}".rstrip("0")
    return text[:-1] if text.endswith(".") else text


#: One encoder for every record (json.dumps with options builds one per call: half its time).
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _json(value: Any) -> str:
    """JSON text of ``value``; raises as json.dumps does for what JSON cannot hold."""
    if type(value) is int:  # the commonest result after text: as json writes it, faster
        return int.__repr__(value)
    return _encode(value)


def _escape_surrogates(text: str) -> str:
    return _SURROGATE.sub(lambda found: f"\\\\u{ord(found[0]):04x}", text)


def _as_text(value: Any) -> str:
    """``str(value)``, for a value JSON cannot hold; a type name when even that fails."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 (a broken __str__, an int too long to print)
        return f"<{type(value).__name__} that cannot be printed>"


def result_json(value: Any, max_bytes: int) -> str:
    """A job's return value as the record holds it: JSON text of at most ``max_bytes`` bytes
    (OPTIO_MAX_RESULT_BYTES), '' for None. A value JSON cannot hold (a set, bytes, NaN, an object)
    is stored as its ``str()``; text UTF-8 cannot encode as its escape; a longer value as a JSON
    string, its text (a string's own, else its JSON) cut to fit and ending with
    ``… [cut: N bytes]``."""
    if value is None:
        return ""
    try:
        text = _json(value)
    except (TypeError, ValueError, RecursionError):
        value = _as_text(value)
        text = _json(value)
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        text = _escape_surrogates(text)
        size = len(text.encode())
    if size <= max_bytes:
        return text
    whole = value if isinstance(value, str) else text
    room = max_bytes
    while True:  # quoting may make the cut text longer: cut more (two or three rounds)
        cut = _escape_surrogates(_json(storable(whole, room)))
        size = len(cut.encode())
        if size <= max_bytes:
            return cut
        room = room * max_bytes // size - 1
        if room < len(" [cut: 00000000000 bytes]"):
            return _json(f"… [cut: {len(whole.encode('utf-8', 'backslashreplace'))} bytes]")


def encode(value: Any, seconds: float | None, max_bytes: int) -> str:
    """What the worker sends for a processed job: ``<ms>|<result>`` (mark_processed.lua puts the
    time in front)."""
    return f"{ms_text(seconds)}|{result_json(value, max_bytes)}"


@dataclass(frozen=True)
class Record:
    """A job's record, read: ``result`` is JSON text (None: null)."""

    finished_at: int | None
    ms: float | None
    result: str | None


def parse(stored: str | None) -> Record:
    """A record as :func:`encode` and the scripts wrote it (None: no record)."""
    if stored is None:
        return Record(None, None, None)
    found = _RECORD.match(stored)
    if found is None:  # a result stored before records had times: its text
        return Record(None, None, _json(stored) if stored else None)
    ms = found[2]
    rest = stored[found.end() :]
    return Record(int(found[1]), float(ms) if ms else None, rest or None)


@dataclass(frozen=True)
class Outcome:
    """One job as the export lists it: ``status`` processed, failed or pending; ``result`` JSON
    text or None; ``attempts``: the attempts of its last round (retry-failed starts another)."""

    job: int
    status: str
    result: str | None = None
    error: str | None = None
    attempts: int | None = None
    ms: float | None = None
    finished_at: int | None = None


class Outcomes(Part):
    """The export's reads: the outcomes of a range of jobs, a slice at a time."""

    SCRIPTS = ("read_outcomes",)

    @retrying
    def read(self, run_id: str, first: int, count: int) -> list[Outcome]:
        """Jobs ``first .. first+count-1`` in order, each as one consistent read (a script)
        sees it: finished (processed or failed) or pending."""
        done, records, errors, attempts = self._run("read_outcomes", run_id, [first, count])
        finished = {
            job: (records[n], errors[n], attempts[n]) for n, job in enumerate(map(int, done))
        }
        out = []
        for job in range(first, first + count):
            if job not in finished:
                out.append(Outcome(job, "pending"))
                continue
            stored, error, tries = finished[job]
            record = parse(stored)
            failed = error is not None
            out.append(
                Outcome(
                    job,
                    "failed" if failed else "processed",
                    None if failed else record.result,
                    error,
                    int(tries or 0) + (0 if failed else 1),
                    record.ms,
                    record.finished_at,
                )
            )
        return out
