"""Items in: the body of ``POST /api/runs`` read as it streams, parsed into items, and written
to Redis a chunk at a time under the new run's id before the run starts.

The body is read ``READ_BYTES`` at a time from the WSGI input (eventlet's reads chunked
transfer encoding; Werkzeug's ``request.stream`` would give nothing for a body without a
Content-Length under eventlet), split into lines whose length is bounded, and each line (NDJSON)
or record (CSV) becomes one item, encoded as compact JSON text. So the web process holds one
line and one chunk of items at a time (``optio.store.items.ITEMS_PER_CHUNK``), never the whole
upload. Every problem is an :class:`ApiError` that names the line: the caller then deletes what
was written and starts nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from optio.store.items import ITEMS_PER_CHUNK
from optio.webapp.validation import ApiError, number

#: Bytes read from the request body at a time.
READ_BYTES = 64 * 1024
#: Room a line may take beyond OPTIO_MAX_ITEM_BYTES before it is refused unparsed: white space
#: around an NDJSON value, the commas and quotes of a CSV row (its item is checked exactly).
LINE_SLACK = 1024

NDJSON = "application/x-ndjson"
CSV = "text/csv"
#: The media types of a streamed upload, and the names people write them with.
UPLOAD_TYPES = (NDJSON, "application/jsonl", "application/x-jsonlines", CSV)


class Limits:
    """OPTIO_MAX_ITEMS and OPTIO_MAX_ITEM_BYTES, with the errors that name them. A run's items
    are its x: OPTIO_MAX_X bounds them too when it is the lower."""

    def __init__(self, max_items: int, max_item_bytes: int, max_x: int | None = None) -> None:
        self.max_items = max_items if max_x is None else min(max_items, max_x)
        self.max_item_bytes = max_item_bytes
        self.items_setting = (
            "OPTIO_MAX_X" if max_x is not None and max_x < max_items else "OPTIO_MAX_ITEMS"
        )

    def too_many(self) -> ApiError:
        return ApiError(
            413,
            f"too many items: at most {number(self.max_items)} a run ({self.items_setting})",
        )

    def too_large(self, where: str) -> ApiError:
        return ApiError(
            413,
            f"{where}: the item is larger than {number(self.max_item_bytes)} bytes "
            "(OPTIO_MAX_ITEM_BYTES)",
        )


def body_chunks(read: Callable[[int], bytes], length: int | None) -> Iterator[bytes]:
    """The request body's bytes as they arrive, from the WSGI input's ``read``: ``length`` bytes
    (Content-Length), or up to the end of a chunked body (None). A body that ends early (the
    client closed the connection, or broke the chunked encoding) is an ApiError: nothing of it
    may start a run."""
    left = length
    while left is None or left > 0:
        try:
            data = read(READ_BYTES if left is None else min(READ_BYTES, left))
        except (OSError, ValueError) as exc:  # eventlet: a broken or cut chunked body
            raise ApiError(400, f"the upload was cut off: {str(exc)[:200]}") from None
        if not data:
            if left:
                raise ApiError(
                    400,
                    f"the upload was cut off after {number(length - left)} of "  # type: ignore[operator]
                    f"{number(length or 0)} bytes (Content-Length)",
                )
            return
        if left is not None:
            left -= len(data)
        yield data


def lines(chunks: Iterable[bytes], max_line: int) -> Iterator[bytes]:
    """The lines of ``chunks``, each with its line ending (the last may have none). A line
    longer than ``max_line`` bytes is refused with 413 as soon as that is known, so no more of
    it is held."""
    pending = b""
    number_ = 0
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            number_ += 1
            if end + 1 - start > max_line:
                raise _long_line(number_, max_line)
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
        if len(pending) > max_line:
            raise _long_line(number_ + 1, max_line)
    if pending:
        yield pending


def _long_line(line: int, max_line: int) -> ApiError:
    return ApiError(
        413,
        f"line {line}: longer than {number(max_line)} bytes, so its item is larger "
        "than OPTIO_MAX_ITEM_BYTES allows",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def encode(value: Any, limits: Limits, where: str) -> str:
    """``value`` as compact JSON text, at most OPTIO_MAX_ITEM_BYTES of UTF-8. Text UTF-8 cannot
    encode (a lone surrogate from a ``\\ud800`` escape) keeps its escape."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"))
        size = len(text)
    if size > limits.max_item_bytes:
        raise limits.too_large(where)
    return text


def ndjson_items(lines_: Iterable[bytes], limits: Limits) -> Iterator[str]:
    """One item per line of NDJSON, encoded; blank lines are skipped. A line that is not one
    JSON value is refused with 400 naming it."""
    for n, line in enumerate(lines_, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"line {n}: not valid JSON: {str(exc)[:120]}") from None
        yield encode(value, limits, f"line {n}")


def _text_lines(lines_: Iterable[bytes]) -> Iterator[str]:
    """The lines decoded from UTF-8 (a byte-order mark at the start is dropped)."""
    for n, line in enumerate(lines_, 1):
        try:
            text = line.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, f"line {n}: not UTF-8 text") from None
        yield text


def csv_items(lines_: Iterable[bytes], limits: Limits) -> Iterator[str]:
    """One item per CSV record after the header row: an object keyed by the header's names
    (every value a string). A record with another number of fields than the header is refused
    with 400 naming its line; blank lines are skipped."""
    reader = csv.reader(_text_lines(lines_), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise ApiError(400, "line 1: the CSV has no header row")
        _check_header(header)
        for record in reader:
            if not record:
                continue
            where = f"line {reader.line_num}"
            if len(record) != len(header):
                raise ApiError(
                    400,
                    f"{where}: {len(record)} fields, but the header row has {len(header)}",
                )
            yield encode(dict(zip(header, record, strict=True)), limits, where)
    except csv.Error as exc:
        where = f"line {reader.line_num}"
        if "field larger than field limit" in str(exc):  # csv.field_size_limit, 128 Ki chars
            raise limits.too_large(where) from None
        raise ApiError(400, f"{where}: not valid CSV: {exc}") from None


def _check_header(header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise ApiError(400, f"line 1: the header row names {name[:100]!r} twice")
        seen.add(name)


def json_items(items: list[Any], limits: Limits) -> Iterator[str]:
    """The items of a JSON body's ``items`` array, encoded."""
    if len(items) > limits.max_items:
        raise limits.too_many()
    for n, value in enumerate(items):
        yield encode(value, limits, f"items[{n}]")


def upload_items(media: str, chunks: Iterable[bytes], limits: Limits) -> Iterator[str]:
    """The items of a streamed upload of media type ``media`` (one of UPLOAD_TYPES)."""
    max_line = limits.max_item_bytes * 2 + LINE_SLACK
    split = lines(chunks, max_line)
    return csv_items(split, limits) if media == CSV else ndjson_items(split, limits)


def write_chunks(
    encoded: Iterable[str], write: Callable[[int, list[str]], None], limits: Limits
) -> int:
    """Hand ``encoded`` to ``write(chunk number, items)`` ITEMS_PER_CHUNK at a time; returns
    how many items there were. More than OPTIO_MAX_ITEMS is refused with 413 before the first
    item past it is kept; none at all with 400."""
    chunk: list[str] = []
    count = 0
    for item in encoded:
        if count == limits.max_items:
            raise limits.too_many()
        chunk.append(item)
        count += 1
        if len(chunk) == ITEMS_PER_CHUNK:
            write(count // ITEMS_PER_CHUNK - 1, chunk)
            chunk = []
    if chunk:
        write(count // ITEMS_PER_CHUNK, chunk)
    if count == 0:
        raise ApiError(400, "no items: send at least one")
    return count
