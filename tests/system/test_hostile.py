"""Hostile input at the socket level: broken HTTP, path tricks, bad headers, malformed Socket.IO
handshakes and packets, a flooding client. Each gets a 4xx or a clean refusal, never a 5xx;
the web process keeps serving and the run state does not change."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
import socketio
import websocket

from optio.testing import Watcher, wait_for
from optio.webapp.budget import CLIENT_PACKET_BUDGET  # importing builds nothing (create_app does)


def send_raw(port: int, payload: bytes, read_timeout: float = 5.0) -> int | None:
    """Send bytes as they are; the HTTP status answered, or None when the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as conn:
        try:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            return None
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
                if b"\r\n" in data:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    if not data.startswith(b"HTTP/"):
        return None
    return int(data.split(b" ", 2)[1])


def request_bytes(line: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    head = [line, "Host: 127.0.0.1", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


RAW_CASES = [
    ("garbage request line", b"GARBAGE\r\n\r\n"),
    ("binary noise", bytes(range(256)) * 4),
    ("path traversal", request_bytes("GET /static/../../etc/passwd HTTP/1.1")),
    ("encoded traversal", request_bytes("GET /static/%2e%2e/%2e%2e/etc/passwd HTTP/1.1")),
    ("NUL in path", request_bytes("GET /api/status%00.json HTTP/1.1")),
    ("10 KB path", request_bytes("GET /" + "a" * 10_000 + " HTTP/1.1")),
    ("64 KB header", request_bytes("GET /api/status HTTP/1.1", {"X-Big": "b" * 65_536})),
    (
        "negative Content-Length",
        request_bytes(
            "POST /api/run HTTP/1.1", {"Content-Type": "application/json", "Content-Length": "-5"}
        ),
    ),
    (
        "Content-Length not a number",
        request_bytes(
            "POST /api/run HTTP/1.1", {"Content-Type": "application/json", "Content-Length": "ten"}
        ),
    ),
    (
        "body shorter than Content-Length",
        request_bytes(
            "POST /api/run HTTP/1.1",
            {"Content-Type": "application/json", "Content-Length": "100"},
            b'{"x": 1',
        ),
    ),
    (
        "broken chunked body",
        request_bytes(
            "POST /api/run HTTP/1.1",
            {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            b"zz\r\n{}\r\n0\r\n\r\n",
        ),
    ),
    ("unknown HTTP version", request_bytes("GET /api/status HTTP/9.9")),
    ("absolute URL to another host", request_bytes("GET http://evil.example/api/status HTTP/1.1")),
    (
        "Authorization garbage",
        request_bytes(
            "POST /api/run HTTP/1.1",
            {
                "Content-Type": "application/json",
                "Authorization": "Bearer \x01\x02",
                "Content-Length": "2",
            },
            b"{}",
        ),
    ),
    (
        "JSON with a BOM",
        request_bytes(
            "POST /api/run HTTP/1.1",
            {"Content-Type": "application/json", "Content-Length": "21"},
            b'\xef\xbb\xbf{"x": 5, "y": "a"}',
        ),
    ),
    (
        "Socket.IO protocol v3 handshake",
        request_bytes("GET /socket.io/?EIO=3&transport=polling HTTP/1.1"),
    ),
    (
        "Socket.IO unknown transport",
        request_bytes("GET /socket.io/?EIO=4&transport=carrier-pigeon HTTP/1.1"),
    ),
    (
        "Socket.IO unknown session",
        request_bytes("GET /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1"),
    ),
    (
        "Socket.IO post to unknown session",
        request_bytes(
            "POST /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1",
            {"Content-Type": "text/plain", "Content-Length": "4"},
            b"40{}",
        ),
    ),
]


#: Not HTTP at all: the server closes the connection without an answer. Every other case
#: must get an HTTP answer with a 4xx status.
CLOSED_WITHOUT_ANSWER = {"garbage request line", "binary noise", "unknown HTTP version"}
#: Too big to read whole: the server answers 4xx and closes with our bytes unread, so the kernel
#: may reset the connection before its answer reaches us (TCP). No answer is then fine too.
MAY_BE_RESET = {"10 KB path", "64 KB header"}


@pytest.mark.parametrize(
    "payload, closes, may_reset",
    [(c[1], c[0] in CLOSED_WITHOUT_ANSWER, c[0] in MAY_BE_RESET) for c in RAW_CASES],
    ids=[c[0] for c in RAW_CASES],
)
def test_raw_hostile_requests_never_get_a_5xx(idle_system, payload, closes, may_reset):
    before = idle_system.get("/api/status").json()
    status = send_raw(idle_system.port, payload)
    if closes:
        assert status is None, f"answered {status} to something that is not HTTP"
    elif may_reset and status is None:
        pass  # reset before the 4xx arrived; the server's health is checked below
    else:
        assert status is not None and 400 <= status < 500, status
    assert idle_system.get("/api/status").json() == before
    assert idle_system.procs["web"].alive()


def polling_session(system) -> str:
    """Open an Engine.IO long-polling session; returns its sid."""
    response = requests.get(f"{system.base}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert response.status_code == 200
    return json.loads(response.text[response.text.index("{") :])["sid"]


#: (name, packet, status of the POST that carries it). The server drops a packet it cannot
#: parse (200, the session lives on); an unknown Engine.IO packet type ends the session (400).
BAD_PACKETS = [
    ("not an Engine.IO packet", b"\x00\xff\xfe", 200),
    ("Socket.IO connect with broken JSON", b"40{not json", 200),
    ("event with broken JSON", b'42["progress", {', 200),
    ("event that is not a list", b'42{"a": 1}', 200),
    ("binary-event header lie", b'451-["progress",{"_placeholder":true,"num":7}]', 200),
    ("unknown packet type", b"9hello", 400),
]


@pytest.mark.parametrize(
    "packet, status", [c[1:] for c in BAD_PACKETS], ids=[c[0] for c in BAD_PACKETS]
)
def test_malformed_socketio_packets_are_refused_cleanly(idle_system, packet, status):
    """Each answered with its status while the session's long-poll is held (as a real client's
    is), and other requests are served during that held request."""
    before = idle_system.get("/api/status").json()
    sid = polling_session(idle_system)
    url = f"{idle_system.base}/socket.io/?EIO=4&transport=polling&sid={sid}"
    polled: list[requests.Response] = []
    poll = threading.Thread(target=lambda: polled.append(requests.get(url, timeout=30)))
    poll.start()
    try:
        started = time.monotonic()
        assert idle_system.get("/api/status").json() == before
        assert time.monotonic() - started < 2.0, "other requests are served meanwhile"
        assert poll.is_alive(), "the long-poll was held while /api/status answered"

        response = requests.post(
            url, data=packet, headers={"Content-Type": "text/plain"}, timeout=5
        )
        assert response.status_code == status, response.text
        if status == 200:  # the session lives on: end it, which answers the held poll
            close = requests.post(url, data=b"1", headers={"Content-Type": "text/plain"})
            assert close.status_code == 200
    finally:
        poll.join(10)
    assert polled and polled[0].status_code == 200, "the held poll was answered"
    assert idle_system.get("/api/status").json() == before


def test_an_oversized_websocket_message_closes_only_that_client(idle_system):
    with Watcher(idle_system.base) as bystander:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{idle_system.port}/socket.io/?EIO=4&transport=websocket", timeout=5
        )
        ws.recv()  # the Engine.IO open packet
        ws.send("40")
        ws.send("42" + json.dumps(["progress", {"pad": "x" * 200_000}]))
        wait_for(lambda: _closed(ws), 10, "the server to close the oversized client")
        assert bystander.client.connected
        assert idle_system.get("/api/status").status_code == 200


def _closed(ws) -> bool:
    try:
        ws.ping()
        ws.recv()
        return False
    except Exception:
        return True


def test_a_flooding_client_cannot_fake_progress_or_stall_the_server(idle_system):
    before = idle_system.get("/api/status").json()
    bystander = Watcher(idle_system.base)
    flooder = socketio.Client(reconnection=False)
    flooder.connect(idle_system.base, transports=["websocket"], wait_timeout=10)
    fake = {**before, "processed": 999_999, "runId": "forged"}
    stop = threading.Event()
    cut_off = threading.Event()

    def flood():
        sent = 0
        try:
            while not stop.is_set() and sent < 20_000:
                flooder.emit("progress", fake)
                flooder.emit("junk", "x" * 1000)
                sent += 2
        except socketio.exceptions.BadNamespaceError:
            cut_off.set()  # the server disconnected us

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        slowest = 0.0
        for _ in range(20):
            started = time.monotonic()
            assert idle_system.get("/api/status").json() == before
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 2.0, f"status took {slowest:.2f} s during the flood"
        # the flooder learns it was cut off either from an emit that fails or, when it had sent
        # everything before the disconnect arrived, from its connection state
        wait_for(
            lambda: cut_off.is_set() or not flooder.connected,
            10,
            "the server to disconnect the flooding client",
        )
    finally:
        stop.set()
        thread.join(30)
        flooder.disconnect()
    try:
        assert all(s.get("runId") != "forged" for s in bystander.states())
        assert bystander.client.connected
    finally:
        bystander.close()


class RawClient:
    """A Socket.IO client made of raw Engine.IO/Socket.IO frames over one WebSocket."""

    def __init__(self, port: int) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", timeout=5
        )
        assert self.ws.recv().startswith("0{")  # Engine.IO open
        self.ws.send("40")  # Socket.IO CONNECT to "/"
        self.frames: list[str | bytes] = []
        wait_for(lambda: self._read(0.2) or self._got("40{"), 5, "the CONNECT answer")
        # the state sent to every new client
        wait_for(lambda: self._read(0.2) or self.progress_events(), 5, "the first state")

    def _got(self, prefix: str) -> bool:
        return any(isinstance(f, str) and f.startswith(prefix) for f in self.frames)

    def progress_events(self) -> int:
        return sum(isinstance(f, str) and f.startswith('42["progress"') for f in self.frames)

    def _read(self, timeout: float) -> bool:
        """Read what arrives within ``timeout``; True once the server has closed."""
        self.ws.settimeout(timeout)
        try:
            while True:
                opcode, data = self.ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return True
                self.frames.append(data.decode() if opcode == websocket.ABNF.OPCODE_TEXT else data)
        except websocket.WebSocketTimeoutException:
            return False
        except (websocket.WebSocketConnectionClosedException, OSError):
            return True

    def send(self, frame: str | bytes) -> bool:
        """Send one frame; False when the server has already closed the connection."""
        try:
            if isinstance(frame, bytes):
                self.ws.send_binary(frame)
            else:
                self.ws.send(frame)
            return True
        except (websocket.WebSocketConnectionClosedException, OSError):
            return False

    def closed(self) -> bool:
        return self._read(0.2)

    def close(self) -> None:
        self.ws.close()


ATTACHMENT = b"\x00\x01binary\xff"
#: Packets that each must count against the budget: (name, frames sent per round).
BUDGET_BYPASSES = [
    ("events named disconnect", ['42["disconnect"]']),
    ("events named connect", ['42["connect"]']),
    ("a number as event name", ["42[7]"]),
    ("null as event name", ["42[null]"]),
    ("an object as event name", ['42[{"a":1}]']),
    ("acks", ["431[]"]),
    ("binary event and attachment", ['451-["x",{"_placeholder":true,"num":0}]', ATTACHMENT]),
    (
        "attachments of an event announcing 999",
        ['4599-["x",{"_placeholder":true,"num":0}]'] + [ATTACHMENT] * 50,
    ),
]


@pytest.mark.parametrize(
    "frames", [c[1] for c in BUDGET_BYPASSES], ids=[c[0] for c in BUDGET_BYPASSES]
)
def test_every_packet_counts_against_the_flood_budget(idle_system, frames):
    before = idle_system.get("/api/status").json()
    bystander = Watcher(idle_system.base)
    client = RawClient(idle_system.port)
    try:
        sent = 0
        while sent < 5 * CLIENT_PACKET_BUDGET:
            for frame in frames:
                if client.send(frame):
                    sent += 1
        wait_for(client.closed, 10, "the server to close the flooding connection")
        assert client._got("41"), "the server says it disconnects (no reconnect)"
        assert bystander.client.connected
        assert idle_system.get("/api/status").json() == before
        other = RawClient(idle_system.port)  # new connections are still served
        other.close()
    finally:
        client.close()
        bystander.close()


def test_connect_named_events_cause_no_emit_and_no_handler(idle_system):
    """A client event named `connect` must not run the connect handler (a Redis read + an emit)."""
    client = RawClient(idle_system.port)
    try:
        assert client.progress_events() == 1  # the state every new client gets
        for _ in range(5):  # well within the budget
            assert client.send('42["connect"]')
            assert client.send('42["connect",{"token":"x"}]')
        # nothing changes on an idle system: any progress frame now would come from those events
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert not client._read(0.1), "the server closed a client within its budget"
        assert client.progress_events() == 1, client.frames
    finally:
        client.close()
