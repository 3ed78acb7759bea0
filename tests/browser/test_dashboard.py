"""The dashboard and the browser clients of the README's "Watching progress", driven in Debian's
Chromium by Playwright.

Screenshots of a finished run are saved under artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from optio.testing import ROOT, System, wait_for
from tests.browser.chromium import ARTIFACTS, Page, expect, open_dashboard

#: The token the second web process wants for changes.
API_TOKEN = "test-token-of-the-second-web"


def click_start(page: Page, x: str, y: str) -> None:
    """Type X and Y into the dashboard and press Start."""
    page.tab.fill("#x", x)
    page.tab.fill("#y", y)
    page.tab.click("#start")


def test_a_run_started_by_clicking_counts_up_to_the_total(idle_system, page):
    open_dashboard(page, idle_system.base)
    tab = page.tab
    tab.fill("#x", "1,500")  # thousands separators are accepted while typing
    tab.fill("#y", "6000")
    expect(tab.locator("#start")).to_be_enabled()
    tab.click("#start")

    expect(tab.locator("#message")).to_contain_text("Started run")
    expect(tab.locator("#status")).to_have_text("running")
    run_id = page.text("#run-id")
    assert idle_system.get("/api/status").json()["runId"] == run_id
    expect(tab.locator("#stop")).to_be_enabled()
    expect(tab.locator("#start")).to_have_text("Start another")  # another may run beside it
    expect(tab.locator("#start")).to_be_enabled()
    wait_for(lambda: 0 < page.number("#processed") < 1500, 15, "the counters moving")

    # a reload mid-run shows the run at once, from the state sent on connect or /api/status
    tab.reload(wait_until="domcontentloaded")
    expect(tab.locator("#status")).to_have_text("running", timeout=2000)
    expect(tab.locator("#run-id")).to_have_text(run_id, timeout=2000)
    assert page.number("#enqueued") > 0

    expect(tab.locator("#status")).to_have_text("completed", timeout=60_000)
    expect(tab.locator("#processed")).to_have_text("1,500")
    expect(tab.locator("#enqueued")).to_have_text("1,500")
    expect(tab.locator("#percent")).to_have_text("100")
    expect(tab.locator("#eta")).to_have_text("done")
    expect(tab.locator("#y-minute")).to_have_text("6,000")
    assert re.fullmatch(r"[\d,]+", page.text("#throughput"))
    assert page.text("#finished") != "—"
    expect(tab.locator("#start")).to_be_enabled()
    expect(tab.locator("#stop")).to_be_disabled()
    expect(tab.locator("#update")).to_be_disabled()

    ARTIFACTS.mkdir(exist_ok=True)
    tab.wait_for_timeout(1200)  # let the chart take its next one-second sample
    tab.screenshot(path=str(ARTIFACTS / "dashboard-finished.png"), full_page=True)
    tab.set_viewport_size({"width": 390, "height": 844})
    expect(tab.locator(".grid")).to_have_css("grid-template-columns", re.compile(r"^\S+$"))
    tab.screenshot(path=str(ARTIFACTS / "dashboard-finished-phone.png"), full_page=True)
    width = tab.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width} px)"


def test_inputs_are_checked_before_anything_is_sent(idle_system, page):
    open_dashboard(page, idle_system.base)
    tab = page.tab
    posts: list[str] = []
    tab.on("request", lambda r: posts.append(r.url) if r.method != "GET" else None)

    tab.fill("#x", "0")
    expect(tab.locator("#x-error")).to_have_text("Enter a whole number of jobs, at least 1")
    expect(tab.locator("#x")).to_have_attribute("aria-invalid", "true")
    expect(tab.locator("#start")).to_be_disabled()
    tab.fill("#x", "2.5")
    expect(tab.locator("#x-error")).to_contain_text("whole number")
    tab.fill("#x", "99999999999")
    expect(tab.locator("#x-error")).to_have_text("At most 10,000,000 jobs")
    tab.fill("#x", "10")
    expect(tab.locator("#x-error")).to_have_text("")
    tab.fill("#y", "-5")
    expect(tab.locator("#y-error")).to_contain_text("above 0")
    expect(tab.locator("#start")).to_be_disabled()
    tab.fill("#y", "0.5")
    expect(tab.locator("#start")).to_be_enabled()
    assert posts == []


def test_stop_from_the_dashboard(idle_system, page):
    open_dashboard(page, idle_system.base)
    tab = page.tab
    click_start(page, "10000", "600")
    expect(tab.locator("#status")).to_have_text("running")
    wait_for(lambda: page.number("#processed") >= 1, 15, "a processed job")
    tab.click("#stop")

    expect(tab.locator("#status")).to_have_text("stopped")
    expect(tab.locator("#message")).to_contain_text("Stopped run")
    expect(tab.locator("#stop")).to_be_disabled()
    expect(tab.locator("#start")).to_be_enabled()
    assert idle_system.get("/api/status").json()["status"] == "stopped"


def test_api_errors_show_as_readable_messages(idle_system, page):
    open_dashboard(page, idle_system.base)
    tab = page.tab
    shown = page.text("#run-id")  # the last run of an earlier test, or none
    # a 400 the page cannot foresee: a deadline so near that x jobs would need more than
    # OPTIO_MAX_Y jobs per minute
    tab.fill("#x", "10,000,000")
    tab.fill("#deadline", "1")
    expect(tab.locator("#deadline-error")).to_have_text("")
    tab.click("#start")
    message = tab.locator("#message")
    expect(message).to_have_attribute("data-kind", "error")
    expect(tab.locator("#message-text")).to_have_text(
        re.compile(
            r"^Could not start the run: deadline too near: 10,000,000 jobs by then need "
            r"[\d,]+ jobs per minute, above the [\d,]+ allowed \(OPTIO_MAX_Y\)$"
        )
    )
    assert idle_system.get("/api/runs?active=1").json()["runs"] == []
    expect(tab.locator("#run-id")).to_have_text(shown)  # after an error: the state read again

    # a 400: the new total is below what is already enqueued
    run_id = idle_system.post("/api/run", {"x": 10000, "y": 600}).json()["runId"]
    expect(tab.locator("#run-id")).to_have_text(run_id)
    wait_for(lambda: page.number("#enqueued") >= 2, 15, "two enqueued jobs")
    tab.fill("#x", "1")
    tab.click("#update")
    expect(message).to_contain_text("Could not update the run: x (1) cannot be below")
    expect(tab.locator("#status")).to_have_text("running")
    tab.click("#message-close")
    expect(message).to_be_hidden()


def test_another_run_starts_beside_the_active_one_with_a_weight_and_a_deadline(
    idle_system, browser
):
    """Start stays enabled while a run is active; a deadline is given as seconds from now or
    as a local date and time (sent with this computer's offset), never with y."""
    zone = "America/New_York"  # an offset other than the server's UTC
    page = Page(browser, timezone=zone)
    try:
        open_dashboard(page, idle_system.base)
        tab = page.tab
        click_start(page, "100,000", "600")
        expect(tab.locator("#status")).to_have_text("running")
        first = page.text("#run-id")

        # a local time two hours ahead, to the minute
        at = (datetime.now(ZoneInfo(zone)) + timedelta(hours=2)).replace(second=0, microsecond=0)
        tab.fill("#weight", "2")
        tab.fill("#deadline", "3600")
        tab.fill("#deadline-at", at.strftime("%Y-%m-%dT%H:%M"))
        expect(tab.locator("#deadline-error")).to_have_text(
            "Give seconds from now or a date and time, not both"
        )
        expect(tab.locator("#start")).to_be_disabled()
        tab.fill("#deadline", "")
        expect(tab.locator("#deadline-error")).to_have_text("")
        expect(tab.locator("#y")).to_have_class(re.compile(r"\bunused\b"))
        expect(tab.locator("#start")).to_have_text("Start another")
        tab.click("#start")

        expect(tab.locator("#message")).to_contain_text(
            re.compile(r"Started run \w+: 100,000 jobs by ")
        )
        expect(tab.locator("#run-id")).not_to_have_text(first)
        second = page.text("#run-id")
        state = idle_system.get(f"/api/runs/{second}").json()
        assert (state["status"], state["weight"]) == ("running", 2)
        assert state["deadline"] == round(at.timestamp() * 1000)
        active = [run["runId"] for run in idle_system.get("/api/runs?active=1").json()["runs"]]
        assert sorted(active) == sorted([first, second])
        expect(tab.locator("#active-list .run-card")).to_have_count(2)

        # seconds from now, and the weight left empty: its default
        tab.fill("#weight", "")
        tab.fill("#deadline-at", "")
        tab.fill("#deadline", "7,200")
        tab.click("#start")
        expect(tab.locator("#active-list .run-card")).to_have_count(3)
        page.wait(lambda: page.text("#run-id") not in (first, second), 15, "the third run")
        third = page.text("#run-id")
        state = idle_system.get(f"/api/runs/{third}").json()
        assert state["weight"] == 1
        assert abs(state["deadline"] - state["startedAt"] - 7200 * 1000) < 60 * 1000
        assert state["yMinute"] > 0

        # a time that has passed is caught before anything is sent
        tab.fill("#deadline", "")
        tab.fill("#deadline-at", "2001-01-01T00:00")
        expect(tab.locator("#deadline-error")).to_have_text(
            "This time has passed: pick a later one"
        )
        expect(tab.locator("#deadline-at")).to_have_attribute("aria-invalid", "true")
        expect(tab.locator("#start")).to_be_disabled()
    finally:
        page.close()
    assert not page.errors, page.errors


def test_update_rate_from_the_dashboard(idle_system, page):
    open_dashboard(page, idle_system.base)
    tab = page.tab
    click_start(page, "200", "60")
    expect(tab.locator("#status")).to_have_text("running")
    expect(tab.locator("#update")).to_be_disabled()  # nothing changed yet
    tab.fill("#y", "12000")
    tab.click("#update")
    expect(tab.locator("#y-minute")).to_have_text("12,000")
    expect(tab.locator("#status")).to_have_text("completed", timeout=30_000)
    assert idle_system.get("/api/status").json()["yMinute"] == 12000


def test_the_devtools_snippet_works_in_the_dashboard_console(idle_system, page):
    """README Method 3 (devtools): the snippet pasted into the console works because the page
    exposes `io`."""
    open_dashboard(page, idle_system.base)
    assert page.tab.evaluate("typeof io") == "function"
    page.tab.evaluate(
        """(base) => {
            const socket = io(base);
            socket.on('connect', () => { console.log('✅ Connected!'); });
            socket.on('progress', (data) => { console.log('📊 Progress:', JSON.stringify(data)); });
        }""",
        idle_system.base,
    )
    page.wait(lambda: "✅ Connected!" in page.console, 10, "the snippet's connect log")
    page.wait(
        lambda: any(line.startswith("📊 Progress:") for line in page.console),
        10,
        "the snippet's progress log",
    )
    progress = next(line for line in page.console if line.startswith("📊 Progress:"))
    assert '"processed"' in progress and '"xTotal"' in progress


def test_the_html_test_client_logs_progress(idle_system, page):
    """README Method 1: the HTML test client, served by the web process and linked from the
    dashboard."""
    open_dashboard(page, idle_system.base)
    tab = page.tab
    tab.click("text=WebSocket test client")
    expect(tab.locator("#server")).to_have_value(idle_system.base)
    tab.click("#connect")
    log = tab.locator("#log")
    expect(log).to_contain_text("✅ Connected to")
    expect(tab.locator("#status")).to_have_text("Connected")

    run_id = idle_system.post("/api/run", {"x": 5, "y": 6000}).json()["runId"]
    expect(log).to_contain_text(
        re.compile(rf'Progress #\d+: (?=.*"runId":"{run_id}")(?=.*"status":"completed")')
    )
    first_line = log.locator(".entry").first.inner_text()
    assert re.match(r"\[\d\d:\d\d:\d\d\.\d{3}\] ", first_line), first_line

    tab.click("#disconnect")
    expect(log).to_contain_text("Disconnected: io client disconnect")
    expect(tab.locator("#status")).to_have_text("Disconnected")
    tab.click("#clear")
    expect(log.locator(".entry")).to_have_count(0)


@pytest.fixture(scope="module")
def second_web(system, tmp_path_factory) -> Iterator[System]:
    """Another web process on the same Redis database, ours to stop and restart.

    It also accepts the origin ``null`` that a page opened from disk sends, and wants an API
    token for changes.
    """
    with System(system.redis_url, tmp_path_factory.mktemp("second-web")) as other:
        other.env["OPTIO_CORS_ORIGINS"] = f"{other.base},null"
        other.env["OPTIO_API_TOKEN"] = API_TOKEN
        other.start_web()
        yield other


def test_the_html_test_client_works_as_a_local_file(idle_system, second_web, page):
    path = ROOT / "optio" / "webapp" / "static" / "test-websocket.html"
    page.tab.goto(f"{path.as_uri()}?server={second_web.base}")
    asked: list[str] = []
    page.tab.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.tab.click("#connect")
    # opened from disk, it runs the chosen server's socket.io client only once the user agrees
    expect(page.tab.locator("#status")).not_to_have_text("Not connected")
    assert asked and f"{second_web.base}/vendor/socket.io.min.js" in asked[0], asked
    expect(page.tab.locator("#log")).to_contain_text(f"✅ Connected to {second_web.base}")
    expect(page.tab.locator("#log")).to_contain_text("Progress #1:")


def test_a_local_file_is_refused_unless_null_is_allowed(idle_system, browser):
    """The default origins do not include `null`; the page says what to change."""
    tab = Page(browser)
    try:
        path = ROOT / "optio" / "webapp" / "static" / "test-websocket.html"
        tab.tab.goto(f"{path.as_uri()}?server={idle_system.base}")
        tab.tab.on("dialog", lambda dialog: dialog.accept())
        tab.tab.click("#connect")
        expect(tab.tab.locator("#hint")).to_contain_text("OPTIO_CORS_ORIGINS")
        expect(tab.tab.locator("#log")).to_contain_text("Connection error")
        assert "Connected to" not in tab.text("#log")
    finally:
        tab.close()


def test_the_connection_indicator_follows_the_web_process(idle_system, second_web, page):
    open_dashboard(page, second_web.base)
    tab = page.tab
    conn = tab.locator("#conn")
    second_web.procs["web"].stop()
    expect(conn).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    expect(conn).to_contain_text("Reconnecting")

    second_web.start_web()  # same port
    expect(conn).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(conn).to_have_text("Live")
    # the state sent on reconnect is shown, and runs started now show up live
    run_id = idle_system.post("/api/run", {"x": 5, "y": 6000}).json()["runId"]
    expect(tab.locator("#run-id")).to_have_text(run_id)
    expect(tab.locator("#status")).to_have_text("completed", timeout=30_000)


def test_a_flood_of_events_is_rendered_once_a_frame(idle_system, page):
    """5,000 events arriving at once cost one render, not 5,000 DOM writes."""
    open_dashboard(page, idle_system.base)
    # the server's own state (sent on connect, and read once over HTTP) must be in before the
    # fake events, or it lands after them and is what the page shows
    page.tab.wait_for_function("() => optio.state() !== null")
    result = page.tab.evaluate(
        """() => new Promise((resolve) => {
            optio.socket.disconnect();  // nothing real arrives between the fake events
            const target = document.getElementById('processed');
            let writes = 0;
            new MutationObserver((records) => { writes += records.length; })
                .observe(target, { childList: true, characterData: true, subtree: true });
            const deliver = optio.socket.listeners('progress')[0];
            const base = { running: true, xTotal: 1000000, yMinute: 60000, failed: 0,
                           runId: 'flood', status: 'running', startedAt: Date.now(),
                           finishedAt: null };
            const started = performance.now();
            for (let i = 1; i <= 5000; i++) {
                deliver({ ...base, enqueued: i, processed: i });
            }
            const handled = performance.now() - started;
            requestAnimationFrame(() => requestAnimationFrame(() => resolve({
                writes, handled, shown: target.textContent,
            })));
        })"""
    )
    assert result["shown"] == "5,000"
    assert result["writes"] <= 2, result
    assert result["handled"] < 500, result
    page.tab.reload()  # forget the fake run


def test_a_throttled_run_shows_its_effective_rate_beside_the_target(idle_system, page):
    open_dashboard(page, idle_system.base)
    page.tab.wait_for_function("() => optio.state() !== null")
    tab = page.tab
    tab.evaluate(
        """() => {
            optio.socket.disconnect();  // only the states below
            const deliver = optio.socket.listeners('progress')[0];
            const base = { running: true, xTotal: 1000, yMinute: 6000, failed: 0, seq: 1,
                           runId: 'throttled', status: 'running', startedAt: Date.now(),
                           finishedAt: null, enqueued: 10, processed: 10, throttled: 0,
                           rateNow: 6000 };
            deliver(base);
            deliver({ ...base, seq: 2, processed: 20, throttled: 3, rateNow: 1500 });
        }"""
    )
    expect(tab.locator("#throttled")).to_be_visible()
    expect(tab.locator("#rate-effective")).to_have_text("1,500")
    expect(tab.locator("#y-minute")).to_have_text("6,000")
    expect(tab.locator(".legend")).to_contain_text("effective")
    tab.evaluate(
        """() => optio.socket.listeners('progress')[0]({ running: true, xTotal: 1000,
            yMinute: 6000, failed: 0, seq: 3, runId: 'throttled', status: 'running',
            startedAt: Date.now(), finishedAt: null, enqueued: 30, processed: 30,
            throttled: 3, rateNow: 6000 })"""
    )
    expect(tab.locator("#throttled")).to_be_hidden()  # climbed back to y
    tab.reload()  # forget the fake run


def test_the_dashboard_asks_for_the_api_token_when_the_server_wants_one(
    idle_system, second_web, page
):
    open_dashboard(page, second_web.base)
    tab = page.tab
    expect(tab.locator("#token-field")).to_be_hidden()
    click_start(page, "5", "6000")
    expect(tab.locator("#message")).to_contain_text("missing or wrong API token")
    expect(tab.locator("#token-field")).to_be_visible()

    tab.fill("#token", API_TOKEN)
    tab.press("#token", "Tab")  # the change event keeps it for this tab
    tab.click("#start")
    expect(tab.locator("#message")).to_contain_text("Started run")
    expect(tab.locator("#status")).to_have_text("completed", timeout=30_000)
    tab.reload()
    expect(tab.locator("#token")).to_have_value(API_TOKEN)


def test_a_local_file_loads_nothing_when_the_user_declines(idle_system, page):
    path = ROOT / "optio" / "webapp" / "static" / "test-websocket.html"
    page.tab.goto(f"{path.as_uri()}?server={idle_system.base}")
    page.tab.on("dialog", lambda dialog: dialog.dismiss())
    page.tab.click("#connect")
    expect(page.tab.locator("#log")).to_contain_text("not confirmed")
    assert page.tab.evaluate("typeof io") == "undefined"


HOSTILE_SERVERS = [
    ("data: URL that stops the run", "data:text/javascript,fetch('/api/stop',{method:'POST'})//x"),
    ("data: URL", "data:text/javascript,window.pwned='data'//"),
    ("javascript: URL", "javascript:window.pwned='javascript'//"),
    ("scheme-relative host", "//evil.example"),
    ("other scheme", "ftp://evil.example"),
]


@pytest.mark.parametrize(
    "server", [c[1] for c in HOSTILE_SERVERS], ids=[c[0] for c in HOSTILE_SERVERS]
)
def test_the_served_test_page_runs_nothing_from_a_hostile_server_parameter(
    idle_system, page, server
):
    """?server= must name an http(s) server; the page says why it refuses anything else."""
    run_id = idle_system.post("/api/run", {"x": 100_000, "y": 60}).json()["runId"]
    evil_hits: list[str] = []

    def evil(route):
        evil_hits.append(route.request.url)
        route.fulfill(body="window.pwned = 'evil.example';", content_type="text/javascript")

    page.context.route("http://evil.example/**", evil)
    try:
        page.tab.goto(f"{idle_system.base}/test-websocket.html?server={quote(server, safe='')}")
        hint = page.tab.locator("#hint")
        expect(hint).to_be_visible()  # says so at once, before Connect
        expect(hint).to_contain_text("only http:// and https:// addresses are accepted")
        page.tab.click("#connect")
        expect(hint).to_contain_text("Nothing was loaded")
        expect(page.tab.locator("#status")).to_have_text("Not connected")
        page.tab.wait_for_timeout(300)  # room for a script that was wrongly added to run
        assert page.tab.evaluate("window.pwned") is None
        assert page.tab.evaluate("typeof io") == "undefined"
        srcs = page.tab.evaluate("[...document.scripts].map((s) => s.src)")
        assert srcs == [f"{idle_system.base}/test-websocket.js"], srcs
        assert evil_hits == []
        assert page.csp_violations() == []
        state = idle_system.get("/api/status").json()
        assert (state["runId"], state["status"]) == (run_id, "running")
    finally:
        idle_system.post("/api/stop")


def test_the_pages_work_under_the_content_security_policy(idle_system, page):
    """Both pages send the CSP, and the dashboard and the test client run with no violation."""
    for path in ("/", "/test-websocket.html"):
        policy = idle_system.get(path).headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, (path, policy)

    open_dashboard(page, idle_system.base)
    tab = page.tab
    click_start(page, "5", "6000")
    expect(tab.locator("#status")).to_have_text("completed", timeout=30_000)
    assert page.csp_violations() == []

    tab.goto(idle_system.base + "/test-websocket.html")
    expect(tab.locator("#hint")).to_be_hidden()
    tab.click("#connect")
    expect(tab.locator("#status")).to_have_text("Connected")
    expect(tab.locator("#log")).to_contain_text("Progress #1:")
    assert page.csp_violations() == []
    assert not [line for line in page.console if "Content Security Policy" in line]


def test_the_dashboard_polls_when_the_socket_io_client_is_missing(idle_system, page):
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


def test_several_runs_side_by_side_each_with_its_own_controls(idle_system, page):
    open_dashboard(page, idle_system.base)
    tab = page.tab
    section = tab.locator("#active-runs")
    expect(section).to_be_hidden()  # no run, or one: the main panel alone, as before
    older = idle_system.post("/api/runs", {"x": 100_000, "y": 600}).json()["runId"]
    newer = idle_system.post("/api/runs", {"x": 100_000, "y": 1200}).json()["runId"]

    cards = tab.locator("#active-list .run-card")
    expect(section).to_be_visible()
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_have_attribute("data-run", newer)  # newest first
    expect(cards.nth(1)).to_have_attribute("data-run", older)
    expect(tab.locator("#run-id")).to_have_text(newer)  # the main panel shows the newest
    older_card = tab.locator(f'.run-card[data-run="{older}"]')
    newer_card = tab.locator(f'.run-card[data-run="{newer}"]')
    expect(older_card.locator(".badge")).to_have_text("running")
    expect(newer_card.locator(".rate")).to_contain_text("1,200/min")
    page.wait(
        lambda: not older_card.locator(".done").inner_text().startswith("0 /"),
        20,
        "the older run's card counting",
    )
    boxes = [cards.nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"], "side by side"
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-two-runs.png"), full_page=True)

    # pause and resume the older run from its card: the newer one is not touched
    older_card.locator('button[data-action="pause"]').click()
    expect(older_card.locator(".badge")).to_have_text("paused")
    expect(newer_card.locator(".badge")).to_have_text("running")
    older_card.locator('button[data-action="resume"]').click()
    expect(older_card.locator(".badge")).to_have_text("running")

    # stop the older run from its card: the newer one keeps running
    older_card.locator('button[data-action="stop"]').click()
    expect(tab.locator("#message")).to_contain_text(f"Stopped run {older}")
    expect(section).to_be_hidden()  # one run left
    assert idle_system.get(f"/api/runs/{older}").json()["status"] == "stopped"
    expect(tab.locator("#run-id")).to_have_text(newer)
    expect(tab.locator("#status")).to_have_text("running")
    counted = page.number("#processed")
    page.wait(lambda: page.number("#processed") > counted, 20, "the newer run going on")
    assert idle_system.get(f"/api/runs/{newer}").json()["status"] == "running"
