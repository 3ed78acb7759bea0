"""Several web processes against one Redis, with one worker and one beat.

Each web process subscribes to ``optio:progress`` and relays every state to its own clients,
so clients of different web processes see the same states and the same final state; killing
one web process leaves the others serving. Each web process has a port of its own (no
SO_REUSEPORT: a second one on a port in use stops at start), refuses Socket.IO clients past
OPTIO_MAX_CLIENTS while HTTP goes on, and declines permessage-deflate unless
OPTIO_WS_COMPRESSION is set.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
import socketio

from optio.testing import Published, RedisServer, System, Watcher, start, status, wait_for

#: A state every 100 ms or so (one slow job at a time), relayed at once: no state is coalesced
#: away, so every client must see every state.
ENV = {"OPTIO_JOB_SECONDS": "0.1", "OPTIO_EMIT_HZ": "1000"}
#: Databases of the module's own Redis: the tier's, and one where no worker runs.
TIER_DB, NO_WORKER_DB = 0, 1


@pytest.fixture(scope="module")
def tier_redis(tmp_path_factory) -> Iterator[RedisServer]:
    """A Redis of this module's own: pub/sub is server-wide, and no other test's states should
    reach these web processes."""
    server = RedisServer(tmp_path_factory.mktemp("tier-redis"), persistent=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tier(tier_redis, tmp_path_factory) -> Iterator[list[System]]:
    """Two web processes on ports of their own; the first System also runs a worker and beat."""
    url = f"{tier_redis.url}/{TIER_DB}"
    first = System(url, tmp_path_factory.mktemp("tier-1"), **ENV)
    second = System(url, tmp_path_factory.mktemp("tier-2"), **ENV)
    try:
        first.start_all(concurrency=1)
        second.start_web()
        yield [first, second]
    finally:
        second.stop_all()
        first.stop_all()


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    opened: list[Watcher] = []
    yield opened
    for watcher in opened:
        watcher.close()


def run_states(watcher: Watcher, run_id: str) -> list[dict]:
    return [s for s in watcher.states() if s.get("runId") == run_id]


def published_until_the_end(published: Published, run_id: str) -> list[dict]:
    def ended() -> bool:
        published.drain(run_id, 1)
        return any(not s["running"] for s in published.states)

    wait_for(ended, 30, f"the last state of run {run_id} on the channel")
    return published.states


def test_every_web_process_relays_every_state_to_its_own_clients(tier, tier_redis, watchers):
    published = Published(tier_redis.client)
    watchers += [Watcher(web.base) for web in tier for _ in range(2)]
    run_id = start(tier[1], 8, 240)  # through the web process without worker and beat

    finals = [w.wait_final(run_id, 30) for w in watchers]
    states = published_until_the_end(published, run_id)
    published.pubsub.close()

    seqs = [s["seq"] for s in states]
    assert len(seqs) >= 8 and seqs == sorted(seqs), seqs
    for watcher in watchers:
        seen = [s["seq"] for s in run_states(watcher, run_id)]
        assert seen == seqs, f"{watcher.client.connection_url}: {seen} != published {seqs}"
    assert all(final == states[-1] for final in finals)
    assert finals[0]["status"] == "completed" and finals[0]["processed"] == 8
    for web in tier:
        answer = status(web)
        assert (answer["runId"], answer["seq"], answer["processed"]) == (run_id, seqs[-1], 8)


def test_killing_a_web_process_leaves_the_others_serving(tier, tier_redis, tmp_path, watchers):
    doomed = System(f"{tier_redis.url}/{TIER_DB}", tmp_path, **ENV)
    try:
        doomed.start_web()
        on_doomed = Watcher(doomed.base)
        watchers += [on_doomed, *(Watcher(web.base) for web in tier)]
        run_id = start(doomed, 40, 1200)
        wait_for(lambda: run_states(on_doomed, run_id), 10, "the run's first state on the doomed")

        doomed.procs["web"].signal(signal.SIGKILL)
        assert doomed.procs["web"].popen.wait(10) == -signal.SIGKILL
        wait_for(lambda: not on_doomed.client.connected, 10, "its client to notice")

        for watcher in watchers[1:]:
            final = watcher.wait_final(run_id, 30)
            assert final["status"] == "completed" and final["processed"] == 40
        assert all(status(web)["runId"] == run_id for web in tier)
        second = start(tier[0], 5, 6000)  # the HTTP API of the others still works
        for watcher in watchers[1:]:
            assert watcher.wait_final(second, 30)["processed"] == 5
    finally:
        doomed.stop_all()


def test_a_full_web_process_refuses_new_clients_and_keeps_serving_http(
    tier_redis, tmp_path, watchers
):
    """Every WebSocket holds one of eventlet's green threads: OPTIO_MAX_CLIENTS keeps some for
    HTTP (without it, 1,024 clients made the process accept nothing more)."""
    # no worker runs the run started below
    with System(f"{tier_redis.url}/{NO_WORKER_DB}", tmp_path, OPTIO_MAX_CLIENTS="2") as full:
        full.start_web()
        watchers += [Watcher(full.base), Watcher(full.base)]
        with pytest.raises(socketio.exceptions.ConnectionError):
            Watcher(full.base)
        handshake = requests.get(f"{full.base}/socket.io/?EIO=4&transport=polling", timeout=5)
        assert handshake.status_code == 503 and handshake.headers["Retry-After"] == "1"
        assert "serves 2 clients" in handshake.json()["error"]
        assert full.get("/api/status").status_code == 200
        run_id = start(full, 10, 60)  # the clients it has keep getting states
        for watcher in watchers:
            wait_for(lambda w=watcher: run_states(w, run_id), 10, "the new run's state")
        assert full.post("/api/stop").status_code == 200

        watchers.pop().close()
        watchers.append(wait_for(lambda: Watcher(full.base), 10, "room for a new client"))


def upgrade_answer(port: int, extensions: str) -> str:
    """The head of the server's answer to a WebSocket upgrade offering ``extensions``."""
    request = (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    return head.split(b"\r\n\r\n")[0].decode()


#: What Node's `ws` (socket.io-client) offers; browsers offer the same extension.
OFFER = "permessage-deflate; client_max_window_bits"


def test_web_processes_decline_permessage_deflate_unless_told(tier, tier_redis, tmp_path):
    declined = upgrade_answer(tier[0].port, OFFER)
    assert declined.startswith("HTTP/1.1 101 ")
    assert "sec-websocket-extensions" not in declined.lower(), declined

    with System(f"{tier_redis.url}/{TIER_DB}", tmp_path, OPTIO_WS_COMPRESSION="1") as accepting:
        accepting.start_web()
        accepted = upgrade_answer(accepting.port, OFFER)
    assert accepted.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Extensions: permessage-deflate" in accepted, accepted


def test_a_second_web_process_on_a_port_in_use_stops_at_start(tier):
    first, second = tier
    done = subprocess.run(
        [sys.executable, "-m", "optio.serve"],
        env={**second.env, "PORT": str(first.port)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"optio serve: port {first.port} on 127.0.0.1 is in use (another web process?); "
        "give each web process its own PORT"
    )
    assert status(first)["running"] is not None  # the first one still serves
