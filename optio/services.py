"""What one web app's requests use, built from the app's settings: the run store, the producer
that sends the start tick, the relay. ``create_app`` puts them in ``app.extensions["optio"]``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery
from flask import current_app

from optio.celery_settings import broker_settings
from optio.config import Settings
from optio.redis_state import RunStore, connect


class Services:
    """Built on first use, once per app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: set by create_app: the relay of progress to this app's Socket.IO clients, and the
        #: packet budget of those clients
        self.relay: Any = None
        self.packet_budget: Any = None

    @cached_property
    def store(self) -> RunStore:
        client = connect(self.settings.redis_url, timeout=self.settings.redis_timeout)
        return RunStore(
            client,
            run_ttl=self.settings.run_ttl,
            result_ttl=self.settings.result_ttl,
            keep_runs=self.settings.keep_runs,
            webhook=bool(self.settings.webhook_url),
            min_replicas=self.settings.redis_min_replicas,
            wait_ms=self.settings.redis_wait_ms,
        )

    @cached_property
    def producer(self) -> Celery:
        """Sends tasks by name only: the web process does not import the workers' Celery app."""
        producer = Celery("optio-web", set_as_current=False)
        producer.conf.update(broker_settings(self.settings.redis_url))
        return producer


def services() -> Services:
    """The services of the app handling the current request."""
    return current_app.extensions["optio"]
