"""The OpenID Connect relying party against a real provider over real HTTP.

Logins run against oidc-provider-mock (``tests/oidc_provider.py``); a provider that
misbehaves in ways the mock cannot (a document naming an insecure endpoint, a JWK Set
that is not one) is a ``StaticSite`` on 127.0.0.1 answering fixed documents. Nothing
of httpx is mocked. Every rule of ``service/oidc.py`` has a test here that fails without
it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from freezegun import freeze_time
from jwt.algorithms import RSAAlgorithm

import tokenledger
from oidc_provider import OidcProvider
from tokenledger.clock import SystemClock
from tokenledger.domain.pkce import code_challenge, new_code_verifier, verify_code_challenge
from tokenledger.errors import ValidationError
from tokenledger.service import oidc
from tokenledger.service.oidc import IdTokenClaims, OidcClient, OidcError, Provider

CLIENT = "ledger"
SECRET = "s3cret-of-the-ledger"
REDIRECT = "http://127.0.0.1:9/oidc/callback"
NONCE = "nonce-of-this-login"
STATE = "state-of-this-login"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEEWAY = timedelta(seconds=60)


class FakeMonotonic:
    """The caches' clock, moved by hand."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        running.set_user("alice", email="Alice@Acme.test", email_verified=True, name="Alice")
        yield running


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def requests() -> list[httpx.Request]:
    """Every request the client under test sends."""
    return []


@pytest.fixture
def client(clock: FakeMonotonic, requests: list[httpx.Request]) -> Iterator[OidcClient]:
    http = httpx.Client(timeout=5.0, event_hooks={"request": [requests.append]})
    with http, OidcClient(http, monotonic=clock) as relying_party:
        yield relying_party


def paths(requests: list[httpx.Request]) -> list[str]:
    return [request.url.path for request in requests]


def login(
    provider: OidcProvider, client: OidcClient, *, client_id: str = CLIENT, sub: str = "alice"
) -> tuple[Provider, str, str]:
    """A login up to the redirect back: the provider, the code and the PKCE verifier."""
    found = client.discover(provider.issuer)
    verifier = new_code_verifier()
    url = client.authorization_url(
        found,
        client_id=client_id,
        redirect_uri=REDIRECT,
        state=STATE,
        nonce=NONCE,
        code_challenge=code_challenge(verifier),
    )
    location = provider.login(url, sub)
    params = provider.redirect_params(location)
    assert location.startswith(REDIRECT + "?")
    assert params["state"] == STATE
    return found, params["code"], verifier


def id_token(
    provider: OidcProvider, client: OidcClient, *, client_id: str = CLIENT, sub: str = "alice"
) -> tuple[Provider, str]:
    """A whole login: the ID token the provider gives for it."""
    found, code, verifier = login(provider, client, client_id=client_id, sub=sub)
    token = client.exchange_code(
        found,
        client_id=client_id,
        client_secret=SECRET,
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    return found, token


def validate(
    client: OidcClient, found: Provider, token: str, *, now: datetime | None = None
) -> IdTokenClaims:
    return client.validate_id_token(
        found, token, client_id=CLIENT, nonce=NONCE, now=now or datetime.now(UTC)
    )


def refused(reason: str, call: Any, *args: Any, **kwargs: Any) -> OidcError:
    """``call`` raises ``OidcError`` for ``reason``, with a one-line message."""
    with pytest.raises(OidcError) as caught:
        call(*args, **kwargs)
    assert caught.value.reason == reason, str(caught.value)
    message = str(caught.value)
    assert message
    assert "\n" not in message
    assert message.isprintable()
    return caught.value


def claims_at(provider: OidcProvider, now: datetime = NOW, **overrides: Any) -> dict[str, Any]:
    """An ID token's claims for this login at ``now``; ``None`` leaves a claim out."""
    moment = int(now.timestamp())
    claims = {
        "iss": provider.issuer,
        "sub": "alice",
        "aud": CLIENT,
        "iat": moment,
        "exp": moment + 300,
        "nonce": NONCE,
        "email": "Alice@Acme.test",
        "email_verified": True,
        **overrides,
    }
    return {name: value for name, value in claims.items() if value is not None}


def check_signed(
    client: OidcClient, provider: OidcProvider, token: str, *, now: datetime = NOW
) -> IdTokenClaims:
    found = client.discover(provider.issuer)
    return client.validate_id_token(found, token, client_id=CLIENT, nonce=NONCE, now=now)


def segment(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class StaticSite:
    """Fixed answers on 127.0.0.1: ``answers[path] = (status, body)``, with
    ``headers[path]`` added; 404 otherwise."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                status, body = site.answers.get(self.path.split("?")[0], (404, b"{}"))
                self.send_response(status)
                self.send_header("content-type", "application/json")
                for name, value in site.headers.get(self.path.split("?")[0], {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def json(self, path: str, document: object, status: int = 200) -> None:
        self.answers[path] = (status, json.dumps(document).encode())

    def discovery(self, **fields: Any) -> None:
        """A discovery document for this site, with ``fields`` changed."""
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            **fields,
        }
        self.json("/.well-known/openid-configuration", document)

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()


@pytest.fixture
def site() -> Iterator[StaticSite]:
    with StaticSite() as running:
        yield running


def frozen(moment: datetime) -> Any:
    """``freeze_time(moment)``, once every name ``tokenledger`` exports is loaded.

    Starting, freezegun reads every attribute of every loaded module; the package's names
    load lazily, and a command model built while ``datetime`` is frozen cannot be.
    """
    for name in tokenledger.__all__:
        getattr(tokenledger, name)
    return freeze_time(moment)


def rsa_key(size: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


# -- discovery -----------------------------------------------------------------------------


def test_discovery_reads_the_providers_endpoints(
    provider: OidcProvider, client: OidcClient
) -> None:
    found = client.discover(provider.issuer)
    assert found.issuer == provider.issuer
    assert found.authorization_endpoint == provider.issuer + "/oauth2/authorize"
    assert found.token_endpoint == provider.issuer + "/oauth2/token"
    assert found.jwks_uri == provider.issuer + "/jwks"
    assert found.end_session_endpoint == provider.issuer + "/oauth2/end_session"
    assert found.signing_algorithms == {"RS256"}


def test_discovery_refuses_a_document_for_another_issuer(
    provider: OidcProvider, client: OidcClient
) -> None:
    """OIDC Discovery 4.3: exactly the configured issuer, so a trailing slash differs."""
    error = refused("wrong_issuer", client.discover, provider.issuer + "/")
    assert provider.issuer in str(error)


def test_discovery_refuses_a_plain_http_issuer_elsewhere_than_this_machine(
    client: OidcClient, requests: list[httpx.Request]
) -> None:
    refused("bad_discovery", client.discover, "http://idp.example.test")
    refused("bad_discovery", client.discover, "https://idp.example.test?tenant=1")
    refused("bad_discovery", client.discover, "https://user:pw@idp.example.test")
    refused("bad_discovery", client.discover, "idp.example.test")
    refused("bad_discovery", client.discover, "https://idp.example.test#top")
    refused("bad_discovery", client.discover, "https://idp.example.test/a b")
    refused("bad_discovery", client.discover, "https://idp.example.test/\x00")
    assert requests == []


def test_discovery_refuses_an_endpoint_without_https(site: StaticSite, client: OidcClient) -> None:
    site.discovery(token_endpoint="http://idp.example.test/token")
    error = refused("bad_discovery", client.discover, site.issuer)
    assert "token_endpoint" in str(error)
    site.discovery(jwks_uri="http://idp.example.test/jwks")
    refused("bad_discovery", client.discover, site.issuer)


def test_discovery_refuses_what_is_not_a_discovery_document(
    site: StaticSite, client: OidcClient
) -> None:
    refused("bad_discovery", client.discover, site.issuer)  # 404
    site.answers["/.well-known/openid-configuration"] = (200, b"<html>hello</html>")
    refused("bad_discovery", client.discover, site.issuer)
    site.json("/.well-known/openid-configuration", {"issuer": site.issuer})  # no jwks_uri
    refused("bad_discovery", client.discover, site.issuer)
    site.answers["/.well-known/openid-configuration"] = (200, b" " * (600 * 1024))
    error = refused("bad_discovery", client.discover, site.issuer)
    assert "larger than" in str(error)


def test_discovery_follows_no_redirect(site: StaticSite, requests: list[httpx.Request]) -> None:
    """Not even with a client that would: the document must be at the issuer's URL."""
    site.discovery()
    site.answers["/moved"] = site.answers.pop("/.well-known/openid-configuration")
    site.answers["/.well-known/openid-configuration"] = (302, b"")
    site.headers["/.well-known/openid-configuration"] = {"location": site.issuer + "/moved"}
    http = httpx.Client(follow_redirects=True, event_hooks={"request": [requests.append]})
    with http:
        error = refused("bad_discovery", OidcClient(http).discover, site.issuer)
    assert "302" in str(error)
    assert paths(requests) == ["/.well-known/openid-configuration"]


def test_a_body_that_cannot_be_decoded_is_refused(site: StaticSite, client: OidcClient) -> None:
    site.answers["/.well-known/openid-configuration"] = (200, b"not gzip at all")
    site.headers["/.well-known/openid-configuration"] = {"content-encoding": "gzip"}
    refused("bad_discovery", client.discover, site.issuer)


def test_discovery_is_kept_for_an_hour(
    provider: OidcProvider,
    client: OidcClient,
    clock: FakeMonotonic,
    requests: list[httpx.Request],
) -> None:
    first = client.discover(provider.issuer)
    clock.advance(3599)
    assert client.discover(provider.issuer) is first
    assert len(requests) == 1
    clock.advance(2)
    client.discover(provider.issuer)
    assert len(requests) == 2


def test_discovery_keeps_the_previous_copy_while_the_provider_is_down(
    provider: OidcProvider, client: OidcClient, clock: FakeMonotonic
) -> None:
    first = client.discover(provider.issuer)
    provider.stop()
    clock.advance(3601)
    assert client.discover(provider.issuer) == first
    fresh = OidcClient()
    with fresh:
        refused("unreachable", fresh.discover, provider.issuer)


def test_discovery_remembers_a_bounded_number_of_issuers(
    provider: OidcProvider,
    client: OidcClient,
    requests: list[httpx.Request],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oidc, "_MAX_CACHED_ISSUERS", 1)
    client.discover(provider.issuer)
    client.discover(f"http://localhost:{provider.port}")  # the same mock, another issuer
    client.discover(provider.issuer)
    assert len(requests) == 3


def test_an_unreachable_provider_is_one_line(client: OidcClient) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}"
    error = refused("unreachable", client.discover, issuer)
    assert f"127.0.0.1:{issuer.rsplit(':', 1)[1]}" in str(error)


# -- the code exchange ---------------------------------------------------------------------


def test_a_whole_login_gives_the_users_checked_claims(
    provider: OidcProvider, client: OidcClient
) -> None:
    provider.set_user(
        "alice", email="Alice@Acme.test", email_verified=True, name="Alice", groups=["ops"]
    )
    found, token = id_token(provider, client)
    before = datetime.now(UTC)
    claims = validate(client, found, token)
    assert claims.issuer == provider.issuer
    assert claims.subject == "alice"
    assert claims.email == "alice@acme.test"
    assert claims.name == "Alice"
    assert claims.groups == ("ops",)
    assert before + timedelta(minutes=59) < claims.expires_at < before + timedelta(minutes=61)
    assert claims.raw["nonce"] == NONCE


def test_the_code_is_exchanged_with_the_secret_and_the_verifier(
    provider: OidcProvider, client: OidcClient, requests: list[httpx.Request]
) -> None:
    id_token(provider, client)
    sent = requests[-1]
    assert sent.url.path == "/oauth2/token"
    user_and_secret = base64.b64decode(sent.headers["authorization"].removeprefix("Basic "))
    assert user_and_secret == f"{CLIENT}:{SECRET}".encode()
    form = dict(httpx.QueryParams(sent.content.decode()))
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == REDIRECT
    assert len(form["code_verifier"]) >= 43
    assert "client_secret" not in form
    assert "client_id" not in form


def test_a_public_client_names_itself_and_the_providers_refusal_is_passed_on(
    provider: OidcProvider, client: OidcClient, requests: list[httpx.Request]
) -> None:
    """The mock takes only confidential clients at its token endpoint: its
    ``invalid_client`` answer comes back as the reason, with its description."""
    found, code, verifier = login(provider, client)
    error = refused(
        "invalid_client",
        client.exchange_code,
        found,
        client_id=CLIENT,
        client_secret=None,
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert "invalid_client" in str(error)
    assert "authenticate" in str(error)
    sent = requests[-1]
    assert "authorization" not in sent.headers
    assert dict(httpx.QueryParams(sent.content.decode()))["client_id"] == CLIENT


def test_a_replayed_code_is_refused_by_the_provider(
    provider: OidcProvider, client: OidcClient
) -> None:
    found, code, verifier = login(provider, client)
    exchange = {
        "client_id": CLIENT,
        "client_secret": SECRET,
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    client.exchange_code(found, **exchange)
    error = refused("invalid_grant", client.exchange_code, found, **exchange)
    assert "invalid_grant" in str(error)
    for secret in (code, SECRET, verifier):
        assert secret not in str(error)


def test_an_unknown_code_is_refused_by_the_provider(
    provider: OidcProvider, client: OidcClient
) -> None:
    found = client.discover(provider.issuer)
    refused(
        "invalid_grant",
        client.exchange_code,
        found,
        client_id=CLIENT,
        client_secret=SECRET,
        code="no-such-code",
        redirect_uri=REDIRECT,
        code_verifier=new_code_verifier(),
    )


def test_a_token_endpoint_that_does_not_speak_oauth_is_a_bad_response(
    site: StaticSite, client: OidcClient
) -> None:
    site.discovery()
    found = client.discover(site.issuer)
    exchange = {
        "client_id": CLIENT,
        "client_secret": SECRET,
        "code": "c0de",
        "redirect_uri": REDIRECT,
        "code_verifier": new_code_verifier(),
    }
    site.answers["/token"] = (502, b"<html>Bad Gateway</html>")
    error = refused("bad_response", client.exchange_code, found, **exchange)
    assert "502" in str(error)
    site.json("/token", {"access_token": "a", "token_type": "Bearer"})
    refused("bad_response", client.exchange_code, found, **exchange)
    site.json("/token", {"error": "slow_down", "error_description": "wait\nfor c0de"}, 400)
    error = refused("rejected", client.exchange_code, found, **exchange)
    assert "slow_down: wait for [redacted]" in str(error)


def test_a_provider_that_cannot_be_reached_for_the_exchange(
    provider: OidcProvider, client: OidcClient
) -> None:
    found, code, verifier = login(provider, client)
    provider.stop()
    refused(
        "unreachable",
        client.exchange_code,
        found,
        client_id=CLIENT,
        client_secret=SECRET,
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )


def test_the_authorization_url_asks_for_a_code_with_pkce() -> None:
    found = Provider(
        issuer="https://idp.example.test",
        jwks_uri="https://idp.example.test/jwks",
        authorization_endpoint="https://idp.example.test/authorize?p=b2c_signin",
    )
    url = OidcClient(httpx.Client()).authorization_url(
        found,
        client_id=CLIENT,
        redirect_uri=REDIRECT,
        state=STATE,
        nonce=NONCE,
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    )
    params = OidcProvider.redirect_params(url)
    assert url.startswith("https://idp.example.test/authorize?p=b2c_signin&")
    assert params["response_type"] == "code"
    assert params["scope"] == "openid email profile"
    assert params["code_challenge_method"] == "S256"
    assert params["nonce"] == NONCE
    assert params["state"] == STATE
    no_login = Provider(issuer=found.issuer, jwks_uri=found.jwks_uri)
    refused(
        "bad_discovery",
        OidcClient(httpx.Client()).exchange_code,
        no_login,
        client_id=CLIENT,
        client_secret=SECRET,
        code="c",
        redirect_uri=REDIRECT,
        code_verifier=new_code_verifier(),
    )
    refused(
        "bad_discovery",
        OidcClient(httpx.Client()).authorization_url,
        no_login,
        client_id=CLIENT,
        redirect_uri=REDIRECT,
        state=STATE,
        nonce=NONCE,
        code_challenge="x",
    )


# -- the ID token: who it is for, when ------------------------------------------------------


def test_an_id_token_for_another_client_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    found, token = id_token(provider, client, client_id="another-app")
    refused("wrong_audience", validate, client, found, token)


def test_several_audiences_need_this_client_as_the_authorized_party(
    provider: OidcProvider, client: OidcClient
) -> None:
    common = {"email": "alice@acme.test", "email_verified": True}
    provider.set_user("alice", aud=[CLIENT, "another-app"], **common)
    found, token = id_token(provider, client)
    refused("wrong_audience", validate, client, found, token)
    provider.set_user("alice", aud=[CLIENT, "another-app"], azp=CLIENT, **common)
    found, token = id_token(provider, client)
    assert validate(client, found, token).subject == "alice"
    provider.set_user("alice", azp="another-app", **common)
    found, token = id_token(provider, client)
    refused("wrong_audience", validate, client, found, token)


def test_an_id_token_of_another_issuer_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    provider.set_user(
        "alice", iss="https://evil.example.test", email="a@acme.test", email_verified=True
    )
    found, token = id_token(provider, client)
    refused("wrong_issuer", validate, client, found, token)


def test_an_expired_id_token_is_refused(provider: OidcProvider, client: OidcClient) -> None:
    found, token = id_token(provider, client)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    expiry = datetime.fromtimestamp(exp, UTC)
    with frozen(expiry + LEEWAY - timedelta(seconds=1)):
        assert validate(client, found, token, now=SystemClock().now()).subject == "alice"
    with frozen(expiry + LEEWAY):
        refused("expired", validate, client, found, token, now=SystemClock().now())


def test_an_id_token_issued_in_the_future_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    ahead = int(datetime.now(UTC).timestamp()) + 600
    provider.set_user("alice", iat=ahead, email="a@acme.test", email_verified=True)
    found, token = id_token(provider, client)
    refused("not_yet_valid", validate, client, found, token)
    assert validate(client, found, token, now=datetime.fromtimestamp(ahead - 60, UTC))


def test_a_token_not_valid_yet_is_refused(provider: OidcProvider, client: OidcClient) -> None:
    moment = int(NOW.timestamp())
    check_signed(client, provider, provider.sign(claims_at(provider, nbf=moment + 60)))
    refused(
        "not_yet_valid",
        check_signed,
        client,
        provider,
        provider.sign(claims_at(provider, nbf=moment + 61)),
    )


def test_the_times_must_be_there_and_be_times(provider: OidcProvider, client: OidcClient) -> None:
    for bad in (
        {"exp": None},
        {"iat": None},
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": float("nan")},
        {"exp": 10**30},
        {"iat": -1},
        {"nbf": "now"},
    ):
        token = provider.sign(claims_at(provider, **bad))
        refused("malformed", check_signed, client, provider, token)


def test_the_subject_and_audience_must_be_well_formed(
    provider: OidcProvider, client: OidcClient
) -> None:
    for bad in (
        {"sub": None},
        {"sub": ""},
        {"sub": "x" * 256},
        {"sub": 42},
        {"aud": None},
        {"aud": []},
        {"aud": [CLIENT, 7]},
        {"groups": "ops"},
        {"groups": ["ops", 1]},
    ):
        token = provider.sign(claims_at(provider, **bad))
        refused("malformed", check_signed, client, provider, token)
    long_enough = provider.sign(claims_at(provider, sub="x" * 255))
    assert check_signed(client, provider, long_enough).subject == "x" * 255


# -- the ID token: this login, this user ----------------------------------------------------


def test_an_id_token_of_another_login_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    found, token = id_token(provider, client)
    refused(
        "wrong_nonce",
        client.validate_id_token,
        found,
        token,
        client_id=CLIENT,
        nonce="nonce-of-another-login",
        now=datetime.now(UTC),
    )
    without = provider.sign(claims_at(provider, nonce=None))
    refused("wrong_nonce", check_signed, client, provider, without)


def test_a_login_without_a_nonce_is_a_programming_error(
    provider: OidcProvider, client: OidcClient
) -> None:
    token = provider.sign(claims_at(provider, nonce=""))
    found = client.discover(provider.issuer)
    with pytest.raises(ValueError, match="nonce"):
        client.validate_id_token(found, token, client_id=CLIENT, nonce="", now=NOW)


def test_an_unverified_email_is_refused(provider: OidcProvider, client: OidcClient) -> None:
    provider.set_user("alice", email="alice@acme.test", email_verified=False)
    found, token = id_token(provider, client)
    refused("email_unverified", validate, client, found, token)
    provider.set_user("alice", email="alice@acme.test")
    found, token = id_token(provider, client)
    refused("email_unverified", validate, client, found, token)
    provider.set_user("alice", email="alice@acme.test", email_verified="true")
    found, token = id_token(provider, client)
    refused("email_unverified", validate, client, found, token)


def test_an_id_token_without_an_email_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    provider.set_user("alice", email_verified=True)
    found, token = id_token(provider, client)
    refused("no_email", validate, client, found, token)
    provider.set_user("alice", email="", email_verified=True)
    found, token = id_token(provider, client)
    refused("no_email", validate, client, found, token)


def test_an_email_claim_that_is_no_address_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    for bad in ("alice", "alice @acme.test", "a@b@c", ["alice@acme.test"]):
        token = provider.sign(claims_at(provider, email=bad))
        refused("malformed", check_signed, client, provider, token)


# -- the ID token: the signature ------------------------------------------------------------


def test_a_token_signed_by_another_key_with_the_providers_key_id_is_refused(
    provider: OidcProvider,
    client: OidcClient,
    clock: FakeMonotonic,
    requests: list[httpx.Request],
) -> None:
    found, genuine = id_token(provider, client)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    forger = rsa_key()
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": provider.key_id})
    refused("bad_signature", validate, client, found, forged)
    clock.advance(31)
    refused("bad_signature", validate, client, found, forged)
    assert paths(requests).count("/jwks") == 1  # a known key id: nothing to fetch again
    no_kid = jwt.encode(claims, forger, algorithm="RS256")
    refused("bad_signature", validate, client, found, no_kid)
    header, _payload, signature = genuine.split(".")
    tampered_claims = {**claims, "email": "mallory@acme.test"}
    tampered = f"{header}.{segment(tampered_claims)}.{signature}"
    refused("bad_signature", validate, client, found, tampered)


def test_an_unsigned_token_is_refused(provider: OidcProvider, client: OidcClient) -> None:
    found, genuine = id_token(provider, client)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert unsigned.endswith(".")
    refused("bad_algorithm", validate, client, found, unsigned)
    with_junk = f"{segment({'alg': 'none', 'kid': provider.key_id})}.{segment(claims)}.AAAA"
    refused("bad_algorithm", validate, client, found, with_junk)


def test_a_token_signed_with_hmac_over_the_public_key_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    """The classic confusion: the public key, which anyone can fetch, as an HMAC secret."""
    found, genuine = id_token(provider, client)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    public = RSAAlgorithm.from_jwk(httpx.get(found.jwks_uri).json()["keys"][0])
    assert isinstance(public, rsa.RSAPublicKey)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment({'alg': 'HS256', 'kid': provider.key_id})}.{segment(claims)}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{segment(mac)}"
    refused("bad_algorithm", validate, client, found, token)


def test_only_an_algorithm_the_provider_advertises_is_accepted(
    provider: OidcProvider, client: OidcClient
) -> None:
    """The mock advertises RS256 only: an ES256 token, though signed by the very key
    the provider publishes, is refused."""
    provider.use_key(ec.generate_private_key(ec.SECP256R1()))
    token = provider.sign(claims_at(provider), algorithm="ES256")
    refused("bad_algorithm", check_signed, client, provider, token)


def test_only_an_asymmetric_algorithm_is_accepted_whatever_the_provider_says(
    site: StaticSite, client: OidcClient
) -> None:
    key = rsa_key()
    public = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    site.discovery(id_token_signing_alg_values_supported=["RS256", "HS256", "none"])
    site.json(
        "/jwks",
        {
            "keys": [
                public,
                {"kty": "oct", "kid": "k1", "k": segment(b"a-shared-secret-of-32-bytes-or-more")},
            ]
        },
    )
    claims = {
        "iss": site.issuer,
        "sub": "ci",
        "aud": CLIENT,
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 60,
    }
    check = client.validate_external_token
    assert check(
        site.issuer, jwt.encode(claims, key, "RS256", {"kid": "k1"}), audience=CLIENT, now=NOW
    )
    assert client.discover(site.issuer).signing_algorithms == {"RS256"}
    hs256 = jwt.encode(claims, "a-shared-secret-of-32-bytes-or-more", "HS256", {"kid": "k1"})
    refused("bad_algorithm", check, site.issuer, hs256, audience=CLIENT, now=NOW)
    unsigned = jwt.encode(claims, None, "none", {"kid": "k1"})
    refused("bad_algorithm", check, site.issuer, unsigned, audience=CLIENT, now=NOW)


def test_a_key_bound_to_another_algorithm_is_not_used(
    site: StaticSite, client: OidcClient, clock: FakeMonotonic
) -> None:
    key = rsa_key()
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    site.discovery(id_token_signing_alg_values_supported=["RS256", "RS512"])
    site.json("/jwks", {"keys": [{**jwk, "alg": "RS512"}]})
    claims = {
        "iss": site.issuer,
        "sub": "ci",
        "aud": CLIENT,
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 60,
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    validate_external = client.validate_external_token
    refused("unknown_key", validate_external, site.issuer, token, audience=CLIENT, now=NOW)
    site.json("/jwks", {"keys": [jwk]})
    clock.advance(31)
    assert validate_external(site.issuer, token, audience=CLIENT, now=NOW).subject == "ci"


def test_a_key_shorter_than_is_safe_is_not_used(provider: OidcProvider, client: OidcClient) -> None:
    provider.use_key(rsa_key(1024))
    token = provider.sign(claims_at(provider))
    refused("unknown_key", check_signed, client, provider, token)


def test_keys_published_for_other_uses_are_not_used(site: StaticSite, client: OidcClient) -> None:
    key = rsa_key()
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    site.discovery()
    site.json(
        "/jwks",
        {
            "keys": [
                {**public, "kid": "enc", "use": "enc"},
                {**public, "kid": "ops", "key_ops": ["encrypt"]},
                {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                {"kid": "no-type"},
                "not a key",
                {**public, "kid": "good"},
            ]
        },
    )
    claims = {
        "iss": site.issuer,
        "sub": "ci",
        "aud": CLIENT,
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 60,
    }
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "good"})
    assert client.validate_external_token(site.issuer, good, audience=CLIENT, now=NOW)
    for kid in ("enc", "ops", "broken", "hmac", "no-type"):
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
        refused(
            "unknown_key",
            client.validate_external_token,
            site.issuer,
            token,
            audience=CLIENT,
            now=NOW,
        )


def test_a_jwk_set_that_is_not_one_is_refused(site: StaticSite, client: OidcClient) -> None:
    site.discovery()
    token = jwt.encode({"sub": "ci"}, rsa_key(), algorithm="RS256")
    for answer in ((200, b"[]"), (200, b"not json"), (500, b"{}"), (200, b'{"keys": {}}')):
        site.answers["/jwks"] = answer
        refused(
            "bad_jwks",
            client.validate_external_token,
            site.issuer,
            token,
            audience=CLIENT,
            now=NOW,
        )


def test_a_token_of_another_type_or_with_extensions_is_refused(
    provider: OidcProvider, client: OidcClient
) -> None:
    claims = claims_at(provider)
    assert check_signed(client, provider, provider.sign(claims, headers={"typ": "JWT"}))
    for headers in ({"typ": "at+jwt"}, {"typ": "logout+jwt"}, {"crit": ["b64"], "b64": True}):
        token = provider.sign(claims, headers=headers)
        refused("malformed", check_signed, client, provider, token)


def test_what_is_not_a_compact_jws_is_refused(provider: OidcProvider, client: OidcClient) -> None:
    genuine = provider.sign(claims_at(provider))
    assert check_signed(client, provider, genuine)
    for bad in (
        genuine + "==",
        genuine + ".",
        " " + genuine,
        genuine.replace(".", ".x.", 1),
        "not a token",
        genuine[:-1] + "+",
        "x" * 40000,
        provider.sign(claims_at(provider, padding="x" * 33000)),
        f"{segment(b'not json')}.{genuine.split('.', 1)[1]}",
        provider.sign(b"[1, 2, 3]"),
        provider.sign(b"not json"),
    ):
        refused("malformed", check_signed, client, provider, bad)
    assert check_signed(client, provider, provider.sign(claims_at(provider, padding="x" * 20000)))


# -- the provider's keys over time ----------------------------------------------------------


def test_a_rotated_key_is_fetched_at_most_once_every_30_seconds(
    provider: OidcProvider,
    client: OidcClient,
    clock: FakeMonotonic,
    requests: list[httpx.Request],
) -> None:
    check_signed(client, provider, provider.sign(claims_at(provider)))
    assert paths(requests).count("/jwks") == 1
    provider.use_key(rsa_key())
    rotated = provider.sign(claims_at(provider))
    clock.advance(29)
    refused("unknown_key", check_signed, client, provider, rotated)
    assert paths(requests).count("/jwks") == 1
    clock.advance(2)
    assert check_signed(client, provider, rotated).subject == "alice"
    assert paths(requests).count("/jwks") == 2
    for number in range(5):  # a flood of made-up key ids: no request
        forged = provider.sign(claims_at(provider), headers={"kid": f"forged-{number}"})
        refused("unknown_key", check_signed, client, provider, forged)
    assert paths(requests).count("/jwks") == 2


def test_a_provider_that_names_no_key_is_followed_through_a_rotation(
    provider: OidcProvider, client: OidcClient, clock: FakeMonotonic
) -> None:
    """The mock's ID tokens carry no ``kid``: a signature the cached key does not verify
    makes the keys be fetched again."""
    found, token = id_token(provider, client)
    assert "kid" not in jwt.get_unverified_header(token)
    validate(client, found, token)
    provider.use_key(rsa_key())
    found, token = id_token(provider, client)
    refused("bad_signature", validate, client, found, token)
    clock.advance(31)
    assert validate(client, found, token).subject == "alice"


def test_keys_are_fetched_from_where_the_provider_now_says(
    provider: OidcProvider, client: OidcClient, requests: list[httpx.Request]
) -> None:
    found = client.discover(provider.issuer)
    client.jwks(found)
    moved = msgspec.structs.replace(found, jwks_uri=provider.issuer + "/oauth2/jwks")
    refused("bad_jwks", client.jwks, moved)  # the mock has nothing there
    assert paths(requests)[-1] == "/oauth2/jwks"


def test_the_keys_stay_in_use_while_the_provider_is_down(
    provider: OidcProvider, client: OidcClient, clock: FakeMonotonic
) -> None:
    token = provider.sign(claims_at(provider))
    check_signed(client, provider, token)
    provider.stop()
    clock.advance(3601)
    assert check_signed(client, provider, token).subject == "alice"


def test_a_provider_that_is_down_is_asked_for_its_keys_at_most_every_30_seconds(
    provider: OidcProvider,
    client: OidcClient,
    clock: FakeMonotonic,
    requests: list[httpx.Request],
) -> None:
    check_signed(client, provider, provider.sign(claims_at(provider)))
    provider.stop()
    clock.advance(31)
    for number in range(5):
        forged = provider.sign(claims_at(provider), headers={"kid": f"forged-{number}"})
        refused("unknown_key", check_signed, client, provider, forged)
    assert paths(requests).count("/jwks") == 2  # the first fetch, and one attempt


def test_the_keys_are_fetched_again_after_15_minutes(
    provider: OidcProvider,
    client: OidcClient,
    clock: FakeMonotonic,
    requests: list[httpx.Request],
) -> None:
    found = client.discover(provider.issuer)
    first = client.jwks(found)
    clock.advance(899)
    assert client.jwks(found) is first
    assert client.jwks(found, refresh=True) is not first
    clock.advance(901)
    client.jwks(found)
    assert paths(requests).count("/jwks") == 3


# -- workload identity: another system's ID tokens ------------------------------------------


def test_an_external_token_needs_no_nonce_and_no_email(
    provider: OidcProvider, client: OidcClient
) -> None:
    audience = "https://ledger.test"
    claims = claims_at(
        provider,
        sub="repo:acme/site:ref:refs/heads/main",
        aud=audience,
        nonce=None,
        email=None,
        email_verified=None,
    )
    token = provider.sign(claims)
    checked = client.validate_external_token(provider.issuer, token, audience=audience, now=NOW)
    assert checked.subject == "repo:acme/site:ref:refs/heads/main"
    assert checked.email is None
    assert checked.raw["aud"] == audience
    unverified = provider.sign({**claims, "email": "ci@acme.test", "email_verified": None})
    checked = client.validate_external_token(
        provider.issuer, unverified, audience=audience, now=NOW
    )
    assert checked.email is None
    verified = provider.sign({**claims, "email": "CI@acme.test", "email_verified": True})
    checked = client.validate_external_token(provider.issuer, verified, audience=audience, now=NOW)
    assert checked.email == "ci@acme.test"


def test_an_external_token_gets_the_standard_checks(
    provider: OidcProvider, client: OidcClient
) -> None:
    audience = "https://ledger.test"
    claims = claims_at(provider, aud=audience, nonce=None)
    check = client.validate_external_token
    refused("wrong_audience", check, provider.issuer, provider.sign(claims), audience="x", now=NOW)
    later = NOW + timedelta(seconds=300) + LEEWAY
    refused("expired", check, provider.issuer, provider.sign(claims), audience=audience, now=later)
    other = provider.sign({**claims, "iss": "https://evil.example.test"})
    refused("wrong_issuer", check, provider.issuer, other, audience=audience, now=NOW)
    forged = jwt.encode(claims, rsa_key(), algorithm="RS256", headers={"kid": provider.key_id})
    refused("bad_signature", check, provider.issuer, forged, audience=audience, now=NOW)


# -- PKCE -----------------------------------------------------------------------------------


def test_pkce_matches_the_rfc_7636_example() -> None:
    """Appendix B: the verifier of 32 octets, and the challenge its SHA-256 gives."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert code_challenge(verifier) == challenge
    assert verify_code_challenge(verifier, challenge)


def test_pkce_refuses_another_verifier() -> None:
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert verify_code_challenge(verifier, challenge)
    assert not verify_code_challenge(verifier[:-1] + "j", challenge)
    assert not verify_code_challenge(new_code_verifier(), challenge)
    assert not verify_code_challenge(verifier, challenge + "=")
    assert not verify_code_challenge(verifier, challenge[:-1])
    assert not verify_code_challenge(verifier, challenge[:-1] + "N")


def test_pkce_refuses_verifiers_outside_the_rfc() -> None:
    for bad in ("a" * 42, "a" * 129, "a" * 42 + "!", "a" * 42 + "é", "a" * 42 + "\n"):
        assert not verify_code_challenge(bad, code_challenge("a" * 43))
        with pytest.raises(ValidationError) as caught:
            code_challenge(bad)
        assert bad not in str(caught.value)
    assert verify_code_challenge("a" * 128, code_challenge("a" * 128))
    assert verify_code_challenge("~._-" * 11, code_challenge("~._-" * 11))


def test_new_verifiers_are_random_and_within_the_rfc() -> None:
    verifiers = {new_code_verifier() for _ in range(100)}
    assert len(verifiers) == 100
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert verify_code_challenge(verifier, code_challenge(verifier))
