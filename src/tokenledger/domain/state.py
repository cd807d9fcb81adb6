"""The ledger's state folded in memory: ``evolve(state, event, at) -> state``.

This is the reference fold that the SQL projections mirror. Decisions read it
through ``LedgerView`` in pure given/when/then tests, with no database; the
property tests check that both folds agree.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import singledispatch
from typing import TYPE_CHECKING

import msgspec

from tokenledger.domain import events as e
from tokenledger.domain.model import (
    PREDEFINED_ROLES,
    ClientCredentialView,
    EndpointView,
    IdentityProviderView,
    IssuerTrustView,
    OrgPolicyView,
    ResourceView,
    S3CredentialView,
    ServiceAccountView,
    SessionView,
    TokenView,
    TrustedEndpointView,
    UserView,
    predefined_role_grants,
)
from tokenledger.domain.permissions import Grant, is_within
from tokenledger.domain.webhooks import WebhookView

if TYPE_CHECKING:
    from tokenledger.domain.token_filter import TokenFilter

__all__ = [
    "RESOURCE_EVENTS",
    "TOKEN_ANSWER_EVENTS",
    "LedgerState",
    "evolve",
    "fold",
    "issued_token",
]


@dataclass
class LedgerState:
    """Every aggregate's current state, in plain dicts. Implements ``LedgerView``."""

    orgs: dict[str, datetime] = field(default_factory=dict)
    users: dict[str, UserView] = field(default_factory=dict)
    memberships_by_org: dict[str, dict[str, str]] = field(default_factory=dict)
    resources: dict[str, ResourceView] = field(default_factory=dict)
    roles: dict[tuple[str, str], tuple[Grant, ...]] = field(default_factory=dict)
    user_grants: dict[str, dict[str, Grant]] = field(default_factory=dict)
    accounts: dict[str, ServiceAccountView] = field(default_factory=dict)
    tokens: dict[str, TokenView] = field(default_factory=dict)
    token_ids_by_secret_hash: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, ClientCredentialView] = field(default_factory=dict)
    providers: dict[str, IdentityProviderView] = field(default_factory=dict)
    sessions: dict[str, SessionView] = field(default_factory=dict)
    session_ids_by_refresh_hash: dict[str, str] = field(default_factory=dict)
    trusts: dict[str, IssuerTrustView] = field(default_factory=dict)
    endpoints: dict[str, EndpointView] = field(default_factory=dict)
    trusted_endpoints: dict[tuple[str, str], TrustedEndpointView] = field(default_factory=dict)
    s3_credentials: dict[str, S3CredentialView] = field(default_factory=dict)
    emails_by_account_id: dict[str, str] = field(default_factory=dict)
    policies: dict[str, OrgPolicyView] = field(default_factory=dict)
    successors: dict[str, str] = field(default_factory=dict)
    webhooks: dict[str, WebhookView] = field(default_factory=dict)

    # -- LedgerView -------------------------------------------------------------

    def org_exists(self, org: str) -> bool:
        return org in self.orgs

    def user(self, email: str) -> UserView | None:
        return self.users.get(email)

    def user_by_account_id(self, account_id: str) -> UserView | None:
        email = self.emails_by_account_id.get(account_id)
        return self.users.get(email) if email is not None else None

    def memberships(self, email: str) -> dict[str, str]:
        return {
            org: members[email]
            for org, members in sorted(self.memberships_by_org.items())
            if email in members
        }

    def members(self, org: str) -> dict[str, str]:
        return dict(sorted(self.memberships_by_org.get(org, {}).items()))

    def resource(self, path: str) -> ResourceView | None:
        return self.resources.get(path)

    def resources_under(self, path: str) -> Sequence[ResourceView]:
        return [r for p, r in sorted(self.resources.items()) if p != path and is_within(p, path)]

    def role(self, org: str, name: str) -> tuple[Grant, ...] | None:
        if org not in self.orgs:
            return None
        predefined = predefined_role_grants(org, name)
        if predefined is not None:
            return predefined
        return self.roles.get((org, name))

    def roles_of(self, org: str) -> dict[str, tuple[Grant, ...]]:
        if org not in self.orgs:
            return {}
        found = {name: grants for (o, name), grants in self.roles.items() if o == org}
        for name in PREDEFINED_ROLES:
            grants = predefined_role_grants(org, name)
            assert grants is not None
            found[name] = grants
        return dict(sorted(found.items()))

    def direct_grants(self, email: str) -> Sequence[Grant]:
        return sorted(self.user_grants.get(email, {}).values())

    def direct_grants_under(self, path: str) -> Sequence[tuple[str, Grant]]:
        return [
            (email, grant)
            for email, grants in sorted(self.user_grants.items())
            for grant in sorted(grants.values())
            if is_within(grant.resource, path)
        ]

    def service_account(self, account_id: str) -> ServiceAccountView | None:
        return self.accounts.get(account_id)

    def service_accounts_under(self, path: str) -> Sequence[ServiceAccountView]:
        return [
            a
            for _, a in sorted(self.accounts.items())
            if not a.deleted and is_within(a.permission.resource, path)
        ]

    def token(self, token_id: str) -> TokenView | None:
        return self.tokens.get(token_id)

    def token_by_secret_hash(self, secret_hash: str) -> TokenView | None:
        token_id = self.token_ids_by_secret_hash.get(secret_hash)
        return self.tokens.get(token_id) if token_id is not None else None

    def tokens_of(self, principal: str) -> Sequence[TokenView]:
        return [t for _, t in sorted(self.tokens.items()) if t.principal == principal]

    def child_tokens(self, token_ids: Collection[str]) -> Sequence[TokenView]:
        parents = set(token_ids)
        return [t for _, t in sorted(self.tokens.items()) if t.parent_id in parents]

    def tokens_with_grant_under(self, path: str) -> Sequence[TokenView]:
        return [
            t
            for _, t in sorted(self.tokens.items())
            if not t.revoked and any(is_within(g.resource, path) for g in t.grants)
        ]

    def token_candidates(self, token_filter: TokenFilter, now: datetime) -> Sequence[TokenView]:
        return [t for _, t in sorted(self.tokens.items()) if not t.revoked]

    def client_credential(self, client_id: str) -> ClientCredentialView | None:
        return self.credentials.get(client_id)

    def client_credentials_of(self, account_id: str) -> Sequence[ClientCredentialView]:
        return [c for _, c in sorted(self.credentials.items()) if c.account_id == account_id]

    def identity_provider(self, org: str) -> IdentityProviderView | None:
        return self.providers.get(org)

    def session(self, session_id: str) -> SessionView | None:
        return self.sessions.get(session_id)

    def session_by_refresh_hash(self, refresh_hash: str) -> SessionView | None:
        session_id = self.session_ids_by_refresh_hash.get(refresh_hash)
        return self.sessions.get(session_id) if session_id is not None else None

    def sessions_of(self, principal: str) -> Sequence[SessionView]:
        return _oldest_first(s for s in self.sessions.values() if s.principal == principal)

    def sessions_in_org(self, org: str) -> Sequence[SessionView]:
        return _oldest_first(s for s in self.sessions.values() if s.org == org)

    def issuer_trust(self, trust_id: str) -> IssuerTrustView | None:
        return self.trusts.get(trust_id)

    def issuer_trusts_of(self, account_id: str) -> Sequence[IssuerTrustView]:
        found = [t for t in self.trusts.values() if t.account_id == account_id]
        return sorted(found, key=lambda t: (t.created_at, t.trust_id))

    def endpoint(self, endpoint_id: str) -> EndpointView | None:
        return self.endpoints.get(endpoint_id)

    def endpoint_named(self, name: str) -> EndpointView | None:
        return next((p for p in self.endpoints.values() if p.name == name and not p.deleted), None)

    def live_endpoints(self) -> list[EndpointView]:
        return sorted((p for p in self.endpoints.values() if not p.deleted), key=lambda p: p.name)

    def trusted_endpoints_of(self, account_id: str) -> Sequence[TrustedEndpointView]:
        found = [t for t in self.trusted_endpoints.values() if t.account_id == account_id]
        return sorted(found, key=lambda t: (t.trusted_at, t.endpoint_id))

    def accounts_trusting(self, endpoint_id: str) -> Sequence[TrustedEndpointView]:
        found = [t for t in self.trusted_endpoints.values() if t.endpoint_id == endpoint_id]
        return sorted(found, key=lambda t: t.account_id)

    def s3_credential(self, access_key_id: str) -> S3CredentialView | None:
        return self.s3_credentials.get(access_key_id)

    def s3_credentials_of(self, account_id: str) -> Sequence[S3CredentialView]:
        found = [c for c in self.s3_credentials.values() if c.account_id == account_id]
        return sorted(found, key=lambda c: (c.issued_at, c.access_key_id))

    def s3_credentials_at(self, endpoint_id: str) -> Sequence[S3CredentialView]:
        found = [
            c
            for c in self.s3_credentials.values()
            if c.endpoint_id == endpoint_id and not c.revoked
        ]
        return sorted(found, key=lambda c: c.access_key_id)

    def org_policy(self, org: str) -> OrgPolicyView | None:
        return self.policies.get(org)

    def successor_of(self, rotated_id: str) -> str | None:
        return self.successors.get(rotated_id)

    def predecessor_of(self, successor_id: str) -> str | None:
        return next((r for r, s in self.successors.items() if s == successor_id), None)

    def webhook(self, webhook_id: str) -> WebhookView | None:
        return self.webhooks.get(webhook_id)

    def webhooks_of(self, org: str) -> Sequence[WebhookView]:
        return [w for _, w in sorted(self.webhooks.items()) if w.org == org and not w.deleted]


def _oldest_first(found: Iterable[SessionView]) -> list[SessionView]:
    return sorted(found, key=lambda s: (s.started_at, s.session_id))


#: The events a token's answer (``authority.verify_token``) reads the fold of: the token
#: itself (issued, revoked, disabled, enabled) and its principal's standing
#: (``authority.standing``): a user's existence and being disabled, direct grants,
#: memberships, the org (whose predefined roles exist with it) and its roles, a service
#: account's permission, deletion and suspension. Nothing else (resources, sessions,
#: credentials, providers, trusts, endpoints, S3 credentials) is read, and no fold of these
#: events reads anything else: a state folded from these alone answers every token exactly
#: as the whole log's does.
TOKEN_ANSWER_EVENTS: frozenset[type[e.Event]] = frozenset(
    {
        e.OrgCreated,
        e.UserCreated,
        e.UserDisabled,
        e.MemberAdded,
        e.MemberRoleChanged,
        e.MemberRemoved,
        e.GrantSet,
        e.GrantRemoved,
        e.RoleCreated,
        e.RolePolicyAdded,
        e.RolePolicyRemoved,
        e.RoleDeleted,
        e.ServiceAccountCreated,
        e.ServiceAccountPermissionMoved,
        e.ServiceAccountPermissionLevelChanged,
        e.ServiceAccountDeleted,
        e.TokenIssued,
        e.TokenRevoked,
        e.TokenDisabled,
        e.TokenEnabled,
        e.ServiceAccountDisabled,
        e.ServiceAccountEnabled,
        e.TokenRotated,
        e.TokenExpiryShortened,
    }
)

#: The events ``LedgerState.resource`` reads: an org's creation (an org is a resource), a
#: resource's creation and deletion, its license and data class. Each names the path it is
#: about, and no fold of them reads anything else: a state folded from a path's own events
#: of these kinds holds that resource exactly as the whole log's does.
RESOURCE_EVENTS: frozenset[type[e.Event]] = frozenset(
    {
        e.OrgCreated,
        e.ResourceCreated,
        e.ResourceDeleted,
        e.ResourceLicenseSet,
        e.ResourceDataClassSet,
    }
)


@singledispatch
def evolve(event: e.Event, state: LedgerState, at: datetime) -> None:
    """Fold ``event``, recorded at ``at``, into ``state`` (in place)."""
    raise TypeError(f"no fold for {type(event).__name__}")


def fold(
    events: Iterable[tuple[e.Event, datetime]], state: LedgerState | None = None
) -> LedgerState:
    state = state or LedgerState()
    for event, at in events:
        evolve(event, state, at)
    return state


@evolve.register
def _(event: e.OrgCreated, state: LedgerState, at: datetime) -> None:
    state.orgs[event.org] = at
    state.resources[event.org] = ResourceView(path=event.org, kind="org", created_at=at)


@evolve.register
def _(event: e.UserCreated, state: LedgerState, at: datetime) -> None:
    state.users[event.email] = UserView(
        email=event.email,
        name=event.name,
        disabled=False,
        created_at=at,
        account_id=event.account_id,
    )
    if event.account_id is not None:
        state.emails_by_account_id[event.account_id] = event.email


@evolve.register
def _(event: e.UserDisabled, state: LedgerState, at: datetime) -> None:
    state.users[event.email] = msgspec.structs.replace(state.users[event.email], disabled=True)


@evolve.register
def _(event: e.MemberAdded, state: LedgerState, at: datetime) -> None:
    state.memberships_by_org.setdefault(event.org, {})[event.email] = event.role


@evolve.register
def _(event: e.MemberRoleChanged, state: LedgerState, at: datetime) -> None:
    state.memberships_by_org.setdefault(event.org, {})[event.email] = event.role


@evolve.register
def _(event: e.MemberRemoved, state: LedgerState, at: datetime) -> None:
    state.memberships_by_org.get(event.org, {}).pop(event.email, None)


@evolve.register
def _(event: e.ResourceCreated, state: LedgerState, at: datetime) -> None:
    state.resources[event.path] = ResourceView(path=event.path, kind=event.kind, created_at=at)


@evolve.register
def _(event: e.ResourceDeleted, state: LedgerState, at: datetime) -> None:
    state.resources.pop(event.path, None)


@evolve.register
def _(event: e.GrantSet, state: LedgerState, at: datetime) -> None:
    grants = state.user_grants.setdefault(event.principal, {})
    if event.grant.level == "none":
        grants.pop(event.grant.resource, None)
    else:
        grants[event.grant.resource] = event.grant


@evolve.register
def _(event: e.GrantRemoved, state: LedgerState, at: datetime) -> None:
    state.user_grants.get(event.principal, {}).pop(event.resource, None)


@evolve.register
def _(event: e.RoleCreated, state: LedgerState, at: datetime) -> None:
    state.roles[(event.org, event.role)] = event.grants


@evolve.register(e.RolePolicyAdded)
@evolve.register(e.RolePolicyRemoved)
def _(event: e.RolePolicyAdded | e.RolePolicyRemoved, state: LedgerState, at: datetime) -> None:
    state.roles[(event.org, event.role)] = event.grants


@evolve.register
def _(event: e.RoleDeleted, state: LedgerState, at: datetime) -> None:
    state.roles.pop((event.org, event.role), None)


@evolve.register
def _(event: e.ServiceAccountCreated, state: LedgerState, at: datetime) -> None:
    state.accounts[event.account_id] = ServiceAccountView(
        account_id=event.account_id,
        org=event.org,
        name=event.name,
        permission=event.permission,
        deleted=False,
        created_at=at,
    )


@evolve.register(e.ServiceAccountPermissionMoved)
@evolve.register(e.ServiceAccountPermissionLevelChanged)
def _(
    event: e.ServiceAccountPermissionMoved | e.ServiceAccountPermissionLevelChanged,
    state: LedgerState,
    at: datetime,
) -> None:
    account = state.accounts[event.account_id]
    state.accounts[event.account_id] = msgspec.structs.replace(account, permission=event.permission)


@evolve.register
def _(event: e.ServiceAccountDeleted, state: LedgerState, at: datetime) -> None:
    account = state.accounts[event.account_id]
    state.accounts[event.account_id] = msgspec.structs.replace(account, deleted=True)


def issued_token(event: e.TokenIssued) -> TokenView:
    """The token an issue recorded, as it stands before anything else happens to it."""
    return TokenView(
        token_id=event.token_id,
        principal=event.principal,
        kind=event.kind,
        grants=event.grants,
        name=event.name,
        issued_at=event.issued_at,
        expires_at=event.expires_at,
        parent_id=event.parent_id,
    )


@evolve.register
def _(event: e.TokenIssued, state: LedgerState, at: datetime) -> None:
    state.tokens[event.token_id] = issued_token(event)
    state.token_ids_by_secret_hash[event.secret_hash] = event.token_id


@evolve.register
def _(event: e.TokenRevoked, state: LedgerState, at: datetime) -> None:
    token = state.tokens[event.token_id]
    if token.revoked:  # the first revocation is the one that counts
        return
    state.tokens[event.token_id] = msgspec.structs.replace(
        token, revoked_at=at, revoked_reason=event.reason
    )


@evolve.register
def _(event: e.ClientCredentialIssued, state: LedgerState, at: datetime) -> None:
    state.credentials[event.client_id] = ClientCredentialView(
        client_id=event.client_id,
        account_id=event.account_id,
        name=event.name,
        issued_at=event.issued_at,
        expires_at=event.expires_at,
    )


@evolve.register
def _(event: e.ClientCredentialRevoked, state: LedgerState, at: datetime) -> None:
    credential = state.credentials[event.client_id]
    if credential.revoked:  # the first revocation is the one that counts
        return
    state.credentials[event.client_id] = msgspec.structs.replace(
        credential, revoked_at=at, revoked_reason=event.reason
    )


@evolve.register
def _(event: e.IdentityProviderSet, state: LedgerState, at: datetime) -> None:
    state.providers[event.org] = IdentityProviderView(
        org=event.org,
        issuer=event.issuer,
        oidc_client_id=event.oidc_client_id,
        client_secret=event.client_secret,
        session_lifetime=timedelta(seconds=event.session_lifetime),
        set_at=at,
    )


@evolve.register
def _(event: e.SessionStarted, state: LedgerState, at: datetime) -> None:
    state.sessions[event.session_id] = SessionView(
        session_id=event.session_id,
        principal=event.principal,
        org=event.org,
        issuer=event.issuer,
        subject=event.subject,
        started_at=event.started_at,
        expires_at=event.expires_at,
        refresh_hash=event.refresh_hash,
        generation=0,
    )
    state.session_ids_by_refresh_hash[event.refresh_hash] = event.session_id


@evolve.register
def _(event: e.SessionRefreshed, state: LedgerState, at: datetime) -> None:
    session = state.sessions[event.session_id]
    state.sessions[event.session_id] = msgspec.structs.replace(
        session, refresh_hash=event.refresh_hash, generation=event.generation, refreshed_at=at
    )
    state.session_ids_by_refresh_hash[event.refresh_hash] = event.session_id


@evolve.register
def _(event: e.SessionEnded, state: LedgerState, at: datetime) -> None:
    session = state.sessions[event.session_id]
    if session.revoked:  # the first end is the one that counts
        return
    state.sessions[event.session_id] = msgspec.structs.replace(
        session, revoked_at=at, revoked_reason=event.reason
    )


@evolve.register
def _(event: e.IssuerTrusted, state: LedgerState, at: datetime) -> None:
    state.trusts[event.trust_id] = IssuerTrustView(
        trust_id=event.trust_id,
        account_id=event.account_id,
        issuer=event.issuer,
        subject=event.subject,
        audience=event.audience,
        created_at=at,
        expires_at=None,
    )


@evolve.register
def _(event: e.IssuerUntrusted, state: LedgerState, at: datetime) -> None:
    trust = state.trusts[event.trust_id]
    if trust.revoked:
        return
    state.trusts[event.trust_id] = msgspec.structs.replace(
        trust, revoked_at=at, revoked_reason=event.reason
    )


@evolve.register
def _(event: e.EndpointCreated, state: LedgerState, at: datetime) -> None:
    state.endpoints[event.endpoint_id] = EndpointView(
        endpoint_id=event.endpoint_id, name=event.name, url=event.url, created_at=at
    )


@evolve.register
def _(event: e.EndpointDeleted, state: LedgerState, at: datetime) -> None:
    endpoint = state.endpoints[event.endpoint_id]
    state.endpoints[event.endpoint_id] = msgspec.structs.replace(endpoint, deleted_at=at)


@evolve.register
def _(event: e.EndpointTrusted, state: LedgerState, at: datetime) -> None:
    state.trusted_endpoints[(event.account_id, event.endpoint_id)] = TrustedEndpointView(
        account_id=event.account_id, endpoint_id=event.endpoint_id, trusted_at=at
    )


@evolve.register
def _(event: e.EndpointUntrusted, state: LedgerState, at: datetime) -> None:
    state.trusted_endpoints.pop((event.account_id, event.endpoint_id), None)


@evolve.register
def _(event: e.S3CredentialIssued, state: LedgerState, at: datetime) -> None:
    state.s3_credentials[event.access_key_id] = S3CredentialView(
        access_key_id=event.access_key_id,
        account_id=event.account_id,
        endpoint_id=event.endpoint_id,
        issued_at=event.issued_at,
        expires_at=None,
    )


@evolve.register
def _(event: e.S3CredentialRevoked, state: LedgerState, at: datetime) -> None:
    credential = state.s3_credentials[event.access_key_id]
    if credential.revoked:
        return
    state.s3_credentials[event.access_key_id] = msgspec.structs.replace(
        credential, revoked_at=at, revoked_reason=event.reason
    )


# -- a resource's license and data class ------------------------------------------------------


@evolve.register
def _(event: e.ResourceLicenseSet, state: LedgerState, at: datetime) -> None:
    resource = state.resources.get(event.path)
    if resource is not None:
        state.resources[event.path] = msgspec.structs.replace(resource, license=event.license)


@evolve.register
def _(event: e.ResourceDataClassSet, state: LedgerState, at: datetime) -> None:
    resource = state.resources.get(event.path)
    if resource is not None:
        state.resources[event.path] = msgspec.structs.replace(resource, data_class=event.data_class)


# -- suspension ------------------------------------------------------------------------------


@evolve.register
def _(event: e.TokenDisabled, state: LedgerState, at: datetime) -> None:
    token = state.tokens[event.token_id]
    state.tokens[event.token_id] = msgspec.structs.replace(
        token, disabled_at=at, disabled_by=event.disabled_by, disabled_cause=event.cause
    )


@evolve.register
def _(event: e.TokenEnabled, state: LedgerState, at: datetime) -> None:
    token = state.tokens[event.token_id]
    state.tokens[event.token_id] = msgspec.structs.replace(
        token, disabled_at=None, disabled_by=None, disabled_cause=None
    )


@evolve.register(e.ServiceAccountDisabled)
@evolve.register(e.ServiceAccountEnabled)
def _(
    event: e.ServiceAccountDisabled | e.ServiceAccountEnabled, state: LedgerState, at: datetime
) -> None:
    disabled = isinstance(event, e.ServiceAccountDisabled)
    account = state.accounts[event.account_id]
    state.accounts[event.account_id] = msgspec.structs.replace(
        account,
        disabled_at=at if disabled else None,
        disabled_by=event.disabled_by if isinstance(event, e.ServiceAccountDisabled) else None,
    )


@evolve.register(e.ClientCredentialDisabled)
@evolve.register(e.ClientCredentialEnabled)
def _(
    event: e.ClientCredentialDisabled | e.ClientCredentialEnabled, state: LedgerState, at: datetime
) -> None:
    disabled = isinstance(event, e.ClientCredentialDisabled)
    credential = state.credentials[event.client_id]
    state.credentials[event.client_id] = msgspec.structs.replace(
        credential,
        disabled_at=at if disabled else None,
        disabled_by=event.disabled_by if isinstance(event, e.ClientCredentialDisabled) else None,
    )


# -- rotation and org policies ----------------------------------------------------------------


@evolve.register(e.TokenRotated)
@evolve.register(e.TokenExpiryShortened)
def _(event: e.TokenRotated | e.TokenExpiryShortened, state: LedgerState, at: datetime) -> None:
    token = state.tokens[event.token_id]
    state.tokens[event.token_id] = msgspec.structs.replace(token, expires_at=event.expires_at)
    if isinstance(event, e.TokenRotated):
        state.successors.setdefault(event.token_id, event.successor_id)


@evolve.register(e.ClientCredentialRotated)
@evolve.register(e.ClientCredentialExpiryShortened)
def _(
    event: e.ClientCredentialRotated | e.ClientCredentialExpiryShortened,
    state: LedgerState,
    at: datetime,
) -> None:
    credential = state.credentials[event.client_id]
    state.credentials[event.client_id] = msgspec.structs.replace(
        credential, expires_at=event.expires_at
    )
    if isinstance(event, e.ClientCredentialRotated):
        state.successors.setdefault(event.client_id, event.successor_id)


@evolve.register
def _(event: e.OrgPolicySet, state: LedgerState, at: datetime) -> None:
    state.policies[event.org] = policy_view(event, at)


@evolve.register
def _(event: e.OrgPolicyCleared, state: LedgerState, at: datetime) -> None:
    state.policies.pop(event.org, None)


def policy_view(event: e.OrgPolicySet, at: datetime | None) -> OrgPolicyView:
    """The policy an ``OrgPolicySet`` records, lifetimes as durations."""
    admin = event.max_admin_lifetime
    return OrgPolicyView(
        org=event.org,
        max_lifetime={kind: timedelta(seconds=s) for kind, s in sorted(event.max_lifetime.items())},
        require_expiry=event.require_expiry,
        max_admin_lifetime=timedelta(seconds=admin) if admin is not None else None,
        max_live_tokens=event.max_live_tokens,
        set_at=at,
    )


# -- webhooks ---------------------------------------------------------------------------------


@evolve.register
def _(event: e.WebhookCreated, state: LedgerState, at: datetime) -> None:
    state.webhooks[event.webhook_id] = WebhookView(
        webhook_id=event.webhook_id,
        org=event.org,
        url=event.url,
        events=event.events,
        created_at=at,
    )


@evolve.register
def _(event: e.WebhookSecretRotated, state: LedgerState, at: datetime) -> None:
    webhook = state.webhooks[event.webhook_id]
    state.webhooks[event.webhook_id] = msgspec.structs.replace(
        webhook, secret_generation=event.generation, rotated_at=at
    )


@evolve.register
def _(event: e.WebhookDeleted, state: LedgerState, at: datetime) -> None:
    webhook = state.webhooks[event.webhook_id]
    if not webhook.deleted:
        state.webhooks[event.webhook_id] = msgspec.structs.replace(webhook, deleted_at=at)


# -- last use of a credential -----------------------------------------------------------


@evolve.register
def _(event: e.TokenUsed, state: LedgerState, at: datetime) -> None:
    # The ledger records at most one use per credential and interval, in time order
    # (``domain.decide_usage``): the last one recorded is the latest.
    used = {"last_used_at": event.last_used_at}
    if event.token_id is not None and event.token_id in state.tokens:
        token = state.tokens[event.token_id]
        state.tokens[event.token_id] = msgspec.structs.replace(token, **used)
    elif event.client_id is not None and event.client_id in state.credentials:
        credential = state.credentials[event.client_id]
        state.credentials[event.client_id] = msgspec.structs.replace(credential, **used)
    elif event.session_id is not None and event.session_id in state.sessions:
        session = state.sessions[event.session_id]
        state.sessions[event.session_id] = msgspec.structs.replace(session, **used)
