"""The packet budget of Socket.IO clients: clients listen, and at most choose the run they follow
(a ``follow`` event), so one that sends more is cut off."""

from __future__ import annotations

import logging
import re
import time

log = logging.getLogger("optio.web")

#: The one event a client may send, in the default namespace, with or without an ack id:
#: ``2["follow",{"run":"<id>"}]``; longer packets are not passed on (a run id is short).
FOLLOW_EVENT = re.compile(r'2\d{0,9}\["follow",')
FOLLOW_MAX_CHARS = 200
#: Clients only listen: one that sends more than this many packets in BUDGET_SECONDS is cut off.
CLIENT_PACKET_BUDGET = 20
BUDGET_SECONDS = 10.0


class PacketBudget:
    """Counts every Socket.IO packet a client sends, before python-socketio looks at it.

    It sits on the Engine.IO ``message`` hook, in front of ``Server._handle_eio_message``:
    python-socketio would hand client events named ``connect``/``disconnect`` to our own
    handlers and accepts any JSON value as an event name, and a binary event's attachments reach
    no handler until the last one arrives. Clients only listen, so only Socket.IO CONNECT and
    DISCONNECT packets go on to python-socketio, and the ``follow`` event (short, named so
    exactly); other events, acks and attachments are dropped.
    """

    def __init__(self, server, budget: int, seconds: float) -> None:
        self.server = server
        self.budget = budget
        self.seconds = seconds
        self._windows: dict[str, list[float]] = {}  # Engine.IO sid -> [window start, packets]
        self._dispatch = server._handle_eio_message
        self._eio_disconnect = server._handle_eio_disconnect
        server.eio.on("message", self.on_message)
        server.eio.on("disconnect", self.on_disconnect)

    def on_message(self, eio_sid: str, data: str | bytes) -> None:
        now = time.monotonic()
        window = self._windows.setdefault(eio_sid, [now, 0])
        if now - window[0] > self.seconds:
            window[:] = [now, 0]
        window[1] += 1
        if window[1] > self.budget:
            if window[1] == self.budget + 1:
                self._cut_off(eio_sid, data)
            return
        if isinstance(data, str) and (
            data[:1] in ("0", "1")  # Socket.IO CONNECT, DISCONNECT
            or (len(data) <= FOLLOW_MAX_CHARS and FOLLOW_EVENT.match(data))
        ):
            self._dispatch(eio_sid, data)
        self.server.sleep(0)  # let other clients and requests run between a client's packets

    def _cut_off(self, eio_sid: str, data: str | bytes) -> None:
        sample = data[:50] if isinstance(data, str) else f"<{len(data)} bytes>"
        log.warning("[api] Disconnecting client %s: it sends packets (%r, ...)", eio_sid, sample)
        sid = self.server.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            self.server.disconnect(sid)  # tells a socket.io client not to reconnect
        self.server.eio.disconnect(eio_sid)

    def on_disconnect(self, eio_sid: str, reason=None) -> None:
        self._windows.pop(eio_sid, None)
        self._eio_disconnect(eio_sid, reason)
