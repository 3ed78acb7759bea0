"""Debian's Chromium driven by Playwright, for the browser tests: the ``browser`` (one per
session) and ``page`` (a fresh tab per test) fixtures, which tests/browser/conftest.py shares with
every module of the tier, and ``Page``, a tab that records uncaught errors and console output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from optio.testing import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots for a person to look at (git-ignored).
ARTIFACTS = ROOT / "artifacts"
#: Playwright's own wait for one expectation, ms.
EXPECT_MS = 15_000


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh test installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


class Page:
    """A browser tab that records uncaught errors and console output."""

    def __init__(
        self, browser, width: int = 1280, height: int = 860, timezone: str | None = None
    ) -> None:
        self.context = browser.new_context(
            locale="en-US",
            viewport={"width": width, "height": height},
            **({"timezone_id": timezone} if timezone else {}),
        )
        self.tab = self.context.new_page()
        self.tab.set_default_timeout(EXPECT_MS)
        self.errors: list[str] = []
        self.console: list[str] = []
        self.tab.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.tab.on("console", self._console)
        # Content-Security-Policy violations, as the page itself sees them
        self.context.add_init_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation',"
            " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        )

    def csp_violations(self) -> list[str]:
        return self.tab.evaluate("window.__csp || []")

    def _console(self, message) -> None:
        self.console.append(message.text)
        # the browser itself reports failed requests (our 409s, a server that went away);
        # anything else is noise of ours
        browser_own = ("Failed to load resource", "WebSocket connection to")
        if message.type == "error" and not message.text.startswith(browser_own):
            self.errors.append(message.text)

    def wait(self, condition, timeout: float, what: str) -> None:
        """Like wait_for, but lets Playwright deliver events (console lines) while waiting."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.tab.wait_for_timeout(50)

    def text(self, selector: str) -> str:
        return self.tab.locator(selector).inner_text()

    def number(self, selector: str) -> int:
        return int(self.text(selector).replace(",", ""))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    tab = Page(browser)
    yield tab
    tab.close()
    assert not tab.errors, f"errors in the page: {tab.errors}"


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def open_dashboard(page: Page, base: str) -> None:
    """Open the dashboard and wait for its live feed to be connected."""
    page.tab.goto(base + "/")
    expect(page.tab.locator("#conn")).to_have_attribute("data-state", "connected")
