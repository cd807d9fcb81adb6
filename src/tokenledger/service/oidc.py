"""The OpenID Connect relying party: discovery, the code exchange, and checking ID tokens.

A user logs in through their organization's OpenID Connect provider with the
authorization code flow and PKCE; the ledger is the provider's client. This module
knows the protocol and nothing of the ledger: it finds the provider's endpoints
(OIDC Discovery), exchanges an authorization code for an ID token, and says whether an
ID token is one the provider issued, for this client, for this login. The same checks,
without the login's nonce and email, accept the ID tokens CI systems hand their jobs
(workload identity federation: ``validate_external_token``).

What is trusted, and why:

* The provider is named by its issuer URL, configured by an operator. Its discovery
  document must name exactly that issuer (OIDC Discovery 4.3), or another host could
  stand in for it; every URL in it must be ``https`` (``http`` only on this machine),
  since the client secret and the codes travel to them.
* Keys come only from the provider's JWK Set (``jwks_uri``), never from the token's own
  headers (``jku``, ``jwk``, ``x5u`` are ignored), and only for an asymmetric algorithm
  the provider says it signs ID tokens with: never ``none``, never HMAC, where the
  "secret" would be a public key anyone can fetch.
* Times are judged against the ``now`` the caller passes (the ledger's clock), with a
  leeway for clocks that disagree a little.
* A token naming a key the cached JWK Set lacks makes the set be fetched again (the
  provider rotated its keys), at most once per 30 seconds per issuer, so a flood of
  forged tokens cannot turn the server against the provider.

Every failure is an ``OidcError`` whose ``reason`` is one word (for the caller to act on
and for logs) and whose message is one line for people, without the token, the code,
the client secret or the verifier:

==================  ==============================================================
``unreachable``     the provider did not answer (network, timeout)
``bad_discovery``   no usable discovery document, or no endpoint for what was asked
``bad_jwks``        no usable JWK Set
``bad_response``    the token endpoint answered something that is not OAuth
``invalid_grant``   the provider refused the code (used, expired, unknown, or another
                    RFC 6749 error code: ``invalid_client``, ``invalid_request``...;
                    ``rejected`` for a code outside the RFC)
``malformed``       not a compact JWS, or a claim of the wrong type or shape
``bad_algorithm``   not signed with an asymmetric algorithm the provider uses
``unknown_key``     the provider publishes no key the token could be signed with
``bad_signature``   the signature does not verify
``wrong_issuer``    the discovery document or the token names another issuer
``wrong_audience``  not issued to this client (``aud``, or ``azp``)
``expired``         ``exp`` is past (beyond the leeway)
``not_yet_valid``   ``iat`` or ``nbf`` is in the future (beyond the leeway)
``wrong_nonce``     not the token of this login
``no_email``        no email address in the ID token
``email_unverified``  the provider has not verified the address
==================  ==============================================================
"""

from __future__ import annotations

import base64
import hmac
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import jwt
import msgspec

from tokenledger.clock import LATEST, ensure_utc
from tokenledger.domain.names import LOOPBACK_HOSTS, is_loopback_url
from tokenledger.domain.pkce import CODE_CHALLENGE_METHOD

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_SCOPE",
    "DEFAULT_TIMEOUT",
    "IdTokenClaims",
    "JwkSet",
    "OidcClient",
    "OidcError",
    "Provider",
]

#: How far the provider's clock and the ledger's may disagree.
DEFAULT_LEEWAY = timedelta(seconds=60)
#: Seconds an HTTP request to the provider may take, per phase (connect, read...).
DEFAULT_TIMEOUT = 10.0
#: What a login asks for: ``openid`` for an ID token, ``email`` for the address in it.
DEFAULT_SCOPE = "openid email profile"

#: How long a discovery document is used before it is fetched again (seconds).
_DISCOVERY_TTL = 3600.0
#: How long a JWK Set is used before it is fetched again (seconds).
_JWKS_TTL = 900.0
#: The least time between two fetches of one issuer's JWK Set (seconds).
_JWKS_REFRESH_INTERVAL = 30.0
#: How many issuers' documents and keys are kept; the oldest fetched goes first.
_MAX_CACHED_ISSUERS = 64
#: A discovery document or JWK Set is a few kilobytes; more is not one.
_MAX_RESPONSE_BYTES = 512 * 1024
#: An ID token with a few hundred groups is well under this.
_MAX_TOKEN_LENGTH = 32 * 1024
#: OIDC Core 2: ``sub`` is at most 255 ASCII characters.
_MAX_SUBJECT_LENGTH = 255
_MAX_SHOWN = 200

#: The JWS algorithms an ID token may be signed with, and the key type each needs.
_ASYMMETRIC = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}
#: The ``typ`` headers of a plain JWT; an access token (``at+jwt``), a logout token
#: (``logout+jwt``) or anything else that says what it is, is not an ID token.
_JWT_TYPES = frozenset({"jwt", "application/jwt"})
#: Three unpadded base64url segments; the signature's is empty for ``alg: none``.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
#: RFC 6749 section 5.2: the error codes of a token endpoint.
_TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)


class OidcError(Exception):
    """The provider or its token cannot be trusted for this; ``reason`` says why in one
    word, ``str()`` in one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Provider(msgspec.Struct, frozen=True, kw_only=True):
    """What the provider's discovery document says, as far as a relying party needs.

    A CI system's issuer publishes only ``jwks_uri`` (it has no logins), so the login
    endpoints may be missing; asking for one then is a ``bad_discovery``.
    """

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    #: OIDC Discovery 3: ``RS256`` when the document does not say (it must, though).
    id_token_signing_alg_values_supported: tuple[str, ...] = ("RS256",)
    code_challenge_methods_supported: tuple[str, ...] = ()

    @property
    def signing_algorithms(self) -> frozenset[str]:
        """The algorithms an ID token of this provider may be signed with."""
        return frozenset(self.id_token_signing_alg_values_supported) & _ASYMMETRIC.keys()


class JwkSet(msgspec.Struct, frozen=True):
    """The public signing keys a provider publishes, as fetched (JWKs, RFC 7517).

    Only keys usable to verify a signature are kept: no symmetric (``oct``) key, no key
    for encryption.
    """

    keys: tuple[dict[str, Any], ...]

    def matching(self, kid: str | None, key_type: str) -> list[dict[str, Any]]:
        """The keys of ``key_type`` with this ``kid``; every key of the type without one."""
        return [
            key
            for key in self.keys
            if key["kty"] == key_type and (kid is None or key.get("kid") == kid)
        ]


class IdTokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    """A checked token's claims. ``email`` is the verified address, lowercased; ``None``
    only from ``validate_external_token``, when the token has no verified address."""

    issuer: str
    subject: str
    email: str | None
    name: str | None
    expires_at: datetime
    groups: tuple[str, ...]
    raw: dict[str, Any]


_T = TypeVar("_T")


class _Entry(Generic[_T]):
    __slots__ = ("checked", "value")

    def __init__(self, value: _T, checked: float) -> None:
        self.value = value
        self.checked = checked


class _TimedCache(Generic[_T]):
    """A few values by key, each fetched again at most once per ``max_age``.

    The first caller to find a value too old is told to fetch it; until that fetch is
    done the others keep the old value, so a provider gets one request, not one per
    caller. Bounded: past ``_MAX_CACHED_ISSUERS`` keys the oldest fetched is dropped.
    """

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry[_T]] = {}

    def lookup(self, key: str, max_age: float) -> tuple[_T | None, bool]:
        """The cached value (or ``None``), and whether the caller should fetch it."""
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, True
            if now - entry.checked < max_age:
                return entry.value, False
            entry.checked = now
            return entry.value, True

    def store(self, key: str, value: _T) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = _Entry(value, self._monotonic())
            while len(self._entries) > _MAX_CACHED_ISSUERS:
                del self._entries[next(iter(self._entries))]


class OidcClient:
    """The relying party's side of OpenID Connect, with the provider's documents cached.

    One instance serves every issuer and every thread. Given no ``http`` client it makes
    one (a short timeout, no redirects followed) and closes it in ``close()``.
    ``monotonic`` measures the caches' ages; ID tokens are judged by the ``now`` given.
    """

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT)
        self._providers: _TimedCache[Provider] = _TimedCache(monotonic)
        self._key_sets: _TimedCache[tuple[str, JwkSet]] = _TimedCache(monotonic)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> OidcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- discovery and keys -------------------------------------------------------------

    def discover(self, issuer: str) -> Provider:
        """The provider at ``issuer``, from ``{issuer}/.well-known/openid-configuration``.

        The document must name ``issuer`` exactly (a trailing slash counts). Kept for an
        hour; while the provider cannot be reached the previous copy stays in use.
        """
        _check_url(issuer, "issuer", query_allowed=False)
        cached, fetch = self._providers.lookup(issuer, _DISCOVERY_TTL)
        if cached is not None and not fetch:
            return cached
        try:
            provider = self._fetch_discovery(issuer)
        except OidcError as exc:
            if cached is not None and exc.reason == "unreachable":
                return cached
            raise
        self._providers.store(issuer, provider)
        return provider

    def jwks(self, provider: Provider, *, refresh: bool = False) -> JwkSet:
        """The provider's signing keys, kept for 15 minutes.

        ``refresh`` fetches them again unless they were fetched in the last 30 seconds;
        the answer is then the very object given before (``is`` tells).
        """
        max_age = _JWKS_REFRESH_INTERVAL if refresh else _JWKS_TTL
        cached, fetch = self._key_sets.lookup(provider.issuer, max_age)
        if cached is not None and cached[0] != provider.jwks_uri:
            cached, fetch = None, True  # the provider moved its keys
        if cached is not None and not fetch:
            return cached[1]
        try:
            keys = self._fetch_jwks(provider)
        except OidcError as exc:
            if cached is not None and exc.reason == "unreachable":
                return cached[1]
            raise
        self._key_sets.store(provider.issuer, (provider.jwks_uri, keys))
        return keys

    # -- the login ----------------------------------------------------------------------

    def authorization_url(
        self,
        provider: Provider,
        *,
        client_id: str,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str,
        scope: str = DEFAULT_SCOPE,
    ) -> str:
        """Where to send the user's browser to log in (the code flow, PKCE ``S256``)."""
        endpoint = provider.authorization_endpoint
        if endpoint is None:
            raise OidcError(
                "bad_discovery", f"the provider {provider.issuer} has no authorization endpoint"
            )
        parts = urlsplit(endpoint)
        params = [
            *parse_qsl(parts.query, keep_blank_values=True),
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", code_challenge),
            ("code_challenge_method", CODE_CHALLENGE_METHOD),
        ]
        return urlunsplit(parts._replace(query=urlencode(params)))

    def exchange_code(
        self,
        provider: Provider,
        *,
        client_id: str,
        client_secret: str | None,
        code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> str:
        """The ID token the provider gives for ``code`` (RFC 6749 section 4.1.3).

        With a secret the client authenticates with HTTP Basic (``client_secret_basic``);
        without, it is a public client and only names itself. Returned as is: check it
        with ``validate_id_token``.
        """
        endpoint = provider.token_endpoint
        if endpoint is None:
            raise OidcError(
                "bad_discovery", f"the provider {provider.issuer} has no token endpoint"
            )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        if client_secret is None:
            form["client_id"] = client_id
        else:
            headers["Authorization"] = _basic_authorization(client_id, client_secret)
        status, body = self._send(
            "POST", endpoint, "the token endpoint", "bad_response", data=form, headers=headers
        )
        answer = _json_object(body)
        error = answer.get("error") if answer is not None else None
        if status != 200 and answer is not None and isinstance(error, str) and error:
            description = answer.get("error_description")
            detail = f"{error}: {description}" if isinstance(description, str) else error
            # A provider may quote what it was sent; none of it belongs in a message.
            for secret in (code, client_secret, code_verifier):
                if secret:
                    detail = detail.replace(secret, "[redacted]")
            raise OidcError(
                error if error in _TOKEN_ERRORS else "rejected",
                f"the provider refused the authorization code: {_printable(detail)}",
            )
        if status != 200 or answer is None:
            raise OidcError(
                "bad_response",
                f"the token endpoint at {_origin(endpoint)} answered HTTP {status} without "
                "an OAuth answer",
            )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OidcError(
                "bad_response",
                "the token endpoint gave no ID token (is the openid scope asked for?)",
            )
        return id_token

    # -- checking tokens ----------------------------------------------------------------

    def validate_id_token(
        self,
        provider: Provider,
        id_token: str,
        *,
        client_id: str,
        nonce: str,
        now: datetime,
        leeway: timedelta = DEFAULT_LEEWAY,
    ) -> IdTokenClaims:
        """The claims of the ID token that ends this login (OIDC Core 3.1.3.7).

        On top of the signature, issuer, audience and times: with several audiences (or
        any ``azp``) the authorized party must be this client; the nonce must be this
        login's (so a token from another login, or a replayed one, is refused); and the
        email address must be there and verified by the provider, since the ledger knows
        users by it.
        """
        if not nonce:
            raise ValueError("a login's nonce cannot be empty")
        claims = self._verified_claims(
            provider, id_token, audience=client_id, now=now, leeway=leeway
        )
        azp = claims.get("azp")
        if (len(_audiences(claims)) > 1 or azp is not None) and azp != client_id:
            raise OidcError(
                "wrong_audience",
                f"the ID token was issued to the authorized party {_shown(azp)}, "
                f"not to {client_id!r}",
            )
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(
            token_nonce.encode(), nonce.encode()
        ):
            raise OidcError("wrong_nonce", "the ID token is not the one of this login (nonce)")
        return _claims(provider, claims, email=_email(claims, required=True))

    def validate_external_token(
        self,
        issuer: str,
        token: str,
        *,
        audience: str,
        now: datetime,
        leeway: timedelta = DEFAULT_LEEWAY,
    ) -> IdTokenClaims:
        """The claims of an ID token another system's issuer gave a workload (a CI job).

        Signature, issuer, audience and times as for a login; no nonce (there was no
        login) and no email required: ``email`` is the address only when the token holds
        a verified one.
        """
        provider = self.discover(issuer)
        claims = self._verified_claims(provider, token, audience=audience, now=now, leeway=leeway)
        return _claims(provider, claims, email=_email(claims, required=False))

    def _verified_claims(
        self,
        provider: Provider,
        token: str,
        *,
        audience: str,
        now: datetime,
        leeway: timedelta,
    ) -> dict[str, Any]:
        """The claims of a token the provider signed, for ``audience``, valid at ``now``."""
        if len(token) > _MAX_TOKEN_LENGTH or not _COMPACT_JWS.fullmatch(token):
            raise OidcError("malformed", "the token is not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise OidcError("malformed", "the token's header cannot be read") from None
        algorithm = header.get("alg")
        allowed = provider.signing_algorithms
        if not isinstance(algorithm, str) or algorithm not in allowed:
            raise OidcError(
                "bad_algorithm",
                f"the token is signed with {_shown(algorithm)}; the provider signs with "
                f"{', '.join(sorted(allowed)) or 'nothing this server accepts'}",
            )
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _JWT_TYPES):
            raise OidcError("malformed", f"the token is of type {_shown(typ)}, not an ID token")
        if "crit" in header:
            raise OidcError("malformed", "the token requires header extensions (crit)")
        claims = self._signed_claims(provider, token, algorithm, header.get("kid"))
        _check_standard_claims(provider, claims, audience=audience, now=now, leeway=leeway)
        return claims

    def _signed_claims(
        self, provider: Provider, token: str, algorithm: str, kid: str | None
    ) -> dict[str, Any]:
        """The payload, once a key of the provider verifies the signature.

        An unknown ``kid`` (or, for a provider that names no keys, a signature no key
        verifies) may mean the provider rotated its keys: the set is fetched once more.
        """
        key_type = _ASYMMETRIC[algorithm]
        keys = self.jwks(provider)
        found, claims = _verify_with(token, algorithm, keys.matching(kid, key_type))
        if claims is None and (not found or kid is None):
            fresh = self.jwks(provider, refresh=True)
            if fresh is not keys:
                found, claims = _verify_with(token, algorithm, fresh.matching(kid, key_type))
        if not found:
            raise OidcError(
                "unknown_key",
                f"the provider publishes no {algorithm} key "
                + (f"with the key id {_shown(kid)}" if kid is not None else "for the token"),
            )
        if claims is None:
            raise OidcError("bad_signature", "the token's signature does not verify")
        return claims

    # -- HTTP ---------------------------------------------------------------------------

    def _fetch_discovery(self, issuer: str) -> Provider:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        status, body = self._send(
            "GET", url, "the discovery document", "bad_discovery", headers=_ACCEPT_JSON
        )
        if status != 200:
            raise OidcError(
                "bad_discovery", f"the discovery document at {_shown(url)} answered HTTP {status}"
            )
        try:
            provider = msgspec.json.decode(body, type=Provider)
        except msgspec.DecodeError as exc:
            raise OidcError(
                "bad_discovery",
                f"the discovery document at {_shown(url)} cannot be read: {_printable(str(exc))}",
            ) from None
        if provider.issuer != issuer:
            raise OidcError(
                "wrong_issuer",
                f"the discovery document at {_shown(url)} is for the issuer "
                f"{_shown(provider.issuer)}, not {issuer!r}",
            )
        for name in (
            "jwks_uri",
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "end_session_endpoint",
        ):
            value = getattr(provider, name)
            if value is not None:
                # A provider elsewhere may not send this server to its own machine's ports.
                _check_url(
                    value,
                    f"the discovery document's {name}",
                    query_allowed=True,
                    loopback_allowed=is_loopback_url(issuer),
                )
        return provider

    def _fetch_jwks(self, provider: Provider) -> JwkSet:
        url = provider.jwks_uri
        status, body = self._send("GET", url, "the JWK Set", "bad_jwks", headers=_ACCEPT_JSON)
        document = _json_object(body) if status == 200 else None
        listed = document.get("keys") if document is not None else None
        if not isinstance(listed, list):
            raise OidcError(
                "bad_jwks", f"the JWK Set at {_shown(url)} (HTTP {status}) is not a JWK Set"
            )
        return JwkSet(keys=tuple(key for key in listed if _usable_key(key)))

    def _send(
        self, method: str, url: str, what: str, bad: str, **request: Any
    ) -> tuple[int, bytes]:
        """The status and body of one request, the body read up to a bound."""
        try:
            with self._http.stream(method, url, follow_redirects=False, **request) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_RESPONSE_BYTES:
                        raise OidcError(
                            bad,
                            f"{what} at {_origin(url)} is larger than "
                            f"{_MAX_RESPONSE_BYTES // 1024} KiB",
                        )
                return response.status_code, bytes(body)
        except httpx.TransportError as exc:
            raise OidcError(
                "unreachable",
                f"{what} at {_origin(url)} cannot be reached: {_describe(exc)}",
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise OidcError(
                bad, f"{what} at {_origin(url)} cannot be read: {_describe(exc)}"
            ) from None


_ACCEPT_JSON = {"Accept": "application/json"}


def _verify_with(
    token: str, algorithm: str, candidates: list[dict[str, Any]]
) -> tuple[bool, dict[str, Any] | None]:
    """Whether any candidate can verify an ``algorithm`` signature, and the payload of the
    first that does."""
    found = False
    for jwk in candidates:
        if jwk.get("alg", algorithm) != algorithm:
            continue  # RFC 7517 4.4: a key bound to one algorithm is for that one only
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithm)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # not a key of this algorithm (an EC key of another curve...)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidSignatureError:
            found = True
            continue
        except jwt.InvalidKeyError:
            continue  # shorter than is safe: as good as no key
        except jwt.PyJWTError:
            # Undecodable segments, or (the signature checked first) claims the provider
            # signed that are not a JSON object.
            raise OidcError("malformed", "the token's payload cannot be read") from None
        return True, claims
    return found, None


def _check_standard_claims(
    provider: Provider,
    claims: dict[str, Any],
    *,
    audience: str,
    now: datetime,
    leeway: timedelta,
) -> None:
    """``iss``, ``aud``, ``exp``, ``iat``, ``nbf`` and ``sub``, which every token needs."""
    if claims.get("iss") != provider.issuer:
        raise OidcError(
            "wrong_issuer",
            f"the token was issued by {_shown(claims.get('iss'))}, not {provider.issuer!r}",
        )
    if audience not in _audiences(claims):
        raise OidcError("wrong_audience", f"the token was not issued to {audience!r}")
    moment = ensure_utc(now).timestamp()
    slack = leeway.total_seconds()
    expires = _numeric_date(claims, "exp")
    if expires is None:
        raise OidcError("malformed", "the token has no expiry (exp)")
    if expires <= moment - slack:
        raise OidcError("expired", f"the token expired at {_iso(expires)}")
    issued = _numeric_date(claims, "iat")
    if issued is None:
        raise OidcError("malformed", "the token has no issue time (iat)")
    if issued > moment + slack:
        raise OidcError("not_yet_valid", f"the token is issued in the future, {_iso(issued)}")
    not_before = _numeric_date(claims, "nbf")
    if not_before is not None and not_before > moment + slack:
        raise OidcError("not_yet_valid", f"the token is not valid before {_iso(not_before)}")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > _MAX_SUBJECT_LENGTH:
        raise OidcError(
            "malformed", "the token's subject (sub) is not a string of 1 to 255 characters"
        )


def _claims(provider: Provider, claims: dict[str, Any], *, email: str | None) -> IdTokenClaims:
    groups = claims.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
        raise OidcError("malformed", "the token's groups claim is not a list of strings")
    name = claims.get("name")
    expires = _numeric_date(claims, "exp")
    assert expires is not None  # checked with the standard claims
    return IdTokenClaims(
        issuer=provider.issuer,
        subject=claims["sub"],
        email=email,
        name=name if isinstance(name, str) and name else None,
        expires_at=datetime.fromtimestamp(expires, UTC),
        groups=tuple(groups),
        raw=claims,
    )


def _email(claims: dict[str, Any], *, required: bool) -> str | None:
    """The verified address, lowercased; if not ``required``, ``None`` for any other."""
    value = claims.get("email")
    if value is None or value == "":
        if required:
            raise OidcError(
                "no_email", "the ID token holds no email address (is the email scope asked for?)"
            )
        return None
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.fullmatch(value):
        if required:
            raise OidcError("malformed", "the ID token's email claim is not an email address")
        return None
    if claims.get("email_verified") is not True:
        if required:
            raise OidcError(
                "email_unverified", "the provider has not verified the user's email address"
            )
        return None
    return value.lower()


def _audiences(claims: dict[str, Any]) -> tuple[str, ...]:
    audience = claims.get("aud")
    if isinstance(audience, str):
        return (audience,)
    if isinstance(audience, list) and audience and all(isinstance(item, str) for item in audience):
        return tuple(audience)
    raise OidcError("malformed", "the token's audience (aud) is not a string or a list of them")


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim (seconds since the epoch), or ``None`` when absent."""
    value = claims.get(name)
    if value is None:
        return None
    # The range check also refuses NaN and the infinities (JSON parsers accept them).
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= LATEST.timestamp()
    ):
        raise OidcError("malformed", f"the token's {name} is not a time")
    return float(value)


def _usable_key(jwk: object) -> bool:
    """Whether a JWK from a provider's set may verify a signature at all."""
    return (
        isinstance(jwk, dict)
        and jwk.get("kty") in {"RSA", "EC", "OKP"}
        and jwk.get("use", "sig") == "sig"
        and (not isinstance(jwk.get("key_ops"), list) or "verify" in jwk["key_ops"])
    )


def _check_url(url: str, what: str, *, query_allowed: bool, loopback_allowed: bool = True) -> None:
    """An ``https`` URL (``http`` to this machine only), without credentials or fragment;
    none on this machine at all unless ``loopback_allowed``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    plain = url.isprintable() and not any(ch.isspace() for ch in url)
    if (
        parts is None
        or not host
        or not plain
        or parts.fragment
        or parts.username is not None
        or (parts.query and not query_allowed)
    ):
        raise OidcError(
            "bad_discovery",
            f"the {what} {_shown(url)} is not a URL without "
            + ("credentials or fragment" if query_allowed else "query, credentials or fragment"),
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        raise OidcError("bad_discovery", f"the {what} {_shown(url)} must use https")
    if host in LOOPBACK_HOSTS and not loopback_allowed:
        raise OidcError("bad_discovery", f"the {what} {_shown(url)} points at this machine")


def _basic_authorization(client_id: str, client_secret: str) -> str:
    """RFC 6749 section 2.3.1: both form-encoded before they are joined and encoded."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    return document if isinstance(document, dict) else None


def _origin(url: str) -> str:
    """Scheme and host of ``url``: enough to say where, nothing of its path or query."""
    try:
        parts = urlsplit(url)
        return _printable(
            f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        )
    except ValueError:
        return "an unusable URL"


def _describe(exc: Exception) -> str:
    return _printable(str(exc)) or type(exc).__name__


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).isoformat().replace("+00:00", "Z")


def _printable(text: str) -> str:
    """``text`` on one line, without control characters, at most ``_MAX_SHOWN`` long."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= _MAX_SHOWN else flat[: _MAX_SHOWN - 3] + "..."


def _shown(value: object) -> str:
    """A value from the other side, quoted and safe to put in a one-line message."""
    return repr(_printable(value)) if isinstance(value, str) else _printable(repr(value))
