"""The web console in a real browser, as a person uses it: logging in (with a ledger token,
through the org's OpenID provider, with the keyboard alone), finding a token and following
its revocation cascade, moving a service account after its preview, the log's chain check,
audit search and who-can, and the org page on a phone.

Every page visited is kept as a screenshot and checked with axe-core (``check_page``).
Locators go by role and label, as assistive technology finds things.
"""

from __future__ import annotations

import re

from browser_helpers import check_page
from console_seed import ADMIN, DEPLOY, INGEST, ORG, SeededLedger
from live_server import LiveServer
from playwright.sync_api import Page, expect

from oidc_provider import OidcProvider

LOGGED_IN = re.compile(r"log ?out", re.IGNORECASE)
#: How many key presses may pass before the keyboard reaches a field.
MAX_TABS = 30


def log_in_with_token(page: Page, server: LiveServer, secret: str) -> None:
    page.goto(f"{server.base}/console/login")
    page.get_by_label(re.compile("token", re.IGNORECASE)).fill(secret)
    page.get_by_role("button", name=re.compile("log in", re.IGNORECASE)).first.click()
    expect(page.get_by_role("button", name=LOGGED_IN)).to_be_visible()


def open_org_page(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.base}/console")
    page.get_by_role("link", name=ORG, exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(ORG)


def test_log_in_with_a_ledger_token(page: Page, server: LiveServer, seeded: SeededLedger) -> None:
    page.goto(f"{server.base}/console")
    # Without a login, the console sends the browser to its login page.
    expect(page).to_have_url(re.compile(r"/console/login"))
    check_page(page, "login")
    page.get_by_label(re.compile("token", re.IGNORECASE)).fill(seeded.admin_secret)
    page.get_by_role("button", name=re.compile("log in", re.IGNORECASE)).first.click()
    expect(page.get_by_role("button", name=LOGGED_IN)).to_be_visible()
    expect(page.get_by_text(ADMIN).first).to_be_visible()
    # The secret is not in the page, nor in its address.
    assert seeded.admin_secret not in page.content()
    assert seeded.admin_secret not in page.url
    check_page(page, "home")


def test_a_wrong_token_is_refused_on_the_login_page(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.base}/console/login")
    page.get_by_label(re.compile("token", re.IGNORECASE)).fill("tlp_not-a-real-token")
    page.get_by_role("button", name=re.compile("log in", re.IGNORECASE)).first.click()
    expect(page).to_have_url(re.compile(r"/console/login"))
    expect(page.get_by_role("alert")).to_be_visible()
    check_page(page, "login-refused")


def test_log_in_through_the_org_provider(
    page: Page, server: LiveServer, oidc_provider: OidcProvider
) -> None:
    oidc_provider.set_user(ADMIN, email=ADMIN, email_verified=True)
    page.goto(f"{server.base}/console/login")
    page.get_by_label(re.compile("org", re.IGNORECASE)).fill(ORG)
    page.get_by_role("button", name=re.compile("provider|single sign|sso", re.IGNORECASE)).click()
    # The console's own page that sends the browser on to the provider.
    check_page(page, "login-continue")
    page.get_by_role("link", name=re.compile("continue", re.IGNORECASE)).click()
    # The provider's own login form (not the console's: no accessibility check of it).
    expect(page).to_have_url(re.compile(re.escape(oidc_provider.issuer)))
    page.get_by_placeholder("sub").fill(ADMIN)
    page.get_by_role("button", name="Authorize").click()
    expect(page).to_have_url(re.compile(re.escape(server.base) + r"/console"))
    expect(page.get_by_role("button", name=LOGGED_IN)).to_be_visible()
    expect(page.get_by_text(ADMIN).first).to_be_visible()
    check_page(page, "home-after-provider-login")


def test_the_login_form_works_with_the_keyboard_alone(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    page.goto(f"{server.base}/console/login")
    token_field = page.get_by_label(re.compile("token", re.IGNORECASE))
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if token_field.evaluate("field => field === document.activeElement"):
            break
    else:
        raise AssertionError(f"{MAX_TABS} presses of Tab never reached the token field")
    page.keyboard.type(seeded.admin_secret)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name=LOGGED_IN)).to_be_visible()
    # Focus is visible where the keyboard is: the first Tab on the next page lands
    # on something that can be used.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement && document.activeElement.tagName")
    assert focused in {"A", "BUTTON", "INPUT", "SELECT", "TEXTAREA", "SUMMARY"}, focused
    check_page(page, "home-by-keyboard")


def test_find_a_token_and_follow_its_cascade(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    open_org_page(page, server)
    check_page(page, "org")
    child = seeded.token_ids["nightly-child"]
    parent = seeded.token_ids["nightly"]
    # The filter narrows the org's tokens to the one looked for.
    page.get_by_label(re.compile("name", re.IGNORECASE)).first.fill("nightly-child")
    page.get_by_role("button", name=re.compile("filter|search|show", re.IGNORECASE)).click()
    expect(page.get_by_role("link", name=child)).to_be_visible()
    expect(page.get_by_role("link", name=parent)).to_have_count(0)
    check_page(page, "org-tokens-filtered")
    page.get_by_role("link", name=child).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(child)
    expect(page.get_by_text(re.compile("revoked", re.IGNORECASE)).first).to_be_visible()
    check_page(page, "token-child")
    # The cascade links each token it revoked: on to the parent's page.
    page.get_by_role("link", name=parent).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(parent)
    # ... whose cascade names the move of the service account that started it.
    expect(page.get_by_role("link", name=INGEST).first).to_be_visible()
    expect(page.get_by_role("link", name=child).first).to_be_visible()
    check_page(page, "token-parent")


def test_move_a_service_account_after_the_preview(
    page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    open_org_page(page, server)
    page.get_by_role("link", name=DEPLOY).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(DEPLOY)
    check_page(page, "service-account")
    main, canary = seeded.token_ids["deploy-main"], seeded.token_ids["deploy-canary"]
    page.get_by_label(re.compile("resource|project", re.IGNORECASE)).fill("acme/gamma")
    page.get_by_role("button", name=re.compile("preview", re.IGNORECASE)).click()
    # The preview lists the tokens the move would revoke, and nothing is revoked yet.
    preview = page.get_by_role("main")
    expect(preview).to_contain_text(main)
    expect(preview).to_contain_text(canary)
    check_page(page, "service-account-move-preview")
    page.get_by_role("button", name=re.compile("confirm", re.IGNORECASE)).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(DEPLOY)
    expect(page.get_by_text("acme/gamma").first).to_be_visible()
    check_page(page, "service-account-moved")
    for token_id in (main, canary):
        page.goto(f"{server.base}/console/tokens/{token_id}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(token_id)
        expect(page.get_by_text(re.compile("revoked", re.IGNORECASE)).first).to_be_visible()
    check_page(page, "token-revoked-by-move")


def test_check_the_log_chain(page: Page, server: LiveServer, seeded: SeededLedger) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    page.goto(f"{server.base}/console")
    page.get_by_role("link", name=re.compile(r"^log$", re.IGNORECASE)).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("log", re.I))
    expect(page.get_by_text(re.compile("head", re.IGNORECASE)).first).to_be_visible()
    check_page(page, "log")
    page.get_by_role("button", name=re.compile("check the chain", re.IGNORECASE)).click()
    expect(page.get_by_text(re.compile("chain ok|intact|verified", re.IGNORECASE))).to_be_visible()
    check_page(page, "log-chain-checked")


def test_audit_search_and_who_can(page: Page, server: LiveServer, seeded: SeededLedger) -> None:
    log_in_with_token(page, server, seeded.admin_secret)
    page.goto(f"{server.base}/console")
    page.get_by_role("link", name=re.compile(r"^audit$", re.IGNORECASE)).first.click()
    check_page(page, "audit")
    parent = seeded.token_ids["nightly"]
    page.get_by_label(re.compile("subject", re.IGNORECASE)).fill(parent)
    page.get_by_role("button", name=re.compile("search", re.IGNORECASE)).click()
    expect(page.get_by_text(re.compile("TokenRevoked")).first).to_be_visible()
    check_page(page, "audit-search")
    page.get_by_label(re.compile("resource", re.IGNORECASE)).fill("acme/alpha")
    page.get_by_role("button", name=re.compile("who can", re.IGNORECASE)).click()
    expect(page.get_by_text("bob@acme.io").first).to_be_visible()
    check_page(page, "audit-who-can")


def test_the_org_page_on_a_narrow_screen(
    narrow_page: Page, server: LiveServer, seeded: SeededLedger
) -> None:
    log_in_with_token(narrow_page, server, seeded.admin_secret)
    open_org_page(narrow_page, server)
    check_page(narrow_page, "org-narrow")
    # The page reflows to the screen: nothing needs scrolling sideways.
    overflow = narrow_page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow <= 0, f"the org page is {overflow}px wider than a 375px screen"
