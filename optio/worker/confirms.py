"""RabbitMQ publisher confirms for the tick: publish a tick's messages, then wait for the broker's
acknowledgements of them, instead of one wait per message.

Without confirms, ``basic.publish`` returns before the broker has the message: a broker that
stops at that moment loses it, and the tick would already have counted it as enqueued (nothing
sends again a message that was confirmed as published). kombu's ``confirm_publish`` option
waits for each message's confirm in turn, which is many times slower on a quorum queue (it
confirms once its Raft log is on disk; figures in docs/BENCHMARKS.md). So the tick puts
its producer's channel in confirm mode, counts what it publishes (the broker numbers the
messages of a channel 1, 2, 3, ... in confirm mode), and waits until the broker has acknowledged
everything up to a mark; the broker acknowledges many messages at once (``multiple``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

#: Seconds to wait for confirms before the messages count as not published (the tick that
#: reserved them sends them again a few ticks later; a second copy is never run twice).
CONFIRM_TIMEOUT = 10.0


class NotConfirmed(Exception):
    """The broker did not confirm every message up to a mark."""


class _Confirms:
    """What was published on one channel in confirm mode, and what the broker settled."""

    def __init__(self, channel) -> None:
        self.published = 0
        self.unconfirmed: set[int] = set()
        self.nacked: set[int] = set()
        channel.events["basic_ack"].add(self._ack)
        channel.events["basic_nack"].add(self._nack)
        channel.confirm_select()

    def _settle(self, tag: int, multiple: bool) -> set[int]:
        done = {t for t in self.unconfirmed if t <= tag} if multiple else {tag}
        self.unconfirmed -= done
        return done

    def _ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _nack(self, tag: int, multiple: bool) -> None:
        self.nacked |= self._settle(tag, multiple)


class Tracker:
    """Marks in what a producer published, and waits for the broker's confirms up to one."""

    def __init__(self, producer, channel, state: _Confirms) -> None:
        self.producer = producer
        self.channel = channel
        self.state = state

    def mark(self) -> int:
        """The number of the last message published so far."""
        return self.state.published

    def wait(self, mark: int, timeout: float = CONFIRM_TIMEOUT) -> None:
        """Return once the broker confirmed every message up to ``mark``; raise
        :class:`NotConfirmed` on a refusal (nack), a timeout, or a reconnection in between (the
        messages may or may not be in the broker: the caller must not count them)."""
        if self.producer.channel is not self.channel:
            raise NotConfirmed("the connection to the broker was re-established while publishing")
        state = self.state
        deadline = time.monotonic() + timeout
        while any(tag <= mark for tag in state.unconfirmed):
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotConfirmed(f"the broker did not confirm the messages in {timeout:g} s")
            try:
                self.channel.connection.drain_events(timeout=left)
            except TimeoutError:
                continue  # the deadline check says so
        refused = sum(1 for tag in state.nacked if tag <= mark)
        if refused:
            state.nacked = {tag for tag in state.nacked if tag > mark}
            raise NotConfirmed(f"the broker refused {refused} message(s)")

    def confirmed(self, mark: int) -> bool:
        """Whether the broker confirmed every message up to ``mark``, reading what it sent so
        far without waiting (a paced tick asks between two messages); raises
        :class:`NotConfirmed` as ``wait`` does."""
        if self.producer.channel is not self.channel:
            raise NotConfirmed("the connection to the broker was re-established while publishing")
        while True:
            try:
                self.channel.connection.drain_events(timeout=0)
            except (TimeoutError, BlockingIOError):
                break
        if any(tag <= mark for tag in self.state.unconfirmed):
            return False
        self.wait(mark)  # settled: raises on a refusal
        return True


def _confirms(channel) -> _Confirms:
    state = getattr(channel, "_optio_confirms", None)
    if state is None:
        state = channel._optio_confirms = _Confirms(channel)
    return state


@contextlib.contextmanager
def tracked(producer) -> Iterator[Tracker]:
    """Count every message ``producer`` publishes in the block (its channel in confirm mode)."""
    channel = producer.channel
    state = _confirms(channel)
    basic_publish = channel.basic_publish

    def counted(*args, **kwargs):
        result = basic_publish(*args, **kwargs)
        state.published += 1
        state.unconfirmed.add(state.published)
        return result

    channel.basic_publish = counted
    try:
        yield Tracker(producer, channel, state)
    finally:
        channel.basic_publish = basic_publish
