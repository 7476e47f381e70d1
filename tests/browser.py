"""A real browser for the web pages: Debian's Chromium, headless, driven by Playwright.

Playwright normally downloads its own browser build; this machine has no internet for that,
so it drives the Chromium binary Debian installs (`executable_path`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/lib/chromium/chromium")  # the binary behind Debian's /usr/bin/chromium


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A fresh page in a headless Chromium; skips where Chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (run `make deps`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        # The portals under test use a CA made by the test, not one in the system store.
        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 1200, "height": 900}
        )
        context.set_default_timeout(10_000)
        try:
            yield context.new_page()
        finally:
            browser.close()


def log_in(page: Any, url: str, name: str, password: str, code: str) -> None:
    """The helpdesk login form, filled in the way a person does."""
    page.goto(url + "/helpdesk")
    page.wait_for_url("**/login*")  # nothing without logging in
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.fill("input[name=code]", code)
    page.click("button[type=submit]")
