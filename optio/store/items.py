"""The items of a run started with items: one JSON value per job, job k holding the k-th item.

They live in one hash per run (``names.items_key``), ITEMS_PER_CHUNK to a field: field n holds
the JSON array of the items of jobs n·ITEMS_PER_CHUNK .. (n+1)·ITEMS_PER_CHUNK - 1. One key per
run, not per item, so the run's keys expire and are deleted together (``names.run_keys``), and
the jobs of one message (at most OPTIO_MAX_BATCH, below a chunk) come in one HMGET of one or two
fields. The web process writes the chunks as an upload streams (``write_chunk``), before the run
starts; ``start_run`` then makes the hash last as long as the run's other keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from optio.names import items_key
from optio.store.connection import retrying
from optio.store.scripts import Part

#: Items per field of the items hash. The web process holds at most one chunk of an upload at a
#: time (ITEMS_PER_CHUNK × OPTIO_MAX_ITEM_BYTES at worst), a worker one or two decoded chunks.
ITEMS_PER_CHUNK = 1000

#: Chunks read per round trip when a run's items are read in order (iter_items): a few MB at most
#: of short items.
CHUNKS_PER_READ = 10

#: Seconds the chunks of an upload that has not started its run yet are kept after the last one
#: was written: a web process that dies mid-upload leaves them behind for no longer.
UPLOAD_TTL_SECONDS = 3600


def chunks_of(first: int, last: int) -> range:
    """The chunk numbers that hold the items of jobs ``first .. last``."""
    return range(first // ITEMS_PER_CHUNK, last // ITEMS_PER_CHUNK + 1)


def chunk_text(encoded: list[str]) -> str:
    """The field value of a chunk whose items are ``encoded`` (each one JSON text)."""
    return "[" + ",".join(encoded) + "]"


class Items(Part):
    """Write an upload's chunks (web process), read a message's items (workers)."""

    @retrying
    def write_chunk(self, run_id: str, number: int, encoded: list[str]) -> None:
        """Store chunk ``number`` of ``run_id``'s items (each one JSON text), to expire in
        UPLOAD_TTL_SECONDS unless the run starts (one round trip)."""
        key = items_key(run_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, str(number), chunk_text(encoded))
            pipe.expire(key, UPLOAD_TTL_SECONDS)
            pipe.execute()

    @retrying
    def discard(self, run_id: str) -> None:
        """Delete the items of an upload whose run did not start (UNLINK: freed off the main
        thread of Redis, however many chunks it wrote)."""
        self.client.unlink(items_key(run_id))

    @retrying
    def exists(self, run_id: str) -> bool:
        """Whether ``run_id`` has items stored (a run started with items, not expired yet)."""
        return bool(self.client.exists(items_key(run_id)))

    @retrying
    def read_chunks(self, run_id: str, numbers: list[int]) -> list[list[Any] | None]:
        """The decoded chunks ``numbers`` of ``run_id`` in one HMGET; None for a chunk that is
        not there (the run has no items, or they expired with it)."""
        raw = self.client.hmget(items_key(run_id), [str(n) for n in numbers])
        return [None if text is None else json.loads(text) for text in raw]

    def iter_items(self, run_id: str, first: int, last: int) -> Iterator[tuple[int, Any]]:
        """(job id, item) of jobs ``first .. last`` in job order, CHUNKS_PER_READ chunks a round
        trip, so a whole run's items are read in bounded memory (an export). Stops at the first
        chunk that is not there (a run without items, or past its last item)."""
        numbers = list(chunks_of(first, last))
        for at in range(0, len(numbers), CHUNKS_PER_READ):
            batch = numbers[at : at + CHUNKS_PER_READ]
            for n, chunk in zip(batch, self.read_chunks(run_id, batch), strict=True):
                if chunk is None:
                    return
                base = n * ITEMS_PER_CHUNK
                for offset in range(max(first - base, 0), min(last - base + 1, len(chunk))):
                    yield base + offset, chunk[offset]
