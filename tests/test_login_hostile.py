"""Logging in, sessions and federation attacked as a hostile user would: JWTs of one kind
presented as another, tampered headers and claims, races on one refresh token or login code,
hostile parameters at every login endpoint, open-redirect attempts, hostile subject tokens,
service accounts reaching past their rights, cached answers after a session ended, and what a
session through one org's provider can do to the same user elsewhere.

"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient

from api_helpers import ISSUER, OPERATOR, SA, Api, is_inactive_body, make_api
from helpers import assert_projections_match_log, head_position
from login_helpers import (
    CLI,
    REDIRECT,
    Login,
    browser_login,
    local,
    log_in,
    redeem,
    refresh,
    register_provider,
    to_provider,
)
from oidc_provider import OidcProvider
from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.domain import commands as c
from tokenledger.domain.events import SessionEnded, SessionRefreshed, SessionStarted
from tokenledger.domain.permissions import Level
from tokenledger.projections.audit_queries import AuditQuery
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

ANN = "ann@acme.io"
BOB = "bob@acme.io"
CAROL = "carol@other.io"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
AUDIENCE = "tokenledger"
SUBJECT = "repo:acme/site:ref:refs/heads/main"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture
def api(database_url: str, tmp_path: Path, provider: OidcProvider) -> Iterator[Api]:
    """The seeded API on SQLite and PostgreSQL; ``acme`` logs in through ``provider``."""
    for made in make_api(database_url, tmp_path):
        register_provider(made, provider)
        yield made


@pytest.fixture
def lite(tmp_path: Path, provider: OidcProvider) -> Iterator[Api]:
    """The same on SQLite only, for what no database changes (parameters, redirects)."""
    for made in make_api(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path):
        register_provider(made, provider)
        yield made


# -- helpers --------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def reassemble(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    def encode(part: dict[str, Any]) -> str:
        return b64url(json.dumps(part, separators=(",", ":")).encode())

    return f"{encode(header)}.{encode(payload)}.{signature}"


def oauth_error(response: Any, code: str, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    description: str = body["error_description"]
    assert "\n" not in description
    return description


def clean_refusal(response: Any) -> None:
    """A refusal a hostile request may get: a 4xx without a traceback."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    assert "location" not in response.headers


def events_of(api: Api, subject: str) -> list[Any]:
    query = AuditQuery(subject=subject, oldest_first=True)
    return [entry.event for entry in api.ledger.audit_search(OPERATOR, query)]


def whoami(api: Api, token: str) -> int:
    status: int = api.client.get("/v2/whoami", headers=bearer(token)).status_code
    return status


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def back_to_cli_location(api: Api, provider_location: str) -> str:
    """Where ``/oauth2/callback`` sends the browser, given what the provider sent."""
    response = api.client.get(local(provider_location), follow_redirects=False)
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def at_once(count: int, action: Callable[[], Any]) -> list[Any]:
    """``action`` run by ``count`` threads released together; their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        results[index] = action()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# -- JWTs of one kind presented as another ----------------------------------------------


def test_a_login_code_and_a_login_state_are_not_access_tokens(
    lite: Api, provider: OidcProvider
) -> None:
    """The real ones, as the browser carries them: refused by their ``typ`` and, failing
    that, by the claims an access token needs (``client_id``)."""
    login = Login.new()
    provider.set_user(ANN, email=ANN, email_verified=True)
    location = provider.login(to_provider(lite, login), ANN)
    state = dict(parse_qsl(urlsplit(location).query))["state"]
    back = lite.client.get(local(location), follow_redirects=False)
    code = OidcProvider.redirect_params(back.headers["location"])["code"]
    for jwt_of_another_kind in (code, state):
        assert whoami(lite, jwt_of_another_kind) == 401
        assert lite.introspect(jwt_of_another_kind) == {"active": False}
    # The code still works for what it is for: presenting it elsewhere spent nothing.
    assert redeem(lite, login, code).status_code == 200


def test_a_jwt_this_server_signed_for_a_login_never_passes_for_an_access_token(
    lite: Api, provider: OidcProvider
) -> None:
    """The ``typ`` header alone tells the kinds apart: claims that would make a usable
    access token, signed by this server's key as a login code, authenticate nobody."""
    session = log_in(lite, provider, ANN)
    _, claims, _ = jwt_parts(session["access_token"])
    ring = lite.keys.ring()
    assert whoami(lite, ring.sign(claims)) == 200  # the same claims as an access token
    for typ in ("login-code+jwt", "login-state+jwt", "JWT", "at+jwt "):
        relabelled = ring.sign(claims, typ=typ)
        assert whoami(lite, relabelled) == 401, typ
        assert lite.introspect(relabelled) == {"active": False}


def test_an_access_token_is_neither_a_login_code_nor_a_login_state(
    lite: Api, provider: OidcProvider
) -> None:
    session = log_in(lite, provider, ANN)
    login = Login.new()
    before = head_position(lite.ledger)
    oauth_error(redeem(lite, login, session["access_token"]), "invalid_grant")
    # As the state at the callback: refused in the browser, never a 500 and never a redirect.
    at_callback = lite.client.get(
        "/oauth2/callback",
        params={"state": session["access_token"], "code": "x"},
        follow_redirects=False,
    )
    assert at_callback.status_code == 400
    assert "location" not in at_callback.headers
    assert head_position(lite.ledger) == before


# -- tampered headers and claims ------------------------------------------------------------


def test_tampered_headers_and_claims_break_the_signature(lite: Api, provider: OidcProvider) -> None:
    ann = log_in(lite, provider, ANN)
    bob = log_in(lite, provider, BOB)
    header, claims, signature = jwt_parts(bob["access_token"])
    public_x = lite.keys.ring().active.public_jwk["x"]  # type: ignore[union-attr]
    forgeries = {
        "another session's sid": reassemble(
            header, {**claims, "sid": ann["session_id"]}, signature
        ),
        "another user": reassemble(header, {**claims, "sub": ANN, "email": ANN}, signature),
        "more grants": reassemble(
            header, {**claims, "grants": [{"resource": "acme", "level": "admin"}]}, signature
        ),
        "a later exp": reassemble(header, {**claims, "exp": claims["exp"] + 86400}, signature),
        "an unknown kid": reassemble({**header, "kid": "not-a-key"}, claims, signature),
        "alg none": reassemble({**header, "alg": "none"}, claims, ""),
        "no typ": reassemble({k: v for k, v in header.items() if k != "typ"}, claims, signature),
    }
    # The public key used as an HMAC secret (alg confusion), at the length of a signature.
    hs_header = {**header, "alg": "HS512"}
    signing_input = reassemble(hs_header, claims, "").rstrip(".")
    mac = hmac.new(public_x.encode(), signing_input.encode(), hashlib.sha512).digest()
    forgeries["HS512 with the public key"] = f"{signing_input}.{b64url(mac)}"
    for what, forged in forgeries.items():
        assert whoami(lite, forged) == 401, what
        assert lite.introspect(forged) == {"active": False}, what
    assert whoami(lite, bob["access_token"]) == 200


def test_a_signed_token_naming_another_users_session_is_inactive(
    api: Api, provider: OidcProvider
) -> None:
    """Even with a valid signature, an access token acts only while its ``sid`` is a live
    session of its own ``sub``: another user's session lends it nothing."""
    bob = log_in(api, provider, BOB)
    _, claims, _ = jwt_parts(bob["access_token"])
    ring = api.keys.ring()
    as_ann = ring.sign(
        {**claims, "sub": ANN, "email": ANN, "grants": [{"resource": "acme", "level": "admin"}]}
    )
    assert whoami(api, as_ann) == 401
    assert api.introspect(as_ann) == {"active": False}
    assert api.client.get("/v2/orgs/acme/members", headers=bearer(as_ann)).status_code == 401
    # A sid that is no session, and a client credential's id posing as a session.
    for source in ("ses_" + "0" * 24, "cid_nothing", "tok_nothing"):
        assert whoami(api, ring.sign({**claims, "sid": source})) == 401, source


def test_a_signed_token_never_acts_above_the_users_grants_now(
    api: Api, provider: OidcProvider
) -> None:
    bob = log_in(api, provider, BOB)
    _, claims, _ = jwt_parts(bob["access_token"])
    inflated = api.keys.ring().sign({**claims, "grants": [{"resource": "acme", "level": "admin"}]})
    assert whoami(api, inflated) == 200  # a live session of bob's: it is bob
    assert api.client.get("/v2/orgs/acme/members", headers=bearer(inflated)).status_code == 403
    issued = api.client.post(
        f"/v2/users/{BOB}/tokens",
        json={"grants": [{"resource": "acme/beta", "level": "read"}]},
        headers=bearer(inflated),
    )
    assert issued.status_code == 403, issued.text
    answer = api.introspect(inflated, resource="acme/beta", level="read")
    assert answer["allowed"] is False
    assert answer["grants"] == []


# -- races ------------------------------------------------------------------------------------


def test_a_refresh_token_raced_by_many_threads_is_spent_once(
    api: Api, provider: OidcProvider
) -> None:
    session = log_in(api, provider, ANN)
    before = head_position(api.ledger)
    answers = at_once(6, lambda: refresh(api, session["refresh_token"]))
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200, 400, 400, 400, 400, 400], [r.text for r in answers]
    for response in answers:
        assert response.status_code == 200 or response.json()["error"] == "invalid_grant"
    # One refresh, then the reuse ends the whole session: two events, nothing else.
    events = events_of(api, session["session_id"])
    assert [type(e) for e in events] == [SessionStarted, SessionRefreshed, SessionEnded]
    assert events[-1].reason == "refresh_token_reused"
    assert head_position(api.ledger) == before + 2
    winner = next(r.json() for r in answers if r.status_code == 200)
    assert whoami(api, winner["access_token"]) == 401
    oauth_error(refresh(api, winner["refresh_token"]), "invalid_grant")
    assert_projections_match_log(api.ledger)


def test_a_login_code_raced_by_many_threads_starts_one_session(
    api: Api, provider: OidcProvider
) -> None:
    login = Login.new()
    back = browser_login(api, provider, login, ANN, email=ANN, email_verified=True)
    before = head_position(api.ledger)
    answers = at_once(5, lambda: redeem(api, login, back["code"]))
    assert sorted(r.status_code for r in answers) == [200, 400, 400, 400, 400]
    assert head_position(api.ledger) == before + 1
    assert_projections_match_log(api.ledger)


# -- what ends a session stays ended ----------------------------------------------------------


def test_a_member_removed_and_added_again_gets_nothing_back_from_the_old_session(
    api: Api, provider: OidcProvider
) -> None:
    session = log_in(api, provider, BOB)
    api.ledger.execute(c.RemoveMember(org="acme", email=BOB), OPERATOR)
    api.ledger.execute(c.AddMember(org="acme", email=BOB), OPERATOR)
    api.ledger.execute(
        c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE), OPERATOR
    )
    assert whoami(api, session["access_token"]) == 401
    before = head_position(api.ledger)
    oauth_error(refresh(api, session["refresh_token"]), "invalid_grant")
    assert head_position(api.ledger) == before
    # Logging out with it now ends nothing and appends nothing.
    assert api.client.post("/oauth2/revoke", data={"token": session["refresh_token"]}).json() == {}
    assert head_position(api.ledger) == before


# -- logging out, refresh tokens out of place -------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        "tlr_" + "A" * 38,
        "tlr_",
        "tlr_\x00\r\n",
        "tlr_" + "é" * 38,
        "x" * 9000,
        "eyJ.eyJ",
        "tlp_" + "A" * 38,
        " ",
    ],
    ids=["unknown", "prefix", "controls", "unicode", "huge", "two-dots", "personal", "blank"],
)
def test_logging_out_with_a_malformed_token_is_answered_and_changes_nothing(
    lite: Api, junk: str
) -> None:
    before = head_position(lite.ledger)
    response = lite.client.post(
        "/oauth2/revoke", data={"token": junk, "token_type_hint": "refresh_token"}
    )
    assert response.status_code in (200, 400, 401), response.text
    assert "Traceback" not in response.text
    assert head_position(lite.ledger) == before


def test_an_access_token_cannot_be_revoked_in_place_of_a_refresh_token(
    lite: Api, provider: OidcProvider
) -> None:
    session = log_in(lite, provider, ANN)
    before = head_position(lite.ledger)
    response = lite.client.post("/oauth2/revoke", data={"token": session["access_token"]})
    oauth_error(response, "unsupported_token_type")
    assert head_position(lite.ledger) == before
    assert whoami(lite, session["access_token"]) == 200


def test_a_refresh_token_and_its_recorded_hash_are_no_credential_anywhere_else(
    api: Api, provider: OidcProvider
) -> None:
    session = log_in(api, provider, ANN)
    refresh_token = session["refresh_token"]
    assert whoami(api, refresh_token) == 401
    assert api.introspect(refresh_token) == {"active": False}
    # An org admin sees the hash in the audit trail: it opens nothing.
    (started,) = [e for e in events_of(api, session["session_id"]) if type(e) is SessionStarted]
    recorded = started.refresh_hash
    assert recorded == hashlib.sha256(refresh_token.encode()).hexdigest()
    before = head_position(api.ledger)
    for presented in (recorded, "tlr_" + recorded, recorded.upper()):
        oauth_error(refresh(api, presented), "invalid_grant")
        logout = api.client.post("/oauth2/revoke", data={"token": presented})
        assert logout.status_code in (200, 401), logout.text  # no refresh token: needs a Bearer
    assert head_position(api.ledger) == before
    assert refresh(api, refresh_token).status_code == 200


# -- hostile parameters at the login endpoints -----------------------------------------------


HOSTILE_VALUES = [
    "x" * 5000,
    "\x00",
    "a\r\nLocation: https://evil.example/",
    "<script>alert(1)</script>",
    "%00%0d%0a",
    "\u202e\ufeff\U0001f600",
    "../../../../etc/passwd",
    "",
]
HOSTILE_IDS = ["huge", "nul", "crlf", "html", "encoded", "unicode", "path", "empty"]


@pytest.mark.parametrize(
    "name", ["org", "state", "code_challenge", "client_id", "redirect_uri", "response_type"]
)
def test_hostile_authorize_parameters_are_refused_cleanly(
    lite: Api, provider: OidcProvider, name: str
) -> None:
    login = Login.new()
    for value in HOSTILE_VALUES:
        params = login.authorize_params(**{name: value})
        response = lite.client.get("/oauth2/authorize", params=params, follow_redirects=False)
        assert response.status_code != 500, (name, value[:40], response.text[:300])
        assert "Traceback" not in response.text
        if response.status_code != 303:
            clean_refusal(response)
        elif response.headers["location"].startswith(REDIRECT + "?"):
            # Told to the command line's loopback, the value encoded, never a code.
            sent = parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)
            assert "code" not in sent
            assert sent["state"] == [params["state"]]
        else:  # on to the org's provider, nowhere else
            assert response.headers["location"].startswith(provider.issuer + "/"), name
        assert "<script>" not in response.text


@pytest.mark.parametrize(
    "name", ["state", "code", "error", "error_description"], ids=lambda n: f"callback-{n}"
)
def test_hostile_callback_parameters_are_refused_cleanly(lite: Api, name: str) -> None:
    for value in HOSTILE_VALUES:
        params = {"state": "forged", "code": "x", name: value}
        response = lite.client.get("/oauth2/callback", params=params, follow_redirects=False)
        clean_refusal(response)
        assert "<script>" not in response.text


def test_the_code_page_escapes_what_it_shows(lite: Api) -> None:
    for value in HOSTILE_VALUES:
        for name in ("code", "error", "error_description", "state"):
            response = lite.client.get("/oauth2/code", params={name: value})
            assert response.status_code in (200, 400, 422), response.text[:200]
            assert "<script>" not in response.text


@pytest.mark.parametrize(
    "field", ["grant_type", "code", "code_verifier", "redirect_uri", "client_id", "refresh_token"]
)
def test_hostile_token_requests_are_refused_cleanly(lite: Api, field: str) -> None:
    before = head_position(lite.ledger)
    for grant_type in ("authorization_code", "refresh_token"):
        for value in HOSTILE_VALUES:
            form = {
                "grant_type": grant_type,
                "code": "eyJ.eyJ.x",
                "code_verifier": "v" * 43,
                "redirect_uri": REDIRECT,
                "client_id": CLI,
                "refresh_token": "tlr_x",
                field: value,
            }
            response = lite.client.post("/oauth2/token", data=form)
            assert 400 <= response.status_code < 500, (field, value[:40], response.text)
            assert "Traceback" not in response.text
    assert head_position(lite.ledger) == before


@pytest.mark.parametrize(
    "redirect",
    [
        "https://evil.example/cb",
        "http://127.0.0.1@evil.example:5/cb",
        "http://127.0.0.1:5@evil.example/cb",
        "http://evil.example\\@127.0.0.1:5/cb",
        "http://127.0.0.1:5\\@evil.example/",
        "http://127.0.0.1.evil.example:5/cb",
        "http://localhost.evil.example:5/cb",
        "http://127.0.0.1%2eevil.example:5/cb",
        "http://127.0.0.1:5\t.evil.example/cb",
        "http://[::1%25eth0]:5/cb",
        "http://[::ffff:7f00:1].evil.example:5/cb",
        "http://evil.example#@127.0.0.1:5/cb",
        "http://127.0.0.1:5?@evil.example/cb",
        "http://127.0.0.1:5/cb?next=https://evil.example",
        "http://127.0.0.1:5/cb" + "a" * 300,
        "https://127.0.0.1:5/cb",
        "javascript://127.0.0.1:5/%0aalert(1)",
        "//127.0.0.1:5/cb",
        "http:/\\127.0.0.1:5/",
        "http://127.0.0.1/cb",
        "http://127.0.0.1:99999/cb",
        "http://testserver/oauth2/code/../../evil",
        "http://testserver/oauth2/cod",
        "https://testserver/oauth2/code",
    ],
)
def test_the_login_is_never_sent_to_another_site(lite: Api, redirect: str) -> None:
    login = Login.new()
    params = login.authorize_params(redirect_uri=redirect)
    response = lite.client.get("/oauth2/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400, (response.status_code, response.headers.get("location"))
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "redirect",
    [
        "HTTP://127.0.0.1:53682/callback",
        "http://[::1]:53682/callback",
        "http://localhost:53682/callback",
        "http://127.0.0.1:53682/callback#",
    ],
)
def test_loopback_spellings_keep_the_code_on_this_machine(
    lite: Api, provider: OidcProvider, redirect: str
) -> None:
    login = Login.new()
    params = login.authorize_params(redirect_uri=redirect)
    started = lite.client.get("/oauth2/authorize", params=params, follow_redirects=False)
    assert started.status_code == 303
    provider.set_user(ANN, email=ANN, email_verified=True)
    back = lite.client.get(
        local(provider.login(started.headers["location"], ANN)), follow_redirects=False
    )
    host = urlsplit(back.headers["location"]).hostname
    assert host in ("127.0.0.1", "::1", "localhost")
    sent = OidcProvider.redirect_params(back.headers["location"].replace("#?", "?"))
    assert redeem(lite, login, sent["code"], redirect_uri=redirect).status_code == 200


def test_a_state_cannot_inject_parameters_into_the_redirect(
    lite: Api, provider: OidcProvider
) -> None:
    injected = "s&code=attacker-code&redirect_uri=https://evil.example/#x"
    # Refused before the provider (no provider for the org): told to the command line.
    login = Login(verifier=Login.new().verifier, state=injected)
    refused = lite.client.get(
        "/oauth2/authorize", params=login.authorize_params(org="other"), follow_redirects=False
    )
    sent = parse_qs(urlsplit(refused.headers["location"]).query)
    assert sent["state"] == [injected]
    assert "code" not in sent
    assert "redirect_uri" not in sent
    # A whole login: one code, ours, and the state back as it was.
    provider.set_user(ANN, email=ANN, email_verified=True)
    back_location = back_to_cli_location(lite, provider.login(to_provider(lite, login), ANN))
    assert back_location.startswith(REDIRECT + "?")
    sent = parse_qs(urlsplit(back_location).query)
    assert sent["state"] == [injected]
    assert len(sent["code"]) == 1
    assert sent["code"][0] != "attacker-code"


@pytest.mark.parametrize(
    "redirect", ["http://[::1/cb", "http://127.0.0.1:5\uff03@evil.example/"], ids=["ipv6", "nfkc"]
)
def test_an_unparseable_redirect_uri_is_a_clean_refusal(lite: Api, redirect: str) -> None:
    login = Login.new()
    params = login.authorize_params(redirect_uri=redirect)
    response = lite.client.get("/oauth2/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400, response.text
    assert "location" not in response.headers


def test_a_forged_host_header_cannot_send_a_victims_code_elsewhere(
    lite: Api, provider: OidcProvider
) -> None:
    attacker = Login.new()
    evil_page = "http://evil.example/oauth2/code"
    started = lite.client.get(
        "/oauth2/authorize",
        params=attacker.authorize_params(redirect_uri=evil_page),
        headers={"Host": "evil.example"},
        follow_redirects=False,
    )
    if started.status_code != 303:  # refused up front: the hole is closed
        return
    # The attacker puts the registered callback back into the provider's URL and sends the
    # link to the victim, who logs in at their provider as usual.
    parts = urlsplit(started.headers["location"])
    query = {**dict(parse_qsl(parts.query)), "redirect_uri": "http://testserver/oauth2/callback"}
    link = urlunsplit(parts._replace(query=urlencode(query)))
    provider.set_user(ANN, email=ANN, email_verified=True)
    back = lite.client.get(local(provider.login(link, ANN)), follow_redirects=False)
    location = back.headers.get("location", "")
    if location.startswith(evil_page):
        code = OidcProvider.redirect_params(location)["code"]
        stolen = redeem(lite, attacker, code, redirect_uri=evil_page)
        assert stolen.status_code != 200, "the attacker holds a session as ann"
    assert not location.startswith("http://evil.example")


# -- workload identity federation -------------------------------------------------------------


def trust(api: Api, issuer: str, subject: str = "repo:acme/site:*", account: str = SA) -> None:
    command = c.build(
        c.TrustIssuer, account_id=account, issuer=issuer, subject=subject, audience=AUDIENCE
    )
    api.ledger.execute(command, OPERATOR)


def id_token(provider: OidcProvider, **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": provider.issuer, "sub": SUBJECT, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return provider.sign({**base, **claims})


def exchange(api: Api, subject_token: str, account: str = SA) -> Any:
    form = {
        "grant_type": EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ID_TOKEN,
        "service_account": account,
    }
    return api.client.post("/oauth2/token", data=form)


def unsigned(claims: dict[str, Any]) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": "k"}
    return reassemble(header, claims, b64url(b"\x00" * 256))


def test_a_subject_token_naming_an_untrusted_issuer_is_refused_without_a_fetch(
    lite: Api, provider: OidcProvider
) -> None:
    trust(lite, provider.issuer)
    now = int(time.time())
    # Addresses that would hang or reach inside: never contacted, since no trust names them.
    for issuer in ("https://10.255.255.1", "https://169.254.169.254", "https://evil.example"):
        token = unsigned({"iss": issuer, "sub": SUBJECT, "aud": AUDIENCE, "exp": now + 60})
        started = time.monotonic()
        assert "does not trust" in oauth_error(exchange(lite, token), "invalid_grant")
        assert time.monotonic() - started < 2


def test_a_trusted_issuer_that_cannot_be_reached_is_invalid_grant_not_an_error(
    lite: Api,
) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}"
    trust(lite, issuer)
    now = int(time.time())
    token = unsigned({"iss": issuer, "sub": SUBJECT, "aud": AUDIENCE, "exp": now + 60})
    started = time.monotonic()
    described = oauth_error(exchange(lite, token), "invalid_grant")
    assert "cannot be reached" in described
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "subject_token",
    [
        unsigned({"iss": 42, "sub": SUBJECT}),
        unsigned({"sub": SUBJECT}),
        unsigned({"iss": "http://127.0.0.1\x00.evil", "sub": SUBJECT}),
        unsigned({"iss": "http://user@127.0.0.1:1", "sub": SUBJECT}),
        unsigned({"iss": "ftp://127.0.0.1", "sub": SUBJECT}),
        unsigned({"iss": "https://" + "a" * 600, "sub": SUBJECT}),
        "eyJ" + b64url(b"[1,2,3]") + ".x.y",
        "a.b.c",
        "\x00" * 10,
    ],
    ids=[
        "iss-number",
        "no-iss",
        "iss-nul",
        "iss-userinfo",
        "iss-ftp",
        "iss-huge",
        "header-array",
        "garbage",
        "nul",
    ],
)
def test_hostile_subject_tokens_are_invalid_grant(lite: Api, subject_token: str) -> None:
    before = head_position(lite.ledger)
    response = exchange(lite, subject_token)
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("invalid_grant", "invalid_request")
    assert head_position(lite.ledger) == before


def test_an_exchanged_token_of_an_admin_account_manages_no_trusts_or_credentials(
    api: Api, provider: OidcProvider
) -> None:
    """A CI job's access token acts as its service account, which may never manage issuer
    trusts or credentials, even when its permission is admin."""
    deployer = "deployer@acme.service.tokenledger"
    api.ledger.execute(
        c.CreateServiceAccount(
            name="deployer", org="acme", resource="acme/alpha", level=Level.ADMIN
        ),
        OPERATOR,
    )
    trust(api, provider.issuer, account=deployer)
    response = exchange(api, id_token(provider), deployer)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    before = head_position(api.ledger)
    body = {"issuer": "https://ci.evil.example", "subject": "repo:evil/*", "audience": AUDIENCE}
    for account in (deployer, SA):
        url = f"/v2/service_accounts/{account}"
        refused = [
            api.client.post(f"{url}/trusts", json=body, headers=bearer(token)),
            api.client.delete(
                f"{url}/trusts", params={"issuer": provider.issuer}, headers=bearer(token)
            ),
            api.client.post(f"{url}/credentials", headers=bearer(token)),
        ]
        for answer in refused:
            assert answer.status_code == 403, answer.text
    idp = {"issuer": provider.issuer, "client_id": "evil"}
    put = api.client.put("/v2/orgs/acme/identity-provider", json=idp, headers=bearer(token))
    assert put.status_code == 403
    assert head_position(api.ledger) == before


@pytest.mark.parametrize("obtained_by", ["exchange", "client_credentials"])
def test_withdrawing_what_obtained_an_access_token_leaves_nothing_it_minted(
    lite: Api, provider: OidcProvider, obtained_by: str
) -> None:
    api = lite
    if obtained_by == "exchange":
        trust(api, provider.issuer)
        access_token = exchange(api, id_token(provider)).json()["access_token"]
        withdraw: c.Command = c.build(c.UntrustIssuer, account_id=SA, issuer=provider.issuer)
    else:
        client_id, client_secret = api.credential()
        access_token = api.exchange(client_id, client_secret)
        withdraw = c.build(c.RevokeClientCredential, client_id=client_id)
    minted = api.client.post(
        f"/v2/service_accounts/{SA}/tokens",
        json={"grants": [{"resource": "acme/alpha", "level": "write"}]},
        headers=bearer(access_token),
    )
    api.ledger.execute(withdraw, OPERATOR)
    assert whoami(api, access_token) == 401
    if minted.status_code == 201:
        assert not api.ledger.verify(minted.json()["secret"]).active, "the minted token lives on"


@pytest.mark.parametrize("pattern", ["*:ref:refs/heads/main", "*a*", "*.*"])
def test_a_subject_pattern_that_trusts_every_repository_is_refused(lite: Api, pattern: str) -> None:
    before = head_position(lite.ledger)
    body = {"issuer": "https://ci.example", "subject": pattern, "audience": AUDIENCE}
    response = lite.client.post(f"/v2/service_accounts/{SA}/trusts", json=body, headers=lite.admin)
    assert response.status_code == 400, response.text
    assert head_position(lite.ledger) == before


# -- cached answers after a session ended -----------------------------------------------------


def test_a_cached_answer_never_outlives_a_session_ended_through_this_server(
    api: Api, provider: OidcProvider
) -> None:
    settings = ApiSettings(issuer=ISSUER, keys=api.keys, cache_staleness=30.0)
    with TestClient(create_asgi_app(api.ledger, settings)) as cached:
        session = log_in(api, provider, BOB)
        token = session["access_token"]
        for _ in range(2):  # the second answer comes from the cache
            answer = cached.post("/oauth2/introspect", data={"token": token}, headers=api.admin)
            assert answer.json()["active"] is True
        assert cached.get("/v2/whoami", headers=bearer(token)).status_code == 200
        ended = cached.delete(f"/v2/sessions/{session['session_id']}", headers=api.admin)
        assert ended.status_code == 200, ended.text
        answer = cached.post("/oauth2/introspect", data={"token": token}, headers=api.admin)
        assert is_inactive_body(answer.content)
        # Nor does the ended session's token introspect anything as a caller.
        as_caller = cached.post(
            "/oauth2/introspect", data={"token": api.ann}, headers=bearer(token)
        )
        assert as_caller.status_code == 401
        assert cached.get("/v2/whoami", headers=bearer(token)).status_code == 401


def test_a_session_ended_by_another_process_is_seen_from_its_position(
    api: Api, provider: OidcProvider, database_url: str
) -> None:
    session = log_in(api, provider, BOB)
    token = session["access_token"]
    assert api.introspect(token)["active"] is True
    assert api.introspect(token)["active"] is True
    other = Ledger(open_event_store(database_url))
    try:
        ended = other.execute(c.build(c.EndSession, session_id=session["session_id"]), OPERATOR)
    finally:
        other.close()
    position = ended.records[-1].position
    assert api.introspect(token, min_position=str(position)) == {"active": False}
    assert api.ledger.answers.wait_for(position, 30)  # then every answer reflects it
    assert api.introspect(token) == {"active": False}
    assert whoami(api, token) == 401
    members = api.client.get("/v2/orgs/acme/members", headers=bearer(token))
    assert members.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v2/sessions/{v}",
        "/v2/users/{v}/sessions",
    ],
)
def test_hostile_session_paths_are_refused_cleanly(lite: Api, path: str) -> None:
    before = head_position(lite.ledger)
    for value in ("ses_" + "0" * 24, "x" * 500, "%00", "..%2F..%2Fv2%2Faudit", "ses_%0d%0a", "é"):
        url = path.format(v=value)
        for method in ("GET", "DELETE"):
            response = lite.client.request(method, url, headers=lite.admin)
            assert response.status_code < 500, (method, url, response.text[:200])
            assert "Traceback" not in response.text
    assert head_position(lite.ledger) == before


class _Listener:
    """An HTTP service on this machine's loopback that only records what reaches it."""

    def __init__(self) -> None:
        import http.server

        self.paths: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.paths.append(self.path)
                self.send_response(404)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def test_an_org_admin_cannot_point_the_server_at_its_own_loopback(lite: Api) -> None:
    with _Listener() as internal:
        idp = {"issuer": internal.url, "client_id": "x"}
        put = lite.client.put(
            "/v2/orgs/other/identity-provider", json=idp, headers=bearer(lite.carol)
        )
        login = Login.new()
        told = lite.client.get(
            "/oauth2/authorize", params=login.authorize_params(org="other"), follow_redirects=False
        )
        assert told.status_code < 500
        assert put.status_code in (400, 403) or internal.paths == [], internal.paths
        assert "HTTP 404" not in told.headers.get("location", "")


# -- one org's session, another org --------------------------------------------------------------


def test_a_session_of_one_org_mints_and_administers_nothing_in_another(
    api: Api, provider: OidcProvider
) -> None:
    api.ledger.execute(c.AddMember(org="other", email=BOB, role="admin"), OPERATOR)
    session = log_in(api, provider, BOB)
    token = session["access_token"]
    before = head_position(api.ledger)
    for level in ("read", "admin"):
        minted = api.client.post(
            f"/v2/users/{BOB}/tokens",
            json={"grants": [{"resource": "other", "level": level}]},
            headers=bearer(token),
        )
        assert minted.status_code == 403, minted.text
    idp = {"issuer": provider.issuer, "client_id": "x"}
    put = api.client.put("/v2/orgs/other/identity-provider", json=idp, headers=bearer(token))
    assert put.status_code == 403
    member = api.client.put(
        f"/v2/orgs/other/members/{ANN}", json={"role": "admin"}, headers=bearer(token)
    )
    assert member.status_code == 403
    assert api.introspect(token, resource="other", level="read")["allowed"] is False
    assert head_position(api.ledger) == before


def test_another_orgs_admin_sees_and_ends_none_of_a_users_sessions(
    api: Api, provider: OidcProvider
) -> None:
    session = log_in(api, provider, BOB)
    listed = api.client.get(
        "/v2/audit", params={"type": "SessionStarted"}, headers=bearer(api.carol)
    )
    assert listed.status_code == 200
    assert listed.json() == []
    about_bob = api.client.get("/v2/audit", params={"subject": BOB}, headers=bearer(api.carol))
    assert about_bob.status_code in (200, 403)
    assert session["session_id"] not in about_bob.text
    about_session = api.client.get(
        "/v2/audit", params={"subject": session["session_id"]}, headers=bearer(api.carol)
    )
    assert session["session_id"] not in about_session.text
    before = head_position(api.ledger)
    ended = api.client.delete(f"/v2/sessions/{session['session_id']}", headers=bearer(api.carol))
    assert ended.status_code in (403, 404)
    assert head_position(api.ledger) == before
    assert whoami(api, session["access_token"]) == 200
    # The org's own admin sees it.
    seen = api.client.get("/v2/audit", params={"type": "SessionStarted"}, headers=api.admin).json()
    assert [e["data"]["session_id"] for e in seen] == [session["session_id"]]


@pytest.fixture
def hijacked(lite: Api, provider: OidcProvider) -> dict[str, Any]:
    """carol, admin of ``other`` only, adds ann to ``other``, registers a provider she
    controls for it (here the same mock, which vouches for anyone) and logs in as ann.
    ann also holds an admin token of ``acme`` and a live session there."""
    added = lite.client.put(f"/v2/orgs/other/members/{ANN}", json={}, headers=bearer(lite.carol))
    assert added.status_code == 200, added.text
    # carol would name her provider's https address; the test's provider is on this machine,
    # which only an operator may name, so the operator stands in for her here.
    lite.keys.set_provider_secret("other", "s")
    lite.ledger.execute(
        c.build(
            c.SetIdentityProvider,
            org="other",
            issuer=provider.issuer,
            oidc_client_id="carols-client",
            client_secret=True,
        ),
        OPERATOR,
    )
    acme_session = log_in(lite, provider, ANN, org="acme")
    carols = log_in(lite, provider, ANN, org="other")
    token_id = lite.ledger.authenticate(lite.ann).token_id
    return {"token": carols["access_token"], "acme_session": acme_session, "token_id": token_id}


def _cross_org_action(api: Api, hijacked: dict[str, Any], action: str) -> Any:
    token = bearer(hijacked["token"])
    acme_session = hijacked["acme_session"]["session_id"]
    calls: dict[str, Callable[[], Any]] = {
        "revoke-acme-token": lambda: api.client.delete(
            f"/v2/tokens/{hijacked['token_id']}", headers=token
        ),
        "revoke-all-tokens": lambda: api.client.delete(f"/v2/users/{ANN}/tokens", headers=token),
        "end-acme-session": lambda: api.client.delete(
            f"/v2/sessions/{acme_session}", headers=token
        ),
        "list-tokens": lambda: api.client.get(f"/v2/users/{ANN}/tokens", headers=token),
        "list-grants": lambda: api.client.get(f"/v2/users/{ANN}/grants", headers=token),
        "list-sessions": lambda: api.client.get(f"/v2/users/{ANN}/sessions", headers=token),
        "audit": lambda: api.client.get("/v2/audit", params={"subject": ANN}, headers=token),
        "explain-acme-session": lambda: api.client.get(
            f"/v2/tokens/{acme_session}/explain", headers=token
        ),
        "who-can-in-acme": lambda: api.client.get(
            "/v2/audit/who-can", params={"resource": "acme", "level": "read"}, headers=token
        ),
        "tokens-live": lambda: api.client.get(
            "/v2/tokens/live", params={**_whole_log(api), "principal": ANN}, headers=token
        ),
    }
    return calls[action]()


def _whole_log(api: Api) -> dict[str, str]:
    """The window from the log's first event to now."""
    first = next(iter(api.ledger.store.read_all(until_position=1))).recorded_at
    return {"from": first.isoformat(), "to": api.ledger.now().isoformat()}


@pytest.mark.parametrize(
    "action",
    [
        "revoke-acme-token",
        "revoke-all-tokens",
        "end-acme-session",
        "list-tokens",
        "list-grants",
        "list-sessions",
        "audit",
        "explain-acme-session",
        "who-can-in-acme",
        "tokens-live",
    ],
)
def test_a_session_through_another_orgs_provider_cannot_reach_the_user_in_acme(
    lite: Api, hijacked: dict[str, Any], action: str
) -> None:
    api = lite
    before = head_position(api.ledger)
    response = _cross_org_action(api, hijacked, action)
    assert head_position(api.ledger) == before, f"{action} changed the log: {response.text}"
    if response.status_code == 200:
        shown = response.text
        assert "acme" not in shown.replace(ANN, ""), f"{action} showed acme: {shown[:300]}"
    assert api.client.get("/v2/orgs/acme/members", headers=api.admin).status_code == 200
    assert whoami(api, hijacked["acme_session"]["access_token"]) == 200


def test_a_session_through_another_orgs_provider_is_no_admin_of_acme(
    lite: Api, hijacked: dict[str, Any]
) -> None:
    api = lite
    """What does hold in the hijack above: the grants stay inside the session's org."""
    token = bearer(hijacked["token"])
    before = head_position(api.ledger)
    assert api.client.get("/v2/orgs/acme/members", headers=token).status_code == 403
    minted = api.client.post(
        f"/v2/users/{ANN}/tokens",
        json={"grants": [{"resource": "acme", "level": "read"}]},
        headers=token,
    )
    assert minted.status_code == 403
    removed = api.client.delete(f"/v2/orgs/acme/members/{BOB}", headers=token)
    assert removed.status_code == 403
    assert head_position(api.ledger) == before
