"""Every name optio shares between processes: Redis keys, the channel, Celery tasks and queues.

Each is derived from one namespace, so changing it moves the whole deployment (as dramatiq
derives its keys from one ``namespace``). Nothing else in optio spells these strings.

Keys (all in the ``REDIS_URL`` database, which the Celery broker shares):

``optio:active_runs``
    zset: run id -> startedAt ms of every run that has not ended (running or paused): several
    runs run at once, each at its own rate, within the deployment's ceilings
    (``OPTIO_MAX_RATE``, ``OPTIO_MAX_IN_FLIGHT``; ``optio/worker/shares.py``). (Until version
    0.4 one run at a time, as the string ``optio:active``: the tick moves such a key over.)
``optio:current``
    string: id of the run clients are shown by default: the newest active run, else the last
    one that ran. A run's start makes it current; when the current run ends, the next tick
    makes the newest active run current (``follow_newest.lua``).
``optio:last_tick``
    string: ms timestamp (Redis clock) of the last scheduler tick, read by ``/api/health``.
``optio:server``
    string: ``run_id`` of the Redis server the last tick ran on (``INFO server``). Another one
    means a failover or a restart: the tick then sends the active run's waiting jobs again, as
    the broker may have lost messages that a worker had taken but not yet recorded.
``optio:runs``
    zset: run id -> startedAt ms; the run history, newest last. Holds the newest
    ``OPTIO_KEEP_RUNS`` runs: starting one more deletes the oldest run's keys.
``optio:metrics``
    hash: totals over all runs for /metrics, written by the counting scripts: processed_total,
    failed_total, retried_total, throttled_total; the job run-time histogram duration_count,
    duration_sum and duration_bucket:<i> (jobs in bucket i of redis_state.DURATION_BUCKETS).
``optio:throttles``
    hash: the adaptive rates of the downstreams that jobs named when they raised
    ``Throttle(key=...)`` (``optio/worker/shares.py``): for key K, ``K|rate`` (jobs/min over all
    the runs calling it), ``K|at`` (ms of its last cut), ``K|top`` (the rate refused then),
    ``K|last`` (ms of its last throttle), ``K|raised`` (ms it last climbed), ``K|going``
    (jobs/min its runs were going at, by the last tick) and ``K|late`` (throttles late in the
    last cut's window: many mean the rate is still far above the limit). Runs calling K share
    its rate by weight; a key whose rate climbed back above what its runs ask is removed.
``optio:webhooks``
    zset: run id -> ms its completion webhook is due (the outbox; ``optio/webhooks.py``).
    A run is added when it ends with a webhook to deliver; a delivery in progress has the
    deadline of its claim.
``optio:heartbeats:<kind>``
    zset, kind ``worker`` or ``beat``: process name -> ms its heartbeat runs out (heartbeats.py).
``optio:run:<id>``
    hash: the run's state, fields below.
``optio:run:<id>:done``
    bitmap: bit k set once job k is counted (processed or failed): exactly once per job id.
``optio:run:<id>:results``
    hash: job id -> the job's record ``<finishedAt ms>|<ms>|<result as JSON>`` (its outcome:
    optio/store/outcomes.py), written when it is counted, processed or failed for good.
``optio:run:<id>:errors``
    hash: job id -> error of a job that failed for good.
``optio:run:<id>:attempts``
    hash: job id -> failed attempts so far; ``t<job id>`` -> times the job was throttled;
    ``expired:<message key>`` -> times the lease on that message ran out (its worker died, froze
    or lost Redis mid-message): at ``OPTIO_MAX_DELIVERIES`` the message is given up and its jobs
    not done yet fail for good (the field is then removed).
``optio:run:<id>:msgs``
    zset: message key -> deadline ms; when it passes, the tick sends the message (again).
    Present only while a message is unconfirmed, leased, waiting for its retry time, or parked:
    a message a worker got while the run was paused has the deadline ``PARKED`` (never due)
    until the run resumes; then the tick sends it.
``optio:run:<id>:holders``
    hash: message key -> ``"token:jobs left"`` of the worker that leases the message.
``optio:run:<id>:owners``
    hash: job id -> key of the one message that may run the job now: its retry (``job:1:rN``),
    throttle rerun (``job:1:r-N``) or retry-failed rerun (``job:1:r-1``), set by the script that
    schedules that message (fail_job, throttle_job, retry_failed) and removed when the job is
    counted by it or fails for good. A lease of any other message (the job's range message
    sent again, parked or re-sent after its lease expired; an older retry) skips the job: one
    live message per job. Empty while no job waits for such a message, so leases then pay one
    ``EXISTS`` per message for it.
``optio:run:<id>:items``
    hash: chunk number n -> JSON array of the items of jobs n·1000 .. n·1000+999, for a run
    started with items (``optio/store/items.py``); absent for a run of plain job ids. The web
    process writes it while the upload streams, before the run starts; until then it expires
    after ``items.UPLOAD_TTL_SECONDS``, so an upload cut off by a dying web process leaves
    nothing behind for long.

The nine ``optio:run:<id>…`` keys are what :func:`run_keys` lists. Once a run is not running
they expire after ``OPTIO_RUN_TTL`` (results: ``OPTIO_RESULT_TTL``). Every Lua script receives
the same key list, :func:`script_keys`: the run's nine keys in that order, then active, current,
last_tick, runs, webhooks (the outbox), metrics and throttles; ``optio/store/lua/_prelude.lua``
binds each to a named local. No script uses the server and heartbeats keys (Python reads and
writes them).
A message key is ``first:count`` (jobs first .. first+count-1) or ``job:1:rN`` (retry N of a
job); see :func:`message_key`.
Celery's own keys (the queues below, ``unacked*``, ``_kombu.*``) live in the same database.

Fields of the run hash ``optio:run:<id>`` (the one full list; the Lua prelude points here):

runId
    the run's id.
status
    ``running`` | ``paused`` | ``completed`` | ``stopped``. The published state's ``running`` is
    not stored: ``state_json`` in ``_prelude.lua`` derives it from status (true while running or
    paused: the run has not ended).
seq
    grows by one with every published change of the run (clients drop older states).
pausedAt, pausedMs
    when the current pause began (absent unless paused); total ms the run was not running
    before now: earlier pauses, and the time between its end and a retry-failed. Rates and
    ETAs leave this time out.
retried
    jobs put back by retry-failed over the run's life.
hook, webhook, webhookError
    ``hook`` is ``1`` when the run was started with a webhook configured; ``webhook`` is the
    delivery's outcome once the run ended: ``pending``, ``delivered`` or ``failed`` (why:
    ``webhookError``).
xTotal, yMinute
    x (jobs in the run) and y (jobs per minute).
reserved
    jobs handed to the tick (reserved, maybe not yet in the broker).
enqueued
    jobs whose messages are confirmed in the broker.
processed, failed
    jobs counted done, and failed for good.
leasedJobs
    jobs of leased messages not handled yet (they are not waiting in the broker).
startedAt, finishedAt
    ms since the epoch, Redis clock; finishedAt absent while running.
anchorMs, anchorCount
    the schedule: anchorCount jobs due at anchorMs, then rateNow per minute.
rateNow
    the effective rate, jobs/min: y, unless jobs throttled (optio.Throttle); then cut at most
    once per OPTIO_THROTTLE_WINDOW: first by OPTIO_THROTTLE_DECREASE, later to 95 % of the
    rate, or of what the downstream took since the last cut when it kept refusing (never deeper
    than OPTIO_THROTTLE_DECREASE at once); back up per window without a throttle: halfway to
    rateTop, then probing above it by steps that double up to 8 % of it, each at most y/20
    (AIMD). Never above y.
throttled, throttleAt, throttleLast, raisedAt, throttleNext
    throttles so far; when the rate was last cut, a job last throttled, the rate last raised;
    the earliest place of the next throttled job when the ticks do not reserve ahead (a
    throttled job takes the slot of the next new job; a job's own retry_after is counted from
    its place).
nextStart
    ms: the earliest start of the run's next paced job (start_slot.lua; while throttled, up
    to 6,000/min).
lateThrottles, processedAtCut, rateTop
    throttles late in the last cut's window; processed at the last cut; the rate refused at
    the last cut (the rate climbs back to it quickly, then probes above).
rateEnqueued, rateAt, rateCount
    jobs/min reserved over the last window (~3 s), its start and count.
heldBack, heldAt, heldBy
    ``1`` when the schedule was held back within the last window, and when; heldBy says what
    held it (published as ``heldBackBy``): ``workers``, ``cap``, ``scheduler``, ``ceiling``
    or ``inFlight`` (reserve_due.lua).
sentAt
    ms (Redis clock) when messages of the run were last confirmed as published; the
    lost-message repair (``optio/worker/tick.py``) waits a margin after it.
weight, maxInFlight
    the run's weight in the shares of a binding ceiling (default 1); most of its jobs out at
    once (reserved and not counted: in the broker, running, or waiting for a retry; 0: no
    bound). Set at its start.
shareRate
    jobs/min: the share of ``OPTIO_MAX_RATE`` the last tick granted the run, while that is below
    its own rate (absent otherwise; ``optio/worker/shares.py``). The schedule goes at the lower
    of rateNow and it.
deadline, projectedFinish
    a deadline run (started with a deadline instead of y): ms by which it is to finish; its
    y is derived every tick from the jobs not reserved and the time left (reserve_due.lua),
    and projectedFinish (ms) is when it finishes at the rate it gets. The state's ``onTrack``
    compares the two.
items
    ``1`` when the run was started with items (its jobs' items are in the items hash; its x
    cannot change); absent otherwise.
"""

from __future__ import annotations

#: Prefix of every Redis key and of the channel, task and queue names.
NAMESPACE = "optio"

#: Redis pub/sub channel carrying the run state of the current run (the run clients are shown by
#: default; external subscribers rely on its name).
CHANNEL = f"{NAMESPACE}:progress"
#: Redis pub/sub channel carrying the states of the other runs: each state is published once,
#: on one of the two (the web's relay listens to both).
STATES_CHANNEL = f"{NAMESPACE}:states"

#: Celery task names.
TICK_TASK = f"{NAMESPACE}.tick"
PROCESS_JOBS_TASK = f"{NAMESPACE}.process_jobs"

#: Celery queues: job batches, and ticks sent as messages (the web's kick at start).
JOBS_QUEUE = f"{NAMESPACE}.jobs"
TICKS_QUEUE = f"{NAMESPACE}.ticks"

#: Name of the tick's entry in the beat schedule (beat logs it with every tick it fires).
TICK_ENTRY = f"{NAMESPACE}-tick"

ACTIVE_KEY = f"{NAMESPACE}:active_runs"
#: The one active run's id before several could run at once (a string): moved to ACTIVE_KEY.
LEGACY_ACTIVE_KEY = f"{NAMESPACE}:active"
CURRENT_KEY = f"{NAMESPACE}:current"
LAST_TICK_KEY = f"{NAMESPACE}:last_tick"
SERVER_KEY = f"{NAMESPACE}:server"
RUNS_KEY = f"{NAMESPACE}:runs"
OUTBOX_KEY = f"{NAMESPACE}:webhooks"
THROTTLES_KEY = f"{NAMESPACE}:throttles"
METRICS_KEY = f"{NAMESPACE}:metrics"

#: Name prefix of the Redis connection that shows a lease holder is alive (``CLIENT SETNAME``
#: by a process that announces itself, see optio/worker/leases.py): ``optio-holder-<holder id>``.
HOLDER_PREFIX = f"{NAMESPACE}-holder-"

#: kombu's Redis transport: the hash of messages delivered and not yet acknowledged.
KOMBU_UNACKED = "unacked"

#: Retry number of a message put back by retry-failed (``job:1:r-1``): its job runs again with
#: fresh attempts, and its own retries are numbered 1, 2, ... as usual.
RERUN = -1


def heartbeats_key(kind: str) -> str:
    return f"{NAMESPACE}:heartbeats:{kind}"


def run_key(run_id: str) -> str:
    return f"{NAMESPACE}:run:{run_id}"


def done_key(run_id: str) -> str:
    return f"{run_key(run_id)}:done"


def results_key(run_id: str) -> str:
    return f"{run_key(run_id)}:results"


def errors_key(run_id: str) -> str:
    return f"{run_key(run_id)}:errors"


def attempts_key(run_id: str) -> str:
    return f"{run_key(run_id)}:attempts"


def messages_key(run_id: str) -> str:
    return f"{run_key(run_id)}:msgs"


def holders_key(run_id: str) -> str:
    return f"{run_key(run_id)}:holders"


def owners_key(run_id: str) -> str:
    return f"{run_key(run_id)}:owners"


def items_key(run_id: str) -> str:
    return f"{run_key(run_id)}:items"


def run_keys(run_id: str) -> list[str]:
    """The keys of one run, in the order every script takes them first (see script_keys)."""
    return [
        run_key(run_id),
        done_key(run_id),
        results_key(run_id),
        errors_key(run_id),
        attempts_key(run_id),
        messages_key(run_id),
        holders_key(run_id),
        owners_key(run_id),
        items_key(run_id),
    ]


#: The run id of the key list of a script that works on no run (claim_webhooks): no run has it,
#: and such a script touches none of the run's keys.
NO_RUN = ""


def script_keys(run_id: str) -> list[str]:
    """The keys every Lua script receives, whatever it touches: the run's (:func:`run_keys`),
    then the shared ones. ``_prelude.lua`` binds them, in this order, to locals named as their
    function or constant here, in lower case (``run_key`` .. ``items_key``, ``active_key`` ..
    ``throttles_key``); a key added here is added there too, at the same place."""
    return [
        *run_keys(run_id),
        ACTIVE_KEY,
        CURRENT_KEY,
        LAST_TICK_KEY,
        RUNS_KEY,
        OUTBOX_KEY,
        METRICS_KEY,
        THROTTLES_KEY,
    ]


def message_key(first: int, count: int, retry: int = 0) -> str:
    """Name of the message carrying jobs first .. first+count-1 (retry N of a job: ":rN")."""
    return f"{first}:{count}:r{retry}" if retry else f"{first}:{count}"


def parse_message_key(key: str) -> tuple[int, int, int]:
    """(first, count, retry) of a message key."""
    first, count, *rest = key.split(":")
    return int(first), int(count), int(rest[0][1:]) if rest else 0
