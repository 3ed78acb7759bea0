"""``GET /metrics``: Prometheus metrics, in the official client library's exposition format.

Figures about runs, jobs, workers and ticks come from Redis at each scrape, so every web process
answers the same: the current run's state, totals over all runs and the job run-time histogram
that the counting Lua scripts keep in ``optio:metrics`` (no extra Redis call per job), and the
heartbeats. Each web process adds its own: Socket.IO clients, relay counters, and the library's
process and Python metrics. Behind the API token when OPTIO_PROTECT_READS is set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import redis
from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from optio.names import METRICS_KEY
from optio.store import heartbeats
from optio.store.counting import DURATION_BUCKETS
from optio.webapp import security
from optio.webapp.operations import READ_ERRORS, TEXT, Answer, operation
from optio.webapp.services import Services

log = logging.getLogger("optio.webapp.metrics")

#: Counters over all runs kept in the metrics hash: (field, metric name without _total, help).
TOTALS = (
    ("processed_total", "optio_jobs_processed", "Jobs counted as processed, over all runs."),
    ("failed_total", "optio_jobs_failed", "Jobs that failed for good, over all runs."),
    ("retried_total", "optio_jobs_retried", "Retries scheduled for jobs that raised."),
    ("throttled_total", "optio_jobs_throttled", "Jobs that raised optio.Throttle."),
)


class RedisCollector(Collector):
    """The figures every web process reads alike from Redis, at each scrape."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("optio_redis_up", "1 when Redis answered this scrape.")
        try:
            figures = list(self._from_redis())
        except redis.RedisError as exc:
            log.warning("[metrics] Redis did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures

    def _active_runs(self) -> Iterator[Metric]:
        active = self.services.store.runs.active_states()
        yield _gauge(
            "optio_active_runs", "Runs that have not ended (running or paused).", len(active)
        )
        per_run = GaugeMetricFamily(
            "optio_active_run_jobs",
            "Jobs of each active run by state.",
            labels=["run_id", "state"],
        )
        for run in active:
            for name in ("enqueued", "processed", "failed"):
                per_run.add_metric([run["runId"], name], run[name])
        yield per_run

    def _from_redis(self) -> Iterator[Metric]:
        store = self.services.store
        state = self.services.current_state()
        totals = store.client.hgetall(METRICS_KEY)
        now = store.schedule.server_time_ms()
        last_tick = store.schedule.last_tick_ms()
        workers = heartbeats.alive(store.client, heartbeats.WORKER)
        beats = heartbeats.alive(store.client, heartbeats.BEAT)

        jobs = GaugeMetricFamily(
            "optio_run_jobs", "Jobs of the current (or last) run by state.", labels=["state"]
        )
        for name in ("enqueued", "processed", "failed"):
            jobs.add_metric([name], state[name])
        yield jobs
        yield _gauge(
            "optio_run_target_rate", "Target rate y of the run, jobs/min.", state["yMinute"]
        )
        yield _gauge(
            "optio_run_rate",
            "Effective rate of the run (y unless throttles cut it), jobs/min.",
            state["rateNow"] if state["running"] else 0,
        )
        yield _gauge(
            "optio_run_enqueued_rate",
            "Jobs/min the scheduler enqueued over the last ~3 s.",
            state["rateEnqueued"] if state["running"] else 0,
        )
        yield _gauge("optio_run_running", "1 while the run has not ended.", int(state["running"]))
        yield _gauge("optio_run_throttled", "Throttle signals of the run.", state["throttled"])
        info = GaugeMetricFamily(
            "optio_run_info", "The current run: its id and status.", labels=["run_id", "status"]
        )
        info.add_metric([state["runId"] or "", state["status"]], 1)
        yield info
        yield from self._active_runs()

        for field, name, help_text in TOTALS:
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], int(totals.get(field, 0)))
            yield counter

        buckets, cumulative = [], 0
        bounds = [*map(repr, DURATION_BUCKETS), "+Inf"]
        for i, bound in enumerate(bounds):
            cumulative += int(totals.get(f"duration_bucket:{i}", 0))
            buckets.append((bound, cumulative))
        histogram = HistogramMetricFamily(
            "optio_job_duration_seconds", "Run time of job executions, from all workers."
        )
        histogram.add_metric([], buckets, sum_value=float(totals.get("duration_sum", 0)))
        yield histogram

        yield _gauge("optio_workers_alive", "Workers with a live heartbeat.", len(workers))
        yield _gauge("optio_beats_alive", "Beats with a live heartbeat.", len(beats))
        yield _gauge(
            "optio_last_tick_age_seconds",
            "Seconds since the last scheduler tick (NaN before the first).",
            math.nan if last_tick is None else max(0.0, (now - last_tick) / 1000),
        )


class WebCollector(Collector):
    """This web process's own figures."""

    def __init__(self, services: Services, server) -> None:
        self.services = services
        self.server = server

    def collect(self) -> Iterator[Metric]:
        clients = sum(1 for _ in self.server.manager.get_participants("/", None))
        yield _gauge("optio_socketio_clients", "Socket.IO clients connected here.", clients)
        relay = self.services.relay
        emits = CounterMetricFamily("optio_relay_emits", "progress events emitted to clients.")
        emits.add_metric([], relay.emits)
        yield emits
        received = CounterMetricFamily(
            "optio_relay_states_received", "States received on the progress channel."
        )
        received.add_metric([], relay.received)
        yield received
        ignored = CounterMetricFamily(
            "optio_relay_messages_ignored",
            "Messages on the progress channel that are not a run's state, ignored.",
        )
        ignored.add_metric([], relay.ignored)
        yield ignored
        reads = CounterMetricFamily(
            "optio_relay_store_reads",
            "Reads of the stored state: at each subscription, and for a state received on the "
            "channel that is not the next one of the run held.",
        )
        reads.add_metric([], relay.store_reads)
        yield reads


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, help_text)
    gauge.add_metric([], value)
    return gauge


def register(app: Flask, socketio) -> None:
    """Serve ``GET /metrics`` from a registry of this app's own."""
    services: Services = app.extensions["optio"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(services))
    registry.register(WebCollector(services, socketio.server))
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)

    @app.get("/metrics")
    @operation(
        "metrics",
        "Prometheus metrics",
        "Runs, job totals and run times, heartbeats, tick age, and this web process's Socket.IO "
        "and relay counters, in the Prometheus text format. Needs the token with "
        "OPTIO_PROTECT_READS.",
        tag="system",
        answers={200: Answer("The metrics.", {"text/plain": TEXT})},
        errors=READ_ERRORS,
    )
    def metrics() -> Response:
        if services.settings.protect_reads:
            security.require_token(services.settings.api_token)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
