"""A read-only look at a queue of a Redis broker, where kombu's Redis transport keeps it, for the
lost-message repair of the tick (``optio/worker/tick.py``).

kombu keeps a queue in one list per priority step (``<queue>`` for priority 0, then
``<queue>\\x06\\x163``, ``\\x06\\x166``, ``\\x06\\x169``: ``Channel._q_for_pri``) and every message
delivered and not yet acknowledged in the hash ``unacked``, whatever its queue. optio sends no
priorities, but a message in any of those lists is waiting all the same. The names are those of
kombu's defaults, which optio keeps (``optio/broker/delivery.py`` sets no ``priority_steps``,
``sep``, ``unacked_key`` nor ``global_keyprefix``).
"""

from __future__ import annotations

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel

from optio.names import KOMBU_UNACKED


def priority_lists(queue: str) -> list[str]:
    """The lists of ``queue``, one per kombu priority step (the first is ``queue`` itself)."""
    return [f"{queue}{Channel.sep}{step}" if step else queue for step in PRIORITY_STEPS]


class RedisQueue:
    """``queue`` in the Redis broker that ``client`` talks to (read with LLEN and HLEN only)."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.client = client
        self.lists = priority_lists(queue)

    def idle(self) -> bool:
        """Whether no message of the queue waits (at any priority) and no message at all is
        delivered and unacknowledged: a message taken off the queue and not yet recorded as
        unacknowledged (kombu does the two in separate calls) is then nowhere to be seen."""
        with self.client.pipeline(transaction=False) as pipe:
            for name in self.lists:
                pipe.llen(name)
            pipe.hlen(KOMBU_UNACKED)
            return not any(pipe.execute())
