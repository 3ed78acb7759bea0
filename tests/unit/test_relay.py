"""The web process's relay of progress states to its Socket.IO clients."""

from __future__ import annotations

from optio.config import Settings


def test_the_relay_keeps_the_newest_state_of_a_run_whatever_the_order():
    from optio.webapp.relay import Relay

    relay = Relay(socketio=None, read_state=dict, settings=Settings())
    relay.offer({"runId": "a", "seq": 5, "processed": 50})
    relay.offer({"runId": "a", "seq": 4, "processed": 40})  # late: dropped
    assert relay.latest["processed"] == 50
    relay.offer({"runId": "b", "seq": 1, "processed": 0})  # another run: taken
    assert relay.latest["runId"] == "b"
