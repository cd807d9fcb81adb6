"""What decisions read: the current state of the ledger, behind one read-only protocol.

``LedgerView`` is implemented twice: by ``domain.state.LedgerState`` (an
in-memory fold of events, for pure given/when/then tests) and by the SQL
projections (``projections.view.SqlLedgerView``) that the ledger service reads
inside a command's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import msgspec

from tokenledger.domain.permissions import Grant

if TYPE_CHECKING:
    from tokenledger.domain.token_filter import TokenFilter
    from tokenledger.domain.webhooks import WebhookView

__all__ = [
    "MAX_SESSION_LIFETIME",
    "PREDEFINED_ROLES",
    "SERVICE_ACCOUNT_DOMAIN",
    "AccessVia",
    "Actor",
    "ActorKind",
    "ClientCredentialView",
    "EndpointView",
    "IdentityProviderView",
    "Introspection",
    "IssuedAccessToken",
    "IssuerTrustView",
    "LedgerView",
    "OrgPolicyView",
    "ResourceView",
    "S3CredentialView",
    "SecretView",
    "ServiceAccountView",
    "SessionView",
    "StandingView",
    "TokenView",
    "TrustedEndpointView",
    "UserView",
    "is_machine_principal",
    "is_role_principal",
    "is_service_account_id",
    "predefined_role_grants",
    "role_of_principal",
    "role_principal",
    "service_account_id",
    "service_account_org",
]

#: Service accounts are named ``<name>@<org>.service.tokenledger`` (not a mail domain).
SERVICE_ACCOUNT_DOMAIN = "service.tokenledger"

#: The longest a login session lives (an org may choose less).
MAX_SESSION_LIFETIME = timedelta(days=30)

#: Roles every org has. ``member`` grants nothing by itself.
PREDEFINED_ROLES = ("admin", "auditor", "member")


def service_account_id(name: str, org: str) -> str:
    return f"{name}@{org}.{SERVICE_ACCOUNT_DOMAIN}"


def is_service_account_id(principal: str) -> bool:
    return principal.endswith(_SERVICE_ACCOUNT_SUFFIX)


def service_account_org(account_id: str) -> str:
    """The org a service account's id names (``ci@acme.service.tokenledger``: ``acme``)."""
    return account_id.rpartition("@")[2].removesuffix(_SERVICE_ACCOUNT_SUFFIX)


_SERVICE_ACCOUNT_SUFFIX = "." + SERVICE_ACCOUNT_DOMAIN


# -- role keys' principals ------------------------------------------------------------
# A role key acts as its role, named ``ORG:ROLE``: no email and no service account id has a
# ':' without an '@', so the name cannot pass for either.


def role_principal(org: str, role: str) -> str:
    """The principal a role's keys act as: ``ORG:ROLE``."""
    return f"{org}:{role}"


def is_role_principal(principal: str) -> bool:
    return ":" in principal and "@" not in principal


def is_machine_principal(principal: str) -> bool:
    """A service account, or a role whose keys act as it: a principal with no email."""
    return is_service_account_id(principal) or is_role_principal(principal)


def role_of_principal(principal: str) -> tuple[str, str]:
    """(org, role) of a role key's principal."""
    org, _, role = principal.partition(":")
    return org, role


def predefined_role_grants(org: str, role: str) -> tuple[Grant, ...] | None:
    if role == "admin":
        return (Grant(org, "admin"),)
    if role == "auditor":
        return (Grant(org, "read"),)
    if role == "member":
        return ()
    return None


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    name: str | None
    disabled: bool
    created_at: datetime
    account_id: str | None = None
    """The Dyff account id ``accounts create`` gave the user (None for other users)."""


class ResourceView(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    kind: str
    created_at: datetime
    license: str | None = None
    """An SPDX-style identifier; None until an admin sets one."""
    data_class: str | None = None
    """``public``, ``private``, ``workspace`` or ``confidential``; None until set."""


class ServiceAccountView(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    org: str
    name: str
    permission: Grant
    deleted: bool
    created_at: datetime
    disabled_at: datetime | None = None
    """Since when the account is suspended (None: it is not)."""
    disabled_by: str | None = None
    """While suspended: ``operator``, or the principal who suspended it."""

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


class _Credential(msgspec.Struct, frozen=True, kw_only=True):
    """What every credential has: an expiry, and a revocation once revoked."""

    expires_at: datetime | None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    disabled_at: datetime | None = None
    """Since when the credential is suspended (None: it is not). A suspension is reversible;
    it neither revokes nor extends anything, so ``live`` ignores it."""
    disabled_by: str | None = None
    """While suspended: ``operator``, or the principal who suspended it."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def live(self, now: datetime) -> bool:
        return not self.revoked and not self.expired(now)

    def status(self, now: datetime) -> str:
        """``revoked``, ``expired``, ``disabled`` or ``active``: what listings show (a
        revocation or an expiry outranks a suspension, which enabling cannot undo)."""
        if self.revoked:
            return "revoked"
        if self.expired(now):
            return "expired"
        return "disabled" if self.disabled else "active"


class TokenView(_Credential, frozen=True, kw_only=True):
    token_id: str
    principal: str
    kind: str
    grants: tuple[Grant, ...]
    name: str | None
    issued_at: datetime
    parent_id: str | None
    disabled_cause: str | None = None
    """While disabled: None when asked for, else the token whose disabling this followed."""
    last_used_at: datetime | None = msgspec.field(default=None, name="last_used")
    """The last recorded use (``TokenUsed``); None when never used."""


class ClientCredentialView(_Credential, frozen=True, kw_only=True):
    """A service account's OAuth2 client credential (its secret is known only by hash)."""

    client_id: str
    account_id: str
    name: str | None
    issued_at: datetime
    last_used_at: datetime | None = msgspec.field(default=None, name="last_used")
    """The last recorded use, its access tokens' included (``TokenUsed``)."""


class IdentityProviderView(msgspec.Struct, frozen=True, kw_only=True):
    """The OpenID Connect provider an org's members log in through."""

    org: str
    issuer: str
    oidc_client_id: str
    client_secret: bool
    session_lifetime: timedelta
    set_at: datetime


class SessionView(_Credential, frozen=True, kw_only=True):
    """A login session; ``revoked_at`` is when it ended. Its refresh token is known by the
    hash of its secret (``refresh_hash``, the current one) and ``generation`` counts its
    rotations."""

    session_id: str
    principal: str
    org: str
    issuer: str
    subject: str
    started_at: datetime
    refresh_hash: str
    generation: int
    refreshed_at: datetime | None = None
    last_used_at: datetime | None = msgspec.field(default=None, name="last_used")
    """The last recorded use, its access tokens' included (``TokenUsed``)."""

    def status(self, now: datetime) -> str:
        """``ended``, ``expired`` or ``active``: what listings show."""
        return "ended" if self.revoked else "expired" if self.expired(now) else "active"


class IssuerTrustView(_Credential, frozen=True, kw_only=True):
    """A service account's trust in an external issuer's ID tokens (``revoked_at``: when
    the trust was withdrawn)."""

    trust_id: str
    account_id: str
    issuer: str
    subject: str
    audience: str
    created_at: datetime


class EndpointView(msgspec.Struct, frozen=True, kw_only=True):
    """A data proxy (an S3-compatible gateway); ``deleted_at`` once it is gone."""

    endpoint_id: str
    name: str
    url: str
    created_at: datetime
    deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


class TrustedEndpointView(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint on a service account's trusted list."""

    account_id: str
    endpoint_id: str
    trusted_at: datetime


class S3CredentialView(_Credential, frozen=True, kw_only=True):
    """A service account's S3 credentials at one endpoint, known by the access key id (the
    secret key is derived, never kept)."""

    access_key_id: str
    account_id: str
    endpoint_id: str
    issued_at: datetime


class OrgPolicyView(msgspec.Struct, frozen=True, kw_only=True):
    """An org's policy for the tokens it covers (``domain.org_policy`` says which those are
    and judges them): the longest lifetime by token kind, whether every token must expire,
    the longest lifetime of a token with an admin grant, and how many live tokens one
    principal may hold."""

    org: str
    max_lifetime: dict[str, timedelta] = {}
    require_expiry: bool = False
    max_admin_lifetime: timedelta | None = None
    max_live_tokens: int | None = None
    set_at: datetime | None = None


class IssuedAccessToken(msgspec.Struct, frozen=True, kw_only=True):
    """A signed access token (JWT) obtained with a client credential (RFC 6749 section 4.4)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str
    jti: str
    expires_at: datetime


class Introspection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 7662 answer about a ledger token or an access token (JWT).

    ``reason`` says why an inactive token is inactive, for metrics and logs; it is
    not part of the HTTP answer, which says no more than ``{"active": false}``.
    """

    active: bool
    reason: str | None = None
    sub: str | None = None
    scope: str | None = None
    exp: int | None = None
    iat: int | None = None
    token_type: str | None = None
    client_id: str | None = None
    token_id: str | None = None
    iss: str | None = None
    org: str | None = None
    grants: tuple[Grant, ...] = ()
    allowed: bool | None = None
    resource: str | None = None
    level: str | None = None
    source: str | None = None
    """What obtained an access token (its session or client credential id), whose use it
    counts as (``service.usage``); like ``reason``, not part of the HTTP answer."""


class ActorKind(StrEnum):
    OPERATOR = "operator"
    USER = "user"
    SERVICE_ACCOUNT = "service_account"
    ROLE_KEY = "role_key"
    """A role's key: acts with the role's grants, and (like a service account) is a
    machine's credential, not a person."""


class AccessVia(msgspec.Struct, frozen=True, kw_only=True):
    """A signed access token (JWT) a caller presented: what obtained it (``source``: a
    session ``ses_...``, a client credential ``cid_...`` or an issuer trust ``wif_...``),
    and the grants and lifetime it was signed with. It is usable while its source is."""

    source: str
    jti: str
    grants: tuple[Grant, ...]
    issued_at: datetime
    expires_at: datetime
    org: str | None = None
    """A session's org: the only org whose provider vouched for the caller."""

    @property
    def session(self) -> bool:
        return self.source.startswith("ses_")


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who runs a command: the local operator (full rights), or a principal acting via a token
    (``token_id``) or via a signed access token (``via``; ``token_id`` then names its
    source, which the log records as what the actor acted through)."""

    kind: ActorKind
    principal: str
    token_id: str | None = None
    via: AccessVia | None = None

    @property
    def label(self) -> str:
        """What the log records as the event's actor."""
        if self.kind is ActorKind.OPERATOR:
            return f"operator:{self.principal}"
        return self.principal

    @classmethod
    def operator(cls, name: str) -> Actor:
        return cls(kind=ActorKind.OPERATOR, principal=name)

    @classmethod
    def through_token(cls, principal: str, token_id: str) -> Actor:
        """A principal acting through one of its tokens (a role through one of its keys)."""
        kind = ActorKind.SERVICE_ACCOUNT if is_service_account_id(principal) else ActorKind.USER
        if is_role_principal(principal):
            kind = ActorKind.ROLE_KEY
        return cls(kind=kind, principal=principal, token_id=token_id)

    @classmethod
    def through_access_token(cls, principal: str, via: AccessVia) -> Actor:
        """A principal acting through a signed access token (a session's, a client
        credential's or an exchanged one)."""
        kind = ActorKind.SERVICE_ACCOUNT if is_service_account_id(principal) else ActorKind.USER
        return cls(kind=kind, principal=principal, token_id=via.source, via=via)


class StandingView(Protocol):
    """What a principal's standing (``authority.standing``) and so a token's answer read:
    the part of ``LedgerView`` that a view of a past moment
    (``projections.temporal_view``) answers too."""

    def user(self, email: str) -> UserView | None: ...

    def memberships(self, email: str) -> dict[str, str]: ...

    def role(self, org: str, name: str) -> tuple[Grant, ...] | None: ...

    def direct_grants(self, email: str) -> Sequence[Grant]: ...

    def service_account(self, account_id: str) -> ServiceAccountView | None: ...


class SecretView(StandingView, Protocol):
    """``StandingView`` and finding a token by its secret's hash (``authority.verify_secret``)."""

    def token_by_secret_hash(self, secret_hash: str) -> TokenView | None: ...


class LedgerView(Protocol):
    """Read-only questions a decision may ask of the current state."""

    def org_exists(self, org: str) -> bool: ...

    def user(self, email: str) -> UserView | None: ...

    def user_by_account_id(self, account_id: str) -> UserView | None:
        """The user ``accounts create`` gave this Dyff account id."""
        ...

    def memberships(self, email: str) -> dict[str, str]:
        """The user's orgs and their role in each."""
        ...

    def members(self, org: str) -> dict[str, str]:
        """The org's members (email) and their roles."""
        ...

    def resource(self, path: str) -> ResourceView | None: ...

    def resources_under(self, path: str) -> Sequence[ResourceView]:
        """Descendants of ``path`` (not ``path`` itself)."""
        ...

    def role(self, org: str, name: str) -> tuple[Grant, ...] | None:
        """A role's grants, predefined roles included; None for an unknown role."""
        ...

    def roles_of(self, org: str) -> dict[str, tuple[Grant, ...]]:
        """Every role of ``org`` (predefined and custom), by name; empty for an unknown org."""
        ...

    def direct_grants(self, email: str) -> Sequence[Grant]: ...

    def direct_grants_under(self, path: str) -> Sequence[tuple[str, Grant]]:
        """(email, grant) for every direct user grant on ``path`` or below it."""
        ...

    def service_account(self, account_id: str) -> ServiceAccountView | None: ...

    def service_accounts_under(self, path: str) -> Sequence[ServiceAccountView]:
        """Service accounts (not deleted) whose permission lies on ``path`` or below it."""
        ...

    def token(self, token_id: str) -> TokenView | None: ...

    def token_by_secret_hash(self, secret_hash: str) -> TokenView | None:
        """The token whose secret hashes (``hash_secret``) to ``secret_hash``."""
        ...

    def tokens_of(self, principal: str) -> Sequence[TokenView]:
        """Every token of the principal, revoked and expired ones included."""
        ...

    def child_tokens(self, token_ids: Collection[str]) -> Sequence[TokenView]:
        """Tokens derived directly from any of ``token_ids``; by id."""
        ...

    def tokens_with_grant_under(self, path: str) -> Sequence[TokenView]:
        """Unrevoked tokens with at least one grant on ``path`` or below it."""
        ...

    def token_candidates(self, token_filter: TokenFilter, now: datetime) -> Sequence[TokenView]:
        """Unrevoked tokens among which are all those ``token_filter`` matches at ``now``,
        narrowed as far as the storage's indexes make cheap: a superset, never the answer
        (``TokenFilter.matches`` decides); by id."""
        ...

    def client_credential(self, client_id: str) -> ClientCredentialView | None: ...

    def client_credentials_of(self, account_id: str) -> Sequence[ClientCredentialView]:
        """Every client credential of the service account, revoked ones included; by id."""
        ...

    def identity_provider(self, org: str) -> IdentityProviderView | None: ...

    def session(self, session_id: str) -> SessionView | None: ...

    def session_by_refresh_hash(self, refresh_hash: str) -> SessionView | None:
        """The session any of whose refresh tokens, current or spent, has this hash."""
        ...

    def sessions_of(self, principal: str) -> Sequence[SessionView]:
        """Every session of the user, ended ones included; oldest first."""
        ...

    def sessions_in_org(self, org: str) -> Sequence[SessionView]:
        """Every session started through the org's provider, ended ones included; oldest
        first."""
        ...

    def issuer_trust(self, trust_id: str) -> IssuerTrustView | None: ...

    def issuer_trusts_of(self, account_id: str) -> Sequence[IssuerTrustView]:
        """Every issuer trust of the service account, withdrawn ones included; oldest first."""
        ...

    def endpoint(self, endpoint_id: str) -> EndpointView | None:
        """The endpoint with this id, deleted or not."""
        ...

    def endpoint_named(self, name: str) -> EndpointView | None:
        """The endpoint (not deleted) with this name."""
        ...

    def live_endpoints(self) -> Sequence[EndpointView]:
        """Every endpoint not deleted, by name."""
        ...

    def trusted_endpoints_of(self, account_id: str) -> Sequence[TrustedEndpointView]:
        """The service account's trusted endpoints, oldest first."""
        ...

    def accounts_trusting(self, endpoint_id: str) -> Sequence[TrustedEndpointView]:
        """Every service account trusting the endpoint, by account id."""
        ...

    def s3_credential(self, access_key_id: str) -> S3CredentialView | None: ...

    def s3_credentials_of(self, account_id: str) -> Sequence[S3CredentialView]:
        """Every S3 credential of the service account, revoked ones included; oldest first."""
        ...

    def s3_credentials_at(self, endpoint_id: str) -> Sequence[S3CredentialView]:
        """Every unrevoked S3 credential at the endpoint, by access key id."""
        ...

    def org_policy(self, org: str) -> OrgPolicyView | None:
        """The org's token policy; None when it has none."""
        ...

    def successor_of(self, rotated_id: str) -> str | None:
        """The token or client credential that succeeded ``rotated_id`` (None: not rotated)."""
        ...

    def predecessor_of(self, successor_id: str) -> str | None:
        """The token or client credential ``successor_id`` succeeded (None: none)."""
        ...

    def webhook(self, webhook_id: str) -> WebhookView | None:
        """The webhook with this id, deleted or not."""
        ...

    def webhooks_of(self, org: str) -> Sequence[WebhookView]:
        """The org's webhooks not deleted, by id."""
        ...
