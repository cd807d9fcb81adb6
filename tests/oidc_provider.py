"""A real OpenID Connect provider for tests: oidc-provider-mock, served on 127.0.0.1.

The provider issues real authorization codes and RS256-signed ID tokens over HTTP.
Any client id and any secret are accepted; a user is whatever claims a test gives it::

    with OidcProvider() as provider:
        provider.set_user("alice", email="alice@acme.test", email_verified=True)
        client = OidcClient()
        found = client.discover(provider.issuer)
        url = client.authorization_url(found, client_id="ledger", redirect_uri=REDIRECT,
                                       state="s", nonce="n", code_challenge=challenge)
        code = provider.redirect_params(provider.login(url, "alice"))["code"]

The issuer is ``http://127.0.0.1:<port>``: the mock names itself after the ``Host``
header of each request, so clients must reach it by that very URL (``localhost`` would
make another issuer). Claims a test sets on a user go into the ID token as they are and
win over the provider's own (``iss``, ``aud``, ``exp``, ``iat``, ``azp``...), except the
standard profile claims, which need their scope (``email`` for ``email`` and
``email_verified``). ``sign`` makes any token with the provider's own key, and
``use_key`` swaps that key (what a key rotation looks like from outside).
"""

from __future__ import annotations

import base64
import json
import threading
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import flask
import httpx
import jwt
import oidc_provider_mock
import werkzeug.serving
from authlib.jose import JsonWebKey
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = ["OidcProvider"]


class OidcProvider:
    """The mock provider on a free port of 127.0.0.1, in a thread; a context manager."""

    def __init__(self, *, require_nonce: bool = False) -> None:
        self.app = oidc_provider_mock.app(require_nonce=require_nonce)
        self._server: werkzeug.serving.BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=10.0)
        self._signing: tuple[str, jwt.PyJWK] | None = None  # loading a key takes a while

    def __enter__(self) -> OidcProvider:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._http.close()

    def start(self) -> None:
        self._server = werkzeug.serving.make_server("127.0.0.1", 0, self.app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop answering (the port is closed); ``issuer`` keeps its value."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()
        self._thread = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the provider was never started"
        return self._server.server_port

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- users and the browser's part of a login -------------------------------------------

    def set_user(self, sub: str, **claims: Any) -> None:
        """Replace the claims of user ``sub`` (``PUT /users/{sub}``)."""
        response = self._http.put(f"{self.issuer}/users/{sub}", json=claims)
        assert response.status_code == 204, response.text

    def login(self, authorization_url: str, sub: str) -> str:
        """What a browser does at the authorization URL when the user logs in as ``sub``:
        post the provider's form to the same URL; return the redirect's ``Location``
        (the client's redirect URI with ``code`` and ``state``, or with an ``error``)."""
        response = self._http.post(authorization_url, data={"sub": sub})
        assert response.status_code == 302, f"{response.status_code}: {response.text[:500]}"
        return response.headers["location"]

    @staticmethod
    def redirect_params(location: str) -> dict[str, str]:
        """The query parameters of a redirect ``Location``."""
        return dict(parse_qsl(urlsplit(location).query))

    # -- the provider's signing key ------------------------------------------------------

    def _storage(self) -> Any:
        # The mock keeps its key in a Storage object it puts on ``flask.g`` before each
        # request; running its before-request hooks in a test context finds it.
        with self.app.test_request_context():
            self.app.preprocess_request()
            return flask.g.oidc_provider_mock_storage

    def private_jwk(self) -> dict[str, Any]:
        """The key the provider signs ID tokens with, private half included, with its kid."""
        jwk: dict[str, Any] = self._storage().jwk.as_dict(is_private=True)
        return jwk

    def _signing_key(self, algorithm: str) -> tuple[str, jwt.PyJWK]:
        if self._signing is None or self._signing[1].algorithm_name != algorithm:
            jwk = self.private_jwk()
            self._signing = (jwk["kid"], jwt.PyJWK(jwk, algorithm=algorithm))
        return self._signing

    @property
    def key_id(self) -> str:
        kid: str = self.private_jwk()["kid"]
        return kid

    def sign(
        self,
        claims: dict[str, Any] | bytes,
        *,
        algorithm: str = "RS256",
        headers: dict[str, Any] | None = None,
    ) -> str:
        """A JWT signed with the provider's own key (``bytes``: a JWS of that payload).

        The header is ``alg``, ``typ: JWT`` and the key's ``kid``, with ``headers`` over
        them (``None`` leaves one out), written as given: no library in between to add,
        drop or refuse anything.
        """
        kid, key = self._signing_key(algorithm)
        merged = {"alg": algorithm, "typ": "JWT", "kid": kid, **(headers or {})}
        header = {name: value for name, value in merged.items() if value is not None}
        payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(payload)}"
        signer = jwt.get_algorithm_by_name(algorithm)
        signature = signer.sign(signing_input.encode(), signer.prepare_key(key.key))
        return f"{signing_input}.{_b64url(signature)}"

    def use_key(
        self, private_key: PrivateKeyTypes, *, kid: str | None = None, alg: str | None = None
    ) -> None:
        """Sign with ``private_key`` from now on and publish only its public half (the
        JWK's ``kid`` is its RFC 7638 thumbprint unless given; ``alg`` is published too
        when given)."""
        jwk = _to_jwk(private_key)
        if kid is not None:
            jwk["kid"] = kid
        if alg is not None:
            jwk["alg"] = alg
        self._storage().jwk = JsonWebKey.import_key(jwk)
        self._signing = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _to_jwk(private_key: PrivateKeyTypes) -> dict[str, Any]:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return RSAAlgorithm.to_jwk(private_key, as_dict=True)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return ECAlgorithm.to_jwk(private_key, as_dict=True)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return OKPAlgorithm.to_jwk(private_key, as_dict=True)
    raise TypeError(f"no JWK for a {type(private_key).__name__}")
