"""Fixtures of the browser tests: a seeded ledger behind a real ``tokenledger serve``, the
org's OpenID provider, and headless Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``scripts/test`` installs it when missing; Playwright
cannot download its own build here), launched through ``executable_path``; another binary
may be named by ``TOKENLEDGER_CHROMIUM``. Without it the browser tests are skipped with the
reason shown, except when ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from oidc_provider import OidcProvider
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

from .browser_helpers import ARTIFACTS, watch
from .console_seed import SeededLedger, seed_console_ledger
from .live_server import LiveServer

CHROMIUM = Path(os.environ.get("TOKENLEDGER_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() == "true"
#: Where the pages come from; anything else (a CDN, say) is refused, as offline.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
#: How long a locator waits for what it looks for before the test fails.
EXPECT_TIMEOUT_MS = 10_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


#: Set once a browser test of this run has started (the screenshots are then this run's).
SCREENSHOTS_KEPT = pytest.StashKey[bool]()


@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts(request: pytest.FixtureRequest) -> None:
    """What the screenshot directory holds after a run is that run's."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    request.config.stash[SCREENSHOTS_KEPT] = True


# The browser, the provider and the server last a module each: they are gone before the
# rest of the suite runs (Playwright's sync API keeps an event loop of its own meanwhile).
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        reason = (
            f"Chromium is not installed at {CHROMIUM} "
            "(scripts/test installs Debian's chromium with apt, as root)"
        )
        if IN_CI:
            pytest.fail(f"CI=true requires the browser tests. {reason}")
        pytest.skip(reason)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield chromium
    chromium.close()


def _loopback_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
        route.continue_()
    else:
        route.abort()


def new_page(browser: Browser, width: int, height: int, *, phone: bool = False) -> Page:
    """A page in a fresh context (no cookies), watched for errors, offline but for loopback."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone
    )
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    context.route("**/*", _loopback_only)
    page = context.new_page()
    watch(page)
    return page


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page, alone in its browser context."""
    page = new_page(browser, 1280, 900)
    yield page
    page.context.close()


@pytest.fixture
def narrow_page(browser: Browser) -> Iterator[Page]:
    """A phone-sized page (375 px wide), alone in its browser context."""
    page = new_page(browser, 375, 812, phone=True)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[OidcProvider]:
    """The org's OpenID provider: a real one on a loopback port."""
    with OidcProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def console_ledger(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[tuple[LiveServer, SeededLedger]]:
    """The seeded ledger (see ``console_seed``) behind a real server."""
    directory = tmp_path_factory.mktemp("console")
    database_url = f"sqlite:///{directory / 'ledger.db'}"
    keys_file = directory / "keys.json"
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        seeded = seed_console_ledger(
            ledger, KeyStore(keys_file), oidc_provider.issuer, datetime.now(UTC)
        )
    finally:
        ledger.close()
    server = LiveServer(database_url, keys_file)
    yield server, seeded
    server.stop()


#: Where the server's log stood when a test began (its report shows what came after).
LOG_START = pytest.StashKey[int]()


@pytest.fixture
def server(
    console_ledger: tuple[LiveServer, SeededLedger], request: pytest.FixtureRequest
) -> LiveServer:
    live = console_ledger[0]
    request.node.stash[LOG_START] = len(live.log)
    return live


@pytest.fixture
def seeded(console_ledger: tuple[LiveServer, SeededLedger]) -> SeededLedger:
    return console_ledger[1]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report shows what the server logged (a traceback behind a 500)."""
    report: pytest.TestReport = yield
    server: LiveServer | None = getattr(item, "funcargs", {}).get("server")
    if report.when == "call" and report.failed and server is not None:
        logged = "".join(server.log[item.stash.get(LOG_START, 0) :])
        if logged:
            report.sections.append(("what the server logged during the test", logged))
    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if config.stash.get(SCREENSHOTS_KEPT, False) and any(ARTIFACTS.iterdir()):
        terminalreporter.write_line(f"screenshots of the web console: {ARTIFACTS}")
