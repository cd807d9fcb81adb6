"""The web console (``/console``) through HTTP, on SQLite and PostgreSQL: logging in with a
token and through the org's identity provider, its cookies and headers, CSRF, each page's
content, the API's authorisation, moving a permission after its preview, and the log check."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from freezegun import freeze_time

from api_helpers import OPERATOR, SA, Api, make_api
from helpers import drop_immutability_triggers
from login_helpers import local, register_provider
from oidc_provider import OidcProvider
from tokenledger.console.cookies import CONSOLE_LIFETIME
from tokenledger.domain import commands as c
from tokenledger.domain.permissions import Level
from tokenledger.projections.audit_queries import AuditQuery

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def head(api: Api) -> tuple[int, str]:
    found = api.ledger.store.head()
    return found.position, found.hash


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match is not None, page.text
    return match.group(1)


def begin_provider_login(client: TestClient) -> str:
    """Begin a login through acme's provider in ``client``; the provider's address."""
    form = client.get("/console/login")
    begun = client.post("/console/login/idp", data={"org": "acme", "csrf": csrf_of(form)})
    target = re.search(r'<a href="([^"]+)">Continue</a>', begun.text)
    assert target is not None, begun.text
    return target.group(1).replace("&amp;", "&")


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def confirm_form(preview: httpx.Response) -> dict[str, str]:
    """The hidden fields of a move's preview page: what its "Confirm" button posts."""
    fields = dict(HIDDEN.findall(preview.text))
    assert {"csrf", "resource", "level", "previewed"} <= set(fields), preview.text
    return fields


def log_in(api: Api, secret: str) -> httpx.Response:
    """Log the test client in with ``secret`` through the login form."""
    form = api.client.get("/console/login")
    assert form.status_code == 200, form.text
    return api.client.post(
        "/console/login",
        data={"token": secret, "csrf": csrf_of(form)},
        follow_redirects=False,
    )


def logged_in(api: Api, secret: str) -> str:
    """Log in; the CSRF token of the session's forms."""
    answer = log_in(api, secret)
    assert answer.status_code == 303, answer.text
    home = api.client.get("/console")
    assert home.status_code == 200, home.text
    return csrf_of(home)


def test_login_with_a_token_reaches_the_home_page(api: Api) -> None:
    answer = log_in(api, api.ann)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console"
    home = api.client.get("/console")
    assert home.status_code == 200
    assert "<h1>Organizations</h1>" in home.text
    assert 'href="/console/orgs/acme"' in home.text
    assert "ann@acme.io" in home.text


def token_id(api: Api, secret: str) -> str:
    found = api.ledger.authenticate(secret).token_id
    assert found is not None
    return found


def set_cookies(answer: httpx.Response) -> list[str]:
    return answer.headers.get_list("set-cookie")


# -- logging in with a token --------------------------------------------------------------


def test_an_unusable_token_is_refused_on_the_login_page_and_sets_no_session(api: Api) -> None:
    answer = log_in(api, "tlp_not-a-real-token")
    assert answer.status_code == 401
    assert 'role="alert"' in answer.text
    assert not any(cookie.startswith("tokenledger_console=") for cookie in set_cookies(answer))
    assert api.client.get("/console", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_console(api: Api) -> None:
    answer = log_in(api, api.ann)
    session = next(c for c in set_cookies(answer) if c.startswith("tokenledger_console="))
    flags = [part.strip().lower() for part in session.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/console" in flags
    assert "secure" not in flags  # the test client speaks plain http
    # The browser holds the token sealed: its secret is nowhere in the cookie.
    value = session.split(";")[0].split("=", 1)[1]
    assert api.ann not in value
    assert api.ann.split("_", 1)[1][:12] not in value


def test_the_session_cookie_is_secure_over_https(api: Api) -> None:
    with TestClient(api.client.app, base_url="https://testserver") as client:
        form = client.get("/console/login")
        login = next(c for c in set_cookies(form) if c.startswith("tokenledger_console_login="))
        assert "secure" in login.lower()
        # It comes back with the identity provider's redirect, begun on another site.
        assert "samesite=lax" in login.lower()
        assert "httponly" in login.lower()
        answer = client.post(
            "/console/login",
            data={"token": api.ann, "csrf": csrf_of(form)},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        session = next(c for c in set_cookies(answer) if c.startswith("tokenledger_console="))
        assert "; secure" in session.lower()


def test_a_forged_or_foreign_cookie_is_no_login(api: Api) -> None:
    api.client.cookies.set("tokenledger_console", "bm90IGEgc2VhbGVkIGNvb2tpZQ", path="/console")
    answer = api.client.get("/console", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")


def test_logged_out_pages_redirect_to_the_login_page(api: Api) -> None:
    sa_token = token_id(api, api.sa_token)
    for path in (
        "/console",
        "/console/orgs/acme",
        f"/console/tokens/{sa_token}",
        f"/console/service-accounts/{SA}",
        "/console/audit",
        "/console/who-can",
        "/console/log",
    ):
        answer = api.client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/console/login", path


def test_a_revoked_token_ends_the_console_login_at_the_next_page(api: Api) -> None:
    logged_in(api, api.bob)
    api.ledger.execute(c.RevokeToken(token_id=token_id(api, api.bob)), OPERATOR)
    answer = api.client.get("/console", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?ended=1"
    cleared = next(c for c in set_cookies(answer) if c.startswith("tokenledger_console="))
    assert "max-age=0" in cleared.lower()
    assert "has ended" in api.client.get(answer.headers["location"]).text


def test_a_console_login_ends_after_its_lifetime(api: Api) -> None:
    with freeze_time(datetime.now(UTC)) as frozen:
        logged_in(api, api.ann)
        frozen.tick(CONSOLE_LIFETIME + timedelta(seconds=1))
        answer = api.client.get("/console", follow_redirects=False)
        assert answer.status_code == 303


def test_logging_out_clears_the_cookie(api: Api) -> None:
    csrf = logged_in(api, api.ann)
    before = head(api)
    answer = api.client.post("/console/logout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login"
    assert head(api) == before  # a token login has no ledger session to end
    assert api.client.get("/console", follow_redirects=False).status_code == 303


# -- headers and CSRF ---------------------------------------------------------------------

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def assert_console_headers(answer: httpx.Response) -> None:
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_every_console_answer_carries_the_security_headers(api: Api) -> None:
    logged_out = api.client.get("/console", follow_redirects=False)
    assert_console_headers(logged_out)
    login = api.client.get("/console/login")
    assert_console_headers(login)
    assert login.headers["cache-control"] == "no-store"
    logged_in(api, api.ann)
    for path in ("/console", "/console/orgs/acme", "/console/log", "/console/audit"):
        answer = api.client.get(path)
        assert answer.status_code == 200, path
        assert_console_headers(answer)
        assert answer.headers["cache-control"] == "no-store", path
        assert "<script" not in answer.text.lower(), path
    missing = api.client.get("/console/orgs/nowhere")
    from_api = api.client.get("/v2/orgs/nowhere/members", headers=api.admin)
    assert missing.status_code == from_api.status_code
    assert from_api.json()["error_description"] in missing.text
    assert_console_headers(missing)
    unknown = api.client.get("/console/nothing/here")
    assert unknown.status_code == 404
    assert "no console page &#39;/console/nothing/here&#39;" in unknown.text
    assert_console_headers(unknown)
    css = api.client.get("/console/static/console.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert_console_headers(css)


def test_forms_without_the_sessions_csrf_token_are_refused_and_change_nothing(
    api: Api,
) -> None:
    csrf = logged_in(api, api.ann)
    before = head(api)
    move = {"resource": "acme/beta", "level": "write"}
    confirm = f"/console/service-accounts/{SA}/move/confirm"
    for data in (move, {**move, "csrf": ""}, {**move, "csrf": csrf[:-2] + "xx"}):
        answer = api.client.post(confirm, data=data)
        assert answer.status_code == 403, answer.text
        assert "CSRF" in answer.text
        assert_console_headers(answer)
    for path in ("/console/log/verify", "/console/logout", f"/console/service-accounts/{SA}/move"):
        assert api.client.post(path, data={"csrf": "é" * 43}).status_code == 403, path
    assert head(api) == before
    assert api.ledger.get_service_account(OPERATOR, SA).permission.resource == "acme/alpha"
    # Another browser's session has another token: it does not pass here.
    other = TestClient(api.client.app)
    other_form = other.get("/console/login")
    other.post("/console/login", data={"token": api.bob, "csrf": csrf_of(other_form)})
    other_csrf = csrf_of(other.get("/console"))
    assert other_csrf != csrf
    assert api.client.post(confirm, data={**move, "csrf": other_csrf}).status_code == 403
    assert head(api) == before


def test_the_login_form_needs_its_csrf_token(api: Api) -> None:
    api.client.get("/console/login")
    answer = api.client.post("/console/login", data={"token": api.ann}, follow_redirects=False)
    assert answer.status_code == 403
    assert api.client.get("/console", follow_redirects=False).status_code == 303


# -- pages --------------------------------------------------------------------------------


class Markup(HTMLParser):
    """What the structural checks need of a page: its tags in order, its labels' targets,
    its form fields' ids, its headings' levels."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.labelled: set[str] = set()
        self.fields: list[str] = []
        self.headings: list[int] = []
        self.header_cells_without_scope = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if tag == "label" and found.get("for"):
            self.labelled.add(str(found["for"]))
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.fields.append(str(found.get("id")))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "th" and "scope" not in found:
            self.header_cells_without_scope += 1


def test_every_page_is_labelled_landmarked_and_in_heading_order(api: Api) -> None:
    sa_token = token_id(api, api.sa_token)
    pages = ["/console/login"]
    logged_in(api, api.ann)
    pages += [
        "/console",
        "/console/orgs/acme",
        f"/console/tokens/{sa_token}",
        f"/console/service-accounts/{SA}",
        "/console/audit",
        "/console/who-can?resource=acme/alpha&level=read",
        "/console/log",
        "/console/orgs/nowhere",
    ]
    for path in pages:
        if path == "/console/login":
            answer = TestClient(api.client.app).get(path)
        else:
            answer = api.client.get(path)
        markup = Markup(answer.text)
        assert markup.tags[:1] == ["html"], path
        assert 'lang="en"' in answer.text, path
        assert answer.text.index('class="skip" href="#main"') < answer.text.index("<main"), path
        for landmark in ("header", "main"):
            assert landmark in markup.tags, (path, landmark)
        if path != "/console/login":
            assert "nav" in markup.tags, path
        for field in markup.fields:
            assert field in markup.labelled, (path, field)
        assert markup.headings[0] == 1, path
        assert markup.headings.count(1) == 1, path
        for before, after in itertools.pairwise(markup.headings):
            assert after <= before + 1, (path, markup.headings)
        assert markup.header_cells_without_scope == 0, path


def issue_sa_token(api: Api, resource: str = "acme/alpha") -> str:
    """Another token of the service account ``ci``; its id."""
    issued = api.ledger.execute(
        c.IssueToken(principal=SA, grants=[{"resource": resource, "level": "read"}]),
        OPERATOR,
    ).issued
    assert issued is not None
    return issued.token_id


def test_the_org_page_shows_members_accounts_and_tokens_with_status(api: Api) -> None:
    revoked = issue_sa_token(api)
    api.ledger.execute(c.RevokeToken(token_id=revoked), OPERATOR)
    # Ann's token for another org she belongs to is that org's, not acme's.
    api.ledger.execute(c.AddMember(org="other", email="ann@acme.io"), OPERATOR)
    api.ledger.execute(
        c.SetGrant(principal="ann@acme.io", resource="other", level=Level.READ), OPERATOR
    )
    elsewhere = api.ledger.execute(
        c.IssueToken(principal="ann@acme.io", grants=[{"resource": "other", "level": "read"}]),
        OPERATOR,
    ).issued
    assert elsewhere is not None
    logged_in(api, api.ann)
    page = api.client.get("/console/orgs/acme")
    assert page.status_code == 200
    text = page.text
    assert '<h2 id="members">Members</h2>' in text
    assert '<th scope="row">ann@acme.io</th><td>admin</td>' in text
    assert '<th scope="row">bob@acme.io</th><td>member</td>' in text
    assert f'href="/console/service-accounts/{SA.replace("@", "%40")}"' in text
    assert "<code>write:acme/alpha</code>" in text
    assert f'href="/console/tokens/{revoked}"' in text
    assert f'href="/console/tokens/{token_id(api, api.sa_token)}"' in text
    assert "status-revoked" in text
    assert "status-live" in text
    # Carol's token (org other) is not in acme's listing.
    assert token_id(api, api.carol) not in text
    assert elsewhere.token_id not in text

    only_revoked = api.client.get("/console/orgs/acme", params={"status": "revoked"}).text
    assert revoked in only_revoked
    assert token_id(api, api.ann) not in only_revoked
    by_holder = api.client.get("/console/orgs/acme", params={"holder": SA}).text
    assert token_id(api, api.sa_token) in by_holder
    assert token_id(api, api.ann) not in by_holder
    by_text = api.client.get("/console/orgs/acme", params={"text": revoked[-6:]}).text
    assert re.search(r"1 of [0-9]+ tokens shown", by_text)


def test_a_member_of_another_org_gets_the_apis_refusal(api: Api) -> None:
    ann_token = token_id(api, api.ann)
    from_api = api.client.get(f"/v2/tokens/{ann_token}", headers=api.bearer(api.carol))
    logged_in(api, api.carol)
    page = api.client.get(f"/console/tokens/{ann_token}")
    assert page.status_code == from_api.status_code
    assert page.status_code in (403, 404)
    assert from_api.json()["error_description"] in page.text
    assert "ann@acme.io" not in page.text
    org = api.client.get("/console/orgs/acme")
    org_from_api = api.client.get("/v2/orgs/acme/members", headers=api.bearer(api.carol))
    assert org.status_code == org_from_api.status_code
    assert "bob@acme.io" not in org.text
    home = api.client.get("/console").text
    assert 'href="/console/orgs/other"' in home
    assert 'href="/console/orgs/acme"' not in home


def test_the_token_page_tells_its_story_and_draws_its_cascade(api: Api) -> None:
    sa_token = token_id(api, api.sa_token)
    second = api.ledger.execute(
        c.IssueToken(principal=SA, grants=[{"resource": "acme/alpha", "level": "read"}]),
        OPERATOR,
    )
    assert second.issued is not None
    moved = api.ledger.execute(
        c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
        OPERATOR,
    )
    assert set(moved.revoked) == {sa_token, second.issued.token_id}
    logged_in(api, api.ann)
    page = api.client.get(f"/console/tokens/{sa_token}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "status-revoked" in text
    assert '<ol class="timeline">' in text
    assert "TokenIssued" in text
    assert "TokenRevoked" in text
    assert '<ul class="tree"' in text
    tree = text[text.index('<ul class="tree"') :]
    cause = tree[: tree.index("</span>")]
    assert "ServiceAccountPermissionMoved" in cause
    assert "moved from acme/alpha to acme/beta" in cause
    assert f'href="/console/tokens/{second.issued.token_id}"' in tree
    assert "(this token)" in tree

    direct = issue_sa_token(api, "acme/beta")
    api.ledger.execute(c.RevokeToken(token_id=direct), OPERATOR)
    direct_page = api.client.get(f"/console/tokens/{direct}").text
    assert "Revoked directly by operator:root" in direct_page
    assert '<ul class="tree"' not in direct_page

    # Revoked directly, with a token derived from it: its revocation heads the tree.
    parent = issue_sa_token(api, "acme/beta")
    child = api.ledger.execute(
        c.IssueToken(parent_id=parent, grants=[{"resource": "acme/beta", "level": "read"}]),
        OPERATOR,
    ).issued
    assert child is not None
    api.ledger.execute(c.RevokeToken(token_id=parent), OPERATOR)
    parent_page = api.client.get(f"/console/tokens/{parent}").text
    assert "Revoked directly, and with it everything listed" in parent_page
    parent_tree = parent_page[parent_page.index('<ul class="tree"') :]
    assert "TokenRevoked" in parent_tree[: parent_tree.index("</span>")]
    assert f'href="/console/tokens/{child.token_id}"' in parent_tree
    child_page = api.client.get(f"/console/tokens/{child.token_id}").text
    child_tree = child_page[child_page.index('<ul class="tree"') :]
    assert f'href="/console/tokens/{parent}"' in child_tree


def test_a_tokens_story_downloads_with_proofs_an_auditor_checks_offline(
    api: Api, tmp_path: Path
) -> None:
    from tokenledger import logproof

    sa_token = token_id(api, api.sa_token)
    api.ledger.execute(
        c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
        OPERATOR,
    )
    logged_in(api, api.ann)
    page = api.client.get(f"/console/tokens/{sa_token}").text
    link = f"/console/tokens/{sa_token}/proofs.json"
    assert f'href="{link}"' in page
    before = head(api)
    download = api.client.get(link)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"] == (
        f'attachment; filename="{sa_token}-proofs.json"'
    )
    document = download.json()
    assert document["revocation"]["event_type"] == "TokenRevoked"
    cited = {entry["position"] for entry in document["story"]}
    assert {bundle["position"] for bundle in document["proofs"]} >= cited
    assert head(api) == before
    # What the console hands out is checked without it, against the published key.
    key = api.client.get("/v2/log/key").text.strip()
    saved = tmp_path / "proofs.json"
    saved.write_text(download.text)
    assert logproof.main(["bundle", str(saved), "--key", key]) == 0
    # Another org's admin, in another browser, gets the token page's refusal and no proof.
    other = TestClient(api.client.app)
    form = other.get("/console/login")
    other.post("/console/login", data={"token": api.carol, "csrf": csrf_of(form)})
    refused = other.get(link)
    assert refused.status_code == other.get(f"/console/tokens/{sa_token}").status_code
    assert refused.status_code in (403, 404)
    assert "proofs" not in refused.text


def test_the_service_account_page_previews_a_move_then_performs_it(api: Api) -> None:
    sa_token = token_id(api, api.sa_token)
    client_id, _ = api.credential()
    csrf = logged_in(api, api.ann)
    page = api.client.get(f"/console/service-accounts/{SA}")
    assert page.status_code == 200
    assert f'href="/console/tokens/{sa_token}"' in page.text
    assert client_id in page.text
    assert '<label for="resource">Resource</label>' in page.text

    before = head(api)
    move = {"csrf": csrf, "resource": "acme/beta", "level": "write"}
    preview = api.client.post(f"/console/service-accounts/{SA}/move", data=move)
    assert preview.status_code == 200, preview.text
    assert head(api) == before  # a dry run appends nothing
    assert "nothing has changed yet" in preview.text
    assert f'href="/console/tokens/{sa_token}"' in preview.text
    assert client_id in preview.text
    assert "Confirm the move" in preview.text
    assert api.ledger.get_token(OPERATOR, sa_token).revoked_at is None

    confirm = f"/console/service-accounts/{SA}/move/confirm"
    form = confirm_form(preview)
    assert (form["resource"], form["level"]) == ("acme/beta", "write")
    # A token issued after the preview would be revoked unseen: the move is shown again.
    later = issue_sa_token(api, "acme/alpha")
    changed = api.client.post(confirm, data=form)
    assert changed.status_code == 409, changed.text
    assert "changed since its preview" in changed.text
    assert f'href="/console/tokens/{later}"' in changed.text
    assert api.ledger.get_token(OPERATOR, sa_token).revoked_at is None
    assert api.ledger.get_service_account(OPERATOR, SA).permission.resource == "acme/alpha"
    before = head(api)
    # So is an issuer trusted meanwhile, which the move would withdraw.
    api.ledger.execute(
        c.TrustIssuer(
            account_id=SA,
            issuer="https://token.actions.githubusercontent.com",
            subject="repo:acme/app:*",
            audience="ledger",
        ),
        OPERATOR,
    )
    again = api.client.post(confirm, data=confirm_form(changed))
    assert again.status_code == 409, again.text
    assert "IssuerUntrusted" in again.text
    assert api.ledger.get_token(OPERATOR, sa_token).revoked_at is None
    before = head(api)
    done = api.client.post(confirm, data=confirm_form(again))
    assert done.status_code == 200, done.text
    assert api.ledger.get_token(OPERATOR, later).revoked_at is not None
    assert "The permission was moved" in done.text
    assert head(api)[0] > before[0]
    assert api.ledger.get_service_account(OPERATOR, SA).permission.resource == "acme/beta"
    assert api.ledger.get_token(OPERATOR, sa_token).revoked_at is not None
    revoked = api.ledger.audit_search(
        OPERATOR, AuditQuery(event_type="TokenRevoked", subject=sa_token)
    )
    assert revoked


def test_a_member_cannot_move_what_the_api_would_not_let_them(api: Api) -> None:
    csrf = logged_in(api, api.bob)
    before = head(api)
    move = {"csrf": csrf, "resource": "acme/beta", "level": "write"}
    from_api = api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "acme/beta", "level": "write"},
        headers=api.bearer(api.bob),
    )
    assert from_api.status_code in (403, 404)
    for path in (
        f"/console/service-accounts/{SA}/move",
        f"/console/service-accounts/{SA}/move/confirm",
    ):
        answer = api.client.post(path, data=move)
        assert answer.status_code == from_api.status_code, answer.text
    assert head(api) == before


def test_an_auditor_reads_what_the_api_lets_them_and_moves_nothing(api: Api) -> None:
    for command in (
        c.CreateUser(email="dora@acme.io"),
        c.AddMember(org="acme", email="dora@acme.io", role="auditor"),
    ):
        api.ledger.execute(command, OPERATOR)
    issued = api.ledger.execute(
        c.IssueToken(principal="dora@acme.io", grants=[{"resource": "acme", "level": "read"}]),
        OPERATOR,
    )
    assert issued.secret is not None
    sa_token = token_id(api, api.sa_token)
    csrf = logged_in(api, issued.secret)
    org = api.client.get("/console/orgs/acme")
    assert org.status_code == 200, org.text
    assert '<th scope="row">dora@acme.io</th><td>auditor</td>' in org.text
    # The API shows an auditor no one's token listing; neither does the console.
    listing = api.client.get(f"/v2/service_accounts/{SA}/tokens", headers=api.bearer(issued.secret))
    assert listing.status_code == 403
    assert sa_token not in org.text
    token_from_api = api.client.get(f"/v2/tokens/{sa_token}", headers=api.bearer(issued.secret))
    assert api.client.get(f"/console/tokens/{sa_token}").status_code == token_from_api.status_code
    # The account is theirs to see (as the API shows it); its listings the API refuses them
    # are left out with the API's reason, not the page.
    account = api.client.get(f"/console/service-accounts/{SA}")
    assert account.status_code == 200, account.text
    assert f"Not shown: {listing.json()['error_description']}" in account.text
    assert sa_token not in account.text
    # The log of the org is an auditor's to read.
    audit = api.client.get("/console/audit", params={"subject": sa_token})
    assert audit.status_code == 200
    assert "<td>TokenIssued</td>" in audit.text
    before = head(api)
    move = {"csrf": csrf, "resource": "acme/beta", "level": "write"}
    from_api = api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "acme/beta", "level": "write"},
        headers=api.bearer(issued.secret),
    )
    refused = api.client.post(f"/console/service-accounts/{SA}/move", data=move)
    assert refused.status_code == from_api.status_code == 403
    assert from_api.json()["error_description"] in refused.text
    assert head(api) == before


def test_a_bad_level_is_a_one_line_error_page(api: Api) -> None:
    csrf = logged_in(api, api.ann)
    answer = api.client.post(
        f"/console/service-accounts/{SA}/move",
        data={"csrf": csrf, "resource": "acme/beta", "level": "sudo"},
    )
    assert answer.status_code == 400
    assert "unknown level" in answer.text


def test_hostile_addresses_and_values_are_error_pages_never_500(api: Api) -> None:
    logged_in(api, api.ann)
    before = head(api)
    for path, params in (
        ("/console/orgs/a%00b", {}),
        ("/console/tokens/" + "x" * 5000, {}),
        ("/console/tokens/tok_%00", {}),
        ("/console/service-accounts/%00", {}),
        ("/console/audit", {"subject": "a\x00b"}),
        ("/console/audit", {"limit": "many"}),
        ("/console/who-can", {"resource": "acme/alpha", "level": "read", "at": "\x00"}),
        ("/console/orgs/acme", {"status": "x" * 1000}),
    ):
        answer = api.client.get(path, params=params)
        assert 400 <= answer.status_code < 500, (path, params, answer.status_code)
        assert_console_headers(answer)
        assert "Traceback" not in answer.text
        assert '<p class="error" role="alert">' in answer.text
    assert head(api) == before


def test_audit_search_and_who_can(api: Api) -> None:
    logged_in(api, api.ann)
    found = api.client.get("/console/audit", params={"type": "TokenIssued", "limit": "2"})
    assert found.status_code == 200
    assert "2 events." in found.text
    assert "<td>TokenIssued</td>" in found.text
    bad = api.client.get("/console/audit", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "invalid since" in bad.text
    unknown = api.client.get("/console/audit", params={"type": "TokenIsued"})
    assert unknown.status_code == 400
    assert "did you mean TokenIssued" in unknown.text

    who = api.client.get("/console/who-can", params={"resource": "acme/alpha", "level": "write"})
    assert who.status_code == 200, who.text
    assert '<th scope="row">bob@acme.io</th>' in who.text
    assert token_id(api, api.sa_token) in who.text
    asked_nothing = api.client.get("/console/who-can")
    assert asked_nothing.status_code == 200
    assert "Principals" not in asked_nothing.text


def test_the_log_page_shows_the_head_and_checkpoint_and_checks_the_chain(api: Api) -> None:
    csrf = logged_in(api, api.ann)
    position, digest = head(api)
    page = api.client.get("/console/log")
    assert page.status_code == 200
    assert f"<dd>{position}</dd>" in page.text
    assert digest in page.text
    published = api.client.get("/v2/log/checkpoint").json()
    assert published["note"].splitlines()[0] in page.text
    assert f"size {published['size']}" in page.text

    checked = api.client.post("/console/log/verify", data={"csrf": csrf})
    assert checked.status_code == 200
    assert f"chain ok: {position} events, head position {position} hash" in checked.text
    assert checked.text.count(digest) >= 2
    assert head(api) == (position, digest)


def test_a_second_log_check_while_one_runs_is_refused(api: Api) -> None:
    """The check reads the whole log; a server runs one at a time."""
    from tokenledger.console import pages

    csrf = logged_in(api, api.ann)
    with pages._CHAIN_CHECK:  # a check under way in another request
        refused = api.client.post("/console/log/verify", data={"csrf": csrf})
    assert refused.status_code == 409
    assert "a check of the chain is already running" in refused.text
    assert "chain ok" not in refused.text
    again = api.client.post("/console/log/verify", data={"csrf": csrf})
    assert "chain ok" in again.text


def test_a_tree_missing_a_node_is_reported_on_the_log_page_not_signed(api: Api) -> None:
    for number in range(20):  # past a block of 16: a stored node to lose
        api.ledger.execute(c.CreateUser(email=f"u{number}@acme.io"), OPERATOR)
    csrf = logged_in(api, api.ann)
    with api.ledger.store.engine.begin() as connection:
        connection.execute(sa.text('DELETE FROM merkle_nodes WHERE level = 4 AND "index" = 0'))
    page = api.client.get("/console/log")
    assert page.status_code == 200, page.text
    assert "the stored Merkle tree is incomplete" in page.text
    assert '<pre class="note">' not in page.text
    checked = api.client.post("/console/log/verify", data={"csrf": csrf})
    assert checked.status_code == 200, checked.text
    assert "Merkle tree broken" in checked.text
    assert "no checkpoint is shown over a log that failed its check" in checked.text
    assert '<pre class="note">' not in checked.text


def test_the_log_check_names_the_first_bad_position(api: Api) -> None:
    csrf = logged_in(api, api.ann)
    drop_immutability_triggers(api.ledger.store.engine)
    with api.ledger.store.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE events SET actor = 'operator:mallory' WHERE position = 3")
        )
    checked = api.client.post("/console/log/verify", data={"csrf": csrf})
    assert checked.status_code == 200
    assert "chain broken at position 3" in checked.text
    assert "chain ok" not in checked.text


# -- logging in through the identity provider ----------------------------------------------


def test_login_through_the_identity_provider_and_logout_ends_the_session(
    api: Api, provider: OidcProvider
) -> None:
    register_provider(api, provider)
    provider.set_user("ann", email="ann@acme.io", email_verified=True)
    authorization_url = begin_provider_login(api.client)
    assert authorization_url.startswith(provider.issuer)

    to_server = provider.login(authorization_url, "ann")
    back = api.client.get(local(to_server), follow_redirects=False)
    assert back.status_code == 303, back.text
    to_console = back.headers["location"]
    assert urlsplit(to_console).path == "/console/login/callback"
    done = api.client.get(local(to_console))
    assert done.status_code == 200, done.text
    assert 'content="0; url=/console"' in done.text
    home = api.client.get("/console")
    assert "Logged in as <strong>ann@acme.io</strong>" in home.text
    sessions = api.ledger.sessions_of(OPERATOR, "ann@acme.io")
    assert len(sessions) == 1
    assert not sessions[0].revoked

    api.client.post("/console/logout", data={"csrf": csrf_of(home)})
    ended = api.ledger.sessions_of(OPERATOR, "ann@acme.io", include_ended=True)
    assert ended[0].revoked
    assert api.client.get("/console", follow_redirects=False).status_code == 303


def test_a_login_answer_not_begun_in_this_browser_is_refused(
    api: Api, provider: OidcProvider
) -> None:
    register_provider(api, provider)
    provider.set_user("ann", email="ann@acme.io", email_verified=True)
    back = api.client.get(
        local(provider.login(begin_provider_login(api.client), "ann")), follow_redirects=False
    )
    before = head(api)
    other = TestClient(api.client.app)  # another browser, without this login's cookie
    refused = other.get(local(back.headers["location"]))
    assert refused.status_code == 400
    assert "not begun in this browser" in refused.text
    assert head(api) == before


def test_an_org_without_a_provider_is_refused_on_the_login_page(api: Api) -> None:
    form = api.client.get("/console/login")
    answer = api.client.post("/console/login/idp", data={"org": "acme", "csrf": csrf_of(form)})
    assert answer.status_code == 400
    assert "has no identity provider" in answer.text


def test_a_session_access_token_is_renewed_once_expired(api: Api, provider: OidcProvider) -> None:
    register_provider(api, provider)
    provider.set_user("ann", email="ann@acme.io", email_verified=True)
    with freeze_time(datetime.now(UTC)) as frozen:
        to_server = provider.login(begin_provider_login(api.client), "ann")
        back = api.client.get(local(to_server), follow_redirects=False)
        api.client.get(local(back.headers["location"]))
        before = head(api)
        for _ in range(3):
            assert api.client.get("/console").status_code == 200
        assert head(api) == before  # page views write nothing
        open_form = csrf_of(api.client.get("/console/log"))  # a form left open in a tab
        frozen.tick(timedelta(hours=1, minutes=1))
        assert api.client.get("/console").status_code == 200
        refreshed = api.ledger.audit_search(OPERATOR, AuditQuery(event_type="SessionRefreshed"))
        assert len(refreshed) == 1
        # The renewal sealed a new cookie; the form opened before it still posts.
        checked = api.client.post("/console/log/verify", data={"csrf": open_form})
        assert checked.status_code == 200, checked.text
        assert "chain ok" in checked.text
        assert api.client.get("/console").status_code == 200
        assert (
            len(api.ledger.audit_search(OPERATOR, AuditQuery(event_type="SessionRefreshed"))) == 1
        )
