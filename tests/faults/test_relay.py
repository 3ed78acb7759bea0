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


def start_beside(web: System, x: int, y: float) -> str:
    """POST /api/runs: a run started beside the active ones; returns its id."""
    response = web.post("/api/runs", {"x": x, "y": y})
    assert response.status_code == 201, response.text
    return response.json()["runId"]


def runs_of(watcher: Watcher, seen: int = 0) -> list[str] | None:
    """The ids of the active runs in the last ``runs`` event, once more than ``seen`` arrived."""
    if len(watcher.runs) <= seen:
        return None
    return [state["runId"] for state in watcher.listed()]


def test_clients_follow_the_current_run_or_the_one_they_chose(web):
    store = RunStore(web.redis)
    older = start_beside(web, 1000, 60)
    newer = start_beside(web, 2000, 120)
    assert store.runs.active_run_ids() == [newer, older]
    with (
        Watcher(web.base) as default,
        Watcher(web.base, run=older) as chosen,
        Watcher(web.base) as switching,
    ):
        wait_for(lambda: shown(default, newer, yMinute=120), 5, "the newer run by default")
        wait_for(lambda: shown(chosen, older, yMinute=60), 5, "the chosen run on connect")
        # every client gets the list of active runs, newest first, with their counts
        wait_for(lambda: runs_of(default) == [newer, older], 5, "both runs listed")
        listed = {state["runId"]: state for state in default.listed()}
        assert listed[older]["xTotal"] == 1000 and listed[newer]["xTotal"] == 2000
        assert all("processed" in s and "enqueued" in s for s in listed.values())

        switching.follow(older)
        wait_for(lambda: shown(switching, older), 5, "the older run after a follow event")
        switched_at = len(switching.events)
        for y in (61, 62, 63):
            store.runs.update_run(y=y, run_id=older)
            store.runs.update_run(y=y * 2, run_id=newer)
        wait_for(lambda: shown(chosen, older, yMinute=63), 5, "the chosen run's changes")
        wait_for(lambda: shown(switching, older, yMinute=63), 5, "the followed run's changes")
        wait_for(lambda: shown(default, newer, yMinute=126), 5, "the newer run's changes")
        # each client saw its run's states alone, each one newer than the last
        assert {s["runId"] for s in default.states()} == {newer}
        assert {s["runId"] for s in chosen.states()} == {older}
        assert {s["runId"] for _, s in switching.events[switched_at:]} == {older}
        for watcher in (default, chosen):
            seqs = [s["seq"] for s in watcher.states()]
            assert seqs == sorted(seqs), seqs
        wait_for(
            lambda: {s["runId"]: s["yMinute"] for s in default.listed()} == {older: 63, newer: 126},
            5,
            "the list with the changes",
        )

        switching.follow(None)  # back to the current run
        wait_for(lambda: shown(switching, newer), 5, "the current run after follow null")

        # the newer run ends: the default clients get its final state, then, from the next tick,
        # the older run (the tick is played here: this system has no beat)
        store.runs.stop_run(newer)
        wait_for(lambda: shown(default, newer, status="stopped"), 5, "the newer run's end")
        wait_for(lambda: runs_of(default) == [older], 5, "the ended run dropped from the list")
        assert any(
            {s["runId"]: s["status"] for s in event["runs"]}.get(newer) == "stopped"
            for event in default.runs
        ), "the ended run is listed once as ended"
        assert store.schedule.follow_newest(older)
        wait_for(lambda: shown(default, older, yMinute=63), 5, "the older run by default")
        store.runs.update_run(y=64, run_id=older)
        wait_for(lambda: shown(default, older, yMinute=64), 5, "the older run's next change")
        wait_for(lambda: shown(switching, older, yMinute=64), 5, "the same on the switched one")
        assert {s["runId"] for s in chosen.states()} == {older}
    assert "resubscribing" not in web.procs["web"].log()


def test_a_client_that_chooses_an_unknown_run_is_told(web):
    with Watcher(web.base, run="0123456789ab") as watcher:
        wait_for(lambda: watcher.unknown, 5, "the unknown_run event")
        assert watcher.unknown == [{"run": "0123456789ab"}]
        run_id = start_beside(web, 10, 60)
        wait_for(lambda: runs_of(watcher) == [run_id], 5, "the new run listed")
        assert watcher.states() == []  # the run it chose never ran
