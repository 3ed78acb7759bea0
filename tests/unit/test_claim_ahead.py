"""claim_ahead.lua: a paced tick takes the retries and throttle reruns due within its look-ahead,
to send each at its due time (issue 20: reruns sent a tick's worth at once against a downstream
allowing little burst were refused again). Against the unit tier's real redis-server."""

from __future__ import annotations

from optio.names import messages_key
from optio.redis_state import RunStore

T0 = 1_800_000_000_000


def scores(store: RunStore, run_id: str) -> dict[str, float]:
    return dict(store.client.zrange(messages_key(run_id), 0, -1, withscores=True))


def test_reruns_and_retries_due_within_the_look_ahead_are_taken_with_their_due_times(store):
    run_id = store.runs.start_run(100, 600, now_ms=T0)
    key = messages_key(run_id)
    store.client.zadd(
        key,
        {
            "3:1:r-2": T0 + 100,  # a throttle rerun due in 100 ms
            "5:1:r1": T0 + 400,  # a retry due in 400 ms
            "7:1:r-2": T0 + 900,  # beyond the look-ahead
            "10:5": T0 + 200,  # a reserved message waiting for its confirmation: not a rerun
            "8:1:r1": T0 - 10,  # overdue: claim_lost's
        },
    )
    ahead = store.schedule.claim_ahead(run_id, 500, unconfirmed_ms=5000, now_ms=T0)
    assert ahead.now_ms == T0
    assert ahead.due == [("3:1:r-2", T0 + 100), ("5:1:r1", T0 + 400)]
    after = scores(store, run_id)
    # taken: unconfirmed until their due time + 5 s (a tick that dies leaves them to claim_lost)
    assert after["3:1:r-2"] == T0 + 100 + 5000 and after["5:1:r1"] == T0 + 400 + 5000
    assert after["7:1:r-2"] == T0 + 900 and after["10:5"] == T0 + 200 and after["8:1:r1"] == T0 - 10
    # taken once: the next tick does not take them again
    assert store.schedule.claim_ahead(run_id, 500, now_ms=T0 + 50).due == []


def test_a_leased_rerun_and_a_paused_run_give_nothing(store):
    run_id = store.runs.start_run(100, 600, now_ms=T0)
    store.client.zadd(messages_key(run_id), {"3:1:r-2": T0 + 100})
    store.leases.lease_message(run_id, "3:1:r-2", 3, 1, "w1", 10_000, now_ms=T0)
    assert store.schedule.claim_ahead(run_id, 20_000, now_ms=T0).due == []
    store.runs.pause_run()
    store.client.zadd(messages_key(run_id), {"4:1:r1": T0 + 100})
    assert store.schedule.claim_ahead(run_id, 500, now_ms=T0).due == []
