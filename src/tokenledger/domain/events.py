"""The ledger's events: facts, named in the past tense, never changed once recorded.

Each event is a frozen msgspec Struct in one tagged union, so a single decoder
reads the whole log. ``SCHEMA_VERSION`` is stored beside each event; older
versions are upcast when read, never rewritten. Events never hold a secret:
a token appears only as its public id and the SHA-256 hash of its secret.

Every event names the stream (aggregate) it belongs to: ``org:<name>``,
``user:<email>``, ``resource:<path>``, ``role:<org>/<name>``,
``sa:<service account id>``, ``token:<token id>``, ``webhook:<webhook id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import msgspec

from tokenledger.domain.permissions import Grant

__all__ = [
    "ClientCredentialDisabled",
    "ClientCredentialEnabled",
    "ClientCredentialExpiryShortened",
    "ClientCredentialIssued",
    "ClientCredentialRevoked",
    "ClientCredentialRotated",
    "EndpointCreated",
    "EndpointDeleted",
    "EndpointTrusted",
    "EndpointUntrusted",
    "Event",
    "EventUnion",
    "ExpiryReason",
    "GrantRemoved",
    "GrantSet",
    "IdentityProviderSet",
    "IssuerTrusted",
    "IssuerUntrusted",
    "MemberAdded",
    "MemberRemoved",
    "MemberRoleChanged",
    "OrgCreated",
    "OrgPolicyCleared",
    "OrgPolicySet",
    "ResourceCreated",
    "ResourceDataClassSet",
    "ResourceDeleted",
    "ResourceLicenseSet",
    "RevocationReason",
    "RoleCreated",
    "RoleDeleted",
    "RolePolicyAdded",
    "RolePolicyRemoved",
    "S3CredentialIssued",
    "S3CredentialRevoked",
    "ServiceAccountCreated",
    "ServiceAccountDeleted",
    "ServiceAccountDisabled",
    "ServiceAccountEnabled",
    "ServiceAccountPermissionLevelChanged",
    "ServiceAccountPermissionMoved",
    "SessionEnded",
    "SessionRefreshed",
    "SessionStarted",
    "TokenDisabled",
    "TokenEnabled",
    "TokenExpiryShortened",
    "TokenIssued",
    "TokenRevoked",
    "TokenRotated",
    "TokenUsed",
    "UserCreated",
    "UserDisabled",
    "WebhookCreated",
    "WebhookDeleted",
    "WebhookSecretRotated",
    "event_types",
]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event. ``stream_id`` names the aggregate the event belongs to."""

    SCHEMA_VERSION: ClassVar[int] = 1
    #: The stream's prefix and the field naming the aggregate: ("sa", "account_id").
    STREAM: ClassVar[tuple[str, str]]

    @property
    def stream_id(self) -> str:
        prefix, field = self.STREAM
        return f"{prefix}:{getattr(self, field)}"


# -- organizations and users --------------------------------------------------


class OrgCreated(Event, frozen=True, kw_only=True, tag="OrgCreated"):
    org: str

    STREAM: ClassVar[tuple[str, str]] = ("org", "org")


class UserCreated(Event, frozen=True, kw_only=True, tag="UserCreated"):
    """A user was created; by ``accounts create`` (Dyff's word), with the account id it was
    given, a UUID's 32 hexadecimal digits (events recorded before account ids have none)."""

    email: str
    name: str | None = None
    account_id: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("user", "email")


class UserDisabled(Event, frozen=True, kw_only=True, tag="UserDisabled"):
    email: str
    reason: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("user", "email")


class MemberAdded(Event, frozen=True, kw_only=True, tag="MemberAdded"):
    org: str
    email: str
    role: str

    STREAM: ClassVar[tuple[str, str]] = ("org", "org")


class MemberRoleChanged(Event, frozen=True, kw_only=True, tag="MemberRoleChanged"):
    org: str
    email: str
    role: str
    previous_role: str

    STREAM: ClassVar[tuple[str, str]] = ("org", "org")


class MemberRemoved(Event, frozen=True, kw_only=True, tag="MemberRemoved"):
    org: str
    email: str

    STREAM: ClassVar[tuple[str, str]] = ("org", "org")


# -- resources, grants and roles ------------------------------------------------


class ResourceCreated(Event, frozen=True, kw_only=True, tag="ResourceCreated"):
    path: str
    kind: str

    STREAM: ClassVar[tuple[str, str]] = ("resource", "path")


class ResourceDeleted(Event, frozen=True, kw_only=True, tag="ResourceDeleted"):
    """One per deleted node; a recursive delete records the deepest nodes first."""

    path: str

    STREAM: ClassVar[tuple[str, str]] = ("resource", "path")


class GrantSet(Event, frozen=True, kw_only=True, tag="GrantSet"):
    """A user's direct permission on a resource was set (replacing any earlier level there)."""

    principal: str
    grant: Grant

    STREAM: ClassVar[tuple[str, str]] = ("user", "principal")


class GrantRemoved(Event, frozen=True, kw_only=True, tag="GrantRemoved"):
    """A user's direct permission on a resource was withdrawn (by request or by a cascade)."""

    principal: str
    resource: str
    reason: str

    STREAM: ClassVar[tuple[str, str]] = ("user", "principal")


class RoleCreated(Event, frozen=True, kw_only=True, tag="RoleCreated"):
    org: str
    role: str
    grants: tuple[Grant, ...]

    @property
    def stream_id(self) -> str:
        return f"role:{self.org}/{self.role}"


# -- a resource's license and data class ------------------------------------------------


class ResourceLicenseSet(Event, frozen=True, kw_only=True, tag="ResourceLicenseSet"):
    """The license a resource's data is under (an SPDX-style identifier), replacing any
    earlier one. A resource deleted and created again starts without one."""

    path: str
    license: str

    STREAM: ClassVar[tuple[str, str]] = ("resource", "path")


class ResourceDataClassSet(Event, frozen=True, kw_only=True, tag="ResourceDataClassSet"):
    """Who a resource's data is for: ``public``, ``private``, ``workspace`` or
    ``confidential`` (``domain.resource_attributes.DataClass``), replacing any earlier one."""

    path: str
    data_class: str

    STREAM: ClassVar[tuple[str, str]] = ("resource", "path")


# -- service accounts -----------------------------------------------------------------


class ServiceAccountCreated(Event, frozen=True, kw_only=True, tag="ServiceAccountCreated"):
    account_id: str
    org: str
    name: str
    permission: Grant

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


class ServiceAccountPermissionMoved(
    Event, frozen=True, kw_only=True, tag="ServiceAccountPermissionMoved"
):
    """The account's one permission now lies on another project; its tokens are revoked."""

    account_id: str
    previous: Grant
    permission: Grant

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


class ServiceAccountPermissionLevelChanged(
    Event, frozen=True, kw_only=True, tag="ServiceAccountPermissionLevelChanged"
):
    """Same project, another level: tokens stay, their effect follows the new level."""

    account_id: str
    previous: Grant
    permission: Grant

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


class ServiceAccountDeleted(Event, frozen=True, kw_only=True, tag="ServiceAccountDeleted"):
    account_id: str

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


# -- tokens --------------------------------------------------------------------


class RevocationReason:
    """Machine-readable reasons a token was revoked (the ``reason`` of ``TokenRevoked``)."""

    REQUESTED = "requested"
    SERVICE_ACCOUNT_MOVED = "service_account_moved"
    SERVICE_ACCOUNT_DELETED = "service_account_deleted"
    USER_DISABLED = "user_disabled"
    MEMBER_REMOVED = "member_removed"
    PARENT_REVOKED = "parent_revoked"
    RESOURCE_DELETED = "resource_deleted"
    LOGGED_OUT = "logged_out"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    PROVIDER_CHANGED = "provider_changed"
    ENDPOINT_UNTRUSTED = "endpoint_untrusted"
    ENDPOINT_DELETED = "endpoint_deleted"
    ROLE_DELETED = "role_deleted"


class TokenIssued(Event, frozen=True, kw_only=True, tag="TokenIssued"):
    """A token was issued.

    Version 2 added ``issued_by``: the id of the token the issuer acted through
    (None for the operator), so an audit can follow which credential minted
    which. Version 1 events are upcast with ``issued_by`` = None (see
    ``store/upcasting.py``).
    """

    SCHEMA_VERSION: ClassVar[int] = 2

    token_id: str
    principal: str
    kind: str
    secret_hash: str
    """SHA-256 of the secret, hex. The secret itself is never recorded."""
    grants: tuple[Grant, ...]
    name: str | None = None
    issued_at: datetime
    expires_at: datetime | None = None
    parent_id: str | None = None
    issued_by: str | None

    STREAM: ClassVar[tuple[str, str]] = ("token", "token_id")


class TokenRevoked(Event, frozen=True, kw_only=True, tag="TokenRevoked"):
    """A token can no longer be used.

    Version 2 added ``orgs``: the orgs a user's token had grants in, so that the
    revocation is indexed under them and their admins and auditors see it (a service
    account's org is named by its id). Version 1 events are upcast with none.
    """

    SCHEMA_VERSION: ClassVar[int] = 2

    token_id: str
    principal: str
    reason: str
    """One of ``RevocationReason``."""
    detail: str | None = None
    """For people: the request's text, or what the cascade's root cause was."""
    orgs: tuple[str, ...] = ()

    STREAM: ClassVar[tuple[str, str]] = ("token", "token_id")


# -- client credentials ------------------------------------------------------------


class ClientCredentialIssued(Event, frozen=True, kw_only=True, tag="ClientCredentialIssued"):
    """A service account was given an OAuth2 client id and secret (RFC 6749 section 4.4).

    Like a token, the secret itself is never recorded: only its SHA-256 hash.
    """

    client_id: str
    account_id: str
    secret_hash: str
    name: str | None = None
    issued_at: datetime
    expires_at: datetime | None = None
    issued_by: str | None = None
    """The id of the token the issuer acted through (None for the operator)."""

    STREAM: ClassVar[tuple[str, str]] = ("client", "client_id")


class ClientCredentialRevoked(Event, frozen=True, kw_only=True, tag="ClientCredentialRevoked"):
    """A client credential stopped working; every access token it obtained is inactive too."""

    client_id: str
    account_id: str
    reason: str
    """One of ``RevocationReason``."""
    detail: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("client", "client_id")


# -- logging in: identity providers and sessions ------------------------------------------


class IdentityProviderSet(Event, frozen=True, kw_only=True, tag="IdentityProviderSet"):
    """An org's members log in through this OpenID Connect provider.

    The provider's client secret, where it needs one, is kept with the signing keys,
    never here: ``client_secret`` only says whether one is kept.
    """

    org: str
    issuer: str
    oidc_client_id: str
    """The ledger's client id at the provider."""
    client_secret: bool = False
    session_lifetime: int
    """How long a session lives at most, in seconds (at most 30 days)."""

    STREAM: ClassVar[tuple[str, str]] = ("org", "org")


class SessionStarted(Event, frozen=True, kw_only=True, tag="SessionStarted"):
    """A user logged in through their org's identity provider.

    The session is known by its id; its refresh token only by the SHA-256 of its
    secret. ``subject`` is the provider's ``sub`` for the user.
    """

    session_id: str
    principal: str
    org: str
    issuer: str
    subject: str
    refresh_hash: str
    started_at: datetime
    expires_at: datetime

    STREAM: ClassVar[tuple[str, str]] = ("session", "session_id")


class SessionRefreshed(Event, frozen=True, kw_only=True, tag="SessionRefreshed"):
    """The session's refresh token was used and replaced by a new one (rotation): the
    previous one is spent, and presenting it again ends the session."""

    session_id: str
    principal: str
    org: str
    refresh_hash: str
    generation: int

    STREAM: ClassVar[tuple[str, str]] = ("session", "session_id")


class SessionEnded(Event, frozen=True, kw_only=True, tag="SessionEnded"):
    """The session is over: logged out, ended by a cascade, or its refresh token was
    presented twice (a sign of theft). Every access token it obtained is inactive."""

    session_id: str
    principal: str
    org: str
    reason: str
    """One of ``RevocationReason``."""
    detail: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("session", "session_id")


# -- workload identity federation --------------------------------------------------------


class IssuerTrusted(Event, frozen=True, kw_only=True, tag="IssuerTrusted"):
    """A service account accepts ID tokens of an external OpenID Connect issuer whose
    subject matches ``subject`` (``*`` matches any run of characters) and whose
    audience is ``audience``, in exchange for its own access tokens (RFC 8693)."""

    trust_id: str
    account_id: str
    issuer: str
    subject: str
    audience: str

    STREAM: ClassVar[tuple[str, str]] = ("trust", "trust_id")


class IssuerUntrusted(Event, frozen=True, kw_only=True, tag="IssuerUntrusted"):
    """The trust is withdrawn (by request or by a cascade); what it obtained is inactive."""

    trust_id: str
    account_id: str
    reason: str
    """One of ``RevocationReason``."""
    detail: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("trust", "trust_id")


# -- the data plane: endpoints and S3 credentials -----------------------------------------


class EndpointCreated(Event, frozen=True, kw_only=True, tag="EndpointCreated"):
    """A data proxy (an S3-compatible gateway) is known to the ledger by id and name."""

    endpoint_id: str
    name: str
    url: str

    STREAM: ClassVar[tuple[str, str]] = ("endpoint", "endpoint_id")


class EndpointDeleted(Event, frozen=True, kw_only=True, tag="EndpointDeleted"):
    """The endpoint is gone: no account trusts it and its S3 credentials are revoked (each
    by its own event, in the same command)."""

    endpoint_id: str
    name: str

    STREAM: ClassVar[tuple[str, str]] = ("endpoint", "endpoint_id")


class EndpointTrusted(Event, frozen=True, kw_only=True, tag="EndpointTrusted"):
    """A service account put the endpoint on its trusted list: it may hold S3 credentials
    there."""

    account_id: str
    endpoint_id: str

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


class EndpointUntrusted(Event, frozen=True, kw_only=True, tag="EndpointUntrusted"):
    """The endpoint left the account's trusted list (by request, or because it was deleted)."""

    account_id: str
    endpoint_id: str
    reason: str
    """One of ``RevocationReason``."""
    detail: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


class S3CredentialIssued(Event, frozen=True, kw_only=True, tag="S3CredentialIssued"):
    """A service account was given S3 credentials for one trusted endpoint.

    Only the access key id is recorded: the secret key is derived from it with a key kept
    beside the signing keys (``service.s3``), never stored anywhere.
    """

    access_key_id: str
    account_id: str
    endpoint_id: str
    issued_at: datetime
    issued_by: str | None = None
    """The id of the token the issuer acted through (None for the operator)."""

    STREAM: ClassVar[tuple[str, str]] = ("s3", "access_key_id")


class S3CredentialRevoked(Event, frozen=True, kw_only=True, tag="S3CredentialRevoked"):
    """The S3 credentials stopped working (by request or by a cascade)."""

    access_key_id: str
    account_id: str
    endpoint_id: str
    reason: str
    """One of ``RevocationReason``."""
    detail: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("s3", "access_key_id")


# -- role policies and role deletion (a role's keys are tokens: TokenIssued, kind "role") ---


class _RoleEvent(Event, frozen=True, kw_only=True):
    org: str
    role: str

    @property
    def stream_id(self) -> str:
        return f"role:{self.org}/{self.role}"


class RolePolicyAdded(_RoleEvent, frozen=True, kw_only=True, tag="RolePolicyAdded"):
    """The role now grants ``grant`` (replacing any level it had on that resource);
    ``grants`` is the role's whole set after the change. Its keys act with it at their
    next verification."""

    grant: Grant
    grants: tuple[Grant, ...]


class RolePolicyRemoved(_RoleEvent, frozen=True, kw_only=True, tag="RolePolicyRemoved"):
    """The role no longer grants anything on ``resource``; ``grants`` is what is left."""

    resource: str
    grants: tuple[Grant, ...]


class RoleDeleted(_RoleEvent, frozen=True, kw_only=True, tag="RoleDeleted"):
    """The role is gone; its keys are revoked in the same command (``role_deleted``)."""


# -- suspension: disabling and enabling credentials, reversibly -----------------------------


class TokenDisabled(Event, frozen=True, kw_only=True, tag="TokenDisabled"):
    """The token is suspended: it answers ``disabled`` until a ``TokenEnabled``. A revoked or
    expired token stays so whatever happens here.

    ``cause`` is None when the token itself was asked to be disabled, and otherwise the token
    whose disabling this follows: a token derived from a disabled one is disabled with it
    (each by its own event, in the same command), and enabled with it."""

    token_id: str
    principal: str
    disabled_by: str
    """``operator``, or the principal who asked: who may lift it depends on it."""
    reason: str | None = None
    """The request's text."""
    cause: str | None = None
    orgs: tuple[str, ...] = ()

    STREAM: ClassVar[tuple[str, str]] = ("token", "token_id")


class TokenEnabled(Event, frozen=True, kw_only=True, tag="TokenEnabled"):
    """The token's suspension is over (``cause``: as for ``TokenDisabled``)."""

    token_id: str
    principal: str
    cause: str | None = None
    orgs: tuple[str, ...] = ()

    STREAM: ClassVar[tuple[str, str]] = ("token", "token_id")


class ServiceAccountDisabled(Event, frozen=True, kw_only=True, tag="ServiceAccountDisabled"):
    """The account is suspended: every credential of it (tokens, client credentials and
    their access tokens, exchanged tokens, S3 credentials) answers ``disabled`` until a
    ``ServiceAccountEnabled``; none is revoked."""

    account_id: str
    disabled_by: str
    reason: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


class ServiceAccountEnabled(Event, frozen=True, kw_only=True, tag="ServiceAccountEnabled"):
    account_id: str

    STREAM: ClassVar[tuple[str, str]] = ("sa", "account_id")


class ClientCredentialDisabled(Event, frozen=True, kw_only=True, tag="ClientCredentialDisabled"):
    """The client credential is suspended: it obtains nothing, and the access tokens it
    obtained answer ``disabled``, until a ``ClientCredentialEnabled``."""

    client_id: str
    account_id: str
    disabled_by: str
    reason: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("client", "client_id")


class ClientCredentialEnabled(Event, frozen=True, kw_only=True, tag="ClientCredentialEnabled"):
    client_id: str
    account_id: str

    STREAM: ClassVar[tuple[str, str]] = ("client", "client_id")


# -- rotation and org policies ------------------------------------------------------------


class TokenRotated(Event, frozen=True, kw_only=True, tag="TokenRotated"):
    """The token was rotated: ``successor_id`` was issued in its place (the ``TokenIssued``
    just before this event, in the same command) and the token now expires at
    ``expires_at``, the end of the overlap during which both work (never later than it
    expired before)."""

    token_id: str
    principal: str
    successor_id: str
    expires_at: datetime
    orgs: tuple[str, ...] = ()
    """The orgs a user's token had grants in, as for ``TokenRevoked``."""

    STREAM: ClassVar[tuple[str, str]] = ("token", "token_id")


class ExpiryReason:
    """Why a token's expiry was brought forward (the ``reason`` of ``TokenExpiryShortened``)."""

    ORG_POLICY = "org_policy"
    PARENT_SHORTENED = "parent_shortened"


class TokenExpiryShortened(Event, frozen=True, kw_only=True, tag="TokenExpiryShortened"):
    """The token now expires at ``expires_at``, earlier than before: brought within its org's
    policy (``org_policy``), or kept within its parent's shortened life (``parent_shortened``)."""

    token_id: str
    principal: str
    expires_at: datetime
    reason: str
    """One of ``ExpiryReason``."""
    detail: str | None = None
    orgs: tuple[str, ...] = ()

    STREAM: ClassVar[tuple[str, str]] = ("token", "token_id")


class ClientCredentialRotated(Event, frozen=True, kw_only=True, tag="ClientCredentialRotated"):
    """The client credential was rotated: ``successor_id`` was issued in its place (the
    ``ClientCredentialIssued`` just before this event) and this one now expires at
    ``expires_at``: both secrets work until then."""

    client_id: str
    account_id: str
    successor_id: str
    expires_at: datetime

    STREAM: ClassVar[tuple[str, str]] = ("client", "client_id")


class ClientCredentialExpiryShortened(
    Event, frozen=True, kw_only=True, tag="ClientCredentialExpiryShortened"
):
    """The client credential now expires at ``expires_at``, earlier than before: brought
    within its org's policy (``reason`` ``org_policy``, one of ``ExpiryReason``)."""

    client_id: str
    account_id: str
    expires_at: datetime
    reason: str
    detail: str | None = None

    STREAM: ClassVar[tuple[str, str]] = ("client", "client_id")


class OrgPolicySet(Event, frozen=True, kw_only=True, tag="OrgPolicySet"):
    """The org's policy for the tokens it covers, replacing any earlier one (lifetimes in
    seconds; ``max_lifetime`` by token kind, sorted by kind)."""

    org: str
    max_lifetime: dict[str, int] = {}
    require_expiry: bool = False
    max_admin_lifetime: int | None = None
    max_live_tokens: int | None = None

    STREAM: ClassVar[tuple[str, str]] = ("org", "org")


class OrgPolicyCleared(Event, frozen=True, kw_only=True, tag="OrgPolicyCleared"):
    """The org no longer has a policy: issuing follows the ledger's own rules only."""

    org: str

    STREAM: ClassVar[tuple[str, str]] = ("org", "org")


# -- webhooks -------------------------------------------------------------------------------


class WebhookCreated(Event, frozen=True, kw_only=True, tag="WebhookCreated"):
    """An org's webhook: the events of the org of types ``events`` are to be delivered to
    ``url``. Its signing secret is made from ``webhook_id`` with a key kept beside the
    signing keys (``service.keys``), never recorded."""

    webhook_id: str
    org: str
    url: str
    events: tuple[str, ...]
    """Webhook event types (``domain.webhooks.WEBHOOK_VOCABULARY``), sorted."""

    STREAM: ClassVar[tuple[str, str]] = ("webhook", "webhook_id")


class WebhookSecretRotated(Event, frozen=True, kw_only=True, tag="WebhookSecretRotated"):
    """The webhook signs with a new secret, its ``generation`` (the first is 0); for a day
    deliveries carry the previous secret's signature too. The secret itself is never
    recorded."""

    webhook_id: str
    org: str
    generation: int

    STREAM: ClassVar[tuple[str, str]] = ("webhook", "webhook_id")


class WebhookDeleted(Event, frozen=True, kw_only=True, tag="WebhookDeleted"):
    """The webhook is gone: nothing more is delivered to it, pending deliveries included."""

    webhook_id: str
    org: str

    STREAM: ClassVar[tuple[str, str]] = ("webhook", "webhook_id")


# -- last use of a credential ----------------------------------------------------------


class TokenUsed(Event, frozen=True, kw_only=True, tag="TokenUsed", omit_defaults=True):
    """A credential answered ``count`` successful verifications, introspections or
    authentications in the interval of ``interval`` seconds that starts at ``bucket_start``
    (a multiple of the interval since the epoch), the last at ``last_used_at``.

    Exactly one of ``token_id`` (a ledger token or a role's key), ``client_id`` (a client
    credential) and ``session_id`` (a session) names it; a use of an access token counts
    as a use of what obtained it. Recorded by the ledger itself (``service.usage``), at
    most once per credential and interval, never by a user's command. It names nothing but
    the credential, so audit indexes it under the credential's id alone: an org's trail is
    not filled with hourly uses.
    """

    token_id: str | None = None
    client_id: str | None = None
    session_id: str | None = None
    bucket_start: datetime
    interval: int
    """Seconds."""
    count: int
    last_used_at: datetime

    @property
    def stream_id(self) -> str:
        if self.token_id is not None:
            return f"token:{self.token_id}"
        if self.client_id is not None:
            return f"client:{self.client_id}"
        return f"session:{self.session_id}"

    @property
    def credential_id(self) -> str:
        """The id of the credential used (a ``tok_``, ``cid_`` or ``ses_`` id)."""
        return self.token_id or self.client_id or self.session_id or ""


EventUnion = (
    OrgCreated
    | UserCreated
    | UserDisabled
    | MemberAdded
    | MemberRoleChanged
    | MemberRemoved
    | ResourceCreated
    | ResourceDeleted
    | GrantSet
    | GrantRemoved
    | RoleCreated
    | ServiceAccountCreated
    | ServiceAccountPermissionMoved
    | ServiceAccountPermissionLevelChanged
    | ServiceAccountDeleted
    | TokenIssued
    | TokenRevoked
    | ClientCredentialIssued
    | ClientCredentialRevoked
    | IdentityProviderSet
    | SessionStarted
    | SessionRefreshed
    | SessionEnded
    | IssuerTrusted
    | IssuerUntrusted
    | EndpointCreated
    | EndpointDeleted
    | EndpointTrusted
    | EndpointUntrusted
    | S3CredentialIssued
    | S3CredentialRevoked
    | RolePolicyAdded
    | RolePolicyRemoved
    | RoleDeleted
    | ResourceLicenseSet
    | ResourceDataClassSet
    | TokenDisabled
    | TokenEnabled
    | ServiceAccountDisabled
    | ServiceAccountEnabled
    | ClientCredentialDisabled
    | ClientCredentialEnabled
    | TokenRotated
    | TokenExpiryShortened
    | ClientCredentialRotated
    | OrgPolicySet
    | OrgPolicyCleared
    | ClientCredentialExpiryShortened
    | WebhookCreated
    | WebhookDeleted
    | WebhookSecretRotated
    | TokenUsed
)


def event_types() -> dict[str, type[Event]]:
    """Every event class by its tag (the ``event_type`` stored in the log)."""
    return {cls.__struct_config__.tag: cls for cls in EventUnion.__args__}
