"""Security of the real web process: the cross-site tests of tests/system/test_security.py against
a web process alone that wants an API token for changes (our own client sends it), and secrets in
answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from optio.testing import System, free_port
from tests.system.test_security import (  # noqa: F401 (the tests are collected here with this target)
    running,
    test_a_body_must_be_json_on_every_route,
    test_curl_stops_a_run_with_no_origin_and_no_body,
    test_our_own_pages_and_listed_origins_still_change_state,
    test_state_changes_from_other_sites_are_403_and_change_nothing,
)

TOKEN = "csrf-test-token"


@pytest.fixture(scope="module")
def token_web(web_alone):
    """A web process that wants a token for changes (no worker: a run just stays running)."""
    return web_alone(OPTIO_API_TOKEN=TOKEN)


@pytest.fixture(params=["token"])
def target(token_web) -> Iterator[tuple[System, dict]]:
    """(the web process above, the headers our own client sends to it) with a run in progress."""
    system, auth = token_web, {"Authorization": f"Bearer {TOKEN}"}
    if system.get("/api/status").json()["running"]:
        system.post("/api/stop", headers=auth)
    yield from running(system, auth)


def test_health_does_not_show_a_redis_password_given_in_the_query(tmp_path):
    """redis-py honours ?password=; the 503 of /api/health (open to all) must not echo it."""
    secret = "hunter2-in-the-query"
    closed = free_port()  # nothing listens there: Redis "does not answer"
    with System(
        f"redis://127.0.0.1:{closed}/0?password={secret}&username=optio-user",
        tmp_path,
        OPTIO_API_TOKEN=TOKEN,
        OPTIO_PROTECT_READS="1",
    ) as system:
        system.start_web()
        response = system.get("/api/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and "does not answer" in body["error"]
        assert f"127.0.0.1:{closed}" in body["error"]  # still says where it looked
        assert secret not in response.text and "optio-user" not in response.text
        assert "password=***" in body["error"]
