"""The web process's relay of progress states to its Socket.IO clients: each next state of its
run passes at once; one the channel can't vouch for is read from the store (at most once a
second); a message that is not a state is ignored."""

from __future__ import annotations

from optio.config import Settings


class Stored:
    """The relay's read of the stored state (the web app's ``current_state``), reads counted."""

    def __init__(self, state: dict) -> None:
        self.state = state
        self.reads = 0

    def __call__(self) -> dict:
        self.reads += 1
        return dict(self.state)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def subscribed_relay(stored: Stored, clock: Clock):
    """A relay that has just (re)subscribed: it read the stored state once."""
    from optio.webapp.relay import Relay

    relay = Relay(socketio=None, read_state=stored, settings=Settings(), clock=clock)
    relay.resync()
    assert relay.latest == stored.state and stored.reads == 1
    return relay


def test_the_relay_takes_each_next_state_of_its_run_without_reading_the_store():
    stored, clock = Stored({"runId": "a", "seq": 5}), Clock(100.0)
    relay = subscribed_relay(stored, clock)
    for seq in range(6, 10_006):
        relay.offer({"runId": "a", "seq": seq})
        clock.t += 0.001
        relay.poll()
    assert relay.latest == {"runId": "a", "seq": 10_005}
    assert stored.reads == 1  # the read at subscription only


def test_a_state_the_channel_cannot_vouch_for_is_taken_from_the_store_within_a_second():
    stored, clock = Stored({"runId": "a", "seq": 5, "processed": 50}), Clock(100.0)
    relay = subscribed_relay(stored, clock)
    clock.t = 102.0
    relay.offer({"runId": "a", "seq": 10**9, "processed": 999})  # forged, far ahead
    assert relay.latest["seq"] == 5 and stored.reads == 2  # checked at once, never taken
    relay.offer({"runId": "a", "seq": 6, "processed": 60})  # the next real one
    assert relay.latest["processed"] == 60 and stored.reads == 2
    relay.offer({"runId": "a", "seq": 4, "processed": 40})  # late: dropped, checked later
    stored.state = {"runId": "a", "seq": 7, "processed": 70}
    clock.t = 102.5
    relay.poll()  # the store was read half a second ago
    assert relay.latest["processed"] == 60 and stored.reads == 2
    clock.t = 103.0
    relay.poll()
    assert relay.latest["processed"] == 70 and stored.reads == 3
    relay.poll()
    assert stored.reads == 3  # nothing left to check

    # a new run: its first change (seq 1) is taken at once, and each next one
    clock.t = 105.0
    relay.offer({"runId": "b", "seq": 1, "processed": 0})
    relay.offer({"runId": "b", "seq": 2, "processed": 1})
    assert relay.latest == {"runId": "b", "seq": 2, "processed": 1} and stored.reads == 3
    # a state of another run that is not its first is checked against the store
    stored.state = {"runId": "b", "seq": 3, "processed": 2}
    relay.offer({"runId": "c", "seq": 5, "processed": 999})
    assert relay.latest == stored.state and stored.reads == 4
    relay.offer({"runId": "b", "seq": 4, "processed": 999})  # forged with the next seq: taken
    stored.state = {"runId": "b", "seq": 4, "processed": 30}
    relay.offer({"runId": "b", "seq": 4, "processed": 30})  # the real one it hid
    clock.t = 106.0
    relay.poll()
    assert relay.latest == stored.state and stored.reads == 5


def test_messages_that_are_not_a_state_are_ignored_with_a_warning_now_and_then(caplog):
    import logging

    stored, clock = Stored({"runId": "a", "seq": 5}), Clock(100.0)
    relay = subscribed_relay(stored, clock)
    bad = [
        b"\xff\xfe\x00 not UTF-8",
        b"[1, 2, 3]",
        b"[" * 100_000,
        b"42",
        b"null",
        b"{",
        b'{"seq": 6}',
        b'{"runId": "a", "seq": "6"}',
        b'{"runId": "a", "seq": true}',
    ]
    with caplog.at_level(logging.WARNING, logger="optio.webapp.relay"):
        for data in bad:
            relay.receive(data)
        clock.t += 10.0
        relay.receive(b'["late"]')
    assert relay.ignored == len(bad) + 1 and relay.received == 0
    assert relay.latest == stored.state
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("[api] Ignored 1 message(s) on optio:progress that are not")
    assert warnings[1].startswith(f"[api] Ignored {len(bad)} message(s) on optio:progress")
    relay.receive('{"runId": "a", "seq": 6}')  # text, as from a client that decodes
    assert relay.latest == {"runId": "a", "seq": 6} and relay.received == 1


#: A fixed clock for Throttle.from_response: Tue, 14 Nov 2023 22:13:20 GMT.
