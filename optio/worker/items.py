"""The items of a message's jobs, for a job function that takes them: ``f(run_id, job_id, item)``.

A job function that takes two parameters never gets here: its messages cost no read. For one
that takes three, the items of a message's jobs come in one HMGET of the one or two chunks that
hold them (``optio/store/items.py``), and the last chunks read stay decoded in the process:
consecutive messages of a run mostly fall in the same chunk and then cost no round trip. A run
found to have no items is remembered too, so its jobs get ``None`` without asking again.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from optio.store.items import ITEMS_PER_CHUNK, Items, chunks_of

#: Decoded chunks a process keeps (each ITEMS_PER_CHUNK items).
KEEP_CHUNKS = 2
#: Runs without items a process remembers.
KEEP_PLAIN_RUNS = 64


def takes_item(function: Callable[..., Any]) -> bool:
    """Whether ``function`` can be called with three positional arguments (run id, job id,
    item); a function whose signature cannot be read is called with two, as always."""
    try:
        inspect.signature(function).bind(None, None, None)
    except (TypeError, ValueError):
        return False
    return True


class ItemReader:
    """The items of jobs, read through ``items`` (the worker's store part)."""

    def __init__(self, items: Items) -> None:
        self.items = items
        self._chunks: OrderedDict[tuple[str, int], list[Any]] = OrderedDict()
        self._plain: OrderedDict[str, None] = OrderedDict()
        #: the caches are shared by the threads of a ``-P threads`` pool (reads are not held)
        self._lock = threading.Lock()

    def items_for(self, run_id: str, jobs: list[int]) -> dict[int, Any] | None:
        """Job id -> item of each of ``jobs`` (of one message: a range, or one retried job);
        None when the run has no items (or they are gone with it)."""
        if not jobs or run_id in self._plain:
            return None
        numbers = list(chunks_of(min(jobs), max(jobs)))
        with self._lock:
            chunks = {n: self._chunks.get((run_id, n)) for n in numbers}
        missing = [n for n, chunk in chunks.items() if chunk is None]
        if missing:
            found = self.items.read_chunks(run_id, missing)
            if any(chunk is None for chunk in found):
                with self._lock:
                    self._remember_plain(run_id)
                return None
            chunks.update(zip(missing, found, strict=True))
        with self._lock:
            for n, chunk in chunks.items():
                self._keep((run_id, n), chunk)  # type: ignore[arg-type]  # each read by now
        return {
            job: chunks[job // ITEMS_PER_CHUNK][job % ITEMS_PER_CHUNK]  # type: ignore[index]
            for job in jobs
        }

    def _keep(self, key: tuple[str, int], chunk: list[Any]) -> None:
        self._chunks[key] = chunk
        self._chunks.move_to_end(key)
        while len(self._chunks) > KEEP_CHUNKS:
            self._chunks.popitem(last=False)

    def _remember_plain(self, run_id: str) -> None:
        self._plain[run_id] = None
        while len(self._plain) > KEEP_PLAIN_RUNS:
            self._plain.popitem(last=False)
