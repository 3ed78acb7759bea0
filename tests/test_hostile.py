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

from tests.helpers import Watcher, wait_for

pytestmark = pytest.mark.slow


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


@pytest.mark.parametrize("payload", [c[1] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_raw_hostile_requests_never_get_a_5xx(idle_system, payload):
    before = idle_system.get("/api/status").json()
    status = send_raw(idle_system.port, payload)
    assert status is None or 400 <= status < 500, status
    assert idle_system.get("/api/status").json() == before
    assert idle_system.procs["web"].alive()


def polling_session(system) -> str:
    """Open an Engine.IO long-polling session; returns its sid."""
    response = requests.get(f"{system.base}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert response.status_code == 200
    return json.loads(response.text[response.text.index("{") :])["sid"]


BAD_PACKETS = [
    ("not an Engine.IO packet", b"\x00\xff\xfe"),
    ("Socket.IO connect with broken JSON", b"40{not json"),
    ("event with broken JSON", b'42["progress", {'),
    ("event that is not a list", b'42{"a": 1}'),
    ("binary-event header lie", b'451-["progress",{"_placeholder":true,"num":7}]'),
    ("unknown packet type", b"9hello"),
]


@pytest.mark.parametrize("packet", [c[1] for c in BAD_PACKETS], ids=[c[0] for c in BAD_PACKETS])
def test_malformed_socketio_packets_are_refused_cleanly(idle_system, packet):
    before = idle_system.get("/api/status").json()
    sid = polling_session(idle_system)
    url = f"{idle_system.base}/socket.io/?EIO=4&transport=polling&sid={sid}"
    try:
        response = requests.post(
            url, data=packet, headers={"Content-Type": "text/plain"}, timeout=3
        )
        assert response.status_code < 500
    except requests.exceptions.ReadTimeout:
        pass  # the library holds that one session's request until it times out
    started = time.monotonic()
    assert idle_system.get("/api/status").json() == before
    assert time.monotonic() - started < 2.0, "other requests are served meanwhile"


def test_an_oversized_websocket_message_closes_only_that_client(idle_system):
    bystander = Watcher(idle_system.base)
    try:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{idle_system.port}/socket.io/?EIO=4&transport=websocket", timeout=5
        )
        ws.recv()  # the Engine.IO open packet
        ws.send("40")
        ws.send("42" + json.dumps(["progress", {"pad": "x" * 200_000}]))
        wait_for(lambda: _closed(ws), 10, "the server to close the oversized client")
        assert bystander.client.connected
        assert idle_system.get("/api/status").status_code == 200
    finally:
        bystander.close()


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
        wait_for(cut_off.is_set, 10, "the server to disconnect the flooding client")
    finally:
        stop.set()
        thread.join(30)
        flooder.disconnect()
    try:
        assert all(s.get("runId") != "forged" for s in bystander.states())
        assert bystander.client.connected
    finally:
        bystander.close()
