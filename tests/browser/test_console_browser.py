"""The web console in a real browser, as a person uses it: logging in (with a ledger token,
through the org's OpenID provider, with the keyboard alone), finding a token and following
its revocation cascade, moving a service account after its preview, the log's chain check,
audit search and who-can (now and before a move), and the org page on a phone.

Every console page visited is kept as a screenshot and checked with axe-core
(``check_page``). Locators go by role and label, as assistive technology finds things.
"""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from oidc_provider import OidcProvider

from .browser_helpers import broken_words, check_page, screenshot
from .console_seed import ADMIN, DEPLOY, INGEST, MEMBER, ORG, SeededLedger
from .live_server import LiveServer

#: How many presses of Tab may pass before the keyboard reaches the token field.
MAX_TABS = 20


def logged_in_as(page: Page, who: str) -> None:
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text(f"Logged in as {who}")


def log_in_with_token(page: Page, server: LiveServer, secret: str) -> None:
    page.goto(f"{server.base}/console/login")
    page.get_by_label("Ledger token", exact=True).fill(secret)
    page.get_by_role("button", name="Log in with token").click()
    logged_in_as(page, ADMIN)


def heading(page: Page, text: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(text)


def open_org_page(page: Page) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Organizations").click()
    page.get_by_role("main").get_by_role("link", name=ORG, exact=True).click()
    heading(page, f"Organization {ORG}")


def test_log_in_with_a_ledger_token(page: Page, server: LiveServer, seeded: SeededLedger) -> None:
    page.goto(f"{server.base}/console")
    # Without a login, the console sends the browser to its login page.
    expect(page).to_have_url(f"{server.base}/console/login")
    heading(page, "Log in")
    check_page(page, "login")
    page.get_by_label("Ledger token", exact=True).fill(seeded.admin_secret)
    page.get_by_role("button", name="Log in with token").click()
    logged_in_as(page, ADMIN)
    heading(page, "Organizations")
    expect(page.get_by_role("main").get_by_role("link", name=ORG, exact=True)).to_be_visible()
    # The secret is in neither the page nor its address.
    assert seeded.admin_secret not in page.content()
    assert seeded.admin_secret not in page.url
    check_page(page, "organizations")


def test_a_wrong_token_is_refused_on_the_login_page(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.base}/console/login")
    page.get_by_label("Ledger token", exact=True).fill("tlp_this-is-not-a-token")
    page.get_by_role("button", name="Log in with token").click()
    heading(page, "Log in")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    check_page(page, "login-refused")


def test_log_out(page: Page, server: LiveServer, seeded: SeededLedger) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    page.get_by_role("button", name="Log out").click()
    heading(page, "Log in")
    check_page(page, "logged-out")
    page.goto(f"{server.base}/console/log")
    expect(page).to_have_url(re.compile(re.escape(f"{server.base}/console/login")))
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)


def test_an_unknown_token_is_a_page_saying_so(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    response = page.goto(f"{server.base}/console/tokens/tok_0000000000000000")
    assert response is not None
    assert response.status == 404
    heading(page, "Not found")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("tok_0000000000000000")
    assert "\n" not in (alert.text_content() or "").strip()
    check_page(page, "token-not-found")


def test_log_in_through_the_org_provider(
    page: Page, server: LiveServer, oidc_provider: OidcProvider
) -> None:
    oidc_provider.set_user(ADMIN, email=ADMIN, email_verified=True)
    page.goto(f"{server.base}/console/login")
    page.get_by_label("Organization", exact=True).fill(ORG)
    page.get_by_role("button", name="Log in through the identity provider").click()
    # The console's page sends the browser on to the provider's own login form (not the
    # console's: it gets no accessibility check here).
    expect(page).to_have_url(re.compile("^" + re.escape(oidc_provider.issuer + "/")))
    screenshot(page, "provider-login-form")
    page.get_by_placeholder("sub").fill(ADMIN)
    page.get_by_role("button", name="Authorize").click()
    expect(page).to_have_url(f"{server.base}/console")
    logged_in_as(page, ADMIN)
    heading(page, "Organizations")
    check_page(page, "organizations-after-provider-login")


def test_the_login_form_works_with_the_keyboard_alone(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    page.goto(f"{server.base}/console/login")
    token_field = page.get_by_label("Ledger token", exact=True)
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if token_field.evaluate("field => field === document.activeElement"):
            break
    else:
        raise AssertionError(f"{MAX_TABS} presses of Tab never reached the token field")
    page.keyboard.type(seeded.admin_secret)
    page.keyboard.press("Enter")
    logged_in_as(page, ADMIN)
    # On the next page, the first Tab lands on something the keyboard can use.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.tagName")
    assert focused in {"A", "BUTTON", "INPUT", "SELECT", "TEXTAREA"}, focused
    check_page(page, "organizations-by-keyboard")


def test_find_a_token_and_follow_its_cascade(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    open_org_page(page)
    members = page.get_by_role("table", name=f"Members of {ORG} and their roles")
    expect(members).to_contain_text(MEMBER)
    check_page(page, "org")
    child, parent = seeded.token_ids["nightly-child"], seeded.token_ids["nightly"]
    # The filter narrows the org's tokens to the one looked for.
    page.get_by_label("Text in id, name or grants", exact=True).fill("nightly-child")
    page.get_by_role("button", name="Filter").click()
    tokens = page.get_by_role("table", name=re.compile("^Tokens of "))
    expect(tokens.get_by_role("link", name=child)).to_be_visible()
    expect(tokens.get_by_role("link", name=parent)).to_have_count(0)
    check_page(page, "org-tokens-filtered")
    tokens.get_by_role("link", name=child).click()
    heading(page, f"Token {child}")
    expect(page.get_by_role("main")).to_contain_text("revoked")
    check_page(page, "token-child")
    # The cascade links each token the move revoked: on to the parent's page.
    cascade = page.get_by_role("list", name="The cascade that revoked this token")
    expect(cascade).to_contain_text("ServiceAccountPermission")
    cascade.get_by_role("link", name=parent).click()
    heading(page, f"Token {parent}")
    cascade = page.get_by_role("list", name="The cascade that revoked this token")
    expect(cascade.get_by_role("link", name=child)).to_be_visible()
    check_page(page, "token-parent")
    # ... and from the token to its holder, the service account that was moved.
    page.get_by_role("main").get_by_role("link", name=INGEST).first.click()
    heading(page, f"Service account {INGEST}")
    check_page(page, "service-account-moved-by-seed")


def test_move_a_service_account_after_the_preview(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    open_org_page(page)
    accounts = page.get_by_role("table", name=f"Service accounts of {ORG} and their permission")
    accounts.get_by_role("link", name=DEPLOY).click()
    heading(page, f"Service account {DEPLOY}")
    check_page(page, "service-account")
    main, canary = seeded.token_ids["deploy-main"], seeded.token_ids["deploy-canary"]
    page.get_by_label("Resource", exact=True).fill("acme/gamma")
    page.get_by_role("button", name="Preview the move").click()
    heading(page, f"Move the permission of {DEPLOY}?")
    # Only the resource was changed: the level stays what it was.
    expect(page.get_by_role("main")).to_contain_text("write:acme/gamma")
    # The preview lists the tokens the move would revoke; nothing is revoked yet.
    would_revoke = page.get_by_role("region", name="What it would revoke")
    for token_id in (main, canary):
        expect(would_revoke.get_by_role("link", name=token_id)).to_be_visible()
    check_page(page, "service-account-move-preview")
    page.get_by_role("link", name=main).click()
    heading(page, f"Token {main}")
    expect(page.get_by_role("main")).not_to_contain_text("revoked")
    check_page(page, "token-before-move")
    page.go_back()
    page.get_by_role("button", name="Confirm the move").click()
    heading(page, f"Service account {DEPLOY}")
    expect(page.get_by_role("status")).to_contain_text("Revoked 2 tokens")
    expect(page.get_by_role("main")).to_contain_text("write:acme/gamma")
    tokens = page.get_by_role("table", name=f"Tokens of {DEPLOY}")
    for token_id in (main, canary):
        expect(tokens.get_by_role("row").filter(has_text=token_id)).to_contain_text("revoked")
    check_page(page, "service-account-moved")
    page.get_by_role("status").get_by_role("link", name=canary).click()
    heading(page, f"Token {canary}")
    cascade = page.get_by_role("list", name="The cascade that revoked this token")
    expect(cascade.get_by_role("link", name=main)).to_be_visible()
    check_page(page, "token-revoked-by-move")


def test_check_the_log_chain(page: Page, server: LiveServer, seeded: SeededLedger) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="The log").click()
    heading(page, "The log")
    head = page.get_by_role("region", name="Head")
    expect(head).to_contain_text(re.compile(r"Position\s*\d+"))
    position = re.search(r"Position\s*(\d+)", head.inner_text())
    assert position is not None
    checkpoint = page.get_by_role("region", name="Latest signed checkpoint")
    expect(checkpoint).to_contain_text(re.compile(r"size \d+, signed by tokenledger/"))
    check_page(page, "log")
    page.get_by_role("button", name="Check the chain").click()
    expect(page.get_by_role("status")).to_contain_text(
        re.compile(rf"chain ok: \d+ events, head position {position[1]}\b")
    )
    check_page(page, "log-chain-checked")


def test_audit_search(page: Page, server: LiveServer, seeded: SeededLedger) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit search").click()
    heading(page, "Audit search")
    check_page(page, "audit")
    parent = seeded.token_ids["nightly"]
    page.get_by_label("Subject", exact=True).fill(parent)
    page.get_by_role("button", name="Search").click()
    events = page.get_by_role("table", name=re.compile("^Matching events"))
    # Its issue (and its child's, which names it as parent) and its one revocation.
    expect(events.get_by_role("row").filter(has_text="TokenIssued").first).to_be_visible()
    expect(events.get_by_role("row").filter(has_text="TokenRevoked")).to_have_count(1)
    check_page(page, "audit-search")
    # A correlation id leads to everything the same command did: the whole cascade.
    events.get_by_role("row").filter(has_text="TokenRevoked").get_by_role("link").click()
    events = page.get_by_role("table", name=re.compile("^Matching events"))
    expect(events.get_by_role("row").filter(has_text="TokenRevoked")).to_have_count(2)
    expect(events.get_by_role("row").filter(has_text="ServiceAccountPermission")).to_have_count(1)
    check_page(page, "audit-correlation")


def test_who_can_now_and_before_a_move(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Who can").click()
    heading(page, "Who can")
    check_page(page, "who-can")
    page.get_by_label("Resource", exact=True).fill("acme/alpha")
    page.get_by_label("Level", exact=True).select_option("write")
    page.get_by_role("button", name="Ask").click()
    principals = page.get_by_role("table", name="Who could write on acme/alpha")
    expect(principals).to_contain_text(MEMBER)
    expect(principals).not_to_contain_text(INGEST)
    check_page(page, "who-can-now")
    # Before the move, the moved service account and its tokens could.
    before = seeded.moved_at - timedelta(minutes=30)
    page.get_by_label("At", exact=True).fill(before.strftime("%Y-%m-%dT%H:%M:%SZ"))
    page.get_by_role("button", name="Ask").click()
    principals = page.get_by_role("table", name="Who could write on acme/alpha")
    expect(principals.get_by_role("link", name=INGEST)).to_be_visible()
    tokens = page.get_by_role("table", name="Usable tokens that could write on acme/alpha")
    expect(tokens.get_by_role("link", name=seeded.token_ids["nightly"])).to_be_visible()
    check_page(page, "who-can-before-move")


def test_the_org_page_keeps_short_words_whole(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    open_org_page(page)
    check_page(page, "org-desktop")
    broken = broken_words(page)
    assert not broken, f"words broken across lines at 1280px: {sorted(set(broken))}"


def test_the_org_page_on_a_narrow_screen(
    narrow_page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(narrow_page, server, seeded.admin_secret)
    open_org_page(narrow_page)
    check_page(narrow_page, "org-narrow")
    # The page reflows to the screen: nothing but a table's own scroller needs sideways
    # scrolling.
    overflow = narrow_page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow <= 0, f"the org page is {overflow}px wider than a 375px screen"
    # ... and its tables stay readable: no status or column name split letter by letter.
    broken = broken_words(narrow_page)
    assert not broken, f"words broken across lines on a 375px screen: {sorted(set(broken))}"
