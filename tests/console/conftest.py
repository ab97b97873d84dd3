"""Browser tests: Debian's Chromium driven by Playwright against a real `python -m api serve` on the test database.

Every page the tests open is watched: a request that leaves our origin, a CSP violation or an uncaught
script error fails the test. A failing test leaves a screenshot in tests/console/failures/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.live_server import live_server_url

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FAILURES = Path(__file__).parent / "failures"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
async def console_base(database, redis):
    # The embedded worker stays off (the suite runs jobs in burst workers); limits are off as in the suite.
    async with live_server_url() as base:
        yield base


@pytest.fixture(scope="session")
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk (.ci/run does it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class Watched:
    """A browser tab with what it did: requests to other origins, CSP reports, script errors."""

    def __init__(self, page, base: str) -> None:
        self.page = page
        self.base = base
        self.origin = urlsplit(base).netloc
        self.offsite: list[str] = []
        self.problems: list[str] = []
        page.on("request", self._request)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)

    def _request(self, request) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob"):
            return
        if url.netloc != self.origin:
            self.offsite.append(request.url)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.problems.append(f"CSP: {message.text}")

    async def login(self, username: str, password: str) -> None:
        await self.page.goto(self.base + "/console")
        await self.page.fill("input[name=username]", username)
        await self.page.fill("input[name=password]", password)
        await self.page.click("[data-test=login]")
        await self.page.wait_for_selector("[data-test=menu]")

    async def logout(self) -> None:
        await self.page.click("[data-test=logout]")
        await self.page.wait_for_selector("[data-test=login]")

    async def visit(self, screen: str) -> None:
        await self.page.goto(f"{self.base}/console#{screen}")

    async def pick(self, select_test: str, option_text: str) -> None:
        """Choose an option of an Element Plus select (its list is teleported to the body)."""
        await self.page.click(f"[data-test={select_test}]")
        await self.page.locator(".el-select-dropdown__item:visible", has_text=option_text).first.click()


@pytest.fixture
async def tab(request, browser, console_base):
    """A fresh browser context (no storage shared with other tests) at the front desk's 1024×768."""
    async for watched in _tab(request, browser, console_base):
        yield watched


@pytest.fixture
async def utc_tab(request, browser, console_base):
    """A tab whose PC clock is set to UTC while the clinic is on Asia/Shanghai (CLINIC_TIMEZONE's default):
    the console must still show the clinic's times."""
    async for watched in _tab(request, browser, console_base, timezone_id="UTC"):
        yield watched


@pytest.fixture(scope="session")
async def tokyo_console_base(database, redis):
    """A second server, for a clinic whose CLINIC_TIMEZONE is Asia/Tokyo while its branches stay on Shanghai:
    only there does a page that counts days in a zone of its own (a branch's, or one written into the page)
    differ from one that counts them in the clinic's. Started only by the tests that ask for it."""
    async with live_server_url(CLINIC_TIMEZONE="Asia/Tokyo") as base:
        yield base


@pytest.fixture
async def tokyo_clinic_utc_tab(request, browser, tokyo_console_base):
    """A tab on a PC set to UTC, at the clinic on Asia/Tokyo (tokyo_console_base)."""
    async for watched in _tab(request, browser, tokyo_console_base, timezone_id="UTC"):
        yield watched


async def _tab(request, browser, console_base, **context_options):
    context = await browser.new_context(viewport={"width": 1024, "height": 768}, accept_downloads=True,
                                        locale="zh-CN", **context_options)
    page = await context.new_page()
    # Generous: the machine is shared and a loaded CPU slows rendering; a passing test never waits this long.
    page.set_default_timeout(30_000)
    watched = Watched(page, console_base)
    try:
        yield watched
        assert watched.offsite == [], f"requests left our origin: {watched.offsite}"
        assert watched.problems == [], watched.problems
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            FAILURES.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
            await page.screenshot(path=str(FAILURES / f"{name}.png"), full_page=True)
        await context.close()
