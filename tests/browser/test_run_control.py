"""Run control in the dashboard (issue 10), driven in Debian's Chromium: Pause and Resume, the
ordering of states by seq, the table of recent runs, a run's page, retrying failed jobs and the
webhook outcome.

The runs here go through a system of this module's own, whose job function fails jobs 4, 9, 14,
... on their first two executions (tests/fault_jobs.py): with two attempts those jobs fail for
good, and a retry of the run's failed jobs then completes it. Its completion webhook goes to a
receiver here that refuses (400, final) the end of every run of WEBHOOK_REFUSED_X jobs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from optio.testing import System, free_port, start, wait_finished, wait_for
from tests.browser.chromium import ARTIFACTS, Page, expect, open_dashboard

#: Where the screenshot of the filled table goes, for a person to look at.
SCREENSHOT = "/work/notes/dashboard-history.png"
#: Runs of this many jobs get a 400 from the webhook receiver; the others a 204.
WEBHOOK_REFUSED_X = 7


def failing(x: int) -> list[int]:
    """The jobs of a run of ``x`` that fail for good (fault_jobs.fails_at_first)."""
    return [j for j in range(x) if j % 5 == 4]


class Hook(BaseHTTPRequestHandler):
    """Takes every run's end (204) but that of a run of WEBHOOK_REFUSED_X jobs (400)."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        final = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(400 if final["xTotal"] == WEBHOOK_REFUSED_X else 204)
        self.end_headers()

    def log_message(self, *_):
        pass


@pytest.fixture(scope="module")
def webhook_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def runs_system(redis_server, redis_db, webhook_url, tmp_path_factory) -> Iterator[System]:
    with System(
        f"{redis_server.url}/{redis_db()}",
        tmp_path_factory.mktemp("runs-system"),
        OPTIO_JOB_FUNC="tests.fault_jobs:fails_at_first",
        OPTIO_JOB_ATTEMPTS="2",
        OPTIO_RETRY_BACKOFF="0.2",
        OPTIO_WEBHOOK_URL=webhook_url,
    ) as system:
        system.redis.flushdb()
        yield system.start_all()


@pytest.fixture
def idle(runs_system) -> System:
    runs_system.ensure_idle()
    return runs_system


def finished_run(system: System, x: int, y: float = 6000) -> dict:
    run_id = start(system, x, y)
    return wait_finished(system, run_id, 60)


def deliver(page: Page, states: list[dict]) -> str:
    """Hand ``states`` to the page's progress listener, as if they came over the socket (the
    live feed is cut first), and return #processed after the next frame."""
    return page.tab.evaluate(
        """(states) => new Promise((resolve) => {
            optio.socket.disconnect();
            const listener = optio.socket.listeners('progress')[0];
            for (const state of states) listener(state);
            requestAnimationFrame(() => requestAnimationFrame(
                () => resolve(document.getElementById('processed').textContent)));
        })""",
        states,
    )


def fake_state(seq: int | None, processed: int, status: str = "running", **more) -> dict:
    state = {
        "runId": "0123456789ab",
        "running": status in ("running", "paused"),
        "status": status,
        "xTotal": 1000,
        "yMinute": 600,
        "enqueued": processed,
        "processed": processed,
        "failed": 0,
        "startedAt": 1_700_000_000_000,
        "finishedAt": None,
        "pausedAt": None,
        "pausedMs": 0,
        "webhook": None,
        "retried": 0,
        **more,
    }
    if seq is not None:
        state["seq"] = seq
    return state


def readings(page: Page) -> dict[str, str]:
    """What the dashboard shows that moves while a run runs."""
    ids = ("processed", "enqueued", "failed", "elapsed", "throughput", "percent", "eta")
    return {name: page.text(f"#{name}") for name in ids}


def test_pause_and_resume_from_the_dashboard(idle, page):
    open_dashboard(page, idle.base)
    tab = page.tab
    expect(tab.locator("#pause")).to_be_disabled()
    expect(tab.locator("#resume")).to_be_disabled()
    tab.fill("#x", "100")
    tab.fill("#y", "1200")
    tab.click("#start")
    expect(tab.locator("#status")).to_have_text("running")
    expect(tab.locator("#pause")).to_be_enabled()
    expect(tab.locator("#resume")).to_be_disabled()
    page.wait(lambda: page.number("#processed") >= 1, 15, "a processed job")

    tab.click("#pause")
    expect(tab.locator("#status")).to_have_text("paused")
    expect(tab.locator("#status")).to_have_attribute("data-status", "paused")
    expect(tab.locator("#message")).to_contain_text("Paused run")
    expect(tab.locator("#eta")).to_have_text("paused")
    expect(tab.locator("#pause")).to_be_disabled()
    expect(tab.locator("#resume")).to_be_enabled()
    expect(tab.locator("#stop")).to_be_enabled()  # a paused run can still be stopped
    assert idle.get("/api/status").json()["status"] == "paused"
    # jobs already in the workers' hands may still finish: compare only after a second
    tab.wait_for_timeout(1000)
    held = readings(page)
    tab.wait_for_timeout(2500)
    assert readings(page) == held, "the figures moved while the run was paused"
    assert int(held["processed"]) < 100
    expect(tab.locator("#paused-for-wrap")).to_be_visible()
    assert page.text("#paused-for") != "—"
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-paused.png"))

    tab.click("#resume")
    expect(tab.locator("#status")).to_have_text("running")
    expect(tab.locator("#message")).to_contain_text("Resumed run")
    expect(tab.locator("#pause")).to_be_enabled()
    expect(tab.locator("#resume")).to_be_disabled()
    expect(tab.locator("#status")).to_have_text("completed", timeout=60_000)
    expect(tab.locator("#eta")).to_have_text("done")
    state = idle.get("/api/status").json()
    assert state["processed"] + state["failed"] == 100
    assert state["pausedMs"] >= 3000
    expect(tab.locator("#processed")).to_have_text(str(state["processed"]))
    expect(tab.locator("#pause")).to_be_disabled()
    expect(tab.locator("#resume")).to_be_disabled()


def test_a_state_with_a_lower_seq_never_moves_the_display_back(idle, page):
    open_dashboard(page, idle.base)
    page.tab.wait_for_function("() => optio.state() !== null")
    assert deliver(page, [fake_state(10, 500), fake_state(7, 300)]) == "500"
    # a higher seq wins even with a lower count (the count itself is not the order)
    assert deliver(page, [fake_state(11, 480, "paused", pausedAt=1_700_000_060_000)]) == "480"
    expect(page.tab.locator("#status")).to_have_text("paused")
    assert deliver(page, [fake_state(9, 450, "running")]) == "480"
    expect(page.tab.locator("#status")).to_have_text("paused")
    expect(page.tab.locator("#eta")).to_have_text("paused")

    # an answer to our own request is ordered by seq too: this one is older than the screen
    page.tab.route(
        "**/api/runs/0123456789ab/resume",  # the dashboard names the run it shows
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps(fake_state(8, 400, "running")),
        ),
    )
    page.tab.click("#resume")
    expect(page.tab.locator("#message")).to_contain_text("Resumed run")
    expect(page.tab.locator("#status")).to_have_text("paused")
    expect(page.tab.locator("#processed")).to_have_text("480")

    # another run starts at its own seq
    other = fake_state(1, 5, "running", runId="ba9876543210", xTotal=10)
    assert deliver(page, [other]) == "5"
    expect(page.tab.locator("#run-id")).to_have_text("ba9876543210")
    # the earlier run's old states stay behind it
    assert deliver(page, [fake_state(3, 200)]) == "5"
    page.tab.reload()  # forget the fake runs


def test_a_held_back_run_says_why(idle, page):
    """heldBack shows as a badge naming heldBackBy, with a sentence saying what it means."""
    open_dashboard(page, idle.base)
    page.tab.wait_for_function("() => optio.state() !== null")
    badge = page.tab.locator("#held-back")
    deliver(page, [fake_state(50, 10, heldBack=True, heldBackBy="scheduler", rateEnqueued=300)])
    expect(badge).to_be_visible()
    expect(badge).to_have_text("held back: scheduler")
    expect(badge).to_have_attribute("title", re.compile("scheduler is behind"))
    deliver(page, [fake_state(51, 20, heldBack=True, heldBackBy="workers", rateEnqueued=300)])
    expect(badge).to_have_text("held back: workers")
    expect(badge).to_have_attribute("title", re.compile("workers are behind"))
    deliver(page, [fake_state(52, 30, heldBack=False, heldBackBy=None)])
    expect(badge).to_be_hidden()
    page.tab.reload()  # forget the fake run


def test_states_without_seq_are_shown_in_the_order_they_come(idle, page):
    """Where seq cannot decide (states without it), the count does not reorder the feed."""
    open_dashboard(page, idle.base)
    page.tab.wait_for_function("() => optio.state() !== null")
    assert deliver(page, [fake_state(None, 500)]) == "500"
    assert deliver(page, [fake_state(None, 450)]) == "450"  # the socket is in order
    page.tab.reload()


def test_the_history_lists_runs_and_links_to_a_page_with_their_errors(idle, page):
    clean = finished_run(idle, 4)
    flawed = finished_run(idle, 12)
    assert (flawed["processed"], flawed["failed"]) == (10, 2)
    stopped_id = start(idle, 100_000, 60)
    stopped = idle.post("/api/stop").json()
    assert stopped["runId"] == stopped_id

    open_dashboard(page, idle.base)
    tab = page.tab
    table = tab.locator("table.runs")
    expect(table.locator("thead th")).to_have_count(8)
    headers = [h.strip() for h in table.locator("thead th").all_text_contents()]
    assert headers == [
        "Run",
        "Status",
        "Processed",
        "Failed",
        "Rate",
        "Duration",
        "Started",
        "Actions",
    ]
    rows = table.locator("tbody tr")
    expect(rows.nth(0)).to_contain_text(stopped_id)
    cells = [
        [c.strip() for c in rows.nth(i).locator("th, td").all_text_contents()] for i in range(3)
    ]
    badges = rows.locator(".badge").all_text_contents()[:3]
    assert badges == ["stopped", "completed", "completed"]
    assert cells[0][0] == stopped_id
    assert [cells[1][0], *cells[1][2:5]] == [flawed["runId"], "10 / 12", "2", "6,000/min"]
    assert [cells[2][0], *cells[2][2:5]] == [clean["runId"], "4 / 4", "0", "6,000/min"]
    assert re.fullmatch(r"\d+ s", cells[1][5]), cells[1]
    assert re.fullmatch(r"\d{1,2}:\d\d:\d\d\s[AP]M", cells[1][6]), cells[1]
    # only the completed run with failures offers a retry, and it says what it retries
    retry = rows.nth(1).get_by_role("button", name=re.compile("Retry the 2 failed jobs"))
    expect(retry).to_be_enabled()
    assert rows.nth(0).get_by_role("button").count() == 0
    assert rows.nth(2).get_by_role("button").count() == 0

    rows.nth(1).get_by_role("link", name=flawed["runId"]).click()
    expect(tab).to_have_url(f"{idle.base}/runs/{flawed['runId']}")
    expect(tab.locator("#status")).to_have_text("completed")
    expect(tab.locator("#processed")).to_have_text("10")
    expect(tab.locator("#x-total")).to_have_text("12")
    expect(tab.locator("#failed")).to_have_text("2")
    errors = tab.locator("#errors-body tr")
    expect(errors).to_have_count(2)
    job_cells = errors.locator("td:first-child").all_text_contents()
    assert job_cells == [str(j) for j in failing(12)]
    # the error text carries markup: it is shown as text, and nothing of it runs
    first_error = errors.nth(0).locator("td").nth(1)
    expect(first_error).to_have_text(
        'RuntimeError: job 4 fails at first <img src=x onerror="window.pwned=1">'
    )
    assert tab.locator("#errors-body img").count() == 0
    assert tab.evaluate("window.pwned") is None
    expect(tab.locator("#retry")).to_be_enabled()
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)
    assert page.csp_violations() == []


def test_retry_failed_from_the_history_table_completes_the_run(idle, page):
    flawed = finished_run(idle, 10)
    run_id = flawed["runId"]
    assert flawed["failed"] == 2

    open_dashboard(page, idle.base)
    tab = page.tab
    row = tab.locator("table.runs tbody tr", has=tab.get_by_role("link", name=run_id))
    retry = row.get_by_role("button", name=re.compile("Retry the 2 failed jobs"))
    expect(retry).to_be_enabled()
    retry.click()
    expect(tab.locator("#message")).to_contain_text(f"Retrying 2 failed jobs of run {run_id}")
    expect(tab.locator("#run-id")).to_have_text(run_id)
    expect(tab.locator("#status")).to_have_text("completed", timeout=60_000)
    expect(tab.locator("#processed")).to_have_text("10")
    expect(tab.locator("#failed")).to_have_text("0")
    # the table was read again when the run ended: no failures left, so no retry
    expect(row.locator("td").nth(2)).to_have_text("0")
    expect(row.get_by_role("button")).to_have_count(0)
    state = idle.get(f"/api/runs/{run_id}").json()
    assert (state["processed"], state["failed"], state["retried"]) == (10, 0, 2)
    assert state["errors"] == []


def test_retry_failed_from_the_run_page(idle, page):
    flawed = finished_run(idle, 5)
    run_id = flawed["runId"]
    assert flawed["failed"] == 1
    tab = page.tab
    tab.goto(f"{idle.base}/runs/{run_id}")
    expect(tab.locator("#failed")).to_have_text("1")
    expect(tab.locator("#errors-body tr")).to_have_count(1)
    tab.click("#retry")
    expect(tab.locator("#message")).to_contain_text(f"Retrying 1 failed job of run {run_id}")
    expect(tab.locator("#status")).to_have_text("completed", timeout=60_000)
    expect(tab.locator("#failed")).to_have_text("0")
    expect(tab.locator("#processed")).to_have_text("5")
    expect(tab.locator("#retried")).to_have_text("1")
    expect(tab.locator("#errors-body")).to_have_text("No errors.")
    expect(tab.locator("#retry")).to_be_disabled()
    # a second retry is refused by the server: the page says why
    tab.evaluate("document.getElementById('retry').disabled = false")
    tab.click("#retry")
    expect(tab.locator("#message")).to_have_attribute("data-kind", "error")
    expect(tab.locator("#message")).to_contain_text("Could not retry the failed jobs:")


def test_the_page_of_an_older_run_follows_it_live_while_a_newer_run_is_active(idle, page):
    older = start(idle, 100_000, 600)
    newer = start(idle, 50_000, 1200)
    assert idle.get("/api/status").json()["runId"] == newer  # what clients are shown by default
    tab = page.tab
    feeds: list[str] = []
    tab.on("websocket", lambda socket: feeds.append(socket.url))
    tab.goto(f"{idle.base}/runs/{older}")
    expect(tab.locator("#x-total")).to_have_text("100,000")
    expect(tab.locator("#status")).to_have_text("running")
    page.wait(lambda: any(f"run={older}" in url for url in feeds), 15, "the run's live feed")
    # from now on the page cannot read the run over HTTP: what moves comes over the socket
    reads: list[str] = []

    def refuse(route):
        reads.append(route.request.url)
        route.abort()

    tab.route(f"**/api/runs/{older}*", refuse)
    counted = page.number("#processed")
    page.wait(lambda: page.number("#processed") >= counted + 20, 30, "the older run counting")
    idle.put(f"/api/runs/{older}", {"y": 900})
    expect(tab.locator("#y-minute")).to_have_text("900")
    assert page.text("#x-total") == "100,000"  # never the newer run's numbers
    idle.post(f"/api/runs/{older}/pause")
    expect(tab.locator("#status")).to_have_text("paused")
    assert idle.get(f"/api/runs/{newer}").json()["status"] == "running"
    tab.unroute(f"**/api/runs/{older}*")
    idle.post(f"/api/runs/{older}/stop")
    expect(tab.locator("#status")).to_have_text("stopped")
    # the errors (not in the live states) are read again when the status changes
    expect(tab.locator("#errors-body tr").first).to_contain_text("fails at first")
    assert page.text("#x-total") == "100,000"


def test_the_run_page_reads_the_run_every_second_without_the_socket_io_client(idle, page):
    page.tab.route("**/vendor/socket.io.min.js", lambda route: route.abort())
    run_id = start(idle, 100_000, 600)
    page.tab.goto(f"{idle.base}/runs/{run_id}")
    expect(page.tab.locator("#status")).to_have_text("running")
    counted = page.number("#processed")
    page.wait(lambda: page.number("#processed") >= counted + 20, 30, "the run counting")
    idle.post(f"/api/runs/{run_id}/stop")
    expect(page.tab.locator("#status")).to_have_text("stopped")


def test_retry_runs_the_failed_jobs_beside_an_active_run(idle, page):
    flawed = finished_run(idle, 5)
    open_dashboard(page, idle.base)
    tab = page.tab
    other = start(idle, 100_000, 60)
    expect(tab.locator("table.runs tbody tr").first).to_contain_text("running")
    row = tab.locator("table.runs tbody tr", has=tab.get_by_role("link", name=flawed["runId"]))
    retry = row.get_by_role("button", name=re.compile("Retry the 1 failed job of"))
    expect(retry).to_be_enabled()
    retry.click()
    wait_for(
        lambda: (
            idle.get(f"/api/runs/{flawed['runId']}").json()["status"] == "completed"
            and idle.get(f"/api/runs/{flawed['runId']}").json()["retried"] == 1
        ),
        60,
        "the retried run to complete",
    )
    assert idle.get(f"/api/runs/{other}").json()["status"] == "running"
    idle.post(f"/api/runs/{other}/stop")


def webhook_outcome(system: System, run_id: str, outcome: str) -> dict:
    return wait_for(
        lambda: (state := system.get(f"/api/runs/{run_id}").json())["webhook"] == outcome and state,
        30,
        f"the webhook of run {run_id} to be {outcome}",
    )


def test_the_webhook_outcome_shows_in_the_status_area_the_table_and_the_run_page(idle, page):
    refused = finished_run(idle, WEBHOOK_REFUSED_X)["runId"]
    taken = finished_run(idle, 3)["runId"]
    open_dashboard(page, idle.base)
    tab = page.tab
    # the run on screen is the latest: its outcome arrives live, pending first
    expect(tab.locator("#run-id")).to_have_text(taken)
    expect(tab.locator("#webhook")).to_have_text("webhook delivered", timeout=30_000)
    expect(tab.locator("#webhook")).to_have_attribute("data-webhook", "delivered")
    row = tab.locator("table.runs tbody tr", has=tab.get_by_role("link", name=taken))
    expect(row.locator(".webhook")).to_have_text("webhook delivered")

    final = webhook_outcome(idle, refused, "failed")
    assert final["webhookError"] == "answered 400 Bad Request", final
    tab.reload()
    row = tab.locator("table.runs tbody tr", has=tab.get_by_role("link", name=refused))
    expect(row.locator(".webhook")).to_have_text("webhook failed")
    expect(row.locator(".webhook")).to_have_attribute("data-webhook", "failed")
    row.get_by_role("link", name=refused).click()
    expect(tab.locator("#webhook")).to_have_text("webhook failed")
    expect(tab.locator("#webhook-error")).to_have_text("Webhook: answered 400 Bad Request")


def test_the_webhook_outcome_follows_the_live_state(idle, page):
    """pending, failed, and none (a run without a webhook): from the progress events."""
    open_dashboard(page, idle.base)
    tab = page.tab
    tab.wait_for_function("() => optio.state() !== null")
    done = {"finishedAt": 1_700_000_100_000}
    deliver(page, [fake_state(1, 1000, "completed", **done, webhook="pending")])
    expect(tab.locator("#webhook")).to_have_text("webhook pending")
    deliver(page, [fake_state(2, 1000, "completed", **done, webhook="failed")])
    expect(tab.locator("#webhook")).to_have_text("webhook failed")
    expect(tab.locator("#webhook")).to_have_attribute("data-webhook", "failed")
    deliver(page, [fake_state(3, 1000, "completed", **done)])
    expect(tab.locator("#webhook")).to_be_hidden()


HOSTILE_RUN_ID = '"><img src=x onerror="window.pwned=1">'


def test_the_history_shows_webhooks_and_hostile_values_as_text(idle, page):
    """The table writes what /api/runs says as text; a run id only ever lands in a link's path."""
    runs = [
        fake_state(4, 1000, "completed", finishedAt=1_700_000_100_000, webhook="delivered"),
        fake_state(
            2,
            3,
            "stopped",
            runId=HOSTILE_RUN_ID,
            finishedAt=1_700_000_100_000,
            failed=1,
            webhook="<b>failed</b>",
        ),
        fake_state(2, 7, "completed", runId="aaaaaaaaaaaa", finishedAt=1_700_000_100_000),
    ]
    page.tab.route(
        re.compile(r"/api/runs\?"),
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"runs": runs})
        ),
    )
    open_dashboard(page, idle.base)
    tab = page.tab
    rows = tab.locator("table.runs tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator("td").first).to_have_text("completed webhook delivered")
    expect(rows.nth(2).locator(".webhook")).to_be_hidden()
    hostile = rows.nth(1)
    expect(hostile.locator("th")).to_have_text(HOSTILE_RUN_ID)
    expect(hostile.locator(".webhook")).to_have_text("webhook <b>failed</b>")
    href = hostile.locator("a").get_attribute("href")
    assert href == "/runs/" + requests.utils.quote(HOSTILE_RUN_ID, safe="")
    assert tab.locator("table.runs img, table.runs b").count() == 0
    assert tab.evaluate("window.pwned") is None


@pytest.mark.parametrize(
    "path",
    [
        "/runs/",
        "/runs/0123456789a",  # 11 digits
        "/runs/0123456789abc",  # 13
        "/runs/0123456789AB",  # upper case: not how optio writes them
        "/runs/0123456789ag",
        "/runs/0123456789ab/errors",
        "/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        '/runs/"><img src=x onerror=alert(1)>',
        "/runs/0123456789ab%0a",
        "/runs/..%2F..%2Fetc%2Fpasswd",
        "/runs/" + "a" * 5000,
    ],
)
def test_the_run_page_is_a_404_page_for_anything_but_a_run_id(runs_system, path):
    response = requests.get(runs_system.base + path, timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "No such page" in response.text
    # nothing of the request comes back
    assert "<img" not in response.text and "alert" not in response.text
    assert "0123456789" not in response.text and "aaaaaaaaaa" not in response.text


def test_the_page_of_an_unknown_run_says_so(runs_system, page):
    response = requests.get(runs_system.base + "/runs/0123456789ab", timeout=5)
    assert response.status_code == 200
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", response.text, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    page.tab.goto(runs_system.base + "/runs/0123456789ab")
    expect(page.tab.locator("#load-error")).to_contain_text(
        "Could not read run 0123456789ab: no run 0123456789ab"
    )
    expect(page.tab.locator("#status")).to_have_text("not found")
    expect(page.tab.locator("#retry")).to_be_disabled()
    assert page.csp_violations() == []


def test_the_history_works_without_the_socket_io_client(idle, page):
    page.tab.route("**/vendor/socket.io.min.js", lambda route: route.abort())
    page.tab.goto(idle.base + "/")
    expect(page.tab.locator("#conn")).to_have_attribute("data-state", "polling")
    run_id = start(idle, 5, 6000)
    row = page.tab.locator("table.runs tbody tr").first
    expect(row.locator("th")).to_have_text(run_id)
    # read again when polling sees the run end
    expect(row.locator("td").first).to_contain_text("completed", timeout=30_000)
    expect(row.locator("td").nth(1)).to_have_text("4 / 5")


def test_a_screenshot_of_the_dashboard_with_recent_runs(idle, page):
    """For a person to look at: a stopped run, a clean one and one with failures on screen."""
    start(idle, 1000, 3000)
    wait_for(lambda: idle.get("/api/status").json()["processed"] >= 30, 30, "30 processed")
    idle.post("/api/stop")
    finished_run(idle, 40)
    flawed = finished_run(idle, 60)
    webhook_outcome(idle, flawed["runId"], "delivered")
    open_dashboard(page, idle.base)
    tab = page.tab
    expect(tab.locator("#webhook")).to_have_text("webhook delivered")
    rows = tab.locator("table.runs tbody tr")
    expect(rows.first.locator("th")).to_have_text(flawed["runId"])
    expect(rows.first.get_by_role("button", name=re.compile("Retry the 12 failed"))).to_be_enabled()
    assert rows.count() >= 3
    tab.wait_for_function("() => document.getAnimations().length === 0")  # the bars' growth
    tab.screenshot(path=SCREENSHOT, full_page=True)
    tab.set_viewport_size({"width": 390, "height": 844})
    expect(tab.locator(".grid")).to_have_css("grid-template-columns", re.compile(r"^\S+$"))
    width = tab.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width} px)"
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-history-phone.png"), full_page=True)


def test_the_run_page_downloads_the_results_and_the_dashboard_links_them(idle, page):
    flawed = finished_run(idle, 5)
    run_id = flawed["runId"]
    tab = page.tab
    tab.goto(f"{idle.base}/runs/{run_id}")
    expect(tab.locator("#failed")).to_have_text("1")
    with tab.expect_download() as saved:
        tab.click("#results-failed")
    assert saved.value.suggested_filename == f"optio-{run_id}-failed.csv"
    rows = open(saved.value.path(), encoding="utf-8").read().splitlines()
    assert rows[0] == "job,item,status,result,error,attempts,ms,finishedAt"
    assert [row.split(",")[:3] for row in rows[1:]] == [["4", "", "failed"]]
    with tab.expect_download() as saved:
        tab.click("#results-jsonl")
    lines = open(saved.value.path(), encoding="utf-8").read().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["processed"] * 4 + ["failed"]

    open_dashboard(page, idle.base)
    expect(tab.locator("#run-id")).to_have_text(run_id)
    path = f"/api/runs/{run_id}/results"
    expect(tab.locator("#results-csv")).to_have_attribute("href", f"{path}?format=csv")
    expect(tab.locator("#results-jsonl")).to_have_attribute("href", f"{path}?format=jsonl")
    expect(tab.locator("#run-page")).to_have_attribute("href", f"/runs/{run_id}")


def test_with_protected_reads_the_run_page_downloads_with_the_tabs_token(
    idle, page, tmp_path_factory
):
    """A plain link cannot carry the token: the page fetches the file with it, then saves it."""
    run_id = finished_run(idle, 5)["runId"]
    token = "token-of-the-protected-web"
    with System(
        idle.redis_url,
        tmp_path_factory.mktemp("protected-web"),
        OPTIO_API_TOKEN=token,
        OPTIO_PROTECT_READS="1",
    ) as web:
        web.start_web()
        tab = page.tab
        tab.goto(f"{web.base}/runs/{run_id}")
        expect(tab.locator("#token-field")).to_be_visible()  # its read was refused: 401
        tab.fill("#token", token)
        tab.press("#token", "Tab")
        expect(tab.locator("#failed")).to_have_text("1")
        with tab.expect_download() as saved:
            tab.click("#results-failed")
        assert saved.value.suggested_filename == f"optio-{run_id}-failed.csv"
        rows = open(saved.value.path(), encoding="utf-8").read().splitlines()
        assert [row.split(",")[:3] for row in rows[1:]] == [["4", "", "failed"]]
