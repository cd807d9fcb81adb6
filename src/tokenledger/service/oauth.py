"""OAuth 2.0: client credentials and the access tokens (JWT) they obtain (RFC 6749 section
4.4), judging any access token this ledger signed (a client credential's, a session's or an
exchanged one) for introspection (RFC 7662) and for callers presenting one, and revoking a
presented secret (RFC 7009)."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from tokenledger.domain.authority import (
    TokenAnswer,
    access_token_view,
    client_credential_refusal,
    judge_token,
)
from tokenledger.domain.identity import acl_subjects, namespace_of
from tokenledger.domain.model import (
    AccessVia,
    Actor,
    ClientCredentialView,
    Introspection,
    IssuedAccessToken,
    ServiceAccountView,
)
from tokenledger.domain.names import check_client_id, check_path, resource_path
from tokenledger.domain.permissions import Grant, Level, level_at
from tokenledger.domain.secrets import TokenKind, hash_secret, parse_secret
from tokenledger.errors import Conflict, NotFound, PermissionDenied, ValidationError
from tokenledger.service.commands import CommandResult
from tokenledger.service.reading import Reader, valid

if TYPE_CHECKING:  # the signing keys (cryptography, PyJWT) load with the first access token
    from tokenledger.domain import commands as c
    from tokenledger.service.keys import KeyRing

__all__ = [
    "DEFAULT_ACCESS_TOKEN_LIFETIME",
    "authenticate_access_token",
    "authenticate_client",
    "introspect_access_token",
    "issue_access_token",
    "revoke_presented",
    "sign_access_token",
]

#: How long an access token from ``issue_access_token`` lives unless told otherwise.
DEFAULT_ACCESS_TOKEN_LIFETIME = timedelta(hours=1)

#: Runs a command for an actor (``Ledger.execute``).
Execute = Callable[..., CommandResult]

logger = logging.getLogger("tokenledger")


def authenticate_client(
    reader: Reader, client_id: str, client_secret: str
) -> tuple[ClientCredentialView, ServiceAccountView]:
    """The live credential and active account a client id and secret stand for.

    ``PermissionDenied`` with one message for every failure, so that a caller
    learns nothing about which part was wrong.
    """
    refused = PermissionDenied("client authentication failed")
    try:
        check_client_id(client_id)
        if parse_secret(client_secret) is not TokenKind.CLIENT:
            raise refused
    except (ValueError, ValidationError):
        raise refused from None
    presented = hash_secret(client_secret)
    with reader.view() as view:
        found = view.client_credential_with_hash(client_id)
        if found is None:
            raise refused
        credential, stored = found
        if not hmac.compare_digest(stored, presented):
            raise refused
        account = view.service_account(credential.account_id)
        if client_credential_refusal(credential, account, reader.now()) is not None:
            raise refused
        assert account is not None  # the refusal's rule says so
    return credential, account


def issue_access_token(
    reader: Reader,
    credential: ClientCredentialView,
    account: ServiceAccountView,
    keys: KeyRing,
    *,
    issuer: str,
    scope: str | None = None,
    lifetime: timedelta = DEFAULT_ACCESS_TOKEN_LIFETIME,
) -> IssuedAccessToken:
    """Sign an access token (JWT) for a client that ``authenticate_client`` accepted
    (RFC 6749 section 4.4).

    The token carries the account's permission, or the narrower ``scope`` asked
    for (space-separated ``level:resource``; more than the account holds is
    ``PermissionDenied``). It never outlives its credential. Issuing one changes
    no state, so it appends no event: its validity derives from the credential,
    whose issue and revocation are in the log.
    """
    grants = (account.permission,) if not scope else _scope_grants(scope)
    for grant in grants:
        if level_at((account.permission,), grant.resource) < grant.rank:
            raise PermissionDenied(
                f"scope {grant} exceeds {account.account_id}'s permission ({account.permission})"
            )
    now = reader.now()
    expires_at = now + lifetime
    if credential.expires_at is not None and credential.expires_at < expires_at:
        expires_at = credential.expires_at
    issued = sign_access_token(
        keys,
        issuer=issuer,
        principal=account.account_id,
        org=account.org,
        groups=(),  # a service account holds no role
        client_id=credential.client_id,
        grants=grants,
        now=now,
        expires_at=expires_at,
    )
    logger.info(
        "access token %s issued to %s through client %s until %s",
        issued.jti,
        account.account_id,
        credential.client_id,
        expires_at.isoformat(),
    )
    return issued


def sign_access_token(
    keys: KeyRing,
    *,
    issuer: str,
    principal: str,
    org: str,
    groups: tuple[str, ...],
    client_id: str,
    grants: tuple[Grant, ...],
    now: datetime,
    expires_at: datetime,
    **more: Any,
) -> IssuedAccessToken:
    """Every access token this ledger signs, whatever obtained it (a client credential, a
    session, an exchange): one set of claims, which resource servers read and ``_via``
    reads back. ``client_id`` names what obtained it unless ``more`` holds a session's
    ``sid``."""
    jti = uuid.uuid4().hex
    scope = " ".join(str(g) for g in grants)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": principal,
        "org": org,
        "groups": list(groups),
        "client_id": client_id,
        "jti": jti,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "scope": scope,
        "grants": [{"resource": g.resource, "level": g.level} for g in grants],
        "namespace": namespace_of(principal),
        "acl_subjects": acl_subjects(principal, org, groups),
        **more,
    }
    return IssuedAccessToken(
        access_token=keys.sign(claims),
        expires_in=max(0, int(expires_at.timestamp()) - int(now.timestamp())),
        scope=scope,
        jti=jti,
        expires_at=expires_at,
    )


def introspect_access_token(
    reader: Reader,
    token: str,
    keys: KeyRing,
    issuer: str,
    resource: str | None,
    wanted: Level,
) -> Introspection:
    from tokenledger.service.keys import InvalidAccessToken  # see TYPE_CHECKING above

    if resource is not None:
        resource = valid(resource_path, resource)
    try:
        claims, answer = _judge_access_token(reader, token, keys, issuer)
    except InvalidAccessToken as exc:
        return Introspection(active=False, reason=exc.reason)
    if not answer.usable:
        return Introspection(active=False, reason=answer.reason)
    effective = answer.effective_grants()
    return Introspection(
        active=True,
        sub=str(claims["sub"]),
        scope=" ".join(str(g) for g in effective),
        exp=int(claims["exp"]),
        iat=int(claims["iat"]),
        token_type="access_token",
        client_id=str(claims["client_id"]),
        token_id=str(claims["jti"]),
        iss=str(claims["iss"]),
        org=str(claims["org"]) if isinstance(claims.get("org"), str) else None,
        grants=effective,
        allowed=None if resource is None else answer.level_on(resource) >= wanted,
        resource=resource,
        level=wanted.label if resource is not None else None,
        source=_via(claims).source,
    )


def authenticate_access_token(reader: Reader, token: str, keys: KeyRing, issuer: str) -> Actor:
    """The actor a presented access token (JWT) stands for, judged like every token;
    ``PermissionDenied`` unless it is usable. Decisions judge it again under the write
    lock (``domain.authority``), so one whose session ended meanwhile acts no more."""
    from tokenledger.service.keys import InvalidAccessToken  # see TYPE_CHECKING above

    try:
        claims, answer = _judge_access_token(reader, token, keys, issuer)
    except InvalidAccessToken as exc:
        raise PermissionDenied(f"the presented access token is not valid ({exc.reason})") from None
    if not answer.usable:
        raise PermissionDenied(f"the presented access token is not valid ({answer.reason})")
    return Actor.through_access_token(str(claims["sub"]), _via(claims))


def _judge_access_token(
    reader: Reader, token: str, keys: KeyRing, issuer: str
) -> tuple[dict[str, Any], TokenAnswer]:
    """The claims of an access token this ledger signed, and THE answer for it: it is judged
    as a token that carries the grants it was signed with and lives while what obtained it
    lives (``domain.authority.access_token_view``)."""
    now = reader.now()
    claims = keys.decode(token, issuer=issuer, now=now)
    via = _via(claims)
    principal = str(claims["sub"])
    with reader.view() as view:
        return claims, judge_token(view, access_token_view(view, principal, via), now)


def _via(claims: dict[str, Any]) -> AccessVia:
    """What obtained an access token: its session (``sid``), else its client (a client
    credential's id, or an issuer trust's for an exchanged token)."""
    from tokenledger.service.keys import InvalidAccessToken  # see TYPE_CHECKING above

    source = claims.get("sid") or claims.get("client_id")
    if not isinstance(source, str):
        raise InvalidAccessToken("malformed")
    try:
        return AccessVia(
            source=source,
            jti=str(claims["jti"]),
            grants=_claimed_grants(claims.get("grants")),
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            org=str(claims["org"]) if "sid" in claims and "org" in claims else None,
        )
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidAccessToken("malformed") from None


def revoke_presented(
    reader: Reader,
    execute: Execute,
    secret: str,
    actor: Actor,
    *,
    reason: str | None = None,
    correlation_id: str | None = None,
) -> CommandResult | None:
    """RFC 7009: revoke the token or client credential whose secret is presented.

    Authorised like ``tokens revoke``. ``None`` when there is nothing to revoke
    (malformed, unknown or already revoked), which the RFC answers like success.
    """
    try:
        kind = parse_secret(secret)
    except ValidationError:
        return None
    presented = hash_secret(secret)
    from tokenledger.domain import commands as c  # see TYPE_CHECKING above

    command: c.Command
    with reader.view() as view:
        if kind is TokenKind.CLIENT:
            credential = view.client_credential_by_secret_hash(presented)
            if credential is None or credential.revoked:
                return None
            command = c.build(
                c.RevokeClientCredential, client_id=credential.client_id, reason=reason
            )
        else:
            token = view.token_by_secret_hash(presented)
            if token is None or token.revoked:
                return None
            command = c.build(c.RevokeToken, token_id=token.token_id, reason=reason)
    try:
        return execute(command, actor, correlation_id=correlation_id)
    except Conflict:  # revoked concurrently: the outcome the caller asked for
        return None
    except NotFound:
        # Another org's token, which a revocation by id calls unknown so as not to confirm
        # it: its secret is presented here, so it is known to exist, and RFC 7009 refuses a
        # caller who may not revoke it.
        raise PermissionDenied(f"{actor.label} may not revoke the token presented") from None


def _scope_grants(scope: str) -> tuple[Grant, ...]:
    """``read:acme/alpha write:acme/alpha/raw``: an OAuth2 scope as grants."""
    grants: dict[str, Grant] = {}
    for item in scope.split()[:100]:
        level_text, sep, path = item.partition(":")
        if not sep:
            raise ValidationError(
                f"invalid scope item {item[:80]!r}: expected level:resource, e.g. read:acme/alpha"
            )
        try:
            grant_level = Level.parse(level_text)
            path = resource_path(path)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if grant_level is Level.NONE:
            raise ValidationError("a scope item needs a level above none")
        if path not in grants or grant_level > grants[path].rank:
            grants[path] = Grant(path, grant_level.label)
    if not grants:
        raise ValidationError("the scope is empty")
    return tuple(sorted(grants.values()))


def _claimed_grants(value: object) -> tuple[Grant, ...]:
    """The ``grants`` claim of an access token we signed; anything else is malformed."""
    from tokenledger.service.keys import InvalidAccessToken  # see TYPE_CHECKING above

    try:
        grants = msgspec.convert(value, tuple[Grant, ...])
        for grant in grants:
            check_path(grant.resource)
            Level.parse(grant.level)
    except (msgspec.ValidationError, ValueError):
        raise InvalidAccessToken("malformed") from None
    return grants
