"""GET /metrics against a system of the test's own: parsed with prometheus_client's parser and
checked against GET /api/status and the job executions, and with its Redis gone. (A web process
alone: the token, and the names the Grafana dashboard uses: tests/processes/test_metrics.py.)"""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from optio.testing import (
    Watcher,
    executions,
    start,
    status,
    wait_finished,
    wait_for,
    wait_processed,
)


def scrape(system, **kw) -> dict[str, float]:
    """Every sample as "name{label=value,...}" -> value."""
    response = requests.get(system.base + "/metrics", timeout=5, **kw)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_metrics_follow_a_run_and_match_the_status(fault_system):
    s = fault_system
    s.start_all()
    with Watcher(s.base):  # a Socket.IO client, counted by the metrics
        before = scrape(s)
        x = 120
        run_id = start(s, x, 6000)
        wait_processed(s, 20, 30)
        low = status(s)["processed"]
        during = scrape(s)
        high = status(s)["processed"]
        assert low <= during["optio_run_jobs{state=processed}"] <= high
        assert during["optio_run_running"] == 1
        assert during[f"optio_run_info{{run_id={run_id},status=running}}"] == 1
        assert during["optio_run_target_rate"] == 6000 == during["optio_run_rate"]

        final = wait_finished(s, run_id, 60)
        ran = sum(executions(s, run_id).values())
        # the relay may still be catching up with the last state: wait for its count, not a time
        after = wait_for(
            lambda: (m := scrape(s))["optio_relay_states_received_total"] > 0 and m, 10, "relay"
        )
    assert after["optio_run_jobs{state=processed}"] == final["processed"] == x
    assert after["optio_run_jobs{state=enqueued}"] == final["enqueued"]
    assert after["optio_run_running"] == 0
    grew = after["optio_jobs_processed_total"] - before.get("optio_jobs_processed_total", 0)
    assert grew == x
    count = "optio_job_duration_seconds_count"
    assert after[count] - before.get(count, 0) == ran == x
    assert after["optio_job_duration_seconds_bucket{le=+Inf}"] == after[count]
    assert after["optio_workers_alive"] >= 1 and after["optio_beats_alive"] >= 1
    assert 0 <= after["optio_last_tick_age_seconds"] < 10
    assert after["optio_redis_up"] == 1
    assert after["optio_socketio_clients"] >= 1  # the watcher, until it closed
    assert after["optio_relay_emits_total"] >= 1
    assert "process_resident_memory_bytes" in after


def test_metrics_say_when_redis_is_down(fault_system):
    s = fault_system
    s.start_web()
    assert scrape(s)["optio_redis_up"] == 1
    s.server.stop()
    down = scrape(s)
    assert down["optio_redis_up"] == 0 and "optio_socketio_clients" in down
