"""``RemoteLedger``: the ``service.Ledger`` methods the command line calls, answered by a server.

The command line's modules call ``obj.ledger()`` and get a ``Ledger`` (the database) or this
(``--server``): the same methods, the same argument and result types, so that a command prints
the same lines and JSON either way. Each command class maps to its route, and the result is
rebuilt from what the server answers: the events the command appended (``events`` in every
mutating answer) give the same ``Outcome`` the database's ``CommandResult`` holds.

What differs, by nature:

* the ``actor`` arguments are ignored: the server decides who calls from the Bearer token
  (``Auth``), and authorises it exactly as the database path authorises ``TOKENLEDGER_TOKEN``;
* a ``CommandResult``'s ``records`` (the stored envelopes) stay on the server: empty here,
  while its ``events`` are the very events appended;
* an ``AuditEntry``'s record carries the event's envelope as the server answers it, its
  ``data`` the event as encoded now (an event stored in an older schema was upcast first);
* nothing that needs the database itself (the event store, the log, rebuilds) is offered:
  ``store`` says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, NoReturn

import msgspec

from tokenledger.client.auth import Auth
from tokenledger.client.client import Client, principal_path
from tokenledger.client.data_plane import DataPlaneCalls, data_plane_route
from tokenledger.client.policy_calls import PolicyCalls, policy_route
from tokenledger.client.results import (
    AuditRecord,
    TokenStory,
    convert,
    dry_run_call,
    receipt_of,
)
from tokenledger.client.urls import path_segment
from tokenledger.client.webhooks import WebhookCalls, webhook_route
from tokenledger.domain import commands as c
from tokenledger.domain.authority import Verification
from tokenledger.domain.blast_radius import BlastRadius
from tokenledger.domain.model import (
    Actor,
    ActorKind,
    ClientCredentialView,
    IdentityProviderView,
    IssuerTrustView,
    ResourceView,
    ServiceAccountView,
    SessionView,
    TokenView,
    UserView,
)
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.who_can import WhoCan
from tokenledger.errors import PermissionDenied, ValidationError
from tokenledger.projections.audit_queries import AuditEntry, AuditQuery, Explanation
from tokenledger.service.commands import CommandPreview, CommandResult, PreviewReady
from tokenledger.service.queries import GrantSource
from tokenledger.service.temporal import LiveToken
from tokenledger.store import RecordedEvent
from tokenledger.store.mapper import to_pending

__all__ = ["REMOTE_CALLER", "RemoteLedger"]

#: What the command line passes as the actor against a server: a stand-in, since the server
#: takes the caller from the Bearer token.
REMOTE_CALLER = Actor(kind=ActorKind.USER, principal="(the bearer of the presented token)")

_CORRELATION_HEADER = "X-Correlation-ID"


class _Call(NamedTuple):
    """One route: the method, path, JSON body and query parameters of a command's call."""

    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


def _duration(lifetime: timedelta | None) -> str | None:
    # Commands hold whole seconds (parse_duration's units): the server parses them back.
    return f"{int(lifetime.total_seconds())}s" if lifetime is not None else None


class RemoteLedger(DataPlaneCalls, PolicyCalls, WebhookCalls):
    """The ledger service of a server, as the command line uses ``service.Ledger``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    def open(cls, server: str | None = None, auth: Auth | None = None) -> RemoteLedger:
        return cls(Client(server, auth))

    def __repr__(self) -> str:
        return f"RemoteLedger({self.client.server!r})"

    def close(self) -> None:
        self.client.close()

    @property
    def store(self) -> NoReturn:
        raise PermissionDenied("this needs the database (--db): it cannot run against a server")

    def blast_radius(self, actor: Actor, token_id: str) -> BlastRadius:
        return self.client.blast_radius(token_id)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def _get(self, path: str, **params: Any) -> Any:
        return self.client.call("GET", path, params=params)

    # -- commands ----------------------------------------------------------------------------

    def execute(
        self, command: c.Command, actor: Actor, *, correlation_id: str | None = None
    ) -> CommandResult:
        """Run ``command`` on the server (as the Bearer token's principal)."""
        call = self._route(command)
        headers = {_CORRELATION_HEADER: correlation_id} if correlation_id is not None else None
        answer = self.client.call(
            call.method, call.path, json=call.json, params=call.params, headers=headers
        )
        receipt = receipt_of(answer)
        secret = answer.get("secret") or answer.get("client_secret")
        return CommandResult(
            command_id=receipt.command_id or "",
            correlation_id=receipt.correlation_id,
            events=receipt.events,
            records=(),
            outcome=receipt.outcome,
            secret=secret if isinstance(secret, str) else None,
        )

    def preview(
        self, command: c.Command, actor: Actor, *, correlation_id: str | None = None
    ) -> CommandPreview:
        """What ``command`` would append on the server now (``?dry_run=true``); appends
        nothing."""
        call = self._route(command)
        headers = {_CORRELATION_HEADER: correlation_id} if correlation_id is not None else None
        try:
            dry_run_call(
                self.client,
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=headers,
            )
        except PreviewReady as ready:
            return ready.preview

    def _route(self, command: c.Command) -> _Call:
        body: dict[str, Any]
        match command:
            case c.CreateOrg():
                return _Call("POST", "/v2/orgs", {"name": command.org})
            case c.CreateUser():
                return _Call("POST", "/v2/users", {"email": command.email, "name": command.name})
            case c.CreateAccount():
                body = {"email": command.email, "name": command.name, "account": True}
                return _Call("POST", "/v2/users", body)
            case c.DisableUser():
                path = f"/v2/users/{path_segment(command.email)}/disable"
                return _Call("POST", path, {"reason": command.reason})
            case c.AddMember():
                path = f"/v2/orgs/{path_segment(command.org)}/members/{path_segment(command.email)}"
                return _Call("PUT", path, {"role": command.role})
            case c.RemoveMember():
                path = f"/v2/orgs/{path_segment(command.org)}/members/{path_segment(command.email)}"
                return _Call("DELETE", path)
            case c.CreateResource():
                body = {"path": command.path, "kind": command.kind}
                if command.license is not None or command.data_class is not None:
                    body |= {"license": command.license, "data_class": command.data_class}
                return _Call("POST", "/v2/resources", body)
            case c.SetResourceAttributes():
                path = f"/v2/resources/{path_segment(command.path, slashes=True)}"
                body = {"license": command.license, "data_class": command.data_class}
                return _Call("PATCH", path, body)
            case c.DeleteResource():
                path = f"/v2/resources/{path_segment(command.path, slashes=True)}"
                return _Call("DELETE", path, params={"recursive": command.recursive})
            case c.SetGrant():
                path = f"/v2/users/{path_segment(command.principal)}/grants"
                body = {"resource": command.resource, "level": command.level.label}
                return _Call("PUT", path, body)
            case c.CreateRole():
                grants = [{"resource": g.resource, "level": g.level.label} for g in command.grants]
                path = f"/v2/orgs/{path_segment(command.org)}/roles"
                return _Call("POST", path, {"name": command.role, "grants": grants})
            case c.CreateServiceAccount():
                body = {
                    "name": command.name,
                    "org": command.org,
                    "resource": command.resource,
                    "level": command.level.label,
                }
                return _Call("POST", "/v2/service_accounts", body)
            case c.SetServiceAccountPermission():
                path = f"/v2/service_accounts/{path_segment(command.account_id)}/permission"
                body = {"resource": command.resource, "level": command.level.label}
                return _Call("PUT", path, body)
            case c.DeleteServiceAccount():
                return _Call("DELETE", f"/v2/service_accounts/{path_segment(command.account_id)}")
            case c.IssueToken():
                return self._issue_token(command)
            case c.RevokeToken():
                owner = principal_path(command.principal) if command.principal else "/v2"
                path = f"{owner}/tokens/{path_segment(command.token_id)}"
                return _Call("DELETE", path, params={"reason": command.reason})
            case c.RevokeAllTokens():
                path = f"{principal_path(command.principal)}/tokens"
                return _Call("DELETE", path, params={"reason": command.reason})
            case c.RevokeCredentials(radius_of=str(token_id)):
                # The server withdraws the radius as it finds it (the same the preview read).
                path = f"/v2/audit/blast-radius/{path_segment(token_id)}/revoke"
                return _Call("POST", path, {"reason": command.reason})
            case c.RevokeTokensWhere():
                where = command.where.model_dump(mode="json", exclude_none=True)
                return _Call(
                    "POST", "/v2/tokens/revoke", {"where": where, "reason": command.reason}
                )
            case c.IssueClientCredential():
                path = f"/v2/service_accounts/{path_segment(command.account_id)}/credentials"
                lifetime = _duration(command.expires_in)
                body = {"name": command.name, "expires_in": lifetime}
                return _Call("POST", path, {**body, "no_expiry": command.no_expiry})
            case c.RevokeClientCredential():
                account = path_segment(command.account_id) if command.account_id else "-"
                client_id = path_segment(command.client_id)
                path = f"/v2/service_accounts/{account}/credentials/{client_id}"
                return _Call("DELETE", path, params={"reason": command.reason})
            case (
                c.DisableToken()
                | c.EnableToken()
                | c.DisableServiceAccount()
                | c.EnableServiceAccount()
                | c.DisableClientCredential()
                | c.EnableClientCredential()
            ):
                return _suspension_call(command)
            case c.TrustIssuer():
                path = f"/v2/service_accounts/{path_segment(command.account_id)}/trusts"
                body = {
                    "issuer": command.issuer,
                    "subject": command.subject,
                    "audience": command.audience,
                }
                return _Call("POST", path, body)
            case c.UntrustIssuer():
                path = f"/v2/service_accounts/{path_segment(command.account_id)}/trusts"
                params = {"issuer": command.issuer, "subject": command.subject}
                return _Call("DELETE", path, params=params)
            case c.EndSession():
                return _Call("DELETE", f"/v2/sessions/{path_segment(command.session_id)}")
            case (
                c.IssueRoleKey()
                | c.RevokeRoleKey()
                | c.AddRolePolicy()
                | c.RemoveRolePolicy()
                | c.DeleteRole()
            ):
                return _role_call(command)
        route = data_plane_route(command) or policy_route(command)
        if route is not None:
            return _Call(*route)
        webhook_call = webhook_route(command)
        if webhook_call is not None:
            return _Call(*webhook_call)
        raise ValidationError(
            f"{type(command).__name__} is not a call the client makes to a server"
        )

    def role_grants(self, actor: Actor, org: str, role: str) -> tuple[Grant, ...]:
        answer = self._get(f"{_role_path(org, role)}/policies")
        rows = convert(answer, list[_Policy], "a list of role policies")
        return tuple(Grant(row.resource, row.level) for row in rows)

    def role_keys(
        self, actor: Actor, org: str, role: str, *, include_inactive: bool = False
    ) -> list[TokenView]:
        answer = self._get(f"{_role_path(org, role)}/keys", all=include_inactive)
        return list(convert(answer, list[TokenView], "a list of role keys"))

    def _issue_token(self, command: c.IssueToken) -> _Call:
        principal = command.principal
        if principal is None:
            # A token derived from a parent is its parent's principal's: the route names it.
            assert command.parent_id is not None  # IssueToken names one or the other
            principal = self.client.get_token(command.parent_id).principal
        body = {
            "grants": [{"resource": g.resource, "level": g.level.label} for g in command.grants],
            "role": command.role,
            "name": command.name,
            "expires_in": _duration(command.expires_in),
            "expires_at": command.expires_at.isoformat() if command.expires_at else None,
            "no_expiry": command.no_expiry,
            "parent_id": command.parent_id,
        }
        return _Call("POST", f"{principal_path(principal)}/tokens", body)

    # -- token answers -----------------------------------------------------------------------

    def verify(
        self, secret: str, *, resource: str | None = None, level: Level | None = None
    ) -> Verification:
        return self.client.verify_token(
            secret, resource=resource, level=level.label if level is not None else None
        )

    def verify_at(
        self,
        secret: str,
        moment: datetime,
        *,
        resource: str | None = None,
        level: Level | None = None,
    ) -> tuple[Verification, int]:
        return self.client.verify_token_at(
            secret, moment, resource=resource, level=level.label if level is not None else None
        )

    # -- listings and lookups ----------------------------------------------------------------

    def list_orgs(self, actor: Actor) -> list[str]:
        answer = convert(self._get("/v2/orgs"), list[dict[str, str]], "a list of orgs")
        return [org["id"] for org in answer]

    def list_users(self, actor: Actor, org: str | None = None) -> list[UserView]:
        return convert(self._get("/v2/users", org=org), list[UserView], "a list of users")

    def members(self, actor: Actor, org: str) -> dict[str, str]:
        answer = self._get(f"/v2/orgs/{path_segment(org)}/members")
        rows = convert(answer, list[_Member], "a list of members")
        return {row.email: row.role for row in rows}

    def list_resources(self, actor: Actor, prefix: str | None = None) -> list[ResourceView]:
        answer = self._get("/v2/resources", prefix=prefix)
        return convert(answer, list[ResourceView], "a list of resources")

    def get_resource(self, actor: Actor, path: str, *, at: datetime | None = None) -> ResourceView:
        where = f"/v2/resources/{path_segment(path, slashes=True)}"
        answer = self._get(where, at=at.isoformat() if at is not None else None)
        return convert(answer, ResourceView, "a resource")

    def grants_of(self, actor: Actor, principal: str) -> list[GrantSource]:
        answer = self._get(f"/v2/users/{path_segment(principal)}/grants")
        return convert(answer, list[GrantSource], "a list of grants")

    def roles_of(self, actor: Actor, org: str) -> dict[str, tuple[Grant, ...]]:
        answer = self._get(f"/v2/orgs/{path_segment(org)}/roles")
        rows = convert(answer, list[_Role], "a list of roles")
        return {row.role: row.grants for row in rows}

    def service_accounts(self, actor: Actor, org: str | None = None) -> list[ServiceAccountView]:
        return self.client.list_service_accounts(org)

    def get_service_account(self, actor: Actor, account_id: str) -> ServiceAccountView:
        return self.client.get_service_account(account_id)

    def tokens_of(
        self,
        actor: Actor,
        principal: str,
        *,
        include_inactive: bool = False,
        at: datetime | None = None,
    ) -> list[TokenView]:
        return self.client.list_tokens(principal, include_inactive=include_inactive, at=at)

    def preview_revocation(self, actor: Actor, where: c.TokenCriteria) -> list[TokenView]:
        return self.client.preview_revocation(where.model_dump(mode="json", exclude_none=True))

    def expiring_tokens(
        self, actor: Actor, within: timedelta, *, org: str | None = None
    ) -> list[TokenView]:
        return self.client.expiring_tokens(within, org=org)

    def get_token(self, actor: Actor, token_id: str, *, owner: str | None = None) -> TokenView:
        if owner is None:
            return self.client.get_token(token_id)
        answer = self._get(f"{principal_path(owner)}/tokens/{path_segment(token_id)}")
        return convert(answer, TokenView, "a token")

    def unused_tokens(
        self, actor: Actor, unused_for: timedelta, *, org: str | None = None
    ) -> list[TokenView]:
        return self.client.unused_tokens(f"{int(unused_for.total_seconds())}s", org=org)

    def client_credentials_of(
        self, actor: Actor, account_id: str, *, include_inactive: bool = False
    ) -> list[ClientCredentialView]:
        return self.client.list_credentials(account_id, include_inactive=include_inactive)

    # -- audit -------------------------------------------------------------------------------

    def audit_search(self, actor: Actor, query: AuditQuery) -> list[AuditEntry]:
        records = self.client.audit_search(
            actor=query.actor,
            subject=query.subject,
            event_type=query.event_type,
            since=query.since,
            until=query.until,
            correlation_id=query.correlation_id,
            limit=query.limit,
            oldest_first=query.oldest_first,
        )
        return [_entry(record) for record in records]

    # -- logging in: providers, trusts, sessions ---------------------------------------------

    def set_identity_provider(
        self,
        actor: Actor,
        keys: object,
        *,
        org: str,
        issuer: str,
        oidc_client_id: str,
        client_secret: str | None = None,
        session_lifetime: timedelta | None = None,
        dry_run: bool = False,
    ) -> None:
        """The server keeps the provider's secret with its own signing keys (``keys``, the
        local key store, is not used)."""
        body = {
            "issuer": issuer,
            "client_id": oidc_client_id,
            "client_secret": client_secret,
            "session_lifetime": _duration(session_lifetime),
        }
        path = f"/v2/orgs/{path_segment(org)}/identity-provider"
        if dry_run:
            dry_run_call(self.client, "PUT", path, json=body)
        self.client.call("PUT", path, json=body)

    def identity_provider(self, actor: Actor, org: str) -> IdentityProviderView:
        answer = self._get(f"/v2/orgs/{path_segment(org)}/identity-provider")
        shown = convert(answer, _Provider, "an identity provider")
        return IdentityProviderView(
            org=shown.org,
            issuer=shown.issuer,
            oidc_client_id=shown.client_id,
            client_secret=shown.client_secret,
            session_lifetime=timedelta(seconds=shown.session_lifetime_seconds),
            set_at=shown.set_at,
        )

    def issuer_trusts_of(
        self, actor: Actor, account_id: str, *, include_withdrawn: bool = False
    ) -> list[IssuerTrustView]:
        path = f"/v2/service_accounts/{path_segment(account_id)}/trusts"
        answer = self._get(path, include_withdrawn=include_withdrawn)
        return [
            IssuerTrustView(
                trust_id=t.trust_id,
                account_id=t.account_id,
                issuer=t.issuer,
                subject=t.subject,
                audience=t.audience,
                created_at=t.created_at,
                expires_at=None,
                revoked_at=t.withdrawn_at,
                revoked_reason=t.withdrawn_reason,
            )
            for t in convert(answer, list[_Trust], "issuer trusts")
        ]

    def sessions_of(
        self, actor: Actor, principal: str, *, include_ended: bool = False
    ) -> list[SessionView]:
        path = f"/v2/users/{path_segment(principal)}/sessions"
        answer = self._get(path, include_ended=include_ended)
        return [
            SessionView(
                session_id=s.session_id,
                principal=s.principal,
                org=s.org,
                issuer=s.issuer,
                subject="",  # the provider's subject for the user is not shown over HTTP
                started_at=s.started_at,
                expires_at=s.expires_at,
                refresh_hash="",
                generation=s.refreshes,
                refreshed_at=s.refreshed_at,
                revoked_at=s.ended_at,
                revoked_reason=s.ended_reason,
                last_used_at=s.last_used,
            )
            for s in convert(answer, list[_Session], "sessions")
        ]

    def who_can(
        self, actor: Actor, resource: str, level: Level, *, at: datetime | None = None
    ) -> tuple[WhoCan, int]:
        answer = self._get(
            "/v2/audit/who-can",
            resource=resource,
            level=level.label,
            at=at.isoformat() if at is not None else None,
        )
        document = convert(answer, dict[str, Any], "who can act on a resource")
        position = convert(document.pop("as_of_position", None), int, "a log position")
        document.pop("at", None)
        return convert(document, WhoCan, "who can act on a resource"), position

    def live_tokens(
        self,
        actor: Actor,
        start: datetime,
        end: datetime,
        *,
        principal: str | None = None,
        resource: str | None = None,
    ) -> list[LiveToken]:
        answer = self._get(
            "/v2/tokens/live",
            **{"from": start.isoformat(), "to": end.isoformat()},
            principal=principal,
            resource=resource,
        )
        return convert(answer, list[LiveToken], "a list of usable tokens")

    def explain_token(self, actor: Actor, token_id: str) -> Explanation:
        return _explanation(self.client.explain_token(token_id))

    def explain_token_with_proofs(
        self, actor: Actor, token_id: str
    ) -> tuple[Explanation, list[dict[str, Any]]]:
        """``audit explain --proof``: the story and a proof bundle of each event it cites."""
        story = self.client.explain_token(token_id, proof=True)
        return _explanation(story), list(story.proofs)


def _explanation(story: TokenStory) -> Explanation:
    return Explanation(
        token_id=story.token_id,
        principal=story.principal,
        story=[_entry(record) for record in story.story],
        revocation=_entry(story.revocation) if story.revocation is not None else None,
        root_cause=_entry(story.root_cause) if story.root_cause is not None else None,
        siblings=list(story.revoked_with_it),
        rotated_from=list(story.rotated_from),
        rotated_to=list(story.rotated_to),
    )


class _Provider(msgspec.Struct):
    org: str
    issuer: str
    client_id: str
    client_secret: bool
    session_lifetime_seconds: int
    set_at: datetime


class _Trust(msgspec.Struct):
    trust_id: str
    account_id: str
    issuer: str
    subject: str
    audience: str
    created_at: datetime
    withdrawn_at: datetime | None
    withdrawn_reason: str | None


class _Session(msgspec.Struct):
    session_id: str
    principal: str
    org: str
    issuer: str
    started_at: datetime
    expires_at: datetime | None
    refreshed_at: datetime | None
    refreshes: int
    ended_at: datetime | None
    ended_reason: str | None
    last_used: datetime | None = None


class _Member(msgspec.Struct):
    email: str
    role: str


class _Policy(msgspec.Struct):
    resource: str
    level: str


def _suspension_call(
    command: c.DisableToken
    | c.EnableToken
    | c.DisableServiceAccount
    | c.EnableServiceAccount
    | c.DisableClientCredential
    | c.EnableClientCredential,
) -> _Call:
    """``POST .../disable`` or ``.../enable`` on what the command names."""
    match command:
        case c.DisableToken() | c.EnableToken():
            target = f"/v2/tokens/{path_segment(command.token_id)}"
        case c.DisableServiceAccount() | c.EnableServiceAccount():
            target = f"/v2/service_accounts/{path_segment(command.account_id)}"
        case _:
            account = path_segment(command.account_id) if command.account_id else "-"
            target = f"/v2/service_accounts/{account}/credentials/{path_segment(command.client_id)}"
    disabling = isinstance(
        command, c.DisableToken | c.DisableServiceAccount | c.DisableClientCredential
    )
    reason = getattr(command, "reason", None)
    body = {"reason": reason} if reason is not None else None
    return _Call("POST", f"{target}/{'disable' if disabling else 'enable'}", body)


def _role_path(org: str, role: str) -> str:
    return f"/v2/orgs/{path_segment(org)}/roles/{path_segment(role)}"


def _role_call(
    command: c.IssueRoleKey | c.RevokeRoleKey | c.AddRolePolicy | c.RemoveRolePolicy | c.DeleteRole,
) -> _Call:
    """The routes of a role's keys and policies (``api.routes.roles``)."""
    path = _role_path(command.org, command.role)
    match command:
        case c.IssueRoleKey():
            return _Call("POST", f"{path}/keys", {"name": command.name})
        case c.RevokeRoleKey():
            key = path_segment(command.token_id)
            return _Call("DELETE", f"{path}/keys/{key}", params={"reason": command.reason})
        case c.AddRolePolicy():
            body = {"resource": command.resource, "level": command.level.label}
            return _Call("POST", f"{path}/policies", body)
        case c.RemoveRolePolicy():
            return _Call(
                "DELETE", f"{path}/policies/{path_segment(command.resource, slashes=True)}"
            )
    return _Call("DELETE", path)


class _Role(msgspec.Struct):
    role: str
    grants: tuple[Grant, ...]


def _entry(record: AuditRecord) -> AuditEntry:
    pending = to_pending(record.event)
    return AuditEntry(
        record=RecordedEvent(
            position=record.position,
            stream_id=record.stream_id,
            stream_version=record.stream_version or 0,
            event_id=record.event_id,
            event_type=record.event_type,
            schema_version=pending.schema_version,
            data=pending.data,
            recorded_at=record.recorded_at,
            actor=record.actor,
            command_id=record.command_id,
            correlation_id=record.correlation_id,
            prev_hash=record.prev_hash or "",
            hash=record.hash or "",
            via=record.via,
        ),
        event=record.event,
    )
