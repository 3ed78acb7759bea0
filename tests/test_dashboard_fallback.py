"""Without the socket.io client the dashboard polls /api/status once a second and says so."""

from __future__ import annotations

import pytest

from tests.test_browser import Page, browser, expect, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def test_the_dashboard_polls_when_the_socket_io_client_is_missing(idle_system, page: Page):  # noqa: F811
    # the browser gets nothing for the client, as from a server that has no copy of it
    page.tab.route("**/vendor/socket.io.min.js", lambda route: route.abort())
    page.tab.goto(idle_system.base + "/")
    expect(page.tab.locator("#conn")).to_have_attribute("data-state", "polling")
    expect(page.tab.locator("#conn-text")).to_have_text("No live feed: polling")
    expect(page.tab.locator("#message-text")).to_contain_text("/api/status once a second")

    started = idle_system.post("/api/run", {"x": 20, "y": 600})  # not through the page
    assert started.status_code == 201
    run_id = started.json()["runId"]
    expect(page.tab.locator("#run-id")).to_have_text(run_id)
    seen = set()
    page.wait(
        lambda: seen.add(page.number("#processed")) or page.number("#processed") == 20,
        20,
        "the page to show the 20 jobs processed",
    )
    assert any(0 < n < 20 for n in seen), f"the page never moved in between: {sorted(seen)}"
    expect(page.tab.locator("#status")).to_have_text("completed")
