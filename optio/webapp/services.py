"""What one web app's requests use, built from the app's settings: the run store, the producer
that sends the start tick, the relay. ``create_app`` puts them in ``app.extensions["optio"]``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery
from flask import current_app
from kombu import Connection

from optio.broker.delivery import celery_config
from optio.config import Settings
from optio.redis_state import RunStore
from optio.store.connection import connect
from optio.webapp.schemas import idle_state

#: Seconds /api/health waits for the broker's connection when it is not the Redis itself.
BROKER_CHECK_TIMEOUT = 2.0


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
        return RunStore(client, self.settings)

    def current_state(self) -> dict[str, Any]:
        """The watched run's state, or the idle state when no run was ever started."""
        return self.store.runs.current_state() or idle_state()

    def broker_problem(self) -> str | None:
        """Why Celery's broker does not answer, or None when it does. A broker that is the Redis
        of REDIS_URL is not checked again; another is connected to (and let go) at once."""
        url = self.settings.broker_url
        if url == self.settings.redis_url:
            return None
        try:
            with Connection(url, connect_timeout=BROKER_CHECK_TIMEOUT) as conn:
                conn.connect()
        except Exception as exc:  # kombu raises the transport's own errors
            return f"{type(exc).__name__}: {exc}"
        return None

    @cached_property
    def producer(self) -> Celery:
        """Sends tasks by name only: the web process does not import the workers' Celery app,
        but it declares the queues as they do, on the same broker (OPTIO_BROKER_URL)."""
        app = Celery("optio-web", set_as_current=False)
        app.conf.update(celery_config(self.settings.broker_url, self.settings.visibility_timeout))
        return app


def services() -> Services:
    """The services of the app handling the current request."""
    return current_app.extensions["optio"]
