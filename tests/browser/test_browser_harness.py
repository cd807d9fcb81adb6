"""The browser harness itself: Chromium renders the real server's pages, screenshots are
kept, axe-core fails a page with a serious violation, and a page that breaks its own
Content Security Policy fails its check."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Route, expect

from .browser_helpers import (
    ARTIFACTS,
    assert_accessible,
    broken_words,
    check_page,
    screenshot,
)
from .console_seed import SeededLedger
from .live_server import LiveServer

#: A page of no server: the test's own route answers it.
FAKE = "http://127.0.0.1:9/page"

INACCESSIBLE = (
    "<!doctype html><html><head><title>bad</title></head>"
    "<body><main><h1>bad</h1><img src='x.png'><button></button></main></body></html>"
)
ACCESSIBLE = (
    "<!doctype html><html lang='en'><head><title>good</title></head>"
    "<body><main><h1>good</h1><label>Token <input name='t'></label>"
    "<button type='submit'>Log in</button></main></body></html>"
)


def serve(page: Page, body: str, csp: str | None = None) -> None:
    headers = {"Content-Type": "text/html; charset=utf-8"}
    if csp is not None:
        headers["Content-Security-Policy"] = csp

    def answer(route: Route) -> None:
        route.fulfill(status=200, headers=headers, body=body)

    page.route(FAKE, answer)
    page.goto(FAKE)


def test_a_page_of_the_real_server_renders_and_is_kept(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.base}/oauth2/code?code=harness-check")
    expect(page.get_by_role("heading", name="Paste this code into your terminal")).to_be_visible()
    expect(page.get_by_text("harness-check")).to_be_visible()
    kept = screenshot(page, "harness-oauth2-code")
    assert kept.parent == ARTIFACTS
    assert kept.read_bytes().startswith(b"\x89PNG")


def test_axe_fails_a_page_with_serious_violations(page: Page) -> None:
    serve(page, INACCESSIBLE)
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page)
    message = str(failure.value)
    for rule in ("image-alt", "button-name", "html-has-lang"):
        assert f"- {rule} (" in message, message


def test_axe_passes_an_accessible_page_under_a_strict_csp(page: Page) -> None:
    serve(page, ACCESSIBLE, csp="default-src 'self'; script-src 'self'")
    check_page(page, "harness-accessible")


def test_a_page_that_breaks_its_own_csp_fails_its_check(page: Page) -> None:
    inline = ACCESSIBLE.replace("</main>", "<script>document.title = 'x'</script></main>")
    serve(page, inline, csp="default-src 'self'; script-src 'self'")
    with pytest.raises(AssertionError, match="Content Security Policy"):
        check_page(page, "harness-csp-broken")


def test_words_split_by_a_squeezed_layout_are_found(page: Page) -> None:
    wrapped = "<p>" + "a sentence that wraps between words, as it should; " * 20 + "</p>"
    squeezed = "<div style='width: 2ch; word-break: break-all'>revoked</div>"
    serve(page, f"<!doctype html><html lang='en'><body><main>{wrapped}{squeezed}</main></body>")
    assert broken_words(page) == ["revoked"]


def test_the_seeded_move_revoked_a_cascade(seeded: SeededLedger) -> None:
    ids = seeded.token_ids
    assert set(seeded.cascade_revoked) == {ids["nightly"], ids["nightly-child"]}
