"""Fixtures of the browser tier: Debian's Chromium (``browser``, one per session) and a fresh tab
per test (``page``), from tests/browser/chromium.py."""

from tests.browser.chromium import browser, page  # noqa: F401 (the browser tests' fixtures)
