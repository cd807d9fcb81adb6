"""``Client``: the management calls of a TokenLedger server, typed, over its HTTP API.

::

    from tokenledger.client import Client

    client = Client("https://ledger.example")          # the logged-in session, or
    client = Client(auth=Auth(client_id=..., client_secret=...))
    issued = client.create_token("ci@acme.service.tokenledger", name="nightly")
    print(issued.token.token_id)                       # the secret: issued.secret, once
    for token in client.list_tokens("ci@acme.service.tokenledger"):
        print(token.token_id, token.expires_at)

Every call sends ``Authorization: Bearer <auth.token>`` (renewed by ``Auth`` as needed), and
every refusal raises the ledger's own error class with the server's one-line message
(``ValidationError`` 400, ``PermissionDenied`` 401/403, ``NotFound`` 404, ``Conflict`` 409,
``StorageError`` 503 or an unreachable server).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from tokenledger.client.auth import Auth
from tokenledger.client.dry_run import DRY_RUN_PARAMETER, ServerFeatures, require_confirmed
from tokenledger.client.http import DEFAULT_TIMEOUT, Http
from tokenledger.client.results import (
    AuditRecord,
    IssuedCredential,
    IssuedToken,
    Receipt,
    TokenStory,
    Verification,
    audit_record,
    convert,
    receipt_of,
    service_account_of,
    token_story,
)
from tokenledger.client.urls import path_segment, server_url
from tokenledger.domain.model import (
    ClientCredentialView,
    ServiceAccountView,
    TokenView,
    is_role_principal,
    is_service_account_id,
    role_of_principal,
)
from tokenledger.domain.permissions import Grant
from tokenledger.errors import LedgerError, NotFound, PermissionDenied, ValidationError

if TYPE_CHECKING:
    from tokenledger.domain.blast_radius import BlastRadius

__all__ = ["Client", "GrantSpec"]

#: A grant as a caller may give it: a ``Grant``, a ``(resource, level)`` pair or a mapping
#: with ``resource`` and ``level``.
GrantSpec = Grant | tuple[str, str] | Mapping[str, str]


def _grant_body(grant: GrantSpec) -> dict[str, str]:
    if isinstance(grant, Grant):
        return {"resource": grant.resource, "level": grant.level}
    if isinstance(grant, tuple):
        resource, level = grant
        return {"resource": resource, "level": level}
    return {"resource": grant["resource"], "level": grant["level"]}


def _time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _where_body(where: Mapping[str, str | datetime]) -> dict[str, str | None]:
    return {key: _time(value) for key, value in where.items()}


class _RevocationPreview(msgspec.Struct, kw_only=True):
    count: int
    tokens: list[TokenView]


def principal_path(principal: str) -> str:
    """``/v2/users/{email}`` or ``/v2/service_accounts/{id}``."""
    kind = "service_accounts" if is_service_account_id(principal) else "users"
    return f"/v2/{kind}/{path_segment(principal)}"


def _tokens_path(principal: str) -> str:
    """A user's or service account's tokens; a role's (``ORG:ROLE``) are its keys."""
    if is_role_principal(principal):
        org, role = role_of_principal(principal)
        return f"/v2/orgs/{path_segment(org)}/roles/{path_segment(role)}/keys"
    return f"{principal_path(principal)}/tokens"


class Client:
    """The management calls of one server. ``server`` defaults to ``auth``'s (its parameter,
    ``TOKENLEDGER_SERVER``, or the credentials file's); ``auth`` defaults to ``Auth()``."""

    def __init__(
        self,
        server: str | None = None,
        auth: Auth | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.auth = auth if auth is not None else Auth(server=server, timeout=timeout)
        chosen = server_url(server) if server is not None else self.auth.server
        if chosen is None:
            raise ValidationError(
                "no server: give Client(server=...), set TOKENLEDGER_SERVER, or log in with "
                "'tokenledger auth login --server URL'"
            )
        self.server = chosen
        self._http = Http(chosen, timeout=timeout, transport=transport)
        self._features: ServerFeatures | None = None

    def __repr__(self) -> str:
        return f"Client(server={self.server!r}, auth={self.auth!r})"

    def close(self) -> None:
        self._http.close()
        self.auth.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- any call ------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One authenticated call; its decoded JSON answer."""
        response = self._send(method, path, json=json, params=params, headers=headers)
        return self._http.decoded(response, method, path)

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        try:
            return self._http.send(
                method, path, bearer=self.auth.token, json=json, params=params, headers=headers
            )
        except PermissionDenied as refused:
            if self.auth.mode == "session" and "access token is not valid" in str(refused):
                # The session ended (logged out elsewhere, ended by an admin or a cascade).
                raise PermissionDenied(
                    f"{refused}: the session has ended; log in again with 'tokenledger auth login'"
                ) from None
            raise

    def features(self) -> ServerFeatures:
        """What the server says of itself (``GET /healthz``), asked once per client."""
        if self._features is None:
            try:
                answer = self._http.call("GET", "/healthz")
            except NotFound:  # a server older than its health check
                answer = None
            self._features = ServerFeatures(self.server, answer)
        return self._features

    def dry_run(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """A mutating call as a dry run (``?dry_run=true``): sent only to a server that says
        it honours one, and its answer taken only when it says it was one."""
        self.features().require_dry_run()
        asked = {**(params or {}), DRY_RUN_PARAMETER: "true"}
        response = self._send(method, path, json=json, params=asked, headers=headers)
        require_confirmed(self.server, response.headers)
        return self._http.decoded(response, method, path)

    def whoami(self) -> dict[str, Any]:
        """``GET /v2/whoami``: who the server takes the caller for."""
        answer = self.call("GET", "/v2/whoami")
        return dict(convert(answer, dict, "an account of the caller"))

    # -- tokens ----------------------------------------------------------------------------

    def create_token(
        self,
        principal: str,
        *,
        grants: Iterable[GrantSpec] = (),
        role: str | None = None,
        name: str | None = None,
        expires_in: str | None = None,
        expires_at: datetime | str | None = None,
        no_expiry: bool = False,
        parent_id: str | None = None,
    ) -> IssuedToken:
        """Issue a token to ``principal``; its secret is in the answer, once."""
        body = {
            "grants": [_grant_body(g) for g in grants],
            "role": role,
            "name": name,
            "expires_in": expires_in,
            "expires_at": _time(expires_at),
            "no_expiry": no_expiry,
            "parent_id": parent_id,
        }
        answer = self.call("POST", f"{principal_path(principal)}/tokens", json=body)
        return IssuedToken(
            token=convert(answer, TokenView, "a token"),
            secret=convert(answer.get("secret"), str, "a token's secret"),
            receipt=receipt_of(answer),
        )

    def list_tokens(
        self, principal: str, *, include_inactive: bool = False, at: datetime | None = None
    ) -> list[TokenView]:
        """The principal's tokens: live ones, or all with ``include_inactive``; with ``at``,
        as they stood then."""
        answer = self.call(
            "GET",
            _tokens_path(principal),
            params={"all": include_inactive, "at": _time(at)},
        )
        return list(convert(answer, list[TokenView], "a list of tokens"))

    def get_token(self, token_id: str) -> TokenView:
        answer = self.call("GET", f"/v2/tokens/{path_segment(token_id)}")
        return convert(answer, TokenView, "a token")

    def unused_tokens(self, unused_for: str, *, org: str | None = None) -> list[TokenView]:
        """Live tokens unused for ``unused_for`` (``90d``: never used counts from issue),
        inside ``org`` when given; those the caller may see."""
        answer = self.call("GET", "/v2/tokens/unused", params={"for": unused_for, "org": org})
        return list(convert(answer, list[TokenView], "a list of tokens"))

    def revoke_token(self, token_id: str, *, reason: str | None = None) -> Receipt:
        """Revoke one token (and those derived from it)."""
        answer = self.call(
            "DELETE", f"/v2/tokens/{path_segment(token_id)}", params={"reason": reason}
        )
        return receipt_of(answer)

    def revoke_tokens(self, principal: str, *, reason: str | None = None) -> Receipt:
        """Revoke every live token of ``principal``."""
        answer = self.call(
            "DELETE", f"{principal_path(principal)}/tokens", params={"reason": reason}
        )
        return receipt_of(answer)

    def preview_revocation(self, where: Mapping[str, str | datetime]) -> list[TokenView]:
        """The live tokens ``revoke_tokens_where(where)`` would revoke (before the tokens
        derived from them); revokes nothing. ``where``: principal, org, resource,
        issued_before, unused_for (a duration such as "90d"), name (a pattern)."""
        body = {"where": _where_body(where), "dry_run": True}
        answer = self.call("POST", "/v2/tokens/revoke", json=body)
        return convert(answer, _RevocationPreview, "a revocation preview").tokens

    def revoke_tokens_where(
        self, where: Mapping[str, str | datetime], *, reason: str | None = None
    ) -> Receipt:
        """Revoke every live token ``where`` selects, and the tokens derived from them, in
        one command; refused whole when a match is not the caller's to revoke."""
        body = {"where": _where_body(where), "reason": reason}
        return receipt_of(self.call("POST", "/v2/tokens/revoke", json=body))

    def expiring_tokens(
        self, within: str | timedelta, *, org: str | None = None
    ) -> list[TokenView]:
        """Live tokens the caller may see expiring within ``within`` (``14d`` or a
        ``timedelta``), soonest first."""
        window = f"{int(within.total_seconds())}s" if isinstance(within, timedelta) else within
        answer = self.call("GET", "/v2/tokens/expiring", params={"within": window, "org": org})
        return list(convert(answer, list[TokenView], "a list of tokens"))

    def verify_token(
        self,
        secret: str,
        *,
        resource: str | None = None,
        level: str | None = None,
        min_position: int | None = None,
    ) -> Verification:
        """Is the token of ``secret`` active (and does it allow ``level`` on ``resource``)?
        A no says why (``reason``). The secret travels in the body, never in a URL. With
        ``min_position`` (a ``Receipt.log_position``), the answer reflects at least that
        position (``Conflict`` while the log has not reached it)."""
        body: dict[str, Any] = {"token": secret, "resource": resource, "level": level}
        if min_position is not None:
            body["min_position"] = min_position
        answer = self._verify(body)
        return convert(answer, Verification, "a verification")

    def verify_token_at(
        self,
        secret: str,
        at: datetime,
        *,
        resource: str | None = None,
        level: str | None = None,
    ) -> tuple[Verification, int]:
        """The answer as of ``at``, and the log position it was folded up to."""
        answer = self._verify(
            {"token": secret, "resource": resource, "level": level, "at": _time(at)}
        )
        position = convert(answer.get("as_of_position"), int, "a log position")
        return convert(answer, Verification, "a verification"), position

    def _verify(self, body: dict[str, Any]) -> Any:
        answer = self.call("POST", "/v2/tokens/verify", json=body)
        if not isinstance(answer, dict):
            raise ValidationError("the server's verification is not a JSON object")
        return answer

    # -- service accounts --------------------------------------------------------------------

    def create_service_account(
        self, name: str, *, org: str, resource: str, level: str
    ) -> ServiceAccountView:
        """A service account with its one permission (``level`` on the project ``resource``)."""
        body = {"name": name, "org": org, "resource": resource, "level": level}
        return service_account_of(self.call("POST", "/v2/service_accounts", json=body))

    def list_service_accounts(self, org: str | None = None) -> list[ServiceAccountView]:
        answer = self.call("GET", "/v2/service_accounts", params={"org": org})
        return [service_account_of(a) for a in convert(answer, list, "a list of accounts")]

    def get_service_account(self, account_id: str) -> ServiceAccountView:
        return service_account_of(
            self.call("GET", f"/v2/service_accounts/{path_segment(account_id)}")
        )

    def delete_service_account(self, account_id: str) -> Receipt:
        """Delete the account: its tokens and client credentials are revoked."""
        answer = self.call("DELETE", f"/v2/service_accounts/{path_segment(account_id)}")
        return receipt_of(answer)

    def set_permission(self, account_id: str, resource: str, level: str) -> Receipt:
        """Move the account's permission (revoking its tokens) or change its level;
        ``receipt.outcome.permission_change`` says which."""
        answer = self.call(
            "PUT",
            f"/v2/service_accounts/{path_segment(account_id)}/permission",
            json={"resource": resource, "level": level},
        )
        return receipt_of(answer)

    # -- client credentials ------------------------------------------------------------------

    def issue_credential(
        self,
        account_id: str,
        *,
        name: str | None = None,
        expires_in: str | None = None,
        no_expiry: bool = False,
    ) -> IssuedCredential:
        """A client id and secret for the account; the secret is in the answer, once."""
        answer = self.call(
            "POST",
            f"/v2/service_accounts/{path_segment(account_id)}/credentials",
            json={"name": name, "expires_in": expires_in, "no_expiry": no_expiry},
        )
        return IssuedCredential(
            credential=convert(answer, ClientCredentialView, "a client credential"),
            client_secret=convert(answer.get("client_secret"), str, "a client secret"),
            receipt=receipt_of(answer),
        )

    def list_credentials(
        self, account_id: str, *, include_inactive: bool = False
    ) -> list[ClientCredentialView]:
        answer = self.call(
            "GET",
            f"/v2/service_accounts/{path_segment(account_id)}/credentials",
            params={"all": include_inactive},
        )
        return list(convert(answer, list[ClientCredentialView], "a list of credentials"))

    def revoke_credential(
        self, client_id: str, *, account_id: str | None = None, reason: str | None = None
    ) -> Receipt:
        """Revoke a client credential (its access tokens become inactive). Without
        ``account_id``, whichever account holds it."""
        account = path_segment(account_id) if account_id is not None else "-"
        answer = self.call(
            "DELETE",
            f"/v2/service_accounts/{account}/credentials/{path_segment(client_id)}",
            params={"reason": reason},
        )
        return receipt_of(answer)

    # -- audit -------------------------------------------------------------------------------

    def audit_search(
        self,
        *,
        actor: str | None = None,
        subject: str | None = None,
        event_type: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        correlation_id: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> list[AuditRecord]:
        """The events matching every filter given that the caller may see, newest first."""
        answer = self.call(
            "GET",
            "/v2/audit",
            params={
                "actor": actor,
                "subject": subject,
                "type": event_type,
                "since": _time(since),
                "until": _time(until),
                "correlation_id": correlation_id,
                "limit": limit,
                "oldest_first": oldest_first,
            },
        )
        return [audit_record(entry) for entry in convert(answer, list, "audit entries")]

    def explain_token(self, token_id: str, *, proof: bool = False) -> TokenStory:
        """The token's story and the root cause of its revocation; with ``proof``, also a
        proof bundle of each event cited (``TokenStory.proofs``), against a signed checkpoint
        of the server's log."""
        path = f"/v2/tokens/{path_segment(token_id)}/explain"
        return token_story(self.call("GET", path, params={"proof": "true"} if proof else None))

    def blast_radius(self, token_id: str) -> BlastRadius:
        """Everything done through the token, transitively, as far as the caller may see it
        (what it may not see counted): the credentials reached, the commands acted through
        them and what they changed, what is live, and what ``revoke_blast_radius`` would
        withdraw or leave (``BlastRadius.withdrawals``, ``BlastRadius.by_hand``)."""
        from tokenledger.domain.blast_radius import BlastRadius

        answer = self.call("GET", f"/v2/audit/blast-radius/{path_segment(token_id)}")
        try:
            return BlastRadius.from_dict(answer)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LedgerError(f"the server's answer is not a blast radius: {exc}") from None

    def revoke_blast_radius(self, token_id: str, *, reason: str | None = None) -> Receipt:
        """Withdraw every live thing of the token's blast radius the caller may withdraw, in
        one command (all or nothing): its tokens, client and S3 credentials and issuer
        trusts, and the webhooks and endpoint trusts made through it. ``NotFound`` when
        nothing is left to withdraw."""
        path = f"/v2/audit/blast-radius/{path_segment(token_id)}/revoke"
        return receipt_of(self.call("POST", path, json={"reason": reason}))
