"""Authority: what a token allows now, and what an actor may do. Every rule, once.

Two questions are answered here and nowhere else:

* **The token answer** (``answer_token``): a token is usable only while it is
  live (not revoked, not expired) and its principal is active, and it then
  allows, on any path, the lower of its own grant there and what its principal
  may do there *now*. Lowering a user's grant narrows their tokens at once,
  without revoking them (Element's scopes, GitHub's fine-grained tokens).
  Verification, introspection (ledger tokens and access tokens alike),
  authenticating a caller, time travel and every decision call it.
* **May this actor do this to this target**: the ``require_*`` and ``may_*``
  functions below, for commands (called by ``decide``) and for queries (called
  by the service's readers). The CLI and the HTTP API only call the service.

The table of operations and actor kinds these rules produce is in
``docs/permissions.md``; the permission matrix test reads that table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

import msgspec

from tokenledger.domain.model import (
    AccessVia,
    Actor,
    ActorKind,
    ClientCredentialView,
    IssuerTrustView,
    LedgerView,
    SecretView,
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
from tokenledger.domain.names import is_account_id, is_loopback_url, is_webhook_id
from tokenledger.domain.permissions import Grant, Level, level_at, org_of
from tokenledger.domain.secrets import TokenKind, hash_secret, parse_secret
from tokenledger.errors import NotFound, PermissionDenied, ValidationError

__all__ = [
    "BY_OPERATOR",
    "PERMISSION_SOURCE",
    "GrantPath",
    "ServiceAccountLimit",
    "TokenAnswer",
    "Verification",
    "access_token_view",
    "account_active",
    "account_suspended",
    "acting_token",
    "actor_level",
    "admitting_trust",
    "answer_token",
    "as_listed",
    "as_seen_by",
    "authorise_issue",
    "authorise_issuer",
    "authorise_lifting",
    "authorise_log_check",
    "authorise_org_policy",
    "authorise_provider_setting",
    "authorise_resource_attributes",
    "authorise_role_management",
    "authorise_session_management",
    "authorise_token_management",
    "authorise_token_window",
    "authorise_webhook_management",
    "authorise_who_can",
    "client_credential_refusal",
    "credential_as_listed",
    "event_orgs",
    "forbid_service_accounts",
    "groups_of",
    "judge_token",
    "may",
    "may_see",
    "may_see_account",
    "may_see_event",
    "may_see_grant",
    "may_see_session",
    "may_see_token",
    "missing_unless_seen",
    "principal_grants",
    "reached_orgs",
    "refuse_service_account",
    "require_account_visible",
    "require_derivable",
    "require_known_org",
    "require_level",
    "require_login",
    "require_operator",
    "require_principal_visible",
    "require_reader",
    "require_remote_issuer",
    "require_remote_receiver",
    "require_token_access",
    "require_user_creator",
    "sees_every_event",
    "session_grants",
    "standing",
    "standing_paths",
    "subject_matches",
    "suspender",
    "token_orgs",
    "verify_token",
    "webhook_orgs",
    "within_session",
]


# -- the token answer ------------------------------------------------------------------


class Verification(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer in RFC 7662 vocabulary, plus ``allowed`` and a ``reason`` for a no."""

    active: bool
    allowed: bool
    reason: str | None = None
    token_id: str | None = None
    sub: str | None = None
    token_type: str | None = None
    iat: int | None = None
    exp: int | None = None
    scope: str | None = None
    grants: tuple[Grant, ...] = ()
    resource: str | None = None
    level: str | None = None


class TokenAnswer(NamedTuple):
    """Whether a token is usable now (``reason`` None) and, if so, what it allows."""

    token: TokenView | None
    reason: str | None
    current: tuple[Grant, ...]

    @property
    def usable(self) -> bool:
        return self.reason is None

    def level_on(self, path: str) -> Level:
        """The lower of the token's grant on ``path`` and its principal's grant there now."""
        if self.reason is not None or self.token is None:
            return Level.NONE
        by_token = level_at(self.token.grants, path)
        if by_token is Level.NONE:
            return Level.NONE
        return min(by_token, level_at(self.current, path))

    def effective_grants(self) -> tuple[Grant, ...]:
        """Each of the token's grants lowered to its level now; those left at none dropped."""
        if self.reason is not None or self.token is None:
            return ()
        effective = []
        for grant in self.token.grants:
            level = min(grant.rank, level_at(self.current, grant.resource))
            if level is not Level.NONE:
                effective.append(Grant(grant.resource, level.label))
        return tuple(effective)

    def verification(self, resource: str | None = None, level: Level = Level.READ) -> Verification:
        """The answer as ``verify`` and introspection give it."""
        token = self.token
        if token is None:
            return Verification(active=False, allowed=False, reason=self.reason)
        if self.reason is not None:
            return Verification(
                active=False, allowed=False, reason=self.reason, token_id=token.token_id
            )
        effective = self.effective_grants()
        allowed = resource is None or self.level_on(resource) >= level
        return Verification(
            active=True,
            allowed=allowed,
            reason=None if allowed else "not_allowed",
            token_id=token.token_id,
            sub=token.principal,
            token_type=token.kind,
            iat=int(token.issued_at.timestamp()),
            exp=int(token.expires_at.timestamp()) if token.expires_at else None,
            scope=" ".join([str(grant) for grant in effective]),
            grants=effective,
            resource=resource,
            level=level.label if resource is not None else None,
        )


def answer_token(
    token: TokenView | None,
    current: tuple[Grant, ...] | None,
    now: datetime,
    *,
    suspended: bool = False,
) -> TokenAnswer:
    """THE rule: is ``token`` usable at ``now``, given what its principal may do now
    (``current``; None once the principal is disabled, deleted or unknown) and whether its
    principal is suspended (``suspended``: a service account disabled for now)?

    Every way a token is judged comes here: ``verify``, ``tokens verify --at``,
    introspection of ledger tokens and of access tokens, authenticating a caller,
    and the acting token of every decision (``judge_token`` finds what it needs).
    A revocation and an expiry come first: enabling a token never brings it back.
    """
    if token is None:
        return TokenAnswer(None, "unknown", ())
    if token.revoked_at is not None:
        return TokenAnswer(token, "revoked", ())
    if token.expires_at is not None and token.expires_at <= now:
        return TokenAnswer(token, "expired", ())
    if token.disabled_at is not None or suspended:
        return TokenAnswer(token, "disabled", ())
    if current is None:
        return TokenAnswer(token, "principal_disabled", ())
    if token.kind == _ROLE_KEY:
        # A role key holds no grants of its own: it may do what its role grants now.
        token = msgspec.structs.replace(token, grants=current)
    return TokenAnswer(token, None, current)


#: The kind of a role's keys, read once: every token answer compares it.
_ROLE_KEY = TokenKind.ROLE.value


class GrantPath(NamedTuple):
    """One grant a principal holds and where it comes from: ``direct``, ``role:<org>/<name>``
    (a membership's role, or the role a role key acts as) or ``service account permission``."""

    grant: Grant
    source: str


#: Where a service account's one grant comes from.
PERMISSION_SOURCE = "service account permission"


def standing_paths(view: StandingView, principal: str) -> tuple[GrantPath, ...] | None:
    """Everything the principal may do now, each grant with where it comes from; None once
    it is disabled (a service account: suspended), deleted or unknown."""
    if is_service_account_id(principal):
        account = view.service_account(principal)
        if not account_active(account):
            return None
        assert account is not None  # account_active says so
        return (GrantPath(account.permission, PERMISSION_SOURCE),)
    if is_role_principal(principal):
        org, name = role_of_principal(principal)
        grants = view.role(org, name)  # None once the role is deleted
        source = f"role:{org}/{name}"
        return None if grants is None else tuple(GrantPath(g, source) for g in grants)
    user = view.user(principal)
    if user is None or user.disabled:
        return None
    paths = [GrantPath(grant, "direct") for grant in view.direct_grants(principal)]
    for org, member_role in view.memberships(principal).items():
        source = f"role:{org}/{member_role}"
        paths.extend(GrantPath(grant, source) for grant in view.role(org, member_role) or ())
    return tuple(paths)


def standing(view: StandingView, principal: str) -> tuple[Grant, ...] | None:
    """Everything the principal may do now; None once it is disabled (a service account:
    suspended), deleted or unknown (``standing_paths`` without the paths)."""
    paths = standing_paths(view, principal)
    return None if paths is None else tuple(path.grant for path in paths)


def account_active(account: ServiceAccountView | None) -> bool:
    """Whether a service account acts at all: it exists, is not deleted and not suspended.
    Everything that lets an account act (its tokens, client credentials, exchanged and S3
    credentials) asks this, directly or through ``standing``."""
    return account is not None and not account.deleted and account.disabled_at is None


def account_suspended(view: StandingView, principal: str) -> bool:
    """Whether ``principal`` is a service account that exists and is suspended."""
    if not is_service_account_id(principal):
        return False
    account = view.service_account(principal)
    return account is not None and not account.deleted and account.disabled_at is not None


def judge_token(view: StandingView, token: TokenView | None, now: datetime) -> TokenAnswer:
    """``answer_token`` for ``token``, with its principal's standing and suspension read
    from ``view`` (the suspension only when the standing says the principal acts not)."""
    if token is None:
        return answer_token(None, None, now)
    current = standing(view, token.principal)
    suspended = current is None and account_suspended(view, token.principal)
    return answer_token(token, current, now, suspended=suspended)


def client_credential_refusal(
    credential: ClientCredentialView, account: ServiceAccountView | None, now: datetime
) -> str | None:
    """THE rule for a client credential obtaining access tokens: None when it may, else why
    not (``revoked``, ``expired``, ``disabled``: it or its account is suspended, or
    ``principal_disabled``: its account is deleted)."""
    if credential.revoked:
        return "revoked"
    if credential.expired(now):
        return "expired"
    if credential.disabled_at is not None or (account is not None and account.disabled):
        return "disabled"
    if not account_active(account):
        return "principal_disabled"
    return None


def principal_grants(view: StandingView, principal: str) -> tuple[Grant, ...]:
    """Everything the principal may do now: nothing at all once disabled or deleted."""
    return standing(view, principal) or ()


def verify_token(
    view: StandingView,
    token: TokenView | None,
    now: datetime,
    *,
    resource: str | None = None,
    level: Level = Level.READ,
) -> Verification:
    """The answer for a token already looked up by its secret's hash (None: no such token)."""
    return judge_token(view, token, now).verification(resource, level)


def verify_secret(
    view: SecretView,
    secret: str,
    now: datetime,
    *,
    resource: str | None = None,
    level: Level = Level.READ,
) -> Verification:
    """The answer for a presented secret: ``malformed`` unless it has a secret's shape,
    otherwise ``verify_token`` for the token its hash names (``resource`` already checked)."""
    try:
        parse_secret(secret)
    except ValidationError:
        return Verification(active=False, allowed=False, reason="malformed")
    token = view.token_by_secret_hash(hash_secret(secret))
    return verify_token(view, token, now, resource=resource, level=level)


# -- who acts ------------------------------------------------------------------------


def acting_token(view: LedgerView, actor: Actor, now: datetime) -> TokenView | None:
    """The usable token a principal acts through: None for the operator, and None when the
    token is unknown, someone else's, revoked or expired, or its principal is inactive.

    Decisions call this under the write lock, so a token revoked after the caller was
    authenticated acts no more.
    """
    answer = _acting_answer(view, actor, now)
    return answer.token if answer is not None and answer.usable else None


def _acting_answer(view: LedgerView, actor: Actor, now: datetime) -> TokenAnswer | None:
    if actor.kind is ActorKind.OPERATOR or actor.token_id is None:
        return None
    if actor.via is not None:
        token = access_token_view(view, actor.principal, actor.via)
    else:
        token = view.token(actor.token_id)
    if token is None or token.principal != actor.principal:
        return None
    return judge_token(view, token, now)


# -- signed access tokens ------------------------------------------------------------------


def access_token_view(view: LedgerView, principal: str, via: AccessVia) -> TokenView | None:
    """A signed access token (JWT) as the token it amounts to, for ``answer_token``: it
    carries the grants it was signed with, and lives while what obtained it lives (a
    session, a client credential or an issuer trust) and until its own expiry. None when
    its source is unknown or another principal's."""
    source = _access_source(view, via.source)
    if source is None or source[0] != principal:
        return None
    _, expires_at, revoked_at, revoked_reason, disabled_at = source
    if expires_at is None or via.expires_at < expires_at:
        expires_at = via.expires_at
    return TokenView(
        token_id=via.jti,
        principal=principal,
        kind="access_token",
        grants=via.grants,
        name=None,
        issued_at=via.issued_at,
        parent_id=None,
        expires_at=expires_at,
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
        disabled_at=disabled_at,
    )


_Window = tuple[str, datetime | None, datetime | None, str | None, datetime | None]


def _access_source(view: LedgerView, source: str) -> _Window | None:
    """(owner, expiry, revocation, reason, suspension) of what obtained an access token."""
    kind, _, _ = source.partition("_")
    found: SessionView | IssuerTrustView | None
    if kind == "ses":
        found = view.session(source)
        return None if found is None else _window(found.principal, found)
    if kind == "wif":
        found = view.issuer_trust(source)
        return None if found is None else _window(found.account_id, found)
    if kind == "cid":
        credential = view.client_credential(source)
        return None if credential is None else _window(credential.account_id, credential)
    return None


def _window(
    owner: str, credential: SessionView | IssuerTrustView | ClientCredentialView
) -> _Window:
    return (
        owner,
        credential.expires_at,
        credential.revoked_at,
        credential.revoked_reason,
        credential.disabled_at,
    )


def session_grants(view: LedgerView, principal: str, org: str) -> tuple[Grant, ...]:
    """What a session's access tokens are signed with: the user's grants inside the org
    whose provider vouched for them (a login through one org's provider reaches no other
    org), one per resource, the highest."""
    best: dict[str, Grant] = {}
    for grant in standing(view, principal) or ():
        if org_of(grant.resource) != org:
            continue
        if grant.resource not in best or grant.rank > best[grant.resource].rank:
            best[grant.resource] = grant
    return tuple(sorted(best.values()))


def within_session(actor: Actor, orgs: Iterable[str]) -> bool:
    """Whether what lies in ``orgs`` is within the actor's reach as *itself*. A session
    counts as its user only inside the org whose provider vouched for it: another org's
    admin who adds the user and points their own org at a provider they control must not
    reach the user's tokens, grants, sessions or history elsewhere. Any other actor: always."""
    via = actor.via
    if via is None or not via.session:
        return True
    found = set(orgs)
    return bool(found) and found <= {via.org}


def token_orgs(token: TokenView) -> frozenset[str]:
    """The orgs a token reaches: a service account's, or those of a user token's grants."""
    return reached_orgs(token.principal, token.grants)


def reached_orgs(principal: str, grants: Iterable[Grant]) -> frozenset[str]:
    """The orgs a token of ``principal`` with ``grants`` reaches (``token_orgs``, asked of a
    token about to be issued too)."""
    if is_service_account_id(principal):
        return frozenset({service_account_org(principal)})
    if is_role_principal(principal):
        return frozenset({role_of_principal(principal)[0]})
    return frozenset(org_of(grant.resource) for grant in grants)


def admitting_trust(
    trusts: Iterable[IssuerTrustView], issuer: str, subject: str, audiences: Sequence[str]
) -> IssuerTrustView | None:
    """The trust in force that lets an external ID token (already checked against its
    issuer's keys) act as the trusting service account: same issuer, a subject its
    pattern matches, an audience it names. None: the token obtains nothing."""
    for trust in sorted(trusts, key=lambda t: t.trust_id):
        if (
            not trust.revoked
            and trust.issuer == issuer
            and trust.audience in audiences
            and subject_matches(trust.subject, subject)
        ):
            return trust
    return None


def groups_of(view: LedgerView, principal: str, org: str | None = None) -> tuple[str, ...]:
    """A principal's roles as ``org:role`` (inside ``org`` only, when given: a session's
    org); a service account holds none."""
    if is_service_account_id(principal):
        return ()
    return tuple(
        f"{name}:{role}"
        for name, role in sorted(view.memberships(principal).items())
        if org is None or name == org
    )


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether an external ID token's subject is one a trust names: ``*`` stands for any
    run of characters (none included), every other character for itself."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return subject == pattern
    if not subject.startswith(parts[0]) or not subject.endswith(parts[-1]):
        return False
    position = len(parts[0])
    end = len(subject) - len(parts[-1])
    if end < position:
        return False
    for part in parts[1:-1]:
        found = subject.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


def actor_level(view: LedgerView, actor: Actor, path: str, now: datetime) -> Level:
    """The operator may do anything; anyone else as much as the token they act through."""
    if actor.kind is ActorKind.OPERATOR:
        return Level.ADMIN
    answer = _acting_answer(view, actor, now)
    return Level.NONE if answer is None else answer.level_on(path)


def may(view: LedgerView, actor: Actor, path: str, level: Level, now: datetime) -> bool:
    return actor_level(view, actor, path, now) >= level


def require_level(
    view: LedgerView, actor: Actor, path: str, level: Level, now: datetime, action: str
) -> None:
    if actor_level(view, actor, path, now) < level:
        raise PermissionDenied(f"{actor.label} may not {action}: it needs {level.label} on {path}")


def require_operator(actor: Actor, action: str) -> None:
    if actor.kind is not ActorKind.OPERATOR:
        raise PermissionDenied(f"only an operator may {action}")


def forbid_service_accounts(actor: Actor, action: str) -> None:
    """What only people (and the operator) do: a service account's or a role's key is a
    machine's credential."""
    if _is_machine(actor):
        raise PermissionDenied(f"a {actor.kind.value.replace('_', ' ')} may not {action}")


def _is_machine(actor: Actor) -> bool:
    """A service account's credential or a role's key: what many people or a machine hold."""
    return actor.kind is ActorKind.SERVICE_ACCOUNT or actor.kind is ActorKind.ROLE_KEY


# -- roles ----------------------------------------------------------------------------------


def authorise_role_management(
    view: LedgerView, actor: Actor, org: str, now: datetime, action: str | None = None
) -> None:
    """Creating and deleting an org's roles, changing their policies, and issuing, listing
    and revoking their keys: a person with admin on the org, or an operator."""
    refuse_service_account(actor, ServiceAccountLimit.MANAGE_ROLES)
    require_level(view, actor, org, Level.ADMIN, now, action or f"manage roles of {org}")


def authorise_org_policy(
    view: LedgerView, actor: Actor, org: str, now: datetime, action: str
) -> None:
    """Setting, clearing and reading an org's token policy: a person with admin on the org,
    or an operator; never a service account or a role key, whose own tokens it bounds."""
    forbid_service_accounts(actor, f"{action} (org policies are for the org's admins)")
    require_level(view, actor, org, Level.ADMIN, now, action)


# -- what a service account may never do ---------------------------------------------------


class ServiceAccountLimit(StrEnum):
    """What no service account may do, whatever its permission and whichever of its
    credentials it acts through (a token, an access token from a client credential or an
    exchange): Aruna's limits, which keep its endpoints, authorisation, users and licenses
    out of reach of an account that many people or a machine may hold. The value is what
    the refusal says the account may not do."""

    MANAGE_ENDPOINTS = "manage endpoints"
    MANAGE_GRANTS = "manage grants"
    MANAGE_ROLES = "manage roles"
    MANAGE_USERS = "manage users"
    CHANGE_LICENSES = "change licenses or data classes"
    MANAGE_WEBHOOKS = "manage webhooks"


def refuse_service_account(actor: Actor, limit: ServiceAccountLimit | str) -> None:
    """THE rule of the limits: a service account is refused whatever it holds (admin on its
    project included), and so is a role's key, the other machine credential; a person and
    the operator pass on to the command's own rule.

    ``limit`` is one of ``ServiceAccountLimit`` or its text (``"manage endpoints"``); any
    other text is a mistake in the caller and raises ``ValueError``, never a quiet pass."""
    named = ServiceAccountLimit(limit)
    if actor.kind is ActorKind.SERVICE_ACCOUNT:
        raise PermissionDenied(f"service accounts may not {named}")
    if _is_machine(actor):
        raise PermissionDenied(f"a role key may not {named}")


def authorise_resource_attributes(view: LedgerView, actor: Actor, path: str, now: datetime) -> None:
    """Setting a resource's license or data class: never a service account; otherwise whoever
    administers the resource (admin on it or above it), as for deleting it."""
    refuse_service_account(actor, ServiceAccountLimit.CHANGE_LICENSES)
    require_level(view, actor, path, Level.ADMIN, now, f"set the license and data class of {path}")


# -- commands on people -------------------------------------------------------------------


def authorise_provider_setting(
    view: LedgerView, actor: Actor, org: str, issuer: str, now: datetime
) -> None:
    """Setting an org's identity provider (and keeping its client secret): a person with
    admin on the org, or an operator. Whoever controls the provider controls who logs in."""
    forbid_service_accounts(actor, "set an org's identity provider")
    require_level(view, actor, org, Level.ADMIN, now, f"set the identity provider of {org}")
    require_remote_issuer(actor, issuer)


def require_remote_issuer(actor: Actor, issuer: str) -> None:
    """An issuer on this machine (a development provider on plain http) is the operator's to
    name: anyone else could make the server send requests to its own ports."""
    if actor.kind is not ActorKind.OPERATOR and is_loopback_url(issuer):
        raise PermissionDenied(
            f"only an operator may name an issuer on this machine ({issuer}): use its https address"
        )


def require_login(actor: Actor, principal: str) -> None:
    """Starting or refreshing a session is done by the service for the user a provider
    vouched for (or whose refresh token was presented), never by a token or an operator."""
    if actor.kind is not ActorKind.USER or actor.token_id is not None:
        raise PermissionDenied("a session is started and refreshed only by logging in")
    if actor.principal != principal:
        raise PermissionDenied(f"{actor.label} may not act on another user's session")


def authorise_session_management(
    view: LedgerView, actor: Actor, session: SessionView, now: datetime
) -> None:
    """Ending a session: whoever may see it (``may_see_session``): an operator, its own user
    (logging out), or an admin of the org it was started in."""
    if not may_see_session(view, actor, session, now):
        raise PermissionDenied(
            f"{actor.label} may not end the sessions of {session.principal}: it needs admin "
            f"on {session.org}"
        )


def require_user_creator(view: LedgerView, actor: Actor, now: datetime) -> None:
    """Users are created by the operator and by a person acting as an admin of some org (who
    then adds them to it); never by a service account."""
    refuse_service_account(actor, ServiceAccountLimit.MANAGE_USERS)
    if actor.kind is ActorKind.OPERATOR:
        return
    if not any(
        actor_level(view, actor, org, now) >= Level.ADMIN
        for org in view.memberships(actor.principal)
    ):
        raise PermissionDenied(f"{actor.label} may not create users: it is no org's admin")


# -- commands on tokens -----------------------------------------------------------------


def authorise_issue(
    view: LedgerView, actor: Actor, principal: str, grants: Sequence[Grant], now: datetime
) -> None:
    """``authorise_issuer`` (which the decision asks first), then never above the acting
    token's own effective level, grant by grant."""
    if actor.kind is ActorKind.OPERATOR:
        return
    for grant in grants:
        if actor_level(view, actor, grant.resource, now) < grant.rank:
            raise PermissionDenied(
                f"{actor.label} may not issue a token with {grant}: it exceeds the acting token"
            )


def authorise_issuer(view: LedgerView, actor: Actor, principal: str, now: datetime) -> None:
    """Who may issue tokens for ``principal`` at all: an operator; the principal itself; or a
    person with admin on a service account's project. Asked before anything about the
    principal's own permission is looked at, so that a refusal tells nothing of it."""
    if actor.kind is ActorKind.OPERATOR:
        return
    if actor.via is not None and not actor.via.session:
        # What a client credential or an exchange obtained lives an hour and dies with its
        # source; a ledger token minted through it would outlive both.
        raise PermissionDenied(
            f"{actor.label} acts through an access token of {actor.via.source}: it may not "
            "issue tokens, which would outlive it"
        )
    if actor.principal != principal:
        _require_account_admin(view, actor, principal, now, f"issue tokens for {principal}")


def _require_account_admin(
    view: LedgerView, actor: Actor, principal: str, now: datetime, action: str
) -> None:
    """Another principal's tokens and credentials are a person's business, and only for a
    service account whose project that person administers (a user's are their own)."""
    forbid_service_accounts(actor, action)
    account = view.service_account(principal) if is_service_account_id(principal) else None
    if account is None:
        raise PermissionDenied(f"{actor.label} may not {action}")
    require_level(view, actor, account.permission.resource, Level.ADMIN, now, action)


def require_derivable(view: LedgerView, actor: Actor, parent: TokenView, now: datetime) -> None:
    """A token derives only from the token its caller acts through or from that token's own
    descendants, so that whatever it mints is revoked with it and never outlives it."""
    if actor.kind is ActorKind.OPERATOR:
        return
    acting = acting_token(view, actor, now)
    if acting is None or not _descends_from(view, parent, acting.token_id):
        raise PermissionDenied(
            f"{actor.label} may derive only from the token it acts through or its descendants, "
            f"not from {parent.token_id}"
        )


def _descends_from(view: LedgerView, token: TokenView, ancestor_id: str) -> bool:
    seen: set[str] = set()
    current: TokenView | None = token
    while current is not None and current.token_id not in seen:
        if current.token_id == ancestor_id:
            return True
        seen.add(current.token_id)
        current = view.token(current.parent_id) if current.parent_id else None
    return False


def authorise_token_management(
    view: LedgerView,
    actor: Actor,
    principal: str,
    now: datetime,
    orgs: Iterable[str] = (),
    *,
    token_id: str | None = None,
) -> None:
    """Revoking a principal's tokens or credentials (reaching ``orgs``; ``token_id``: one of
    them): an operator, the principal itself through a usable token of its own (a session:
    inside its org), or a person with admin on a service account's project (never another
    service account). A role's keys are its managers' (``_require_role_key_access``)."""
    if actor.kind is ActorKind.OPERATOR:
        return
    if is_role_principal(principal):
        _require_role_key_access(view, actor, principal, token_id, now, "manage")
        return
    if actor.principal == principal and within_session(actor, orgs):
        if acting_token(view, actor, now) is None:
            raise PermissionDenied(
                f"{actor.label} may not manage its tokens: it acts through no live token"
            )
        return
    _require_account_admin(view, actor, principal, now, f"manage the tokens of {principal}")


# -- suspension ---------------------------------------------------------------------------

#: Who a suspension is recorded as made by when the operator made it.
BY_OPERATOR = "operator"


def suspender(actor: Actor) -> str:
    """Who a suspension is recorded as made by: ``operator``, or the acting principal."""
    return BY_OPERATOR if actor.kind is ActorKind.OPERATOR else actor.principal


def authorise_lifting(
    view: LedgerView,
    actor: Actor,
    principal: str,
    disabled_by: str | None,
    grants: Sequence[Grant],
    now: datetime,
) -> None:
    """Enabling a suspended token, client credential or service account of ``principal``
    (whoever may revoke it asked first): a person's act, never a machine credential's, which
    must not bring back what a person suspended (its own siblings included). What the
    operator suspended only the operator lifts; what someone else suspended, the principal
    itself does not lift (its admins do); and nobody lifts more than it holds: each of
    ``grants`` within the acting token's own level."""
    if actor.kind is ActorKind.OPERATOR:
        return
    forbid_service_accounts(actor, "enable credentials: a suspension is lifted by a person")
    if disabled_by == BY_OPERATOR:
        raise PermissionDenied(f"{actor.label} may not lift a suspension an operator made")
    if actor.principal == principal and disabled_by not in (None, principal):
        raise PermissionDenied(
            f"{actor.label} may not lift a suspension {disabled_by} made: an admin of it may"
        )
    for grant in grants:
        if actor_level(view, actor, grant.resource, now) < grant.rank:
            raise PermissionDenied(
                f"{actor.label} may not enable what holds {grant}: it exceeds the acting token"
            )


def as_listed(tokens: Iterable[TokenView], view: StandingView) -> list[TokenView]:
    """Tokens as listings show them: one of a suspended service account is shown disabled
    with its account (``disabled_cause``: the account's id), since the account's suspension,
    as its answer says; any other is shown as it is. Each account is looked up once: a
    listing may hold an account's 100,000 tokens."""
    accounts: dict[str, ServiceAccountView | None] = {}
    shown: list[TokenView] = []
    for token in tokens:
        principal = token.principal
        if token.disabled_at is None and is_service_account_id(principal):
            if principal not in accounts:
                accounts[principal] = view.service_account(principal)
            account = accounts[principal]
            if account is not None and not account.deleted and account.disabled_at is not None:
                token = msgspec.structs.replace(
                    token,
                    disabled_at=account.disabled_at,
                    disabled_by=account.disabled_by,
                    disabled_cause=account.account_id,
                )
        shown.append(token)
    return shown


def credential_as_listed(
    credential: ClientCredentialView, view: LedgerView
) -> ClientCredentialView:
    """A client credential as listings show it: disabled while its account is suspended."""
    if credential.disabled_at is not None or not account_suspended(view, credential.account_id):
        return credential
    account = view.service_account(credential.account_id)
    assert account is not None  # account_suspended found it
    return msgspec.structs.replace(
        credential, disabled_at=account.disabled_at, disabled_by=account.disabled_by
    )


# -- queries ------------------------------------------------------------------------------


def may_see(view: LedgerView, actor: Actor, path: str, now: datetime) -> bool:
    """An org or resource (and what a listing shows of it) is seen by whoever may read it."""
    return may(view, actor, path, Level.READ, now)


def require_reader(view: LedgerView, actor: Actor, path: str, now: datetime, action: str) -> None:
    """An org's members, users and roles are listed by whoever may read the whole org."""
    require_level(view, actor, path, Level.READ, now, action)


def require_known_org(view: LedgerView, actor: Actor, org: str, now: datetime) -> None:
    """``NotFound`` for a missing org, said only to whoever may read it: to anyone else a
    missing org looks like one of which they may see nothing."""
    if not view.org_exists(org) and may_see(view, actor, org, now):
        raise NotFound(f"no org {org}")


def require_token_access(
    view: LedgerView, actor: Actor, principal: str, now: datetime, *, token_id: str | None = None
) -> None:
    """Seeing a principal's tokens and credentials (list, get, explain): an operator, the
    principal itself, or a person with admin on a service account's project (never another
    service account, as for managing them)."""
    if actor.kind is ActorKind.OPERATOR:
        return
    if is_role_principal(principal):
        _require_role_key_access(view, actor, principal, token_id, now, "see")
        return
    if actor.principal == principal:
        return
    _require_account_admin(view, actor, principal, now, f"see the tokens of {principal}")


def missing_unless_seen(
    view: LedgerView,
    actor: Actor,
    principal: str,
    check: Callable[[], None],
    missing: str,
) -> None:
    """Run ``check`` (seeing or managing a credential named by its id) and, when it refuses
    an actor that shares no org with the credential's principal, answer ``NotFound(missing)``
    as for an id that does not exist: the refusal would tell another org that the id exists
    and whose it is. An actor of the principal's org is told why it is refused."""
    try:
        check()
    except PermissionDenied:
        if not _orgs_of(view, actor.principal) & _orgs_of(view, principal):
            raise NotFound(missing) from None
        raise


def _orgs_of(view: LedgerView, principal: str) -> set[str]:
    """The orgs a principal belongs to: a service account's or role's one, a user's
    memberships."""
    if is_machine_principal(principal):
        return {_machine_org(principal)}
    return set(view.memberships(principal))


def authorise_who_can(view: LedgerView, actor: Actor, resource: str, now: datetime) -> None:
    """Who could act on a resource (``audit who-can``) is seen as the audit trail of its org
    is: by an operator and whoever may read the whole org (its admins and auditors)."""
    require_reader(view, actor, org_of(resource), now, f"see who can act on {resource}")


def authorise_token_window(
    view: LedgerView,
    actor: Actor,
    principal: str | None,
    resource: str | None,
    now: datetime,
) -> None:
    """Which tokens were usable during a window (``tokens live``): a principal's are seen as
    its token list is (``require_token_access``), those on a resource as who could act on
    it is (``authorise_who_can``); every token of the ledger only by an operator."""
    if principal is not None:
        require_principal_visible(view, actor, principal, now)
        require_token_access(view, actor, principal, now)
    if resource is not None:
        authorise_who_can(view, actor, resource, now)
    if principal is None and resource is None:
        require_operator(
            actor, "see every token usable during a window: give a principal or a resource"
        )


def _require_role_key_access(
    view: LedgerView, actor: Actor, role: str, token_id: str | None, now: datetime, verb: str
) -> None:
    """Every key of a role has the role as its principal, so "the principal itself" would
    let one key see and revoke its siblings: a key reaches only itself; the role's keys
    are otherwise its managers' (the org's admins), as issuing them is."""
    if token_id is not None and actor.token_id == token_id:
        return
    org, name = role_of_principal(role)
    authorise_role_management(view, actor, org, now, f"{verb} the keys of role {name} of {org}")


def as_seen_by(view: LedgerView, actor: Actor, token: TokenView, now: datetime) -> TokenView | None:
    """``token`` as shown to ``actor``: whole to whoever may see its principal's tokens
    (``require_token_access``), unless it is that principal acting through a session of
    another org (``may_see_token``: then not at all, None); to anyone else (a reader of an
    org, shown which tokens could act on its resources) with only its grants on what the
    actor may read, so that another org's resources are never named to it."""
    try:
        require_token_access(view, actor, token.principal, now, token_id=token.token_id)
    except (PermissionDenied, NotFound):
        seen = tuple(g for g in token.grants if may_see(view, actor, g.resource, now))
        return msgspec.structs.replace(token, grants=seen)
    return token if may_see_token(actor, token) else None


def may_see_account(
    view: LedgerView, actor: Actor, account: ServiceAccountView, now: datetime
) -> bool:
    """A service account is seen by itself and by whoever may read its project."""
    return actor.principal == account.account_id or may(
        view, actor, account.permission.resource, Level.READ, now
    )


def may_see_session(view: LedgerView, actor: Actor, session: SessionView, now: datetime) -> bool:
    """A session is seen by an operator, its user, and admins of the org it was started in
    (who may end it)."""
    return (
        actor.kind is ActorKind.OPERATOR
        or (actor.principal == session.principal and within_session(actor, (session.org,)))
        or (actor.kind is ActorKind.USER and may(view, actor, session.org, Level.ADMIN, now))
    )


def may_see_grant(
    view: LedgerView, actor: Actor, principal: str, grant: Grant, now: datetime
) -> bool:
    """A principal's grant is seen by an operator, the principal, and admins of its resource."""
    return (
        actor.kind is ActorKind.OPERATOR
        or (actor.principal == principal and within_session(actor, (org_of(grant.resource),)))
        or may(view, actor, grant.resource, Level.ADMIN, now)
    )


def may_see_token(actor: Actor, token: TokenView) -> bool:
    """Among a principal's tokens (once ``require_token_access`` let the actor see them), a
    session of that principal sees only those inside its org."""
    return actor.principal != token.principal or within_session(actor, token_orgs(token))


def require_principal_visible(
    view: LedgerView, actor: Actor, principal: str, now: datetime
) -> None:
    """``NotFound`` for a missing principal only to whoever could see it if it existed: an
    operator, the principal itself, readers of a service account's or a role's org, and
    readers of an org a user belongs to. Anyone else is refused alike whether it exists or
    not, so that a token cannot tell another org's users and accounts from missing ones."""
    if actor.kind is ActorKind.OPERATOR or actor.principal == principal:
        if not _exists(view, principal):
            raise NotFound(f"no {_kind(principal)} {principal}")
        return
    if is_machine_principal(principal):
        if may(view, actor, _machine_org(principal), Level.READ, now):
            if not _exists(view, principal):
                raise NotFound(f"no {_kind(principal)} {principal}")
            return
    elif any(may(view, actor, org, Level.READ, now) for org in view.memberships(principal)):
        return
    raise PermissionDenied(f"{actor.label} may not see {principal}")


def require_account_visible(
    view: LedgerView, actor: Actor, account_id: str, user: UserView | None, now: datetime
) -> None:
    """A Dyff account id (``user``: the user it names, None when it names nobody) is seen as
    that user is (``require_principal_visible``); ``NotFound`` for an unknown id only to an
    operator, and a refusal names the id, never the email behind it."""
    if user is not None:
        try:
            require_principal_visible(view, actor, user.email, now)
        except PermissionDenied:
            pass
        else:
            return
    elif actor.kind is ActorKind.OPERATOR:
        raise NotFound(f"no account {account_id}")
    raise PermissionDenied(f"{actor.label} may not see {account_id}")


def _exists(view: LedgerView, principal: str) -> bool:
    if is_service_account_id(principal):
        return view.service_account(principal) is not None
    if is_role_principal(principal):
        # A role deleted since still names the keys it had: their story stays askable.
        return view.role(*role_of_principal(principal)) is not None or bool(
            view.tokens_of(principal)
        )
    return view.user(principal) is not None


def _machine_org(principal: str) -> str:
    """The one org a service account or a role (its keys' principal) belongs to."""
    if is_service_account_id(principal):
        return service_account_org(principal)
    return role_of_principal(principal)[0]


def _kind(principal: str) -> str:
    if is_service_account_id(principal):
        return "service account"
    return "role" if is_role_principal(principal) else "user"


def sees_every_event(actor: Actor) -> bool:
    """The operator reads the whole log; nobody else does."""
    return actor.kind is ActorKind.OPERATOR


def authorise_log_check(view: LedgerView, actor: Actor, orgs: Iterable[str], now: datetime) -> None:
    """Checking the whole chain reads every event: it is for the operator and for whoever
    reads some org's events as a whole (its admins and auditors, ``may_see_event``). The
    answer (intact, or the first bad position) reveals no event."""
    if sees_every_event(actor) or any(may_see(view, actor, org, now) for org in orgs):
        return
    raise PermissionDenied(
        "checking the log's chain is for the operator and an org's admins and auditors"
    )


def may_see_event(
    actor: Actor, subjects: Iterable[str], may_read_org: Callable[[str], bool]
) -> bool:
    """An operator sees every event; anyone else the events about themselves and every event
    concerning an org they may read as a whole (its admins and auditors): cascades and
    credentials included, since those name their org or one of its service accounts."""
    if sees_every_event(actor):
        return True
    found = tuple(subjects)
    named = list(event_orgs(found))
    # Every key of a role has the role as its principal: a key's own events are those naming
    # it, as it reaches only itself (``_require_role_key_access``).
    about_itself = actor.principal in found and (
        not is_role_principal(actor.principal) or actor.token_id in found
    )
    if about_itself and within_session(actor, named):
        return True
    return any(may_read_org(org) for org in named)


def event_orgs(subjects: Iterable[str]) -> tuple[str, ...]:
    """The orgs an event concerns, read off its subjects (``domain.subjects``): whose
    readers see it in the audit, and whose webhooks are sent it."""
    return tuple(dict.fromkeys(org for org in map(_org_named_by, subjects) if org is not None))


def authorise_webhook_management(view: LedgerView, actor: Actor, org: str, now: datetime) -> None:
    """Creating, reading and deleting an org's webhooks: a person with admin on the org, or
    an operator; never a service account or a role's key (a webhook sends the org's events
    elsewhere)."""
    refuse_service_account(actor, ServiceAccountLimit.MANAGE_WEBHOOKS)
    require_level(view, actor, org, Level.ADMIN, now, f"manage the webhooks of {org}")


def webhook_orgs(view: LedgerView, actor: Actor, now: datetime) -> list[str] | None:
    """The orgs whose webhooks ``actor`` manages (``authorise_webhook_management``), for a
    listing without an org: None for an operator (every org)."""
    refuse_service_account(actor, ServiceAccountLimit.MANAGE_WEBHOOKS)
    if actor.kind is ActorKind.OPERATOR:
        return None
    return [
        org for org in view.memberships(actor.principal) if may(view, actor, org, Level.ADMIN, now)
    ]


def require_remote_receiver(actor: Actor, url: str) -> None:
    """A webhook delivering to this machine is the operator's to create: anyone else could
    make the deliverer send requests to its own ports."""
    if actor.kind is not ActorKind.OPERATOR and is_loopback_url(url):
        raise PermissionDenied(
            f"only an operator may send webhooks to this machine ({url}): use another address"
        )


def _org_named_by(subject: str) -> str | None:
    """The org a subject id belongs to, when the id says: a resource path's or a service
    account's (a user's email and a token's id do not)."""
    if is_service_account_id(subject):
        return service_account_org(subject)
    if is_role_principal(subject):  # a role (``org:role``) or its keys' principal
        return role_of_principal(subject)[0]
    if "@" in subject or ":" in subject:
        return None
    if is_account_id(subject):
        # A Dyff account id (a user's creation names it) is no org's, even if an org was
        # given the same 32 digits as its name: that org's readers must not see the user.
        return None
    if is_webhook_id(subject):
        # Nor is a webhook's id (its events name its org): an org named like one must not
        # read, or be sent, another org's webhook events.
        return None
    return org_of(subject)
