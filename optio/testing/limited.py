"""A rate-limited HTTP server for the throttle tests and benchmark, and the job that calls it.

``LimitedServer`` allows ``rate`` requests per second (a token bucket of ``burst`` tokens, one
second's worth unless told, refilled at ``rate`` a second) and answers 429 above it, on a free
loopback port. It records every job id it accepted, when, and how many requests it refused.
``call_limited`` is the job function (``OPTIO_JOB_FUNC=optio.testing.limited:call_limited``,
server address in ``OPTIO_TEST_LIMITED_URL``): it calls the server and raises ``optio.Throttle``
on 429.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from optio import Throttle
from optio.testing.procs import free_port


class LimitedServer:
    """POST /call?job=N: 200 while the bucket has a token, else 429.

    ``burst``: the most tokens the bucket holds (the most calls accepted at once after a quiet
    spell); None: ``rate``, one second's worth, which then follows ``set_rate``.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.lock = threading.Lock()
        self.rate = float(rate)
        self._fixed_burst = None if burst is None else float(burst)
        self.tokens = self.burst
        self.refilled = time.monotonic()
        self.accepted: Counter[int] = Counter()
        self.accepted_at: list[float] = []  # time.time() of each accepted call
        self.refused = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                job = int(parse_qs(urlsplit(self.path).query)["job"][0])
                ok = server.take(job)
                self.send_response(200 if ok else 429)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/call"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self, job: int) -> bool:
        with self.lock:
            self._refill()
            if self.tokens >= 1:
                self.tokens -= 1
                self.accepted[job] += 1
                self.accepted_at.append(time.time())
                return True
            self.refused += 1
            return False

    @property
    def burst(self) -> float:
        """The bucket's size in tokens."""
        return self.rate if self._fixed_burst is None else self._fixed_burst

    def set_rate(self, rate: float) -> None:
        with self.lock:
            self._refill()
            self.rate = float(rate)
            self.tokens = min(self.tokens, self.burst)

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now

    def accepted_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for t in self.accepted_at if start <= t < end)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def call_limited(run_id: str, job_id: int, *, key: str | None = None) -> str:
    """Call the limited server once; a 429 raises optio.Throttle (Throttle.from_response: with
    the Retry-After when sent; ``key``: the Throttle's key)."""
    request = urllib.request.Request(
        f"{os.environ['OPTIO_TEST_LIMITED_URL']}?job={job_id}", data=b"", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return "accepted"
    except urllib.error.HTTPError as exc:
        throttle = Throttle.from_response(exc.code, exc.headers, key=key)
        if throttle is not None:
            raise throttle from None
        raise


#: The key call_limited_keyed names the server by.
KEY = "limited.test"


def call_limited_keyed(run_id: str, job_id: int) -> str:
    """``call_limited``, a 429 raising ``Throttle(key=KEY)``: every run calling the server
    shares one adaptive rate."""
    return call_limited(run_id, job_id, key=KEY)
