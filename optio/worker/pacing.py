"""A paced tick's sending (beat's ticks): every message leaves at its own time, not a tick's
worth at once.

The tick reserves the jobs due by the next tick and takes the retries and throttle reruns that
fall due by then (claim_ahead.lua); each message leaves when its first job is due, a message of
several jobs starts them one spacing apart (up to 60,000 jobs/min), and what is overdue already
(a run's first tick, a late tick, a rerun due before this tick) leaves at CATCH_UP times the rate,
within the tick. Against a downstream that allows little burst, a tick that sends its messages
together has half of them refused. Each message is confirmed as sent (counted as enqueued when
new) before the tick waits for the next one's time, messages sent back to back together; on
RabbitMQ, each as the broker confirms it, without waiting. When a
confirmation finds the run paused or ended, the tick stops: what it did not send stays reserved
(the tick that finds it unconfirmed sends it; a paused run's worker parks it).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from optio.names import parse_message_key
from optio.store.schedule import Ahead, Reservation
from optio.worker import confirms
from optio.worker.context import Context

#: A message spaces its jobs at the run's rate when they are at least this far apart (seconds):
#: at up to 60,000 jobs/min, no job starts before its time.
SPACE_JOBS_FROM = 0.001
#: While a run is throttled (its effective rate below y: a downstream said "slow down"), jobs at
#: least this far apart (seconds; up to 6,000 jobs/min) each start one spacing after the run's
#: last start, whichever worker made it (start_slot.lua): the jitter of a message's delivery (a
#: few ms, tens on a loaded machine) never brings two starts closer, which a downstream allowing
#: no burst at all needs. One Redis call per job, at 100 jobs/s at most.
GATE_FROM = 0.01
#: What is overdue leaves at this many times the run's rate, not all at once.
CATCH_UP = 2.0
#: Messages sent back to back (a few ms apart at most) are confirmed together, this many at most
#: in one call, and before any wait of at least CONFIRM_WHEN_IDLE (seconds): a message is never
#: left unconfirmed while the tick sleeps, and at high rates one call confirms many.
CONFIRM_MOST = 10
CONFIRM_WHEN_IDLE = 0.002


@dataclass(frozen=True)
class Item:
    """One message of a paced tick: when it leaves (monotonic), whether its jobs are new."""

    at: float
    key: str
    new: bool

    @property
    def jobs(self) -> int:
        return parse_message_key(self.key)[1]


class Pace:
    """The times of one paced tick (see the module's docstring)."""

    def __init__(
        self, reservation: Reservation, tick_seconds: float, *, ceiling: bool = False
    ) -> None:
        self.reservation = reservation
        self.began = time.monotonic()
        self.end = self.began + tick_seconds  # nothing waits past the tick's end
        spacing = reservation.spacing
        self.gap = spacing / CATCH_UP  # seconds per job between two overdue messages
        self.free_at = 0.0  # monotonic: the earliest the next message may leave
        self.stopped = False  # the run paused or ended meanwhile
        #: seconds between two jobs of one new message (0: back to back)
        self.every = spacing if spacing >= SPACE_JOBS_FROM else 0.0
        #: whether each job waits for its start slot (batches._wait_for_slot): while the run is
        #: throttled (below y), at spacings of GATE_FROM or more; not when the deployment's
        #: ceiling holds it below y (``ceiling``): no downstream asked for it, and a slot
        #: waited for holds a pool process
        self.gate = spacing >= GATE_FROM and reservation.rate < reservation.y_minute and not ceiling

    def plan(self, reruns: list[str], ahead: Ahead | None) -> list[Item]:
        """The reserved messages at their due times, ``reruns`` (overdue) at once, the messages
        taken ``ahead`` at their due times; in the order they leave."""
        r = self.reservation
        items = [Item(self.began + r.due_in(parse_message_key(k)[0]), k, True) for k in r.messages]
        items += [Item(self.began, key, False) for key in reruns]
        if ahead is not None:
            items += [
                Item(self.began + (due - ahead.now_ms) / 1000, key, False) for key, due in ahead.due
            ]
        return sorted(items, key=lambda item: item.at)

    def leaves(self, item: Item) -> float:
        """When ``item`` leaves (monotonic): at its time, or when its run's catching up lets
        it; never after the tick's end."""
        return min(max(item.at, self.free_at), self.end)

    def idle_before(self, item: Item) -> bool:
        """Whether the tick would wait at least CONFIRM_WHEN_IDLE before ``item`` leaves."""
        return self.leaves(item) - time.monotonic() >= CONFIRM_WHEN_IDLE

    def wait(self, item: Item) -> None:
        """Until ``item`` is due, or overdue and its turn to catch up."""
        leave = self.leaves(item)
        left = leave - time.monotonic()
        if left > 0:
            time.sleep(left)
        self.free_at = max(leave, time.monotonic()) + item.jobs * self.gap


#: One message of a paced tick with its run and that run's pace.
Paced = tuple[str, Pace, Item]


def merged(plans: list[tuple[str, Pace, list[Item]]]) -> Iterator[Paced]:
    """The messages of every run's plan (several runs share a tick), each run's in its order;
    next, always the message that leaves soonest (its time, or later while its run catches
    up): one run catching up never holds another's messages back."""
    queues = [(run_id, pace, deque(items)) for run_id, pace, items in plans if items]
    while queues:
        run_id, pace, items = min(queues, key=lambda q: q[1].leaves(q[2][0]))
        yield run_id, pace, items.popleft()
        if not items:
            queues = [q for q in queues if q[2]]


def send_paced(ctx: Context, items: Iterable[Paced]) -> None:
    """Publish each of ``items`` at its time and confirm it (see the module's docstring); a
    run that paused or ended meanwhile sends nothing more."""
    with ctx.app.producer_or_acquire() as producer:
        if ctx.rabbitmq:
            _send_tracked(ctx, producer, items)
            return
        sent: list[Paced] = []  # published, not confirmed yet
        for run_id, pace, item in items:
            if pace.stopped:
                continue
            if sent and (pace.idle_before(item) or len(sent) >= CONFIRM_MOST):
                _confirm(ctx, sent)
                sent = []
            pace.wait(item)
            _publish(ctx, producer, run_id, item, pace)
            sent.append((run_id, pace, item))
        if sent:
            _confirm(ctx, sent)


def _send_tracked(ctx: Context, producer, items: Iterable[Paced]) -> None:
    """``send_paced`` on RabbitMQ: each message is confirmed in Redis once the broker confirmed
    it, collected between messages without a wait (confirms.py)."""
    with confirms.tracked(producer) as tracker:
        waiting: list[tuple[Paced, int]] = []
        for run_id, pace, item in items:
            if pace.stopped:
                continue
            pace.wait(item)
            _publish(ctx, producer, run_id, item, pace)
            waiting.append(((run_id, pace, item), tracker.mark()))
            while waiting and tracker.confirmed(waiting[0][1]):
                _confirm(ctx, [waiting.pop(0)[0]])
        for paced, mark in waiting:
            tracker.wait(mark)
            _confirm(ctx, [paced])


def _publish(ctx: Context, producer, run_id: str, item: Item, pace: Pace) -> None:
    first, count, retry = parse_message_key(item.key)
    kwargs: dict[str, object] = {"gate": True} if pace.gate else {}
    if item.new:
        if pace.every and count > 1:
            kwargs["every"] = pace.every
        args: tuple = (run_id, first, count)
    else:
        args = (run_id, first, count, retry, True)
    ctx.process_jobs.apply_async(args, kwargs=kwargs or None, producer=producer)


def _confirm(ctx: Context, sent: list[Paced]) -> None:
    """Confirm ``sent`` as sent, one call per run (new jobs counted as enqueued)."""
    runs: dict[str, tuple[Pace, list[Item]]] = {}
    for run_id, pace, item in sent:
        runs.setdefault(run_id, (pace, []))[1].append(item)
    for run_id, (pace, items) in runs.items():
        jobs = sum(item.jobs for item in items if item.new)
        _, status = ctx.schedule.confirm_sent(run_id, jobs, [item.key for item in items])
        if status != "running":
            pace.stopped = True
