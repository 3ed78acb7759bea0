"""The HTTP API as the ``optio`` command calls it: standard library only (urllib.request).

:meth:`Api.call` returns the server's JSON answer, or raises :class:`Refused` (the server
answered with an error) or :class:`Unreachable` (no answer from optio at that address).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO
from urllib.parse import urlencode

from optio import __version__

#: Seconds to wait for the server's answer.
TIMEOUT = 10.0
#: Seconds to wait for the next piece of a streamed answer (a large run's export may read many
#: slices of jobs that it does not list before the next row).
STREAM_TIMEOUT = 300.0
#: Bytes copied at a time from a streamed answer.
STREAM_CHUNK = 64 * 1024


class Refused(Exception):
    """The server answered ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No answer from optio: nothing listens there, a timeout, or the answer is not optio's."""


@contextlib.contextmanager
def _answered(copied: list[int]) -> Iterator[None]:
    """Turns what urllib raises into :class:`Refused` (the server answered an error) or
    :class:`Unreachable`; ``copied[0]``: bytes of the answer already copied, for the message
    when it was cut off midway."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        with exc:
            answer = _answer(exc.code, exc.read())
        raise Refused(exc.code, str(answer.data.get("error") or f"HTTP {exc.code}")) from None
    except urllib.error.URLError as exc:
        raise Unreachable(_reason(exc.reason)) from None
    except http.client.IncompleteRead:
        raise Unreachable(f"the answer was cut off after {copied[0]:,} bytes") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # reset, closed early, timed out while reading
        raise Unreachable(_reason(exc)) from None


class Answer:
    """A successful answer: the parsed JSON and its text, on one line, as the server sent it."""

    def __init__(self, data: dict[str, Any], text: str) -> None:
        self.data = data
        self.text = text


class Api:
    """Calls to the web process at ``url`` (``http(s)://host:port``), with ``token`` as
    ``Authorization: Bearer`` when given."""

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        media = None if body is None else "application/json"
        return self._send(self._request(method, path, data, media, query))

    def upload(
        self, path: str, chunks: Iterable[bytes], media: str, query: dict[str, Any] | None = None
    ) -> Answer:
        """POST ``chunks`` as they come (chunked transfer encoding: the whole body is never
        held) with Content-Type ``media``."""
        return self._send(self._request("POST", path, chunks, media, query))

    def stream(self, path: str, query: dict[str, Any] | None, out: BinaryIO) -> int:
        """GET ``path`` and copy the answer's body to ``out`` as it comes; returns the bytes
        copied. Raises as :meth:`call` does; :class:`Unreachable` also when the answer is cut
        off midway (the server's read failed, the connection dropped)."""
        request = self._request("GET", path, None, None, query)
        copied = [0]
        with _answered(copied):
            with urllib.request.urlopen(request, timeout=STREAM_TIMEOUT) as response:
                while chunk := response.read1(STREAM_CHUNK):
                    out.write(chunk)
                    copied[0] += len(chunk)
        return copied[0]

    def _request(
        self,
        method: str,
        path: str,
        data: bytes | Iterable[bytes] | None,
        media: str | None,
        query: dict[str, Any] | None,
    ) -> urllib.request.Request:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        address = self.url + path + ("?" + urlencode(params) if params else "")
        headers = {"Accept": "application/json", "User-Agent": f"optio-cli/{__version__}"}
        if media is not None:
            headers["Content-Type"] = media
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # an iterable body without a Content-Length goes out chunked (urllib.request)
        return urllib.request.Request(address, data=data, headers=headers, method=method)

    def _send(self, request: urllib.request.Request) -> Answer:
        with _answered([0]):
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _answer(response.status, response.read())


def _answer(status: int, raw: bytes) -> Answer:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Unreachable(f"the answer (HTTP {status}) is not optio's JSON")
    text = raw.decode().strip()
    if "\n" in text:  # a server that pretty-prints (debug mode)
        text = json.dumps(data, separators=(",", ":"))
    return Answer(data, text)


def _reason(error: object) -> str:
    """Why a connection failed, as a short lower-case phrase."""
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "no answer (timed out)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error).lower() or type(error).__name__
