"""Listings and lookups, each answering only what the actor may see (``domain.authority``
decides; this module reads and filters)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import msgspec

from tokenledger.clock import ensure_utc
from tokenledger.domain.authority import (
    as_listed,
    credential_as_listed,
    groups_of,
    may_see,
    may_see_account,
    may_see_grant,
    may_see_session,
    may_see_token,
    missing_unless_seen,
    require_known_org,
    require_operator,
    require_principal_visible,
    require_reader,
    require_token_access,
)
from tokenledger.domain.identity import acl_subjects, namespace_of
from tokenledger.domain.model import (
    Actor,
    ClientCredentialView,
    IssuerTrustView,
    ResourceView,
    ServiceAccountView,
    SessionView,
    StandingView,
    TokenView,
    UserView,
    is_machine_principal,
    is_role_principal,
    is_service_account_id,
    role_of_principal,
    service_account_org,
)
from tokenledger.domain.names import (
    check_email,
    check_principal,
    check_service_account_id,
    check_session_id,
    check_token_holder,
    check_token_id,
    resource_path,
)
from tokenledger.domain.permissions import Grant
from tokenledger.errors import NotFound, PermissionDenied
from tokenledger.projections import SqlLedgerView
from tokenledger.projections.history import resource_at
from tokenledger.projections.temporal_view import view_at
from tokenledger.service.reading import Reader, valid, valid_org, within_log

_T = TypeVar("_T")

__all__ = [
    "GrantSource",
    "client_credentials_of",
    "get_resource",
    "get_service_account",
    "get_token",
    "grants_of",
    "list_orgs",
    "list_resources",
    "list_users",
    "members",
    "roles_of",
    "service_accounts",
    "tokens_of",
]


class GrantSource(msgspec.Struct, frozen=True, kw_only=True):
    """One of a principal's grants and where it comes from (``direct``, ``role:<org>/<name>``)."""

    resource: str
    level: str
    source: str


def list_orgs(reader: Reader, actor: Actor) -> list[str]:
    now = reader.now()
    with reader.view() as view:
        return [o for o in view.list_orgs() if may_see(view, actor, o, now)]


def list_users(reader: Reader, actor: Actor, org: str | None = None) -> list[UserView]:
    org = valid_org(org) if org is not None else None
    now = reader.now()
    with reader.view() as view:
        if org is None:
            require_operator(actor, "list every user: give --org")
            return view.list_users()
        require_reader(view, actor, org, now, f"list the members of {org}")
        require_known_org(view, actor, org, now)
        return view.list_users(org)


def members(reader: Reader, actor: Actor, org: str) -> dict[str, str]:
    org = valid_org(org)
    now = reader.now()
    with reader.view() as view:
        require_reader(view, actor, org, now, f"list the members of {org}")
        require_known_org(view, actor, org, now)
        return view.members(org)


def list_resources(reader: Reader, actor: Actor, prefix: str | None = None) -> list[ResourceView]:
    prefix = valid(resource_path, prefix) if prefix is not None else None
    now = reader.now()
    with reader.view() as view:
        return [r for r in view.list_resources(prefix) if may_see(view, actor, r.path, now)]


def get_resource(
    reader: Reader, actor: Actor, path: str, *, at: datetime | None = None
) -> ResourceView:
    """One resource (its license and data class included) for whoever may read it; with
    ``at``, as it stood then (who may read it is judged now, as for tokens), folded from its
    own events. A resource the actor may not read is not found, whether it exists or not."""
    path = valid(resource_path, path)
    moment = within_log(reader, ensure_utc(at), "the moment") if at is not None else None
    with reader.view() as view:
        visible = may_see(view, actor, path, reader.now())
        found = view.resource(path)
    if not visible:
        raise NotFound(f"no resource {path} that {actor.label} may read")
    if moment is not None:
        found = resource_at(reader.store, path, moment)
    if found is None:
        raise NotFound(f"no resource {path}" + (f" at {moment.isoformat()}" if moment else ""))
    return found


def grants_of(reader: Reader, actor: Actor, principal: str) -> list[GrantSource]:
    principal = valid(check_principal, principal)
    now = reader.now()
    with reader.view() as view:
        require_principal_visible(view, actor, principal, now)
        sources: list[GrantSource] = []
        if is_service_account_id(principal):
            account = view.service_account(principal)
            if account is None:
                raise NotFound(f"no service account {principal}")
            if not account.deleted:
                sources.append(_source(account.permission, "service account permission"))
        else:
            if view.user(principal) is None:
                raise NotFound(f"no user {principal}")
            sources.extend(_source(g, "direct") for g in view.direct_grants(principal))
            for org, role in view.memberships(principal).items():
                for grant in view.role(org, role) or ():
                    sources.append(_source(grant, f"role:{org}/{role}"))
        return [
            s
            for s in sources
            if may_see_grant(view, actor, principal, Grant(s.resource, s.level), now)
        ]


def roles_of(reader: Reader, actor: Actor, org: str) -> dict[str, tuple[Grant, ...]]:
    org = valid_org(org)
    now = reader.now()
    with reader.view() as view:
        require_reader(view, actor, org, now, f"list the roles of {org}")
        require_known_org(view, actor, org, now)
        return view.roles_of(org)


def service_accounts(
    reader: Reader, actor: Actor, org: str | None = None
) -> list[ServiceAccountView]:
    org = valid_org(org) if org is not None else None
    now = reader.now()
    with reader.view() as view:
        if org is not None:
            require_known_org(view, actor, org, now)
        return [a for a in view.service_accounts(org) if may_see_account(view, actor, a, now)]


def tokens_of(
    reader: Reader,
    actor: Actor,
    principal: str,
    *,
    include_inactive: bool = False,
    at: datetime | None = None,
) -> list[TokenView]:
    principal = valid(check_token_holder, principal)
    moment = reader.now() if at is None else within_log(reader, ensure_utc(at), "the moment")
    with reader.view() as view:
        require_principal_visible(view, actor, principal, reader.now())
        require_token_access(view, actor, principal, reader.now())
        if at is None:
            return _listed(view.tokens_of(principal), view, actor, moment, include_inactive)
    with view_at(reader.store, moment) as then:  # the tokens as they stood then
        return _listed(then.tokens_of(principal), then, actor, moment, include_inactive)


def _listed(
    tokens: Sequence[TokenView],
    view: StandingView,
    actor: Actor,
    moment: datetime,
    include_inactive: bool,
) -> list[TokenView]:
    shown = [t for t in tokens if (include_inactive or t.live(moment)) and may_see_token(actor, t)]
    return as_listed(shown, view)


def get_token(
    reader: Reader, actor: Actor, token_id: str, *, owner: str | None = None
) -> TokenView:
    """One token (never its secret), for whoever may see its principal's tokens; with
    ``owner``, only if it is that principal's (another's is not found)."""
    token_id = valid(check_token_id, token_id)
    with reader.view() as view:
        token = view.token(token_id)
        if token is None or owner not in (None, token.principal):
            raise NotFound(f"no token {token_id}" + (f" of {owner}" if owner else ""))
        now = reader.now()
        missing_unless_seen(
            view,
            actor,
            token.principal,
            lambda: require_token_access(view, actor, token.principal, now, token_id=token_id),
            f"no token {token_id}" + (f" of {owner}" if owner else ""),
        )
        if not may_see_token(actor, token):
            raise PermissionDenied(f"{actor.label} may not see {token_id}: it lies outside its org")
        return as_listed([token], view)[0]


def get_service_account(reader: Reader, actor: Actor, account_id: str) -> ServiceAccountView:
    """One service account (deleted ones included), if the actor may see it."""
    account_id = valid(check_service_account_id, account_id)
    with reader.view() as view:
        require_principal_visible(view, actor, account_id, reader.now())
        account = view.service_account(account_id)
        if account is None:
            raise NotFound(f"no service account {account_id}")
        if not may_see_account(view, actor, account, reader.now()):
            raise PermissionDenied(f"{actor.label} may not see {account_id}")
        return account


def client_credentials_of(
    reader: Reader, actor: Actor, account_id: str, *, include_inactive: bool = False
) -> list[ClientCredentialView]:
    """A service account's client credentials (never their secrets), seen like its tokens."""
    now = reader.now()

    def read(view: SqlLedgerView, account: str) -> list[ClientCredentialView]:
        return [credential_as_listed(cred, view) for cred in view.client_credentials_of(account)]

    found = _account_credentials(reader, actor, account_id, read)
    return [cred for cred in found if include_inactive or cred.live(now)]


def issuer_trusts_of(
    reader: Reader, actor: Actor, account_id: str, *, include_withdrawn: bool = False
) -> list[IssuerTrustView]:
    """A service account's issuer trusts, seen like its client credentials."""
    found = _account_credentials(reader, actor, account_id, SqlLedgerView.issuer_trusts_of)
    return [trust for trust in found if include_withdrawn or not trust.revoked]


def _account_credentials(
    reader: Reader,
    actor: Actor,
    account_id: str,
    read: Callable[[SqlLedgerView, str], Sequence[_T]],
) -> Sequence[_T]:
    """What a service account holds to obtain access tokens (its client credentials, its
    issuer trusts), for whoever may see its tokens."""
    account_id = valid(check_service_account_id, account_id)
    now = reader.now()
    with reader.view() as view:
        require_principal_visible(view, actor, account_id, now)
        require_token_access(view, actor, account_id, now)
        return read(view, account_id)


def get_session(reader: Reader, actor: Actor, session_id: str) -> SessionView:
    """One session, for whoever may see it (its user, an operator, its org's admins)."""
    session_id = valid(check_session_id, session_id)
    with reader.view() as view:
        session = view.session(session_id)
        if session is None:
            raise NotFound(f"no session {session_id}")
        if not may_see_session(view, actor, session, reader.now()):
            raise PermissionDenied(f"{actor.label} may not see the sessions of {session.principal}")
        return session


def sessions_of(
    reader: Reader, actor: Actor, principal: str, *, include_ended: bool = False
) -> list[SessionView]:
    """A user's sessions (never their refresh tokens), seen like their tokens (by an
    operator or the user), and by admins of the org each session was started in."""
    principal = valid(check_email, principal)
    now = reader.now()
    with reader.view() as view:
        require_principal_visible(view, actor, principal, now)
        found = [
            session
            for session in view.sessions_of(principal)
            if may_see_session(view, actor, session, now)
        ]
    return [s for s in found if include_ended or s.live(now)]


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a caller is, as ``GET /v2/whoami`` and ``auth status`` say: the principal, its
    org (a session's or a service account's), its roles as ``org:role``, and what it
    acts through (a token, or an access token's session or client)."""

    sub: str
    kind: str
    email: str | None
    org: str | None
    groups: tuple[str, ...]
    token_id: str | None
    session_id: str | None = None
    session_expires_at: datetime | None = None
    exp: datetime | None = None

    @property
    def namespace(self) -> str:
        return namespace_of(self.sub)

    @property
    def acl_subjects(self) -> list[str]:
        return acl_subjects(self.sub, self.org, self.groups)


def who_is(reader: Reader, actor: Actor) -> Identity:
    """The caller's own identity (anyone may ask who they are)."""
    via = actor.via
    session = None
    with reader.view() as view:
        if via is not None and via.session:
            session = view.session(via.source)
        scope = session.org if session is not None else None
        groups = groups_of(view, actor.principal, scope)
        if is_service_account_id(actor.principal):
            org: str | None = service_account_org(actor.principal)
        elif is_role_principal(actor.principal):
            org = role_of_principal(actor.principal)[0]
        else:
            orgs = sorted(view.memberships(actor.principal))
            # A session's org; else the user's org when there is only one to name.
            org = scope if scope is not None else orgs[0] if len(orgs) == 1 else None
        if via is None and actor.token_id is not None:
            token = view.token(actor.token_id)
            expires = token.expires_at if token is not None else None
        else:
            expires = via.expires_at if via is not None else None
    return Identity(
        sub=actor.principal,
        kind=actor.kind.value,
        email=None if is_machine_principal(actor.principal) else actor.principal,
        org=org,
        groups=groups,
        token_id=via.jti if via is not None else actor.token_id,
        session_id=session.session_id if session is not None else None,
        session_expires_at=session.expires_at if session is not None else None,
        exp=expires,
    )


def _source(grant: Grant, source: str) -> GrantSource:
    return GrantSource(resource=grant.resource, level=grant.level, source=source)
