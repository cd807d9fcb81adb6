"""The web console (``/console``) against hostile users, on SQLite and PostgreSQL: a member of
another org probing acme's addresses, values made to break out of a page, forms posted from
elsewhere or replayed, tampered and replayed cookies, a login answer carried to another
browser, methods a page does not take, and what a page could reveal of a secret."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

import test_console
from api_helpers import OPERATOR, SA, Api
from login_helpers import local, register_provider
from oidc_provider import OidcProvider
from test_console import (
    assert_console_headers,
    begin_provider_login,
    confirm_form,
    csrf_of,
    head,
    log_in,
    logged_in,
    set_cookies,
    token_id,
)
from tokenledger.domain import commands as c

# The console tests' fixtures: a seeded ledger behind the app, and an identity provider.
api = test_console.api
provider = test_console.provider

#: A value that would run script, or add an element or an attribute, were it not escaped.
HOSTILE = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"
ALERT = re.compile(r'role="alert">([^<]*)<')


def alert_of(page: httpx.Response) -> str:
    found = ALERT.search(page.text)
    assert found is not None, page.text
    return found.group(1)


def assert_inert(page: httpx.Response) -> None:
    """Nothing of ``HOSTILE`` became markup: no script, no image, no handler."""
    text = page.text.lower()
    assert "<script" not in text
    assert "<img" not in text
    assert "onerror=alert" not in text.replace("onerror=alert(2)&gt;", "")


def browser(api: Api) -> TestClient:
    """Another browser: a client of the same server with cookies of its own."""
    return TestClient(api.client.app, raise_server_exceptions=False)


def provider_answer(api: Api, provider: OidcProvider, client: TestClient) -> str:
    """The console callback address the server sends ``client`` to after ann's login."""
    back = client.get(
        local(provider.login(begin_provider_login(client), "ann")), follow_redirects=False
    )
    assert back.status_code == 303, back.text
    return local(back.headers["location"])


# -- another org's member ---------------------------------------------------------------------


def test_another_orgs_member_gets_the_apis_answers_and_sees_nothing_of_acme(api: Api) -> None:
    ann_token = token_id(api, api.ann)
    logged_in(api, api.carol)
    before = head(api)
    for console, from_api in (
        ("/console/orgs/acme", "/v2/orgs/acme/members"),
        (f"/console/service-accounts/{SA}", f"/v2/service_accounts/{SA}"),
        (f"/console/tokens/{ann_token}", f"/v2/tokens/{ann_token}"),
        (
            "/console/who-can?resource=acme/alpha&level=read",
            "/v2/audit/who-can?resource=acme/alpha&level=read",
        ),
    ):
        page = api.client.get(console)
        answer = api.client.get(from_api, headers=api.bearer(api.carol))
        assert page.status_code == answer.status_code, console
        assert page.status_code in (403, 404), console
        assert alert_of(page).replace("&#39;", "'") == answer.json()["error_description"]
        for secret_of_acme in ("ann@acme.io", "bob@acme.io", "write:acme/alpha", api.ann):
            assert secret_of_acme not in page.text, (console, secret_of_acme)
    audit = api.client.get("/console/audit", params={"subject": ann_token})
    assert audit.status_code == 200
    assert "0 events." in audit.text
    assert head(api) == before


def test_acmes_ids_and_ids_that_do_not_exist_look_alike_to_another_org(api: Api) -> None:
    """Where the API answers an id of another org as it answers an unknown one, so does the
    console: same status, same message but for the id."""
    ann_token = token_id(api, api.ann)
    logged_in(api, api.carol)
    pairs = (
        (
            f"/console/tokens/{ann_token}",
            "/console/tokens/tok_AAAAAAAAAAAAAAAA",
            ann_token,
            "tok_AAAAAAAAAAAAAAAA",
        ),
        (
            f"/console/service-accounts/{SA}",
            "/console/service-accounts/nobody@acme.service.tokenledger",
            SA,
            "nobody@acme.service.tokenledger",
        ),
        ("/console/orgs/acme", "/console/orgs/nowhere", "acme", "nowhere"),
    )
    for existing, missing, existing_id, missing_id in pairs:
        seen, unseen = api.client.get(existing), api.client.get(missing)
        assert seen.status_code == unseen.status_code, existing
        assert alert_of(seen).replace(existing_id, "ID") == alert_of(unseen).replace(
            missing_id, "ID"
        )


def test_another_orgs_member_can_neither_preview_nor_confirm_a_move_of_acmes_account(
    api: Api,
) -> None:
    csrf = logged_in(api, api.carol)
    before = head(api)
    from_api = api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "other", "level": "admin"},
        headers=api.bearer(api.carol),
    )
    for path in (
        f"/console/service-accounts/{SA}/move",
        f"/console/service-accounts/{SA}/move/confirm",
    ):
        page = api.client.post(path, data={"csrf": csrf, "resource": "other", "level": "admin"})
        assert page.status_code == from_api.status_code == 403, path
        assert "acme/alpha" not in page.text
    assert head(api) == before
    assert api.ledger.get_service_account(OPERATOR, SA).permission.resource == "acme/alpha"


def test_a_confirm_is_authorised_on_its_own_not_by_the_preview_before_it(api: Api) -> None:
    """The confirm form's hidden fields are the browser's to change: posting another
    resource than the one previewed is a move of its own, which the ledger judges."""
    csrf = logged_in(api, api.ann)
    preview = api.client.post(
        f"/console/service-accounts/{SA}/move",
        data={"csrf": csrf, "resource": "acme/beta", "level": "read"},
    )
    assert preview.status_code == 200, preview.text
    before = head(api)
    swapped = api.client.post(
        f"/console/service-accounts/{SA}/move/confirm",
        data={"csrf": csrf_of(preview), "resource": "other", "level": "admin"},
    )
    from_api = api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "other", "level": "admin"},
        headers=api.admin,
    )
    assert swapped.status_code == from_api.status_code
    assert 400 <= swapped.status_code < 500
    assert head(api) == before
    assert api.ledger.get_service_account(OPERATOR, SA).permission.resource == "acme/alpha"


def test_the_chain_check_is_for_admins_and_auditors_and_writes_nothing(api: Api) -> None:
    """It reads the whole log: a member reading a project only (and so no org's events) is
    refused before it starts; an org's admin runs it."""
    csrf = logged_in(api, api.bob)
    before = head(api)
    refused = api.client.post("/console/log/verify", data={"csrf": csrf})
    assert refused.status_code == 403
    said = "checking the log&#39;s chain is for the operator and an org&#39;s admins"
    assert said in refused.text
    assert "chain ok" not in refused.text
    admin = browser(api)
    form = admin.get("/console/login")
    admin.post("/console/login", data={"token": api.ann, "csrf": csrf_of(form)})
    checked = admin.post("/console/log/verify", data={"csrf": csrf_of(admin.get("/console"))})
    assert checked.status_code == 200
    assert "chain ok" in checked.text
    assert head(api) == before


# -- values that try to become markup ----------------------------------------------------------


def test_names_and_reasons_in_the_ledger_are_shown_as_text(api: Api) -> None:
    issued = api.ledger.execute(
        c.IssueToken(
            principal=SA, name=HOSTILE, grants=[{"resource": "acme/alpha", "level": "read"}]
        ),
        OPERATOR,
    ).issued
    assert issued is not None
    api.ledger.execute(c.RevokeToken(token_id=issued.token_id, reason=HOSTILE), OPERATOR)
    api.ledger.execute(c.CreateUser(email="eve@acme.io", name=HOSTILE), OPERATOR)
    api.ledger.execute(c.AddMember(org="acme", email="eve@acme.io"), OPERATOR)
    logged_in(api, api.ann)
    for path in (
        "/console/orgs/acme",
        f"/console/tokens/{issued.token_id}",
        f"/console/service-accounts/{SA}",
        "/console/audit?limit=1000",
    ):
        page = api.client.get(path)
        assert page.status_code == 200, path
        assert_inert(page)
    assert "&lt;script&gt;" in api.client.get(f"/console/tokens/{issued.token_id}").text


def test_filters_addresses_and_errors_echo_what_was_typed_as_text(api: Api) -> None:
    csrf = logged_in(api, api.ann)
    before = head(api)
    gets = (
        ("/console/audit", {"actor": HOSTILE, "subject": HOSTILE, "correlation_id": "x"}),
        ("/console/audit", {"type": HOSTILE}),
        ("/console/audit", {"since": HOSTILE}),
        ("/console/who-can", {"resource": HOSTILE, "level": "read"}),
        ("/console/who-can", {"resource": "acme/alpha", "level": HOSTILE}),
        ("/console/orgs/acme", {"holder": HOSTILE, "text": HOSTILE, "status": HOSTILE}),
        ("/console/orgs/" + HOSTILE.replace("/", ""), {}),
        ("/console/" + HOSTILE, {}),
    )
    for path, params in gets:
        page = api.client.get(path, params=params)
        assert page.status_code < 500, (path, page.status_code)
        assert_inert(page)
        assert_console_headers(page)
    moved = api.client.post(
        f"/console/service-accounts/{SA}/move",
        data={"csrf": csrf, "resource": HOSTILE, "level": "read"},
    )
    assert moved.status_code == 400
    assert_inert(moved)
    assert head(api) == before


def test_an_identity_providers_refusal_is_shown_as_text(api: Api, provider: OidcProvider) -> None:
    register_provider(api, provider)
    provider.set_user("ann", email="ann@acme.io", email_verified=True)
    answer = provider_answer(api, provider, api.client)
    state = re.search(r"state=([^&]+)", answer)
    assert state is not None
    refused = api.client.get(
        "/console/login/callback?"
        + urlencode(
            {"state": state.group(1), "error": "access_denied", "error_description": HOSTILE}
        )
    )
    assert refused.status_code == 400
    assert_inert(refused)
    assert "&lt;script&gt;" in refused.text


# -- forms from elsewhere -------------------------------------------------------------------


def test_csrf_tokens_of_the_login_page_of_the_query_or_of_an_ended_login_are_refused(
    api: Api,
) -> None:
    login_form = api.client.get("/console/login")
    login_csrf = csrf_of(login_form)
    csrf = logged_in(api, api.ann)
    before = head(api)
    refusals = (
        ("/console/log/verify", {"csrf": login_csrf}),
        (f"/console/log/verify?csrf={csrf}", {}),
        ("/console/logout", {"csrf": login_csrf}),
    )
    for path, data in refusals:
        answer = api.client.post(path, data=data, follow_redirects=False)
        assert answer.status_code == 403, path
        assert "CSRF" in answer.text
    assert api.client.get("/console").status_code == 200  # still logged in
    api.client.post("/console/logout", data={"csrf": csrf})
    logged_in(api, api.ann)  # a new login has a new cookie, so new tokens
    stale = api.client.post(
        f"/console/service-accounts/{SA}/move/confirm",
        data={"csrf": csrf, "resource": "acme/beta", "level": "write"},
    )
    assert stale.status_code == 403
    assert head(api) == before


def test_a_login_page_opened_elsewhere_does_not_spoil_this_ones_form(api: Api) -> None:
    """Another tab (or another site's link) opening the login page reseals the login cookie;
    the form already shown still logs in."""
    first = csrf_of(api.client.get("/console/login"))
    api.client.get("/console/login")
    answer = api.client.post(
        "/console/login", data={"token": api.ann, "csrf": first}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text


def test_a_login_form_posted_from_another_browser_is_refused(api: Api) -> None:
    """The login form's token binds this browser's login cookie: an attacker's own token
    (from their browser) does not log a victim in as the attacker."""
    attacker = browser(api)
    attacker_csrf = csrf_of(attacker.get("/console/login"))
    api.client.get("/console/login")
    forced = api.client.post(
        "/console/login", data={"token": api.carol, "csrf": attacker_csrf}, follow_redirects=False
    )
    assert forced.status_code == 403
    assert api.client.get("/console", follow_redirects=False).status_code == 303


def test_no_parameter_or_address_sends_the_browser_off_the_console(api: Api) -> None:
    """The console's redirects have fixed targets: a ``next``, a doubled slash or an
    encoded one never makes it an open redirect."""
    form = api.client.get("/console/login", params={"next": "https://evil.example/"})
    assert form.status_code == 200
    answer = api.client.post(
        "/console/login?next=https://evil.example/",
        data={"token": api.ann, "csrf": csrf_of(form), "next": "//evil.example"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/console"
    for path in (
        "/console//evil.example/",
        "/console/%2F%2Fevil.example",
        "/console/\\evil.example",
    ):
        away = api.client.get(path, follow_redirects=False)
        assert away.status_code == 404, path
        assert "location" not in away.headers
    assert api.client.get("/console/", follow_redirects=False).headers["location"] == "/console"


# -- cookies --------------------------------------------------------------------------------


def test_tampered_swapped_and_oversized_cookies_are_no_login(api: Api) -> None:
    login_cookie_page = api.client.get("/console/login")
    login_value = api.client.cookies.get("tokenledger_console_login")
    assert login_cookie_page.status_code == 200
    assert login_value is not None
    logged_in(api, api.ann)
    session = api.client.cookies.get("tokenledger_console")
    assert session is not None
    flipped = session[:20] + ("A" if session[20] != "A" else "B") + session[21:]
    for value in (flipped, login_value, session[:-8], "A" * 9000, "", "==", "%00"):
        client = browser(api)
        client.cookies.set("tokenledger_console", value, path="/console")
        answer = client.get("/console", follow_redirects=False)
        assert answer.status_code == 303, value[:30]
        assert answer.headers["location"].startswith("/console/login")


def test_a_cookie_kept_from_before_a_provider_logout_opens_nothing(
    api: Api, provider: OidcProvider
) -> None:
    register_provider(api, provider)
    provider.set_user("ann", email="ann@acme.io", email_verified=True)
    api.client.get(provider_answer(api, provider, api.client))
    home = api.client.get("/console")
    assert home.status_code == 200
    kept = api.client.cookies.get("tokenledger_console")
    assert kept is not None
    api.client.post("/console/logout", data={"csrf": csrf_of(home)})
    thief = browser(api)
    thief.cookies.set("tokenledger_console", kept, path="/console")
    answer = thief.get("/console", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?ended=1"


def test_a_stolen_cookie_replayed_after_its_renewal_ends_the_session_for_both(
    api: Api, provider: OidcProvider
) -> None:
    register_provider(api, provider)
    provider.set_user("ann", email="ann@acme.io", email_verified=True)
    with freeze_time(datetime.now(UTC)) as frozen:
        api.client.get(provider_answer(api, provider, api.client))
        stolen = api.client.cookies.get("tokenledger_console")
        assert stolen is not None
        frozen.tick(timedelta(hours=1, minutes=1))
        assert api.client.get("/console").status_code == 200  # renewed
        thief = browser(api)
        thief.cookies.set("tokenledger_console", stolen, path="/console")
        assert thief.get("/console", follow_redirects=False).status_code == 303
        # The spent refresh token presented again ended the session: the owner is out too.
        assert api.client.get("/console", follow_redirects=False).status_code == 303
    ended = api.ledger.sessions_of(OPERATOR, "ann@acme.io", include_ended=True)
    assert ended[0].revoked


def test_an_access_tokens_console_login_ends_with_the_access_token(api: Api) -> None:
    with freeze_time(datetime.now(UTC)) as frozen:
        access_token = api.access_token()
        assert log_in(api, access_token).status_code == 303
        assert api.client.get("/console").status_code == 200
        frozen.tick(timedelta(hours=2))
        answer = api.client.get("/console", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login?ended=1"


def test_a_derived_tokens_login_acts_as_that_token_and_ends_with_its_parent(api: Api) -> None:
    bob_token = token_id(api, api.bob)
    derived = api.ledger.execute(
        c.IssueToken(parent_id=bob_token, grants=[{"resource": "acme/alpha", "level": "read"}]),
        OPERATOR,
    )
    assert derived.secret is not None
    csrf = logged_in(api, derived.secret)
    move = {"csrf": csrf, "resource": "acme/beta", "level": "read"}
    from_api = api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "acme/beta", "level": "read"},
        headers=api.bearer(derived.secret),
    )
    refused = api.client.post(f"/console/service-accounts/{SA}/move", data=move)
    assert refused.status_code == from_api.status_code
    assert 400 <= refused.status_code < 500
    api.ledger.execute(c.DisableToken(token_id=bob_token), OPERATOR)
    answer = api.client.get("/console", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?ended=1"


# -- the identity provider's answer ----------------------------------------------------------


def test_a_login_answer_is_redeemed_once_and_only_in_the_browser_that_began_it(
    api: Api, provider: OidcProvider
) -> None:
    register_provider(api, provider)
    provider.set_user("ann", email="ann@acme.io", email_verified=True)
    victim = browser(api)
    begin_provider_login(victim)  # the victim's own login under way, with its own state
    answer = provider_answer(api, provider, api.client)
    before = head(api)
    carried = victim.get(answer)  # the attacker's answer carried to the victim's browser
    assert carried.status_code == 400
    assert "not begun in this browser" in carried.text
    assert victim.get("/console", follow_redirects=False).status_code == 303
    assert head(api) == before
    assert api.client.get(answer).status_code == 200
    replayed = api.client.get(answer)
    assert replayed.status_code == 400
    assert "not begun in this browser" in replayed.text


# -- methods, headers, sizes ----------------------------------------------------------------


def test_methods_a_page_does_not_take_are_console_pages_that_change_nothing(api: Api) -> None:
    logged_in(api, api.ann)
    before = head(api)
    for method, path, allowed in (
        ("GET", "/console/logout", "POST"),
        ("GET", "/console/log/verify", "POST"),
        ("GET", f"/console/service-accounts/{SA}/move/confirm", "POST"),
        ("POST", "/console/audit", "GET, HEAD"),
        ("POST", "/console", "GET, HEAD"),
        ("PUT", "/console/login", "GET, HEAD, POST"),
        ("DELETE", f"/console/service-accounts/{SA}", "GET, HEAD"),
        ("HEAD", "/console/log/verify", "POST"),
    ):
        answer = api.client.request(method, path, follow_redirects=False)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == allowed, (method, path)
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-store"
        assert_console_headers(answer)
    # A page answers HEAD as it answers GET: its status and headers, no body.
    for path in ("/console", "/console/log", f"/console/service-accounts/{SA}"):
        answer = api.client.head(path)
        assert answer.status_code == 200, path
        assert answer.content == b""
        assert_console_headers(answer)
    unknown = api.client.post("/console/nothing/here")
    assert unknown.status_code == 404
    assert_console_headers(unknown)
    assert api.client.get("/console").status_code == 200  # GET /console/logout logged no one out
    assert head(api) == before


def test_huge_and_malformed_forms_are_refused_and_change_nothing(api: Api) -> None:
    csrf = logged_in(api, api.ann)
    before = head(api)
    move = f"/console/service-accounts/{SA}/move/confirm"
    for data, status in (
        ({"csrf": "x" * 100_000, "resource": "acme/beta", "level": "write"}, 403),
        ({"csrf": csrf + "\x00", "resource": "acme/beta", "level": "write"}, 403),
        ({"csrf": csrf, "resource": "acme/" + "b" * 500, "level": "write"}, 400),
        ({"csrf": csrf, "resource": "acme/\x00", "level": "write"}, 400),
        ({"csrf": csrf, "resource": "acme/beta", "level": "\x00"}, 400),
        ({"csrf": csrf, "resource": "acme/bétà", "level": "write"}, 400),
    ):
        answer = api.client.post(move, data=data)
        assert answer.status_code == status, (data["resource"][:12], answer.text)
        assert_console_headers(answer)
        assert "Traceback" not in answer.text
    for content, kind in (
        (b"csrf=%ff%fe", "application/x-www-form-urlencoded"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (b'{"csrf": "x"}', "application/json"),
    ):
        answer = api.client.post(move, content=content, headers={"content-type": kind})
        assert answer.status_code == 403, kind
    assert head(api) == before
    assert api.ledger.get_service_account(OPERATOR, SA).permission.resource == "acme/alpha"


@pytest.mark.parametrize("token", ["tlp_\x00", "x" * 5000, "tlp_é☃", "eyJ.\x00.x", " "])
def test_malformed_login_tokens_are_refused_on_the_login_page(api: Api, token: str) -> None:
    answer = log_in(api, token)
    assert answer.status_code in (400, 401)
    assert '<p class="error" role="alert">' in answer.text
    assert_console_headers(answer)
    assert not any(cookie.startswith("tokenledger_console=") for cookie in set_cookies(answer))


# -- secrets ----------------------------------------------------------------------------------


def test_no_page_shows_a_secret_or_its_hash(api: Api) -> None:
    client_id, client_secret = api.credential()
    secrets = [api.ann, api.bob, api.sa_token, client_secret]
    forms = [*secrets] + [hashlib.sha256(secret.encode()).hexdigest() for secret in secrets]
    refused_login = log_in(api, api.ann + "x")  # a typo: the page does not echo it back
    assert api.ann not in refused_login.text
    csrf = logged_in(api, api.ann)
    sa_token = token_id(api, api.sa_token)
    preview = api.client.post(
        f"/console/service-accounts/{SA}/move",
        data={"csrf": csrf, "resource": "acme/beta", "level": "write"},
    )
    confirmed = api.client.post(
        f"/console/service-accounts/{SA}/move/confirm", data=confirm_form(preview)
    )
    assert confirmed.status_code == 200, confirmed.text
    pages = [refused_login, preview, confirmed] + [
        api.client.get(path)
        for path in (
            "/console",
            "/console/orgs/acme",
            f"/console/tokens/{sa_token}",
            f"/console/service-accounts/{SA}",
            "/console/audit?limit=1000",
            "/console/who-can?resource=acme/alpha&level=read",
            "/console/log",
        )
    ]
    assert client_id in pages[-5].text  # the account page names its credential, by id only
    for page in pages:
        for secret in forms:
            assert secret not in page.text, (str(page.url), secret[:10])
            assert secret[4:20] not in page.text, (str(page.url), secret[:10])
        for cookie in set_cookies(page):
            assert all(secret not in cookie for secret in forms)


@pytest.mark.parametrize("query", ["dry_run", "dry_run=maybe", "dry-run=1", "dry_run=true"])
def test_a_dry_run_parameter_means_nothing_to_a_console_page(api: Api, query: str) -> None:
    """The API's ``dry_run`` is the API's: a console page answers as without it, as a page."""
    logged_in(api, api.ann)
    page = api.client.get(f"/console/log?{query}")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert_console_headers(page)
    assert "tokenledger-dry-run" not in {name.lower() for name in page.headers}
