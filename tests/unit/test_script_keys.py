"""Every Lua script receives one key list, names.script_keys, and reads it only by name.

What the verbs send is read on the session's real redis-server with MONITOR: each
``EVALSHA sha numkeys key ... arg ...`` it receives, whichever way the verb sent it (a plain
script call, or the counting scripts' pipeline with WAIT). Each script's keys must be exactly
script_keys of the run the verb works on (names.NO_RUN for claim_webhooks, which works on none).
The keys the scripts' own calls touch are read there too: each key of a run that a script
touches is one of run_keys (so it expires, and is deleted, with the run). The texts are checked
too: only the prelude's binding, and its guard, mention KEYS, and the binding's local names follow
script_keys' order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import redis

from optio import names
from optio.config import Settings
from optio.names import NO_RUN, run_keys, script_keys
from optio.redis_state import RunStore
from optio.store.scripts import LUA_DIR, script_names, script_text

#: Echoed after a verb: the monitor reads commands up to it.
MARKER = "optio-test-script-keys-end"

#: One quoted argument of a MONITOR line ("\"" and "\\" escaped inside).
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')

#: Scripts that work on no run: they receive script_keys(NO_RUN).
NO_RUN_SCRIPTS = {"claim_webhooks"}

#: The prelude's binding of the keys to named locals.
BINDING = re.compile(r"local ([\w,\s]+?) = unpack\(KEYS\)")

#: The prelude's check of the key count, just before the binding.
GUARD = re.compile(r"if #KEYS ~= OPTIO_KEY_COUNT then\n.*?\nend\n", re.DOTALL)


#: Prefix of every key of a run (names.run_key and the keys named after it).
RUN_PREFIX = names.run_key("")


@dataclass
class Sent:
    """What the server received meanwhile: the EVALSHA commands, in order, as (sha, keys), and
    the keys of runs that the scripts' own calls touched."""

    evalshas: list[tuple[str, list[str]]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)


@contextmanager
def evalshas(client: redis.Redis) -> Iterator[Sent]:
    """What the server receives meanwhile (MONITOR): see Sent."""
    sent = Sent()
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    with client.monitor() as monitor:
        yield sent
        client.echo(MARKER)
        while True:
            line = monitor.connection.read_response()
            if isinstance(line, bytes):
                line = line.decode()
            # "<time> [<db> <client>] "CMD" "arg" ...": Lua's own calls are never EVALSHA; their
            # client is "lua". Other databases are other tests' apps (their relays read states).
            client, rest = line.split("] ", 1)
            words = QUOTED.findall(rest)
            if words == ["ECHO", MARKER]:
                return
            if client.split("[", 1)[1].split(" ", 1)[0] != db:
                continue
            if words[0].upper() == "EVALSHA":
                sent.evalshas.append((words[1], words[3 : 3 + int(words[2])]))
            elif client.endswith(" lua"):
                sent.touched.update(w for w in words[1:] if w.startswith(RUN_PREFIX))


def sent_scripts(
    store: RunStore, verbs: Callable[[], object], touched: set[str] | None = None
) -> list[tuple[str, list[str]]]:
    """(script name, keys) of each script ``verbs()`` runs on the store's server; the keys of
    runs that the scripts touched are added to ``touched``."""
    by_sha = {
        hashlib.sha1(script_text(name, store.settings).encode()).hexdigest(): name
        for name in script_names()
    }
    with evalshas(store.client) as sent:
        verbs()
    if touched is not None:
        touched.update(sent.touched)
    return [(by_sha[sha], keys) for sha, keys in sent.evalshas]


def _leased(store: RunStore, token: str = "worker-1") -> tuple[str, str]:
    """A run of 4 jobs whose first message (jobs 0 and 1) ``token`` leases: (run id, key)."""
    run_id = store.runs.start_run(4, 600)
    store.schedule.reserve_due(
        run_id, 1.0, batch=2, now_ms=store.schedule.server_time_ms() + 10_000
    )
    store.leases.lease_message(run_id, "0:2", 0, 2, token, 10_000)
    return run_id, "0:2"


def _retried(store: RunStore) -> str:
    run_id = store.runs.start_run(1, 60)
    store.counting.fail_job(run_id, 0, "boom", attempts=1, backoff_s=0)
    store.runs.retry_failed(run_id)
    return run_id


def _confirmed(store: RunStore) -> str:
    run_id = store.runs.start_run(4, 600)
    due = store.schedule.reserve_due(run_id, 1.0, now_ms=store.schedule.server_time_ms() + 10_000)
    store.schedule.confirm_enqueued(run_id, due.count, due.messages)
    return run_id


def _processed(store: RunStore) -> str:
    run_id, key = _leased(store)
    store.counting.mark_processed(
        run_id, {0: "a", 1: "b"}, message=key, token="worker-1", handled=2, release=True
    )
    return run_id


def _renewed(store: RunStore) -> str:
    run_id, key = _leased(store)
    store.leases.renew_leases(run_id, {key: "worker-1"}, 10_000)
    return run_id


def _renewed_by_owner(store: RunStore) -> str:
    run_id, key = _leased(store)
    store.leases.renew_owned(run_id, [(key, "worker")], 10_000)
    return run_id


def _webhook_recorded(store: RunStore) -> str:
    run_id = store.runs.start_run(4, 600)
    store.runs.stop_run()
    store.outbox.claim_webhooks(1000)
    store.outbox.record_webhook(run_id, "delivered")
    return run_id


def _started_then(verb: Callable[[RunStore, str], object]) -> Callable[[RunStore], str]:
    def exercise(store: RunStore) -> str:
        run_id = store.runs.start_run(4, 600)
        verb(store, run_id)
        return run_id

    return exercise


#: For each script, verbs that run it (and others) on one run; they return that run's id.
EXERCISE: dict[str, Callable[[RunStore], str]] = {
    "start_run": _started_then(lambda store, run_id: None),
    "read_state": _started_then(lambda store, run_id: store.runs.run_state(run_id)),
    "read_outcomes": _started_then(lambda store, run_id: store.outcomes.read(run_id, 0, 4)),
    "pause_run": _started_then(lambda store, run_id: store.runs.pause_run()),
    "resume_run": _started_then(lambda store, _: (store.runs.pause_run(), store.runs.resume_run())),
    "update_run": _started_then(lambda store, run_id: store.runs.update_run(x=6, y=120)),
    "stop_run": _started_then(lambda store, run_id: store.runs.stop_run()),
    "retry_failed": _retried,
    "reserve_due": _started_then(lambda store, run_id: store.schedule.reserve_due(run_id, 1.0)),
    "confirm_enqueued": _confirmed,
    "claim_lost": _started_then(lambda store, run_id: store.schedule.claim_lost(run_id, most=5)),
    "claim_ahead": _started_then(lambda store, run_id: store.schedule.claim_ahead(run_id, 500)),
    "follow_newest": _started_then(lambda store, run_id: store.schedule.follow_newest(run_id)),
    "lease_message": lambda store: _leased(store)[0],
    "renew_leases": _renewed,
    "renew_owned": _renewed_by_owner,
    "mark_processed": _processed,
    "fail_job": _started_then(
        lambda store, run_id: store.counting.fail_job(run_id, 1, "boom", attempts=3, backoff_s=1)
    ),
    "throttle_job": _started_then(lambda store, run_id: store.counting.throttle_job(run_id, 2)),
    "start_slot": _started_then(lambda store, run_id: store.counting.start_slot(run_id, 0.02)),
    "claim_webhooks": _webhook_recorded,
    "record_webhook": _webhook_recorded,
}


def assert_script_keys(calls: list[tuple[str, list[str]]], run_id: str) -> None:
    for name, keys in calls:
        expected = script_keys(NO_RUN if name in NO_RUN_SCRIPTS else run_id)
        assert keys == expected, f"{name} got the keys {keys}, not script_keys: {expected}"


@pytest.mark.parametrize("name", script_names())
def test_each_verb_passes_script_keys(store, name):
    assert name in EXERCISE, f"add to EXERCISE how a verb runs {name}.lua"
    run_id = None

    def verbs() -> None:
        nonlocal run_id
        run_id = EXERCISE[name](store)

    touched: set[str] = set()
    calls = sent_scripts(store, verbs, touched)
    assert name in [called for called, _ in calls], f"the verbs never ran {name}.lua"
    assert_script_keys(calls, run_id)
    # a key of the run that is not in run_keys would outlive the run (expiry, pruning)
    assert touched <= set(run_keys(run_id)), touched - set(run_keys(run_id))


def test_counting_with_replica_wait_passes_script_keys(client):
    """The counting scripts' other path: EVALSHA and WAIT pipelined (replicas.py)."""
    store = RunStore(client, Settings(redis_min_replicas=1, redis_wait_ms=20))
    run_id, key = _leased(store)
    calls = sent_scripts(
        store,
        lambda: store.counting.mark_processed(
            run_id, {0: "a"}, message=key, token="worker-1", handled=1
        ),
    )
    assert store.counting.replicas.waited == 1  # it went through the pipeline
    assert [name for name, _ in calls] == ["mark_processed"]
    assert_script_keys(calls, run_id)


def test_a_script_refuses_another_key_list(store):
    """The prelude's guard: the old lists (the run's keys alone, or a few more) are refused."""
    run_id = store.runs.start_run(4, 600)
    lease = store.leases._scripts["lease_message"]
    for keys in (run_keys(run_id), [*script_keys(run_id), "optio:extra"]):
        with pytest.raises(redis.ResponseError, match="keys of names.script_keys"):
            lease(keys=keys, args=["0:1", 0, 1, "worker-1", 10_000, "", ""])
    assert store.client.hget(names.run_key(run_id), "leasedJobs") == "0"


def test_only_the_prelude_binding_reads_keys():
    for name in script_names():
        text = (LUA_DIR / f"{name}.lua").read_text()
        assert not re.search(r"\bKEYS\b", text), f"{name}.lua reads KEYS: use the named locals"
    prelude = (LUA_DIR / "_prelude.lua").read_text()
    assert len(BINDING.findall(prelude)) == 1 and len(GUARD.findall(prelude)) == 1
    rest = GUARD.sub("", BINDING.sub("", prelude))
    assert not re.search(r"\bKEYS\b", rest), "only the binding and its guard read KEYS"
    # bound after every helper: a helper gets the keys it touches as parameters
    assert prelude.rstrip().endswith("unpack(KEYS)")


def test_the_binding_follows_script_keys():
    """Local i of the binding is named as the names.py function or constant of key i."""
    binding = BINDING.search((LUA_DIR / "_prelude.lua").read_text())
    local_names = [word.strip() for word in binding.group(1).split(",")]
    run_id = "0123456789ab"
    named = []
    for local in local_names:
        key = getattr(names, local, None) or getattr(names, local.upper())
        named.append(key(run_id) if callable(key) else key)
    assert named == script_keys(run_id)
    text = script_text("read_state", Settings())
    assert f"local OPTIO_KEY_COUNT = {len(script_keys(run_id))}\n" in text
