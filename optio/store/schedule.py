"""The scheduler tick's verbs: reserve the jobs due now, confirm them as enqueued, find the
messages to send again (expired leases, due retries, unconfirmed reservations, lost ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.client import NEVER_DECODE

from optio.names import (
    ACTIVE_KEY,
    LAST_TICK_KEY,
    LEGACY_ACTIVE_KEY,
    SERVER_KEY,
    done_key,
    holders_key,
    messages_key,
    owners_key,
    parse_message_key,
    run_key,
)
from optio.store.connection import retrying
from optio.store.scripts import Part, now_arg
from optio.store.shares import Grant

#: Windows without a throttle that bring a throttled run's effective rate from its floor back to
#: y: it climbs by y / THROTTLE_STEPS per OPTIO_THROTTLE_WINDOW (the additive increase).
THROTTLE_STEPS = 20


@dataclass(frozen=True)
class Reservation:
    """Jobs ``first .. first+count-1`` of ``run_id`` reserved by one tick, as messages; job j is
    due ``due_in(j)`` seconds after the reservation (Redis clock: ``now_ms``)."""

    run_id: str
    first: int
    count: int
    y_minute: float
    messages: list[str]
    rate: float = 0.0
    anchor_ms: float = 0.0
    anchor_count: float = 0.0
    now_ms: int = 0

    def due_in(self, job: int) -> float:
        """Seconds from the reservation until job ``job`` is due (<= 0: due already)."""
        if self.rate <= 0:
            return 0.0
        due_ms = self.anchor_ms + (job + 1 - self.anchor_count) * 60_000 / self.rate
        return (due_ms - self.now_ms) / 1000

    @property
    def spacing(self) -> float:
        """Seconds between two jobs at the run's effective rate."""
        return 60 / self.rate if self.rate > 0 else 0.0


@dataclass(frozen=True)
class Lost:
    """What claim_lost took: expired leases and parked messages among ``keys``; and the
    messages it gave up instead (their leases had expired OPTIO_MAX_DELIVERIES times), with the
    jobs that failed for good with them."""

    leases: int
    parked: int
    keys: list[str]
    given_up: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Ahead:
    """Retries and throttle reruns a paced tick took to send at their due times (claim_ahead):
    (message key, due ms on the Redis clock), in due order, and the Redis clock then."""

    now_ms: int
    due: list[tuple[str, int]]


@dataclass(frozen=True)
class JobsLeft:
    """What the lost-message repair reads of a run (Schedule.jobs_left)."""

    #: jobs reserved and neither counted nor leased: waiting in the broker, due to be sent
    #: (again), or lost
    waiting: int
    #: ms (Redis clock) when messages of the run were last confirmed as published; 0: never
    sent_ms: int
    #: the Redis clock, ms
    now_ms: int


class Schedule(Part):
    """What the tick (beat's process, or a worker running a kicked tick) calls."""

    SCRIPTS = ("reserve_due", "confirm_enqueued", "claim_lost", "claim_ahead", "follow_newest")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: run_id of the Redis server this part last saw (see primary_changed)
        self._server: str | None = None

    @retrying
    def run_rate(self, run_id: str) -> float:
        """The run's effective rate (jobs/min: y unless jobs throttled); 0 when the run is
        unknown."""
        rate, y, share = self.client.hmget(run_key(run_id), "rateNow", "yMinute", "shareRate")
        rate = float(rate or y or 0)
        return min(rate, float(share)) if share else rate

    @retrying
    def follow_newest(self, newest: str) -> bool:
        """When the current run (the one clients are shown by default) has ended, make run
        ``newest`` (the newest active run) current and publish its state; returns whether it
        did."""
        return bool(self._run("follow_newest", newest, [newest]))

    @retrying
    def move_legacy_active(self) -> None:
        """Move the one active run of a deployment from before several runs (the string
        LEGACY_ACTIVE_KEY) to the active runs."""
        if self.client.type(LEGACY_ACTIVE_KEY) != "string":
            return
        run_id = self.client.get(LEGACY_ACTIVE_KEY)
        if run_id:
            started = self.client.hget(run_key(run_id), "startedAt") or 0
            self.client.zadd(ACTIVE_KEY, {run_id: int(started)})
        self.client.delete(LEGACY_ACTIVE_KEY)

    @retrying
    def reserve_due(
        self,
        run_id: str,
        tick_seconds: float,
        *,
        batch: int = 1,
        max_outstanding: int = 0,
        unconfirmed_ms: int = 5000,
        throttle_window_s: float | None = None,
        lookahead_s: float = 0.0,
        grant: Grant | None = None,
        now_ms: int | None = None,
    ) -> Reservation:
        """Reserve the jobs of ``run_id`` due by now + ``lookahead_s``, in messages of at most
        ``batch`` jobs; also records the tick time.

        At most ``max_outstanding`` jobs wait (reserved, neither counted nor leased by a worker)
        at once (0: five ticks' worth, at least 1000). A message not confirmed within
        ``unconfirmed_ms`` is taken by ``claim_lost`` to be sent again. After a throttle, the
        effective rate climbs back by y / THROTTLE_STEPS per ``throttle_window_s`` (default
        OPTIO_THROTTLE_WINDOW) without a throttle. The run's heldBack and heldBackBy say when
        the jobs enqueued fall behind the schedule, and why (reserve_due.lua). ``grant``: the
        run's shares of the ceilings this tick (optio/worker/shares.py; None: none binds it).
        """
        grant = grant or Grant()
        window = self.settings.throttle_window if throttle_window_s is None else throttle_window_s
        first, count, y, rate, anchor_ms, anchor_count, now, *messages = self._run(
            "reserve_due",
            run_id,
            [
                run_id,
                repr(float(tick_seconds)),
                now_arg(now_ms),
                max_outstanding,
                max(1, batch),
                unconfirmed_ms,
                int(window * 1000),
                THROTTLE_STEPS,
                int(lookahead_s * 1000),
                "" if grant.rate is None else repr(float(grant.rate)),
                "" if grant.out is None else int(grant.out),
                int(grant.ceiling),
            ],
        )
        return Reservation(
            run_id,
            int(first),
            int(count),
            float(y),
            messages,
            float(rate),
            float(anchor_ms),
            float(anchor_count),
            int(now),
        )

    @retrying
    def record_tick(self) -> None:
        """Record a tick that found no active run."""
        seconds, micros = self.client.time()
        self.client.set(LAST_TICK_KEY, seconds * 1000 + micros // 1000)

    @retrying
    def last_tick_ms(self) -> int | None:
        value = self.client.get(LAST_TICK_KEY)
        return int(float(value)) if value else None

    @retrying
    def primary_changed(self) -> bool:
        """Whether the Redis server answering now is another one than the one any process saw
        last (a failover to a replica, or a restart): its ``run_id`` is kept in optio:server."""
        server = self.client.info("server")["run_id"]
        if server == self._server:
            return False
        previous = self.client.set(SERVER_KEY, server, get=True)
        self._server = server
        return previous is not None and previous != server

    @retrying
    def jobs_left(self, run_id: str) -> JobsLeft:
        """How many jobs of ``run_id`` are neither counted nor leased, when its messages were
        last published, and the time now (the Redis clock): for the lost-message repair."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(run_key(run_id), "reserved", "processed", "failed", "leasedJobs", "sentAt")
            pipe.time()
            counts, (seconds, micros) = pipe.execute()
        reserved, processed, failed, leased, sent = (int(v or 0) for v in counts)
        return JobsLeft(
            reserved - processed - failed - leased, sent, seconds * 1000 + micros // 1000
        )

    @retrying
    def unaccounted_jobs(self, run_id: str) -> list[int]:
        """Jobs of ``run_id`` that were sent and that nothing accounts for: not counted, not in a
        leased message, not due to be sent (again): waiting in the broker, or lost by it.

        Reads the whole done bitmap (x/8 bytes): for use after a failover, not every tick. Not
        one snapshot: a job counted or leased meanwhile may be listed too (sending it again is
        harmless), but a job that nothing accounts for is always listed.
        """
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hkeys(holders_key(run_id))
            pipe.zrange(messages_key(run_id), 0, -1)
            pipe.hget(run_key(run_id), "reserved")
            pipe.execute_command("GET", done_key(run_id), **{NEVER_DECODE: []})
            held, due, reserved, done = pipe.execute()
        covered: set[int] = set()
        for key in (*held, *due):
            first, count, _ = parse_message_key(key)
            covered.update(range(first, first + count))
        done = done or b""
        total = int(reserved or 0)
        jobs = []
        # bit k of the bitmap is bit 7 - k % 8 of byte k // 8; skip the leading all-done bytes
        for index in range(len(done) - len(done.lstrip(b"\xff")), (total + 7) // 8):
            byte = done[index] if index < len(done) else 0
            if byte == 0xFF:
                continue
            for job in range(index * 8, min(index * 8 + 8, total)):
                if not byte & (0x80 >> (job & 7)) and job not in covered:
                    jobs.append(job)
        return jobs

    @retrying
    def job_owners(self, run_id: str, jobs: Sequence[int]) -> dict[int, str]:
        """The key of the one message that may run each of ``jobs`` that has one: its pending
        retry or rerun (``optio:run:<id>:owners``). A job sent again must go in that message:
        any other skips it."""
        if not jobs:
            return {}
        owners = self.client.hmget(owners_key(run_id), [str(job) for job in jobs])
        return {job: key for job, key in zip(jobs, owners, strict=True) if key}

    def confirm_enqueued(self, run_id: str, count: int, messages: Sequence[str] = ()) -> int:
        """The ``messages`` are in the broker; ``count`` newly reserved jobs among them are
        counted as enqueued (publishes). Returns the run's enqueued count."""
        return self.confirm_sent(run_id, count, messages)[0]

    @retrying
    def confirm_sent(
        self, run_id: str, count: int, messages: Sequence[str] = ()
    ) -> tuple[int, str]:
        """As confirm_enqueued; returns the run's enqueued count and its status ("" when the
        run does not exist): a paced tick stops sending when the run is no longer running."""
        enqueued, status = self._run("confirm_enqueued", run_id, [run_id, count, *messages])
        return int(enqueued), status.decode() if isinstance(status, bytes) else status

    @retrying
    def claim_ahead(
        self,
        run_id: str,
        lookahead_ms: int,
        *,
        unconfirmed_ms: int = 5000,
        most: int = 100_000,
        now_ms: int | None = None,
    ) -> Ahead:
        """The retries and throttle reruns of ``run_id`` that fall due within ``lookahead_ms``,
        taken for a paced tick to send at their due times (claim_ahead.lua)."""
        now, *flat = self._run(
            "claim_ahead", run_id, [run_id, now_arg(now_ms), lookahead_ms, unconfirmed_ms, most]
        )
        due = [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]
        return Ahead(int(now), due)

    @retrying
    def claim_lost(
        self,
        run_id: str,
        *,
        most: int,
        unconfirmed_ms: int = 5000,
        max_deliveries: int | None = None,
        now_ms: int | None = None,
    ) -> Lost:
        """Messages to send again now: expired leases, due retries, unconfirmed reservations
        (see claim_lost.lua), and after a pause the messages parked during it. A message whose
        lease expired for the ``max_deliveries``-th time (default OPTIO_MAX_DELIVERIES) is
        given up instead: its jobs not done yet fail for good."""
        limit = self.settings.max_deliveries if max_deliveries is None else max_deliveries
        leases, parked, given_up, failed, *keys = self._run(
            "claim_lost",
            run_id,
            [run_id, now_arg(now_ms), unconfirmed_ms, most, limit],
        )
        return Lost(int(leases), int(parked), keys, int(given_up), int(failed))
