"""Decisions: ``decide(command, view, context) -> list[Event]``, pure functions.

Each decision validates the command against the current state (read through
a ``LedgerView``), checks the actor's authority, and returns the events that
record what happened, cascades included: one ``TokenRevoked`` per token a
change invalidates, appended in the same transaction as its cause. A rejected
command raises a ``LedgerError`` and appends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import singledispatch

from tokenledger.clock import check_lifetime
from tokenledger.domain import commands as c
from tokenledger.domain.authority import (
    ServiceAccountLimit,
    acting_token,
    authorise_issue,
    authorise_issuer,
    authorise_resource_attributes,
    authorise_role_management,
    authorise_token_management,
    forbid_service_accounts,
    missing_unless_seen,
    principal_grants,
    reached_orgs,
    refuse_service_account,
    require_derivable,
    require_level,
    require_operator,
    require_principal_visible,
    require_user_creator,
    token_orgs,
)
from tokenledger.domain.builtin_roles import builtin_role_grants, is_builtin_role
from tokenledger.domain.cascades import (
    end_sessions,
    revoke_s3_credentials,
    untrust_endpoints,
    withdraw_trusts,
)
from tokenledger.domain.events import (
    ClientCredentialIssued,
    ClientCredentialRevoked,
    Event,
    GrantRemoved,
    GrantSet,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    OrgCreated,
    ResourceCreated,
    ResourceDataClassSet,
    ResourceDeleted,
    ResourceLicenseSet,
    RevocationReason,
    RoleCreated,
    RolePolicyRemoved,
    ServiceAccountCreated,
    ServiceAccountDeleted,
    ServiceAccountPermissionLevelChanged,
    ServiceAccountPermissionMoved,
    TokenIssued,
    TokenRevoked,
    UserCreated,
    UserDisabled,
)
from tokenledger.domain.model import (
    PREDEFINED_ROLES,
    Actor,
    ClientCredentialView,
    LedgerView,
    ServiceAccountView,
    TokenView,
    is_service_account_id,
    service_account_id,
    service_account_org,
)
from tokenledger.domain.org_policy import within_policy
from tokenledger.domain.permissions import Grant, Level, is_within, level_at, org_of, parent_of
from tokenledger.domain.secrets import TokenKind
from tokenledger.errors import Conflict, NotFound, PermissionDenied, ValidationError

__all__ = [
    "DEFAULT_EXPIRY",
    "Context",
    "Mint",
    "administered_account",
    "decide",
    "issue_client_credential",
    "issue_token",
    "live_descendants",
    "managed_credential",
    "managed_token",
    "require_unsuspended",
]

#: Default lifetimes by kind: a year for service accounts (Arraylake), 30 days
#: for people, an hour for derived tokens (Element's short-lived tokens).
DEFAULT_EXPIRY = {
    TokenKind.SERVICE: timedelta(days=365),
    TokenKind.PERSONAL: timedelta(days=30),
    TokenKind.DERIVED: timedelta(hours=1),
    TokenKind.CLIENT: timedelta(days=365),
}

_KIND_BY_DEPTH = {2: "project", 3: "collection", 4: "dataset", 5: "object"}

#: Makes a new token's identity: (token id, SHA-256 of the secret). The secret
#: itself stays with the caller, which shows it once.
Mint = Callable[[TokenKind], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Context:
    actor: Actor
    now: datetime
    mint: Mint | None = None
    #: Makes a new Dyff account id (``accounts create``), as ``mint`` makes a token's id.
    new_account_id: Callable[[], str] | None = None


@singledispatch
def decide(command: c.Command, view: LedgerView, ctx: Context) -> list[Event]:
    raise TypeError(f"no decision for {type(command).__name__}")


# -- organizations and users ---------------------------------------------------


@decide.register
def _create_org(cmd: c.CreateOrg, view: LedgerView, ctx: Context) -> list[Event]:
    require_operator(ctx.actor, "create organizations")
    if view.org_exists(cmd.org):
        raise Conflict(f"org {cmd.org} already exists")
    return [OrgCreated(org=cmd.org)]


@decide.register
def _create_user(cmd: c.CreateUser, view: LedgerView, ctx: Context) -> list[Event]:
    require_user_creator(view, ctx.actor, ctx.now)
    if view.user(cmd.email) is not None:
        raise Conflict(f"user {cmd.email} already exists")
    return [UserCreated(email=cmd.email, name=cmd.name)]


@decide.register
def _disable_user(cmd: c.DisableUser, view: LedgerView, ctx: Context) -> list[Event]:
    refuse_service_account(ctx.actor, ServiceAccountLimit.MANAGE_USERS)
    require_operator(ctx.actor, "disable users")
    user = view.user(cmd.email)
    if user is None:
        raise NotFound(f"no user {cmd.email}")
    if user.disabled:
        raise Conflict(f"user {cmd.email} is already disabled")
    detail = f"user {cmd.email} disabled by {ctx.actor.label}"
    reason = RevocationReason.USER_DISABLED
    return [
        UserDisabled(email=cmd.email, reason=cmd.reason),
        *_revoke(view, _live(view.tokens_of(cmd.email), ctx), reason, detail, ctx),
        *end_sessions(view.sessions_of(cmd.email), reason, detail, ctx.now),
    ]


@decide.register
def _add_member(cmd: c.AddMember, view: LedgerView, ctx: Context) -> list[Event]:
    refuse_service_account(ctx.actor, ServiceAccountLimit.MANAGE_USERS)
    # Authority before existence, here and below: only those who may act on the org learn
    # what it holds.
    require_level(view, ctx.actor, cmd.org, Level.ADMIN, ctx.now, f"manage members of {cmd.org}")
    _require_org(view, cmd.org)
    _require_active_user(view, cmd.email)
    if view.role(cmd.org, cmd.role) is None:
        raise NotFound(f"no role {cmd.role} in org {cmd.org}")
    current = view.memberships(cmd.email).get(cmd.org)
    if current == cmd.role:
        raise Conflict(f"{cmd.email} is already a member of {cmd.org} with role {cmd.role}")
    if current is not None:
        return [
            MemberRoleChanged(org=cmd.org, email=cmd.email, role=cmd.role, previous_role=current)
        ]
    return [MemberAdded(org=cmd.org, email=cmd.email, role=cmd.role)]


@decide.register
def _remove_member(cmd: c.RemoveMember, view: LedgerView, ctx: Context) -> list[Event]:
    refuse_service_account(ctx.actor, ServiceAccountLimit.MANAGE_USERS)
    require_level(view, ctx.actor, cmd.org, Level.ADMIN, ctx.now, f"manage members of {cmd.org}")
    _require_org(view, cmd.org)
    if cmd.org not in view.memberships(cmd.email):
        raise NotFound(f"{cmd.email} is not a member of {cmd.org}")
    reason = RevocationReason.MEMBER_REMOVED
    detail = f"{cmd.email} removed from org {cmd.org} by {ctx.actor.label}"
    grants_removed: list[Event] = [
        GrantRemoved(principal=cmd.email, resource=g.resource, reason=reason)
        for g in view.direct_grants(cmd.email)
        if org_of(g.resource) == cmd.org
    ]
    in_org = [
        t
        for t in _live(view.tokens_of(cmd.email), ctx)
        if any(org_of(g.resource) == cmd.org for g in t.grants)
    ]
    in_org_sessions = [s for s in view.sessions_of(cmd.email) if s.org == cmd.org]
    return [
        MemberRemoved(org=cmd.org, email=cmd.email),
        *grants_removed,
        *_revoke(view, in_org, reason, detail, ctx),
        *end_sessions(in_org_sessions, reason, detail, ctx.now),
    ]


# -- resources, grants and roles -------------------------------------------------


@decide.register
def _create_resource(cmd: c.CreateResource, view: LedgerView, ctx: Context) -> list[Event]:
    parent = parent_of(cmd.path)
    if parent is None:
        raise ValidationError(f"{cmd.path} is an org: create it with 'orgs create'")
    require_level(view, ctx.actor, parent, Level.WRITE, ctx.now, f"create resources in {parent}")
    _require_org(view, org_of(cmd.path))
    if view.resource(parent) is None:
        raise NotFound(f"no resource {parent} to create {cmd.path} in")
    if view.resource(cmd.path) is not None:
        raise Conflict(f"resource {cmd.path} already exists")
    kind = cmd.kind or _KIND_BY_DEPTH[cmd.path.count("/") + 1]
    return [ResourceCreated(path=cmd.path, kind=kind), *_initial_attributes(cmd, view, ctx)]


def _initial_attributes(cmd: c.CreateResource, view: LedgerView, ctx: Context) -> list[Event]:
    """A license and data class given at creation: set as ``SetResourceAttributes`` would
    set them, by whom it would let (creating needs write on the parent, these admin)."""
    if cmd.license is None and cmd.data_class is None:
        return []
    authorise_resource_attributes(view, ctx.actor, cmd.path, ctx.now)
    events: list[Event] = []
    if cmd.license is not None:
        events.append(ResourceLicenseSet(path=cmd.path, license=cmd.license))
    if cmd.data_class is not None:
        events.append(ResourceDataClassSet(path=cmd.path, data_class=cmd.data_class))
    return events


@decide.register
def _delete_resource(cmd: c.DeleteResource, view: LedgerView, ctx: Context) -> list[Event]:
    if parent_of(cmd.path) is None:
        raise ValidationError(f"{cmd.path} is an org: an org's root cannot be deleted")
    # Deleting removes other principals' grants and revokes their tokens: a person's act.
    forbid_service_accounts(ctx.actor, "delete resources")
    require_level(view, ctx.actor, cmd.path, Level.ADMIN, ctx.now, f"delete {cmd.path}")
    if view.resource(cmd.path) is None:
        raise NotFound(f"no resource {cmd.path}")
    below = view.resources_under(cmd.path)
    if below and not cmd.recursive:
        raise Conflict(
            f"{cmd.path} has {len(below)} resource(s) below it: delete them first or use "
            "--recursive"
        )
    holders = view.service_accounts_under(cmd.path)
    if holders:
        raise Conflict(
            f"service account {holders[0].account_id} holds its permission on "
            f"{holders[0].permission.resource}: move or delete it first"
        )
    reason = RevocationReason.RESOURCE_DELETED
    detail = f"resource {cmd.path} deleted by {ctx.actor.label}"
    deepest_first = sorted(below, key=lambda r: (-r.path.count("/"), r.path))
    # Every token with a grant on the deleted subtree goes, not only those wholly inside it:
    # a token's grants are fixed at issue, so a grant left on a deleted path would come back
    # to life if the path were created again.
    doomed = _live(view.tokens_with_grant_under(cmd.path), ctx)
    return [
        *(ResourceDeleted(path=r.path) for r in deepest_first),
        ResourceDeleted(path=cmd.path),
        *(
            GrantRemoved(principal=email, resource=g.resource, reason=reason)
            for email, g in view.direct_grants_under(cmd.path)
        ),
        *_withdraw_role_grants(view, cmd.path),
        *_revoke(view, doomed, reason, detail, ctx),
    ]


def _withdraw_role_grants(view: LedgerView, path: str) -> list[Event]:
    """A role's grants on a deleted path or below it go with it: a grant left there would
    come back to life, for the role's members and keys, if the path were created again."""
    org = org_of(path)
    events: list[Event] = []
    for role, grants in view.roles_of(org).items():
        if role in PREDEFINED_ROLES:
            continue
        left = list(grants)
        for grant in sorted(g for g in grants if is_within(g.resource, path)):
            left.remove(grant)
            events.append(
                RolePolicyRemoved(org=org, role=role, resource=grant.resource, grants=tuple(left))
            )
    return events


@decide.register
def _set_grant(cmd: c.SetGrant, view: LedgerView, ctx: Context) -> list[Event]:
    refuse_service_account(ctx.actor, ServiceAccountLimit.MANAGE_GRANTS)
    if is_service_account_id(cmd.principal):
        raise ValidationError(
            "a service account holds exactly one permission: use 'service-accounts set-permission'"
        )
    require_level(
        view, ctx.actor, cmd.resource, Level.ADMIN, ctx.now, f"grant permissions on {cmd.resource}"
    )
    _require_active_user(view, cmd.principal)
    if view.resource(cmd.resource) is None:
        raise NotFound(f"no resource {cmd.resource}")
    org = org_of(cmd.resource)
    if org not in view.memberships(cmd.principal):
        raise Conflict(f"{cmd.principal} is not a member of org {org}: add them first")
    current = level_at(
        [g for g in view.direct_grants(cmd.principal) if g.resource == cmd.resource],
        cmd.resource,
    )
    if current == cmd.level:
        raise Conflict(f"{cmd.principal} already has {cmd.level.label} directly on {cmd.resource}")
    if cmd.level is Level.NONE:
        return [GrantRemoved(principal=cmd.principal, resource=cmd.resource, reason="requested")]
    return [GrantSet(principal=cmd.principal, grant=Grant(cmd.resource, cmd.level.label))]


@decide.register
def _create_role(cmd: c.CreateRole, view: LedgerView, ctx: Context) -> list[Event]:
    authorise_role_management(view, ctx.actor, cmd.org, ctx.now)
    _require_org(view, cmd.org)
    if cmd.role in PREDEFINED_ROLES or view.role(cmd.org, cmd.role) is not None:
        raise Conflict(f"role {cmd.role} already exists in org {cmd.org}")
    grants = _normalise(g.to_grant() for g in cmd.grants)
    for grant in grants:
        require_role_grant(view, cmd.org, grant)
    return [RoleCreated(org=cmd.org, role=cmd.role, grants=grants)]


def require_role_grant(view: LedgerView, org: str, grant: Grant) -> None:
    """What a role may grant: a level above none on an existing resource inside its org
    (when it is created, and with each policy added later)."""
    if org_of(grant.resource) != org:
        raise ValidationError(f"role grant {grant} lies outside org {org}")
    if grant.rank is Level.NONE:
        raise ValidationError(f"role grant {grant} needs a level above none")
    _require_resource(view, grant.resource)


# -- service accounts -------------------------------------------------------------


def _require_project(view: LedgerView, path: str, org: str) -> None:
    if path.count("/") != 1:
        raise ValidationError(
            f"a service account's permission lies on a project (org/project), not {path}"
        )
    if org_of(path) != org:
        raise ValidationError(f"{path} is not in org {org}")
    _require_resource(view, path)


@decide.register
def _create_service_account(
    cmd: c.CreateServiceAccount, view: LedgerView, ctx: Context
) -> list[Event]:
    forbid_service_accounts(ctx.actor, "manage service accounts")
    _require_org(view, cmd.org)
    _require_project(view, cmd.resource, cmd.org)
    if cmd.level is Level.NONE:
        raise ValidationError("a service account's permission needs a level above none")
    require_level(
        view,
        ctx.actor,
        cmd.resource,
        Level.ADMIN,
        ctx.now,
        f"create service accounts on {cmd.resource}",
    )
    account_id = service_account_id(cmd.name, cmd.org)
    if view.service_account(account_id) is not None:
        raise Conflict(f"service account {account_id} already exists (or existed)")
    return [
        ServiceAccountCreated(
            account_id=account_id,
            org=cmd.org,
            name=cmd.name,
            permission=Grant(cmd.resource, cmd.level.label),
        )
    ]


@decide.register
def _set_service_account_permission(
    cmd: c.SetServiceAccountPermission, view: LedgerView, ctx: Context
) -> list[Event]:
    forbid_service_accounts(ctx.actor, "manage service accounts")
    require_principal_visible(view, ctx.actor, cmd.account_id, ctx.now)
    account = _require_account(view, cmd.account_id)
    _require_project(view, cmd.resource, account.org)
    if cmd.level is Level.NONE:
        raise ValidationError("a service account's permission needs a level above none")
    previous = account.permission
    for path in dict.fromkeys((previous.resource, cmd.resource)):
        require_level(
            view,
            ctx.actor,
            path,
            Level.ADMIN,
            ctx.now,
            f"change the permission of {account.account_id}",
        )
    permission = Grant(cmd.resource, cmd.level.label)
    if permission == previous:
        raise Conflict(f"{account.account_id} already has {permission}")
    if permission.resource == previous.resource:
        return [
            ServiceAccountPermissionLevelChanged(
                account_id=account.account_id, previous=previous, permission=permission
            )
        ]
    detail = (
        f"service account {account.account_id} moved from {previous.resource} to "
        f"{permission.resource} by {ctx.actor.label}"
    )
    return [
        ServiceAccountPermissionMoved(
            account_id=account.account_id, previous=previous, permission=permission
        ),
        *_revoke(
            view,
            _live(view.tokens_of(account.account_id), ctx),
            RevocationReason.SERVICE_ACCOUNT_MOVED,
            detail,
            ctx,
        ),
        *_revoke_credentials(view, account, RevocationReason.SERVICE_ACCOUNT_MOVED, detail, ctx),
        *withdraw_trusts(
            view.issuer_trusts_of(account.account_id),
            RevocationReason.SERVICE_ACCOUNT_MOVED,
            detail,
        ),
        *revoke_s3_credentials(
            view.s3_credentials_of(account.account_id),
            RevocationReason.SERVICE_ACCOUNT_MOVED,
            detail,
        ),
    ]


@decide.register
def _delete_service_account(
    cmd: c.DeleteServiceAccount, view: LedgerView, ctx: Context
) -> list[Event]:
    account = administered_account(
        view, ctx, cmd.account_id, "manage service accounts", f"delete {cmd.account_id}"
    )
    detail = f"service account {account.account_id} deleted by {ctx.actor.label}"
    return [
        ServiceAccountDeleted(account_id=account.account_id),
        *_revoke(
            view,
            _live(view.tokens_of(account.account_id), ctx),
            RevocationReason.SERVICE_ACCOUNT_DELETED,
            detail,
            ctx,
        ),
        *_revoke_credentials(view, account, RevocationReason.SERVICE_ACCOUNT_DELETED, detail, ctx),
        *withdraw_trusts(
            view.issuer_trusts_of(account.account_id),
            RevocationReason.SERVICE_ACCOUNT_DELETED,
            detail,
        ),
        *untrust_endpoints(
            view.trusted_endpoints_of(account.account_id),
            RevocationReason.SERVICE_ACCOUNT_DELETED,
            detail,
        ),
        *revoke_s3_credentials(
            view.s3_credentials_of(account.account_id),
            RevocationReason.SERVICE_ACCOUNT_DELETED,
            detail,
        ),
    ]


# -- tokens ------------------------------------------------------------------------


@decide.register
def _issue_token(cmd: c.IssueToken, view: LedgerView, ctx: Context) -> list[Event]:
    return issue_token(cmd, view, ctx)


def issue_token(
    cmd: c.IssueToken, view: LedgerView, ctx: Context, *, replacing: str | None = None
) -> list[Event]:
    """Issuing a token, every check included (``replacing``: the token a rotation replaces,
    whose successor this is)."""
    if ctx.mint is None:
        raise TypeError("issuing a token needs a mint")
    parent = _require_live_parent(view, cmd.parent_id, ctx) if cmd.parent_id else None
    if parent is not None:
        require_derivable(view, ctx.actor, parent, ctx.now)
    principal = cmd.principal or (parent.principal if parent else "")
    principal = decide_accounts.account_user(view, ctx, principal)  # a Dyff id names a user
    if parent is not None and principal != parent.principal:
        raise ValidationError(
            f"a derived token belongs to its parent's principal ({parent.principal})"
        )
    require_principal_visible(view, ctx.actor, principal, ctx.now)
    authorise_issuer(view, ctx.actor, principal, ctx.now)
    account = _require_active_principal(view, principal)
    grants = _requested_grants(cmd, view, principal, account, parent)
    for grant in grants:
        _require_resource(view, grant.resource)
        if account is not None and not is_within(grant.resource, account.permission.resource):
            raise ValidationError(
                f"grant {grant} lies outside {principal}'s project {account.permission.resource}"
            )
    _check_within(grants, principal_grants(view, principal), f"{principal}'s permission")
    if parent is not None:
        _check_within(grants, parent.grants, f"its parent token {parent.token_id}")
    authorise_issue(view, ctx.actor, principal, grants, ctx.now)
    kind = (
        TokenKind.DERIVED
        if parent is not None
        else TokenKind.SERVICE
        if account is not None
        else TokenKind.PERSONAL
    )
    expires_at = _expiry(cmd, kind, grants, parent, ctx.now)
    expires_at = within_policy(
        view,
        orgs=reached_orgs(principal, grants),
        principal=principal,
        kind=kind.value,
        grants=grants,
        now=ctx.now,
        expires_at=expires_at,
        chosen=cmd.no_expiry or cmd.expires_in is not None or cmd.expires_at is not None,
        replacing=replacing,
    )
    # A token minted through another token of the same principal is that token's child (its
    # kind stays what was asked for): it never outlives it and is revoked with it, so a
    # stolen token cannot mint a successor that survives its revocation.
    through = None if parent is not None else _minted_through(view, ctx, principal)
    if through is not None:
        expires_at = _not_outliving(cmd, expires_at, through)
    parent = parent or through
    token_id, secret_hash = ctx.mint(kind)
    return [
        TokenIssued(
            token_id=token_id,
            principal=principal,
            kind=kind.value,
            secret_hash=secret_hash,
            grants=grants,
            name=cmd.name,
            issued_at=ctx.now,
            expires_at=expires_at,
            parent_id=parent.token_id if parent else None,
            issued_by=ctx.actor.token_id,
        )
    ]


def _require_live_parent(view: LedgerView, token_id: str, ctx: Context) -> TokenView:
    parent = view.token(token_id)
    if parent is None:
        raise NotFound(f"no token {token_id}")
    if parent.revoked:
        raise Conflict(f"parent token {token_id} is revoked")
    if parent.expired(ctx.now):
        raise Conflict(f"parent token {token_id} has expired")
    if parent.disabled:
        # What derives from it would be usable while it is not (domain.decide_suspension).
        raise Conflict(f"parent token {token_id} is disabled")
    return parent


def _requested_grants(
    cmd: c.IssueToken,
    view: LedgerView,
    principal: str,
    account: ServiceAccountView | None,
    parent: TokenView | None,
) -> tuple[Grant, ...]:
    grants = [g.to_grant() for g in cmd.grants]
    if cmd.role is not None:
        grants.extend(_role_grants(view, cmd.role, principal, account))
    if not grants:
        if parent is not None:
            return parent.grants
        if account is not None:
            return (account.permission,)
        raise ValidationError(
            "a token needs grants: give --resource/--level pairs, --role or a config file"
        )
    if any(g.rank is Level.NONE for g in grants):
        raise ValidationError("a token grant needs a level above none")
    return _normalise(grants)


def _role_grants(
    view: LedgerView, role: str, principal: str, account: ServiceAccountView | None
) -> tuple[Grant, ...]:
    if is_builtin_role(role):
        return builtin_role_grants(view, role, principal, account)
    org, sep, name = role.rpartition(":")
    if not sep:
        if account is not None:
            org = account.org
        else:
            orgs = sorted(view.memberships(principal))
            if len(orgs) != 1:
                raise ValidationError(
                    f"{principal} belongs to {len(orgs)} orgs: name the role as ORG:ROLE"
                )
            org = orgs[0]
    grants = view.role(org, name)
    if grants is None:
        raise NotFound(f"no role {name} in org {org}")
    if not grants:
        raise ValidationError(f"role {name} of org {org} grants nothing")
    return grants


def _check_within(grants: Iterable[Grant], limit: Sequence[Grant], what: str) -> None:
    for grant in grants:
        allowed = level_at(limit, grant.resource)
        if allowed < grant.rank:
            raise PermissionDenied(
                f"grant {grant} exceeds {what} ({allowed.label} on {grant.resource})"
            )


def _minted_through(view: LedgerView, ctx: Context, principal: str) -> TokenView | None:
    """The ledger token a principal acts through to issue a token for itself, if it does.

    A token issued through a signed access token (a session's, say) is not tied to it: a
    person logged in through their org's provider makes tokens that outlive the login, as
    they would in the provider's own tools; ``issued_by`` names the session.
    """
    if ctx.actor.principal != principal or ctx.actor.via is not None:
        return None
    return acting_token(view, ctx.actor, ctx.now)


def _not_outliving(
    cmd: c.IssueToken, expires_at: datetime | None, through: TokenView
) -> datetime | None:
    """Cut a default expiry to ``through``'s; refuse an explicit one beyond it."""
    if through.expires_at is None:
        return expires_at
    if expires_at is not None and expires_at <= through.expires_at:
        return expires_at
    if cmd.no_expiry or cmd.expires_in is not None or cmd.expires_at is not None:
        raise ValidationError(
            f"a token issued through token {through.token_id} cannot outlive it "
            f"(it expires at {through.expires_at.isoformat()})"
        )
    return through.expires_at


def _expiry(
    cmd: c.IssueToken,
    kind: TokenKind,
    grants: Sequence[Grant],
    parent: TokenView | None,
    now: datetime,
) -> datetime | None:
    if cmd.no_expiry:
        if parent is not None:
            raise ValidationError("a derived token always expires")
        if any(g.rank is Level.ADMIN for g in grants):
            raise ValidationError(
                "a token with an admin grant must expire: long-lived admin tokens are refused"
            )
        return None
    if cmd.expires_at is not None:
        if cmd.expires_at <= now:
            raise ValidationError("the expiry lies in the past")
        expires_at = cmd.expires_at
    else:
        lifetime = cmd.expires_in or DEFAULT_EXPIRY[kind]
        check_lifetime(lifetime, "expiry", now)  # judged against the ledger's own clock
        expires_at = now + lifetime
    if parent is not None and parent.expires_at is not None and expires_at > parent.expires_at:
        if cmd.expires_at is not None or cmd.expires_in is not None:
            raise ValidationError("a derived token cannot outlive its parent")
        expires_at = parent.expires_at
    return expires_at


def managed_token(view: LedgerView, ctx: Context, token_id: str, owner: str | None) -> TokenView:
    """The token ``token_id`` (of ``owner``, when the caller names one), if the actor may
    manage it (revoke, disable, enable): asked before anything about its state is said."""
    token = view.token(token_id)
    if token is None or owner not in (None, token.principal):
        raise NotFound(f"no token {token_id}" + _of(owner))
    missing_unless_seen(
        view,
        ctx.actor,
        token.principal,
        lambda: authorise_token_management(
            view, ctx.actor, token.principal, ctx.now, token_orgs(token), token_id=token.token_id
        ),
        f"no token {token_id}" + _of(owner),
    )
    return token


@decide.register
def _revoke_token(cmd: c.RevokeToken, view: LedgerView, ctx: Context) -> list[Event]:
    token = managed_token(view, ctx, cmd.token_id, cmd.principal)
    if token.revoked:
        raise Conflict(f"token {cmd.token_id} is already revoked")
    return _revoke(view, [token], RevocationReason.REQUESTED, cmd.reason, ctx)


@decide.register
def _revoke_all(cmd: c.RevokeAllTokens, view: LedgerView, ctx: Context) -> list[Event]:
    require_principal_visible(view, ctx.actor, cmd.principal, ctx.now)
    if is_service_account_id(cmd.principal):
        _require_account(view, cmd.principal)
    elif view.user(cmd.principal) is None:
        raise NotFound(f"no user {cmd.principal}")
    live = _live(view.tokens_of(cmd.principal), ctx)
    reached = frozenset().union(*(token_orgs(t) for t in live)) if live else frozenset()
    authorise_token_management(view, ctx.actor, cmd.principal, ctx.now, reached)
    return _revoke(view, live, RevocationReason.REQUESTED, cmd.reason, ctx)


# -- client credentials ---------------------------------------------------------------


def _client_id_for(public_id: str) -> str:
    """The client id made from a minted public id: ``cid_`` and the same 16 characters."""
    return "cid_" + public_id.removeprefix("tok_")


@decide.register
def _issue_client_credential(
    cmd: c.IssueClientCredential, view: LedgerView, ctx: Context
) -> list[Event]:
    return issue_client_credential(cmd, view, ctx)


def issue_client_credential(
    cmd: c.IssueClientCredential, view: LedgerView, ctx: Context
) -> list[Event]:
    """Only an operator or an admin of the account's project: a client credential obtains
    access tokens with the account's whole permission, so holding one of the account's own
    (possibly narrower) tokens is not enough."""
    if ctx.mint is None:
        raise TypeError("issuing a client credential needs a mint")
    account = administered_account(
        view,
        ctx,
        cmd.account_id,
        "issue client credentials",
        f"issue client credentials for {cmd.account_id}",
    )
    require_unsuspended(account)
    if cmd.no_expiry:
        if account.permission.rank is Level.ADMIN:
            raise ValidationError(
                "a client credential of an account with admin permission must expire: "
                "long-lived admin credentials are refused"
            )
        expires_at = None
    else:
        lifetime = cmd.expires_in or DEFAULT_EXPIRY[TokenKind.CLIENT]
        check_lifetime(lifetime, "expiry", ctx.now)
        expires_at = ctx.now + lifetime
    expires_at = within_policy(
        view,
        orgs=(account.org,),
        principal=account.account_id,
        kind=TokenKind.CLIENT.value,
        grants=(account.permission,),
        now=ctx.now,
        expires_at=expires_at,
        chosen=cmd.no_expiry or cmd.expires_in is not None,
    )
    public_id, secret_hash = ctx.mint(TokenKind.CLIENT)
    return [
        ClientCredentialIssued(
            client_id=_client_id_for(public_id),
            account_id=account.account_id,
            secret_hash=secret_hash,
            name=cmd.name,
            issued_at=ctx.now,
            expires_at=expires_at,
            issued_by=ctx.actor.token_id,
        )
    ]


def managed_credential(
    view: LedgerView, ctx: Context, client_id: str, owner: str | None
) -> ClientCredentialView:
    """The client credential (of ``owner``, when the caller names one), if the actor may
    manage it (revoke, disable, enable), as ``managed_token``."""
    credential = view.client_credential(client_id)
    if credential is None or owner not in (None, credential.account_id):
        raise NotFound(f"no client credential {client_id}" + _of(owner))
    missing_unless_seen(
        view,
        ctx.actor,
        credential.account_id,
        lambda: authorise_token_management(
            view,
            ctx.actor,
            credential.account_id,
            ctx.now,
            (service_account_org(credential.account_id),),
        ),
        f"no client credential {client_id}" + _of(owner),
    )
    return credential


@decide.register
def _revoke_client_credential(
    cmd: c.RevokeClientCredential, view: LedgerView, ctx: Context
) -> list[Event]:
    credential = managed_credential(view, ctx, cmd.client_id, cmd.account_id)
    if credential.revoked:
        raise Conflict(f"client credential {cmd.client_id} is already revoked")
    return [
        ClientCredentialRevoked(
            client_id=credential.client_id,
            account_id=credential.account_id,
            reason=RevocationReason.REQUESTED,
            detail=cmd.reason,
        )
    ]


def _revoke_credentials(
    view: LedgerView, account: ServiceAccountView, reason: str, detail: str, ctx: Context
) -> list[Event]:
    """Revoke the account's live client credentials (a cascade, like its tokens')."""
    live: list[ClientCredentialView] = [
        credential
        for credential in view.client_credentials_of(account.account_id)
        if credential.live(ctx.now)
    ]
    return [
        ClientCredentialRevoked(
            client_id=credential.client_id,
            account_id=credential.account_id,
            reason=reason,
            detail=detail,
        )
        for credential in sorted(live, key=lambda cred: cred.client_id)
    ]


# -- shared pieces -------------------------------------------------------------------


def _revoke(
    view: LedgerView,
    roots: Sequence[TokenView],
    reason: str,
    detail: str | None,
    ctx: Context,
) -> list[Event]:
    """Revoke ``roots`` for ``reason``, then every live token derived from them, recursively."""
    events: list[Event] = []
    for token in roots:
        events.append(
            TokenRevoked(
                token_id=token.token_id,
                principal=token.principal,
                reason=reason,
                detail=detail,
                orgs=_orgs_of(token),
            )
        )
    events.extend(
        TokenRevoked(
            token_id=child.token_id,
            principal=child.principal,
            reason=RevocationReason.PARENT_REVOKED,
            detail=f"parent token {child.parent_id} revoked",
            orgs=_orgs_of(child),
        )
        for child in live_descendants(view, roots, ctx)
    )
    return events


def live_descendants(
    view: LedgerView, roots: Sequence[TokenView], ctx: Context
) -> Iterator[TokenView]:
    """The live tokens derived from ``roots``, recursively, nearest first (what a revocation
    or a suspension of ``roots`` reaches)."""
    seen = {t.token_id for t in roots}
    # Level by level, each level's children in one lookup: a cascade over thousands of
    # tokens asks the view a few times, not once per token.
    frontier = [t.token_id for t in roots]
    while frontier:
        next_level: list[str] = []
        for child in view.child_tokens(frontier):
            if child.token_id in seen or not child.live(ctx.now):
                continue
            seen.add(child.token_id)
            next_level.append(child.token_id)
            yield child
        frontier = next_level


def _orgs_of(token: TokenView) -> tuple[str, ...]:
    """The orgs a user's token reaches, to index its revocation under (a service account's
    id names its org already)."""
    if is_service_account_id(token.principal):
        return ()
    return tuple(sorted(token_orgs(token)))


def _of(owner: str | None) -> str:
    return f" of {owner}" if owner is not None else ""


def _live(tokens: Iterable[TokenView], ctx: Context) -> list[TokenView]:
    return sorted((t for t in tokens if t.live(ctx.now)), key=lambda t: t.token_id)


def _normalise(grants: Iterable[Grant]) -> tuple[Grant, ...]:
    """One grant per resource (the highest level asked for), in a stable order."""
    best: dict[str, Grant] = {}
    for grant in grants:
        if grant.resource not in best or grant.rank > best[grant.resource].rank:
            best[grant.resource] = grant
    return tuple(sorted(best.values()))


def _require_org(view: LedgerView, org: str) -> None:
    if not view.org_exists(org):
        raise NotFound(f"no org {org}")


def _require_resource(view: LedgerView, path: str) -> None:
    if view.resource(path) is None:
        raise NotFound(f"no resource {path}")


def _require_active_user(view: LedgerView, email: str) -> None:
    user = view.user(email)
    if user is None:
        raise NotFound(f"no user {email}")
    if user.disabled:
        raise Conflict(f"user {email} is disabled")


def administered_account(
    view: LedgerView, ctx: Context, account_id: str, kind_of_act: str, act: str
) -> ServiceAccountView:
    """The live account ``account_id``, for a person with admin on its project (or an
    operator): what its deletion, its client credentials and its issuer trusts need, since
    each reaches the account's whole permission. ``kind_of_act`` says what a service account
    may not do, ``act`` what needs the admin level."""
    forbid_service_accounts(ctx.actor, kind_of_act)
    require_principal_visible(view, ctx.actor, account_id, ctx.now)
    account = _require_account(view, account_id)
    require_level(view, ctx.actor, account.permission.resource, Level.ADMIN, ctx.now, act)
    return account


def require_unsuspended(account: ServiceAccountView) -> ServiceAccountView:
    """A suspended account is given no new credential (token, client credential, issuer
    trust, S3 credential): it could not use one."""
    if account.disabled:
        raise Conflict(f"service account {account.account_id} is disabled: enable it first")
    return account


def _require_account(view: LedgerView, account_id: str) -> ServiceAccountView:
    account = view.service_account(account_id)
    if account is None:
        raise NotFound(f"no service account {account_id}")
    if account.deleted:
        raise Conflict(f"service account {account_id} is deleted")
    return account


def _require_active_principal(view: LedgerView, principal: str) -> ServiceAccountView | None:
    """Check the principal exists and is active; return its service account, if it is one."""
    if is_service_account_id(principal):
        return require_unsuspended(_require_account(view, principal))
    _require_active_user(view, principal)
    return None


# The decisions on logging in (identity providers, sessions, issuer trusts), on roles' keys
# and policies, on the data plane (endpoints, S3 credentials), on Dyff's accounts
# (``accounts create``; an account id naming a token's principal), on a resource's license
# and data class, on suspending and rotating credentials, on orgs' token policies, on
# webhooks and on recording credentials' uses (last used) live in their own modules, which
# register them on ``decide`` when imported.
from tokenledger.domain import (  # noqa: E402, F401
    decide_accounts,
    decide_attributes,
    decide_bulk,
    decide_endpoints,
    decide_logins,
    decide_org_policy,
    decide_roles,
    decide_rotation,
    decide_suspension,
    decide_usage,
    decide_webhooks,
)
