"""Commands: what a caller asks the ledger to do, validated at the edge.

Each command is a frozen pydantic model; building one checks every name,
path, level and duration against the documented rules. ``build`` turns
pydantic's report into a one-line ``ValidationError``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from tokenledger.clock import check_lifetime, checked_utc
from tokenledger.domain.builtin_roles import is_builtin_role
from tokenledger.domain.names import (
    check_access_key_id,
    check_account_name,
    check_client_id,
    check_email,
    check_endpoint_id,
    check_endpoint_url,
    check_issuer,
    check_name,
    check_new_org_name,
    check_no_secret,
    check_principal,
    check_service_account_id,
    check_session_id,
    check_subject_pattern,
    check_token_id,
    check_token_principal,
    is_endpoint_id,
    resource_path,
    role_reference,
    shown,
)
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.resource_attributes import check_data_class, check_license
from tokenledger.domain.token_filter import TokenFilter
from tokenledger.domain.webhooks import check_event_types, check_webhook_id, check_webhook_url
from tokenledger.errors import ValidationError

__all__ = [
    "MAX_OVERLAP",
    "AddMember",
    "AddRolePolicy",
    "ClearOrgPolicy",
    "Command",
    "CreateAccount",
    "CreateEndpoint",
    "CreateOrg",
    "CreateResource",
    "CreateRole",
    "CreateServiceAccount",
    "CreateUser",
    "CreateWebhook",
    "DeleteEndpoint",
    "DeleteResource",
    "DeleteRole",
    "DeleteServiceAccount",
    "DeleteWebhook",
    "DisableClientCredential",
    "DisableServiceAccount",
    "DisableToken",
    "DisableUser",
    "EnableClientCredential",
    "EnableServiceAccount",
    "EnableToken",
    "EndSession",
    "IssueClientCredential",
    "IssueRoleKey",
    "IssueS3Credential",
    "IssueToken",
    "NotedUse",
    "RecordUses",
    "RefreshSession",
    "RemoveMember",
    "RemoveRolePolicy",
    "RevokeAllTokens",
    "RevokeClientCredential",
    "RevokeCredentials",
    "RevokeRoleKey",
    "RevokeS3Credential",
    "RevokeToken",
    "RevokeTokensWhere",
    "RotateClientCredential",
    "RotateToken",
    "RotateWebhookSecret",
    "SetGrant",
    "SetIdentityProvider",
    "SetOrgPolicy",
    "SetResourceAttributes",
    "SetServiceAccountPermission",
    "StartSession",
    "TokenCriteria",
    "TrustEndpoint",
    "TrustIssuer",
    "UntrustEndpoint",
    "UntrustIssuer",
    "build",
    "parse_duration",
    "parse_overlap",
]


def _level(value: Any) -> Level:
    if isinstance(value, Level):
        return value
    if not isinstance(value, str):
        raise ValueError("a level is one of none, read, append, write, admin")
    try:
        return Level.parse(value)
    except ValueError:
        # Level.parse repeats its input whole; a hostile one may be a megabyte long.
        names = ", ".join(level.label for level in Level)
        raise ValueError(f"unknown level {shown(value)}: use one of {names}") from None


def check_role_reference(value: str) -> str:
    """``ROLE``, ``ORG:ROLE`` or ``ORG.ACCOUNT.ROLE``, each part a name (checked here, before
    any lookup): kept as ``ROLE`` or ``ORG:ROLE``; or one of Dyff's built-in roles
    (``Admin``, ``AuditDeveloper``: ``domain.builtin_roles``)."""
    if is_builtin_role(value):
        return value
    found = role_reference(value)
    return found.role if found.org is None else f"{found.org}:{found.role}"


def _free_text(limit: int, what: str) -> Any:
    """Every free-text field of every command (display names, token and credential names,
    reasons) is checked here, and nowhere else."""

    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"text too long: at most {limit} characters")
        if any(not ch.isprintable() for ch in value):
            raise ValueError("text must be printable (no control characters)")
        return check_no_secret(value, what)

    return AfterValidator(check)


OrgName = Annotated[str, AfterValidator(lambda v: check_name(v, "org name"))]
RoleName = Annotated[str, AfterValidator(lambda v: check_name(v, "role name"))]
KindName = Annotated[str, AfterValidator(lambda v: check_name(v, "resource kind"))]
AccountName = Annotated[str, AfterValidator(lambda v: check_name(v, "service account name"))]
ResourcePath = Annotated[str, AfterValidator(resource_path)]
Email = Annotated[str, AfterValidator(check_email)]
PrincipalId = Annotated[str, AfterValidator(check_principal)]
TokenPrincipal = Annotated[str, AfterValidator(check_token_principal)]
AccountId = Annotated[str, AfterValidator(check_service_account_id)]
TokenId = Annotated[str, AfterValidator(check_token_id)]
ClientId = Annotated[str, AfterValidator(check_client_id)]
SessionId = Annotated[str, AfterValidator(check_session_id)]
Issuer = Annotated[str, AfterValidator(check_issuer)]
SubjectPattern = Annotated[str, AfterValidator(check_subject_pattern)]
SecretHash = Annotated[str, pydantic.StringConstraints(pattern="^[0-9a-f]{64}$")]
LevelValue = Annotated[Level, BeforeValidator(_level)]
Reason = Annotated[str, _free_text(500, "reason")]
DisplayName = Annotated[str, _free_text(200, "name")]
License = Annotated[str, AfterValidator(check_license)]
DataClassName = Annotated[str, AfterValidator(check_data_class)]


class GrantSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    resource: ResourcePath
    level: LevelValue

    def to_grant(self) -> Grant:
        return Grant(self.resource, self.level.label)


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class CreateOrg(Command):
    org: Annotated[str, AfterValidator(check_new_org_name)]


class CreateUser(Command):
    email: Email
    name: DisplayName | None = None


class DisableUser(Command):
    email: Email
    reason: Reason | None = None


class AddMember(Command):
    org: OrgName
    email: Email
    role: RoleName = "member"


class RemoveMember(Command):
    org: OrgName
    email: Email


class CreateResource(Command):
    path: ResourcePath
    kind: KindName | None = None
    license: License | None = None
    data_class: DataClassName | None = None


class DeleteResource(Command):
    path: ResourcePath
    recursive: bool = False


class SetResourceAttributes(Command):
    """Set a resource's license, its data class, or both (``None``: left as it is)."""

    path: ResourcePath
    license: License | None = None
    data_class: DataClassName | None = None

    @pydantic.model_validator(mode="after")
    def _something_to_set(self) -> SetResourceAttributes:
        if self.license is None and self.data_class is None:
            raise ValueError("give a license, a data class or both")
        return self


class SetGrant(Command):
    principal: PrincipalId
    resource: ResourcePath
    level: LevelValue


class CreateRole(Command):
    """A role with the given grants, or none yet (Element creates a role empty, then adds
    policies)."""

    org: OrgName
    role: RoleName
    grants: tuple[GrantSpec, ...] = Field(default=(), max_length=1000)


class CreateServiceAccount(Command):
    name: AccountName
    org: OrgName
    resource: ResourcePath
    level: LevelValue


class SetServiceAccountPermission(Command):
    account_id: AccountId
    resource: ResourcePath
    level: LevelValue


class DeleteServiceAccount(Command):
    account_id: AccountId


class IssueToken(Command):
    """Issue a token; expiry: ``expires_in``, ``expires_at``, ``no_expiry`` or the default.
    The principal may be named by a Dyff account id too (``domain.decide_accounts``)."""

    principal: TokenPrincipal | None = None
    grants: tuple[GrantSpec, ...] = Field(default=(), max_length=1000)
    role: Annotated[str, AfterValidator(check_role_reference)] | None = None
    name: DisplayName | None = None
    expires_in: timedelta | None = None
    expires_at: datetime | None = None
    no_expiry: bool = False
    parent_id: TokenId | None = None

    @pydantic.model_validator(mode="after")
    def _one_expiry(self) -> IssueToken:
        chosen = [self.expires_in is not None, self.expires_at is not None, self.no_expiry]
        if sum(chosen) > 1:
            raise ValueError("give at most one of --expires-in, --expires-at and --no-expiry")
        if self.expires_in is not None and self.expires_in <= timedelta(0):
            raise ValueError("--expires-in must be a positive duration")
        if self.principal is None and self.parent_id is None:
            raise ValueError("name the token's principal (or a parent token)")
        return self

    @pydantic.field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _holdable(value, "expires_at") if value is not None else None

    @pydantic.field_validator("expires_in")
    @classmethod
    def _reachable(cls, value: timedelta | None) -> timedelta | None:
        return _reachable_lifetime(value)


class RevokeToken(Command):
    token_id: TokenId
    reason: Reason | None = None
    principal: PrincipalId | None = None
    """The principal the caller names as the token's owner (a URL's): another's is not found."""


class RevokeAllTokens(Command):
    principal: PrincipalId
    reason: Reason | None = None


class IssueClientCredential(Command):
    """Give a service account an OAuth2 client id and secret (default lifetime: one year)."""

    account_id: AccountId
    name: DisplayName | None = None
    expires_in: timedelta | None = None
    no_expiry: bool = False

    @pydantic.field_validator("expires_in")
    @classmethod
    def _reachable(cls, value: timedelta | None) -> timedelta | None:
        return _reachable_lifetime(value)

    @pydantic.model_validator(mode="after")
    def _one_expiry(self) -> IssueClientCredential:
        if self.expires_in is not None and self.no_expiry:
            raise ValueError("give at most one of --expires-in and --no-expiry")
        if self.expires_in is not None and self.expires_in <= timedelta(0):
            raise ValueError("--expires-in must be a positive duration")
        return self


class RevokeClientCredential(Command):
    client_id: ClientId
    reason: Reason | None = None
    account_id: AccountId | None = None
    """The account the caller names as the credential's owner: another's is not found."""


# -- suspension ----------------------------------------------------------------------------


class DisableToken(Command):
    """Suspend a token (and the tokens derived from it) until it is enabled again."""

    token_id: TokenId
    reason: Reason | None = None
    principal: PrincipalId | None = None
    """The principal the caller names as the token's owner (a URL's): another's is not found."""


class EnableToken(Command):
    token_id: TokenId
    principal: PrincipalId | None = None


class DisableServiceAccount(Command):
    """Suspend a service account: every credential of it, at once, until it is enabled."""

    account_id: AccountId
    reason: Reason | None = None


class EnableServiceAccount(Command):
    account_id: AccountId


class DisableClientCredential(Command):
    client_id: ClientId
    reason: Reason | None = None
    account_id: AccountId | None = None
    """The account the caller names as the credential's owner: another's is not found."""


class EnableClientCredential(Command):
    client_id: ClientId
    account_id: AccountId | None = None


# -- logging in ---------------------------------------------------------------------------


class SetIdentityProvider(Command):
    """Register (or replace) the OpenID Connect provider an org's members log in through."""

    org: OrgName
    issuer: Issuer
    oidc_client_id: Annotated[str, _free_text(200, "client id"), Field(min_length=1)]
    client_secret: bool = False
    """Whether a client secret for the provider is kept with the signing keys."""
    session_lifetime: timedelta | None = None

    @pydantic.field_validator("session_lifetime")
    @classmethod
    def _at_most_the_longest(cls, value: timedelta | None) -> timedelta | None:
        from tokenledger.domain.model import MAX_SESSION_LIFETIME

        if value is not None and not timedelta(minutes=5) <= value <= MAX_SESSION_LIFETIME:
            raise ValueError("a session lives between 5 minutes and 30 days")
        return value


class StartSession(Command):
    """Start a session for a user whom the org's provider vouched for (its ID token was
    checked before this command is built: by the service, never from a caller's input)."""

    session_id: SessionId
    org: OrgName
    email: Email
    issuer: Issuer
    subject: Annotated[str, _free_text(255, "subject"), Field(min_length=1)]
    refresh_hash: SecretHash


class RefreshSession(Command):
    """Spend a refresh token (known by its hash) for a new one."""

    presented_hash: SecretHash
    refresh_hash: SecretHash


class EndSession(Command):
    session_id: SessionId
    reason: Reason | None = None
    principal: PrincipalId | None = None
    """The user the caller names as the session's owner: another's is not found."""


class TrustIssuer(Command):
    """Let a service account exchange an external issuer's ID tokens for its own access
    tokens (workload identity federation, RFC 8693)."""

    account_id: AccountId
    issuer: Issuer
    subject: SubjectPattern
    audience: Annotated[str, _free_text(200, "audience"), Field(min_length=1)]


class UntrustIssuer(Command):
    """Withdraw a service account's trust in an issuer (every subject pattern, or one)."""

    account_id: AccountId
    issuer: Issuer
    subject: SubjectPattern | None = None
    reason: Reason | None = None


# -- the data plane -----------------------------------------------------------------------


def _endpoint_ref(value: str) -> str:
    """An endpoint as a command names it: its id (``ep_...``) or its name."""
    return value if is_endpoint_id(value) else check_name(value, "endpoint name")


EndpointName = Annotated[str, AfterValidator(lambda v: check_name(v, "endpoint name"))]
EndpointRefOrId = Annotated[str, AfterValidator(_endpoint_ref)]
EndpointUrl = Annotated[str, AfterValidator(check_endpoint_url)]
AccessKeyId = Annotated[str, AfterValidator(check_access_key_id)]


class CreateEndpoint(Command):
    """Register a data proxy (an S3-compatible gateway)."""

    name: EndpointName
    url: EndpointUrl


class DeleteEndpoint(Command):
    endpoint: EndpointRefOrId


class TrustEndpoint(Command):
    """Put an endpoint on a service account's trusted list."""

    account_id: AccountId
    endpoint: EndpointRefOrId


class UntrustEndpoint(Command):
    account_id: AccountId
    endpoint: EndpointRefOrId
    reason: Reason | None = None


class IssueS3Credential(Command):
    """S3 credentials for a service account at one of its trusted endpoints."""

    account_id: AccountId
    endpoint: EndpointRefOrId


class RevokeS3Credential(Command):
    """Revoke the account's S3 credentials at an endpoint, or one by its access key id."""

    account_id: AccountId
    endpoint: EndpointRefOrId | None = None
    access_key_id: AccessKeyId | None = None
    reason: Reason | None = None

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> RevokeS3Credential:
        if (self.endpoint is None) == (self.access_key_id is None):
            raise ValueError("name the endpoint or the access key id (one of them)")
        return self


# -- role keys and role policies ------------------------------------------------------------


class IssueRoleKey(Command):
    """Give a role a key (a long-lived token acting with the role's grants as they stand)."""

    org: OrgName
    role: RoleName
    name: DisplayName | None = None


class RevokeRoleKey(Command):
    org: OrgName
    role: RoleName
    token_id: TokenId
    reason: Reason | None = None


class AddRolePolicy(Command):
    """Let the role do ``level`` on ``resource`` (replacing what it had there)."""

    org: OrgName
    role: RoleName
    resource: ResourcePath
    level: LevelValue


class RemoveRolePolicy(Command):
    org: OrgName
    role: RoleName
    resource: ResourcePath


class DeleteRole(Command):
    org: OrgName
    role: RoleName


# -- Dyff's accounts ------------------------------------------------------------------------


class CreateAccount(Command):
    """Dyff's ``accounts create -n NAME``: a user named by the email NAME, given a new account
    id (by the service, as a token's id is minted) that names them wherever a token's
    principal is named."""

    email: Annotated[str, AfterValidator(check_account_name)]
    name: DisplayName | None = None


# -- revoking by filter ------------------------------------------------------------------


def _name_pattern(value: str) -> str:
    """A token name pattern (``*``, ``?``, ``[...]``): checked as a name is, so that a
    pattern can never be a secret or carry control characters."""
    if not value:
        raise ValueError("invalid name pattern: empty")
    return value


NamePattern = Annotated[str, _free_text(200, "name pattern"), AfterValidator(_name_pattern)]


def _duration_text(value: Any) -> Any:
    """A duration given as text (``90d``) read as every duration option reads one; an ISO
    8601 duration (``P90D``, what a command's JSON form holds) is left to pydantic."""
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        try:
            return parse_duration(value)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
    return value


#: The most token ids one revocation by filter names.
MAX_SELECTED_IDS = 10_000


def _id_list(value: Any) -> Any:
    """Ids given as one text are separated by commas (blanks around them ignored)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class TokenCriteria(BaseModel):
    """Which live tokens a revocation by filter selects (``domain.token_filter`` decides
    which match): at least one criterion. Part of a command, not one itself."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    principal: PrincipalId | None = None
    org: OrgName | None = None
    resource: ResourcePath | None = None
    issued_before: datetime | None = None
    name: NamePattern | None = None
    unused_for: Annotated[timedelta | None, BeforeValidator(_duration_text)] = None
    """Its range is judged against the ledger's clock (``token_filter.check_unused_for``)."""
    ids: Annotated[
        frozenset[TokenId] | None,
        BeforeValidator(_id_list),
        Field(min_length=1, max_length=MAX_SELECTED_IDS),
    ] = None
    """Exactly these tokens (those of them still live): a list, or one text of ids
    separated by commas, as ``--where ids=tok_a,tok_b`` gives it."""

    @pydantic.field_validator("issued_before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _holdable(value, "issued_before") if value is not None else None

    @pydantic.model_validator(mode="after")
    def _some_criterion(self) -> TokenCriteria:
        if not self.model_dump(exclude_none=True):
            keys = ", ".join(type(self).model_fields)
            raise ValueError(f"give at least one criterion to select tokens by ({keys})")
        return self

    def token_filter(self) -> TokenFilter:
        return TokenFilter(**self.model_dump(exclude_none=True))


class RevokeTokensWhere(Command):
    """Revoke every live token ``where`` selects (and the tokens derived from them), in one
    command: one correlation id, one ``TokenRevoked`` per token."""

    where: TokenCriteria
    reason: Reason | None = None


#: Sets of ids of one kind, at most ``MAX_SELECTED_IDS``: a list, or one text of ids
#: separated by commas.
TokenIds = Annotated[
    frozenset[TokenId], BeforeValidator(_id_list), Field(max_length=MAX_SELECTED_IDS)
]
ClientIds = Annotated[
    frozenset[ClientId], BeforeValidator(_id_list), Field(max_length=MAX_SELECTED_IDS)
]
AccessKeyIds = Annotated[
    frozenset[AccessKeyId], BeforeValidator(_id_list), Field(max_length=MAX_SELECTED_IDS)
]


def _trust_id(value: str) -> str:
    if re.fullmatch(r"wif_[0-9a-f]{24}", value) is None:
        raise ValueError(f"invalid issuer trust id {shown(value)}: expected wif_ and 24 hex digits")
    return value


TrustIds = Annotated[
    frozenset[Annotated[str, AfterValidator(_trust_id)]],
    BeforeValidator(_id_list),
    Field(max_length=MAX_SELECTED_IDS),
]
WebhookIds = Annotated[
    frozenset[Annotated[str, AfterValidator(check_webhook_id)]],
    BeforeValidator(_id_list),
    Field(max_length=MAX_SELECTED_IDS),
]
#: (service account, endpoint id) pairs: an endpoint on an account's trusted list.
EndpointTrusts = Annotated[
    frozenset[tuple[AccountId, Annotated[str, AfterValidator(check_endpoint_id)]]],
    Field(max_length=MAX_SELECTED_IDS),
]


class RevokeCredentials(Command):
    """Withdraw exactly these things, in one command: one correlation id, all or nothing.
    Tokens are revoked (and the tokens derived from them), client credentials and S3
    credentials revoked, issuer trusts withdrawn, webhooks deleted and endpoints taken off
    an account's trusted list, each as its own removal command decides it. Those no longer
    live are skipped. What ``audit blast-radius --revoke`` runs on a radius's live ones."""

    token_ids: TokenIds = frozenset()
    client_ids: ClientIds = frozenset()
    access_key_ids: AccessKeyIds = frozenset()
    trust_ids: TrustIds = frozenset()
    webhook_ids: WebhookIds = frozenset()
    endpoint_trusts: EndpointTrusts = frozenset()
    reason: Reason | None = None
    radius_of: TokenId | None = None
    """The token whose blast radius these are, when they are one (a server recomputes it)."""

    @pydantic.model_validator(mode="after")
    def _some_id(self) -> RevokeCredentials:
        if not (
            self.token_ids
            or self.client_ids
            or self.access_key_ids
            or self.trust_ids
            or self.webhook_ids
            or self.endpoint_trusts
        ):
            raise ValueError(
                "name at least one token, client credential, S3 credentials, issuer trust, "
                "webhook or endpoint trust"
            )
        return self


# -- rotation and org policies --------------------------------------------------------------

#: The longest overlap a rotation allows, during which the old and the new secret both work.
MAX_OVERLAP = timedelta(days=30)
#: The overlap when none is given.
DEFAULT_OVERLAP = timedelta(hours=24)


def _overlap(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("the overlap cannot be negative")
    if value > MAX_OVERLAP:
        raise ValueError("the overlap is at most 30d")
    return value


Overlap = Annotated[timedelta, AfterValidator(_overlap)]


class RotateToken(Command):
    """Issue a successor with the token's grants, name, kind and lifetime, and bring the
    token's expiry forward to ``overlap`` from now (0: it expires now)."""

    token_id: TokenId
    overlap: Overlap = DEFAULT_OVERLAP


class RotateClientCredential(Command):
    """Issue a successor credential (same account, name and lifetime) and bring this one's
    expiry forward to ``overlap`` from now: both secrets work until then."""

    client_id: ClientId
    overlap: Overlap = DEFAULT_OVERLAP
    account_id: AccountId | None = None
    """The account the caller names as the credential's owner: another's is not found."""


def _policy_lifetime(value: timedelta | None) -> timedelta | None:
    if value is None:
        return None
    if value <= timedelta(0):
        raise ValueError("a maximum lifetime must be longer than zero")
    return _reachable_lifetime(value)


PolicyLifetime = Annotated[timedelta | None, AfterValidator(_policy_lifetime)]


def _policy_kinds(value: Any) -> Any:
    """Known kinds only, judged on the whole mapping before its lifetimes: a key is never
    repeated in an error's location (where a pasted secret would show), and a bad lifetime's
    location only ever names a known kind."""
    from tokenledger.domain.org_policy import POLICY_KINDS

    if isinstance(value, dict):
        for kind in value:
            if kind not in POLICY_KINDS:
                names = ", ".join(POLICY_KINDS)
                raise ValueError(f"unknown token kind {shown(str(kind))}: use one of {names}")
    return value


def _live_token_bound(value: int | None) -> int | None:
    from tokenledger.domain.org_policy import MAX_LIVE_TOKENS_BOUND

    if value is not None and not 1 <= value <= MAX_LIVE_TOKENS_BOUND:
        raise ValueError(
            f"the maximum number of live tokens must lie between 1 and {MAX_LIVE_TOKENS_BOUND}"
        )
    return value


class SetOrgPolicy(Command):
    """Set the org's token policy (``domain.org_policy``), replacing any earlier one.
    ``existing``: what becomes of the live tokens that break it: ``cap`` brings their expiry
    within it, ``leave`` leaves them; needed only when there are some. Each field is checked
    here; a policy contradicting itself is refused by ``org_policy.check_policy``."""

    org: OrgName
    max_lifetime: Annotated[
        dict[str, Annotated[timedelta, AfterValidator(_policy_lifetime)]],
        BeforeValidator(_policy_kinds),
    ] = Field(default_factory=dict, max_length=10)
    require_expiry: bool = False
    max_admin_lifetime: PolicyLifetime = None
    max_live_tokens: Annotated[int | None, AfterValidator(_live_token_bound)] = None
    existing: Annotated[str, pydantic.StringConstraints(pattern="^(cap|leave)$")] | None = None


class ClearOrgPolicy(Command):
    org: OrgName


def parse_overlap(text: str) -> timedelta:
    """A rotation's overlap: a duration (``24h``, ``7d``) or ``0`` (the old one expires now)."""
    if text.strip() == "0":
        return timedelta(0)
    return parse_duration(text)


def _holdable(value: datetime, field: str) -> datetime:
    """An expiry in UTC, within the span of times the ledger holds."""
    try:
        return checked_utc(value, field)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None  # pydantic reports ValueErrors, with the field


def _reachable_lifetime(value: timedelta | None) -> timedelta | None:
    """A lifetime whose end (from now) the ledger can still hold: ``now + expires_in`` must
    neither overflow nor pass the latest time. A non-positive one is refused elsewhere."""
    if value is not None and value > timedelta(0):
        try:
            check_lifetime(value, "expires_in")
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
    return value


# -- webhooks ------------------------------------------------------------------------------

WebhookUrl = Annotated[str, AfterValidator(check_webhook_url)]
WebhookEvents = Annotated[tuple[str, ...], AfterValidator(check_event_types)]
WebhookId = Annotated[str, AfterValidator(check_webhook_id)]


class CreateWebhook(Command):
    """Subscribe ``url`` to the org's events of the types ``events``."""

    org: OrgName
    url: WebhookUrl
    events: WebhookEvents


class DeleteWebhook(Command):
    webhook_id: WebhookId


class RotateWebhookSecret(Command):
    webhook_id: WebhookId


class NotedUse(BaseModel):
    """The uses of one credential (a ``tok_``, ``cid_`` or ``ses_`` id) noted in one interval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    credential_id: Annotated[str, Field(pattern=r"^(tok|cid|ses)_[0-9A-Za-z_-]{1,100}$")]
    bucket_start: datetime
    count: Annotated[int, Field(ge=1)]
    last_used_at: datetime


class RecordUses(Command):
    """Record the credential uses this process noted (``service.usage``): the ledger's own
    bookkeeping, which only the operator (the ledger itself) may run."""

    interval: Annotated[int, Field(ge=1)]
    """Seconds."""
    uses: tuple[NotedUse, ...]


C = TypeVar("C", bound=BaseModel)


def build(model: type[C], **fields: Any) -> C:
    """Construct ``model``, turning any validation failure into a one-line ``ValidationError``."""
    try:
        return model(**fields)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe(exc)) from None


def describe(exc: pydantic.ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error" and (message.startswith("invalid") or not location):
        return message
    return f"{location}: {message}" if location else message


_DURATION = re.compile(r"(\d{1,9})([smhdwy])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``1h``, ``90m``, ``1y``, ``2w``, ``1d12h``: units s, m, h, d, w, y (365 days)."""
    compact = text.strip().lower()
    if not compact or _DURATION.sub("", compact):
        raise ValidationError(
            f"invalid duration {shown(text)}: use a number and a unit, e.g. 30d, 12h, 90m, 1y"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))
    if seconds <= 0:
        raise ValidationError(f"invalid duration {shown(text)}: must be longer than zero")
    if seconds > 100 * 365 * 86400:
        raise ValidationError(f"invalid duration {shown(text)}: at most 100 years")
    return timedelta(seconds=seconds)
