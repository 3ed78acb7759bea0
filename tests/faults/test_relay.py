"""The web relay of ``optio:progress`` against bad messages on the channel: a real web process
on a Redis of the test's own (pub/sub channels are shared by every database of a server), a real
Socket.IO client, bad messages published by hand, real state changes made over HTTP."""

from __future__ import annotations

import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from optio import names
from optio.redis_state import RunStore
from optio.testing import System, Watcher, start, wait_for

pytestmark = pytest.mark.slow

#: What the tests publish that is not a run's state.
GARBAGE = [
    b"\xff\xfe\x00 not UTF-8",
    b"[1, 2, 3]",
    b"[" * 100_000,
    b"42",
    b"null",
    b"{",
    b'{"seq": 6}',
    b'{"runId": "5f0c2a91be3d", "seq": "6"}',
]


@pytest.fixture
def web(fault_system) -> System:
    """The web process alone: runs started here wait, nothing changes them but the test."""
    fault_system.start_web()
    return fault_system


def relay_figures(web: System) -> dict[str, float]:
    """This web process's relay counters, from GET /metrics."""
    text = requests.get(web.base + "/metrics", timeout=5).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("optio_relay_")
    }


def shown(watcher: Watcher, run_id: str, **fields) -> dict | None:
    """The last state of ``run_id`` the client received, when it has ``fields``."""
    states = [s for s in watcher.states() if s.get("runId") == run_id]
    if states and all(states[-1].get(k) == v for k, v in fields.items()):
        return states[-1]
    return None


def change(web: System, watcher: Watcher, run_id: str, action: str, status: str) -> float:
    """POST /api/<action>; seconds until the client shows the run with ``status``."""
    sent = time.monotonic()
    assert web.post(f"/api/{action}").status_code == 200
    wait_for(lambda: shown(watcher, run_id, status=status), 5, f"the {status} state")
    return time.monotonic() - sent


def test_messages_that_are_not_a_state_are_ignored_without_resubscribing(web):
    with Watcher(web.base) as watcher:
        run_id = start(web, 1000, 60)
        wait_for(lambda: shown(watcher, run_id, status="running"), 5, "the run on the client")
        for data in GARBAGE:
            web.redis.publish(names.CHANNEL, data)
        took = change(web, watcher, run_id, "pause", "paused")
        assert took < 2
        change(web, watcher, run_id, "resume", "running")
    log = web.procs["web"].log()
    assert log.count("Subscribed to Redis channel") == 1, log
    assert "resubscribing" not in log and "Relay failed" not in log
    assert relay_figures(web)["optio_relay_messages_ignored_total"] == len(GARBAGE)
    # one warning for the lot (at most one every 10 s)
    assert log.count("[api] Ignored ") == 1, log
    assert "[api] Ignored 1 message(s) on optio:progress that are not a run's state" in log


def test_a_forged_state_never_hides_the_real_ones_for_more_than_a_second(web):
    with Watcher(web.base) as watcher:
        run_id = start(web, 1000, 60)
        real = wait_for(lambda: shown(watcher, run_id, status="running"), 5, "the run's state")
        forged = {**real, "seq": 10**9, "processed": 999}
        web.redis.publish(names.CHANNEL, json.dumps(forged))
        # the next real changes reach the client at once
        after_far_ahead = [
            change(web, watcher, run_id, "pause", "paused"),
            change(web, watcher, run_id, "resume", "running"),
        ]
        # a forged state with the very next seq is relayed; the real state it hides comes from
        # the store within about a second
        now = shown(watcher, run_id)
        web.redis.publish(
            names.CHANNEL, json.dumps({**now, "seq": now["seq"] + 1, "processed": 998})
        )
        wait_for(lambda: shown(watcher, run_id, processed=998), 5, "the forged next state")
        after_next = change(web, watcher, run_id, "pause", "paused")
        final = shown(watcher, run_id)
    assert max(after_far_ahead) < 1, after_far_ahead
    assert after_next < 2, after_next
    assert final["processed"] == 0 and final["seq"] == now["seq"] + 1
    assert all(s["seq"] < 10**9 and s["processed"] != 999 for s in watcher.states())
    assert "resubscribing" not in web.procs["web"].log()


def test_the_relay_reads_the_store_only_for_a_state_it_cannot_vouch_for(web):
    with Watcher(web.base) as watcher:
        run_id = start(web, 1000, 60)
        wait_for(lambda: shown(watcher, run_id, status="running"), 5, "the run's state")
        before = relay_figures(web)
        runs = RunStore(web.redis).runs
        for y in range(61, 361):  # 300 real changes, one published state each
            runs.update_run(y=y)
        wait_for(lambda: shown(watcher, run_id, yMinute=360), 5, "the last change")
        during = relay_figures(web)
        web.redis.publish(names.CHANNEL, json.dumps({**shown(watcher, run_id), "seq": 10**9}))
        wait_for(
            lambda: (
                relay_figures(web)["optio_relay_store_reads_total"]
                == during["optio_relay_store_reads_total"] + 1
            ),
            5,
            "the forged state's one read",
        )
    received = (
        during["optio_relay_states_received_total"] - before["optio_relay_states_received_total"]
    )
    assert received == 300
    assert during["optio_relay_store_reads_total"] == before["optio_relay_store_reads_total"]
