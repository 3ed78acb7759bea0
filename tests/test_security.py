"""Security of the real web process: cross-site requests (CSRF) and secrets in answers."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import System
from tests.helpers import free_port

pytestmark = pytest.mark.slow

TOKEN = "csrf-test-token"


def test_health_does_not_show_a_redis_password_given_in_the_query(tmp_path):
    """redis-py honours ?password=; the 503 of /api/health (open to all) must not echo it."""
    secret = "hunter2-in-the-query"
    closed = free_port()  # nothing listens there: Redis "does not answer"
    system = System(
        f"redis://127.0.0.1:{closed}/0?password={secret}&username=optio-user",
        tmp_path,
        OPTIO_API_TOKEN=TOKEN,
        OPTIO_PROTECT_READS="1",
    )
    try:
        system.start_web()
        response = system.get("/api/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and "does not answer" in body["error"]
        assert f"127.0.0.1:{closed}" in body["error"]  # still says where it looked
        assert secret not in response.text and "optio-user" not in response.text
        assert "password=***" in body["error"]
    finally:
        system.stop_all()
