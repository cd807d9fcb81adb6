"""The blast radius of a token: everything done through it, transitively, and what of it is
still live. THE rule of what a leaked token could have reached: the audit command, its HTTP
route and ``--revoke`` all take it from here.

From the token, the walk follows every credential it reached, breadth first:

* the tokens, client credentials and S3 credentials it issued, for any principal (the
  issue event's ``issued_by`` names it; so does the log's ``via`` for the command);
* the issuer trusts it created (the log's ``via``): a trust lets an outside issuer's ID
  tokens be exchanged for a service account's access tokens, so it outlives the token;
* the tokens derived from it (``parent_id``);

and then, in turn, what each of those reached. Along the way it collects every command the
log records as acted through one of them (the events' ``via``), and what those commands
changed: grants, roles, accounts and credentials, each judged live or not against the
current state. Which events exist is read by the caller (``Acted``, ``issued_through``);
what they amount to is decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from tokenledger.domain import events as e
from tokenledger.domain.model import LedgerView, TokenView
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from tokenledger.domain import commands as c

__all__ = [
    "ISSUE_EVENTS",
    "Acted",
    "ActedCommand",
    "BlastRadius",
    "Change",
    "Reached",
    "blast_radius",
]

#: The events that bring a credential into being; each names what its issuer acted through
#: (``issued_by``).
ISSUE_EVENTS: tuple[type[e.Event], ...] = (
    e.TokenIssued,
    e.ClientCredentialIssued,
    e.S3CredentialIssued,
)

#: How many credentials one walk follows at most: a radius is a handful, a runaway one (a
#: token that minted thousands) is cut short and said to be.
MAX_CREDENTIALS = 10_000

#: The events that bring into being something that acts in its own right afterwards:
#: the credentials issued, and issuer trusts (which name no issuer, and are found by the
#: log's ``via`` alone).
REACHING_EVENTS: tuple[type[e.Event], ...] = (*ISSUE_EVENTS, e.IssuerTrusted)

TOKEN = "token"
CLIENT_CREDENTIAL = "client credential"
S3_CREDENTIALS = "S3 credentials"
ISSUER_TRUST = "issuer trust"


class _Credential(Protocol):
    """What every credential view answers: its status as listings show it, and whether it is
    live (neither revoked nor expired)."""

    def status(self, now: datetime) -> str: ...

    def live(self, now: datetime) -> bool: ...


class Acted(NamedTuple):
    """One event of a command the log records as acted through a credential."""

    position: int
    recorded_at: datetime
    actor: str
    command_id: str
    correlation_id: str
    via: str
    summary: str
    event: e.Event


@dataclass(frozen=True, slots=True)
class Reached:
    """A credential in the radius, and how it was reached."""

    credential_id: str
    kind: str
    """``token``, ``client credential``, ``S3 credentials`` or ``issuer trust``."""
    principal: str
    source: str | None
    """The credential it was reached from (None: the token the radius is of)."""
    how: str
    """``root``, ``issued through`` (its issuer acted through ``source``) or
    ``derived from`` (``source`` is its parent token)."""
    status: str
    """As listings show it: ``active``, ``disabled``, ``expired`` or ``revoked``."""
    live: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.credential_id,
            "kind": self.kind,
            "principal": self.principal,
            "source": self.source,
            "how": self.how,
            "status": self.status,
            "live": self.live,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """What one event of an acted command changed."""

    position: int
    event_type: str
    summary: str
    kind: str
    """``grant``, ``role``, ``account``, ``credential``, ``webhook``, ``identity provider``
    or ``other``."""
    live: bool | None
    """Whether it still holds (None: not something that can: a removal, a deletion)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "event_type": self.event_type,
            "summary": self.summary,
            "kind": self.kind,
            "live": self.live,
        }


@dataclass(frozen=True, slots=True)
class ActedCommand:
    """A command the log records as acted through a credential of the radius."""

    via: str
    command_id: str
    correlation_id: str
    actor: str
    recorded_at: datetime
    changes: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "via": self.via,
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "actor": self.actor,
            "recorded_at": self.recorded_at,
            "changes": [change.to_dict() for change in self.changes],
        }


@dataclass(frozen=True, slots=True)
class BlastRadius:
    token_id: str
    credentials: list[Reached]
    """The token first, then what it reached, breadth first."""
    commands: list[ActedCommand]
    """In log order."""
    truncated: bool = False
    """The walk stopped at ``MAX_CREDENTIALS``."""

    @property
    def live_token_ids(self) -> list[str]:
        """The live tokens of the radius (the root included), by id."""
        return self._live_ids(TOKEN)

    @property
    def live_other_credentials(self) -> list[Reached]:
        """The live client and S3 credentials and issuer trusts of the radius."""
        return [r for r in self.credentials if r.kind != TOKEN and r.live]

    def _live_ids(self, kind: str) -> list[str]:
        return sorted(r.credential_id for r in self.credentials if r.kind == kind and r.live)

    def revocation(self, reason: str | None) -> c.RevokeCredentials | None:
        """The command revoking every live credential of the radius (``--revoke``): its
        tokens (and the tokens derived from them), client credentials and S3 credentials,
        all in one; None when nothing in it is live.

        A walk cut short leaves credentials unseen (the last reached: often the newest, the
        live ones of a token that minted one per job for years): revoking the rest would
        leave those live, and a second run would find nothing left and say so. It is refused
        (``ValidationError``) rather than done in part."""
        from tokenledger.domain import commands as c  # pydantic loads with a command only

        if self.truncated:
            raise ValidationError(
                f"the blast radius of {self.token_id} was cut short at {MAX_CREDENTIALS} "
                "credentials, so its live ones are not all known: nothing was revoked; "
                "revoke by filter ('tokens revoke --where') instead"
            )

        ids = {
            "token_ids": self._live_ids(TOKEN),
            "client_ids": self._live_ids(CLIENT_CREDENTIAL),
            "access_key_ids": self._live_ids(S3_CREDENTIALS),
        }
        if not any(ids.values()):
            return None
        return c.build(c.RevokeCredentials, **ids, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "credentials": [r.to_dict() for r in self.credentials],
            "commands": [command.to_dict() for command in self.commands],
            "live_tokens": self.live_token_ids,
            "live_credentials": [r.credential_id for r in self.live_other_credentials],
            "truncated": self.truncated,
        }

    def lines(self) -> Iterator[str]:
        """The radius as a tree of credentials, then the commands acted through them."""
        children: dict[str | None, list[Reached]] = {}
        for reached in self.credentials:
            children.setdefault(reached.source, []).append(reached)

        def branch(reached: Reached, prefix: str, last: bool, top: bool) -> Iterator[str]:
            joint = "" if top else ("└─ " if last else "├─ ")
            how = "" if top else f"  ({reached.how} {reached.source})"
            kind = "" if reached.kind == TOKEN else f"{reached.kind} "
            yield (
                f"{prefix}{joint}{kind}{reached.credential_id}  {reached.principal}  "
                f"{reached.status}{how}"
            )
            below = children.get(reached.credential_id, [])
            inner = prefix if top else prefix + ("   " if last else "│  ")
            for index, child in enumerate(below):
                yield from branch(child, inner, index == len(below) - 1, False)

        yield from branch(self.credentials[0], "", True, True)
        if self.truncated:
            yield f"(cut short at {MAX_CREDENTIALS} credentials)"
        if self.commands:
            yield ""
            yield f"commands acted through them ({len(self.commands)}):"
        for command in self.commands:
            yield (
                f"  {_when(command.recorded_at)}  by {command.actor} via {command.via}  "
                f"(correlation {command.correlation_id})"
            )
            for change in command.changes:
                state = "" if change.live is None else ("  [live]" if change.live else "  [gone]")
                yield f"    #{change.position:<6} {change.summary}{state}"
        others = self.live_other_credentials
        yield ""
        yield (
            f"live: {len(self.live_token_ids)} token(s)"
            + (f", {len(others)} other credential(s)" if others else "")
        )


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def blast_radius(
    view: LedgerView,
    root: TokenView,
    now: datetime,
    *,
    acted_through: Callable[[Sequence[str]], Sequence[Acted]],
    issued_through: Callable[[str, str], Sequence[e.Event]],
    visible: Callable[[e.Event], bool],
) -> BlastRadius:
    """The radius of ``root``: ``acted_through(ids)`` gives the events of every command acted
    through any of ``ids``, in log order; ``issued_through(id, principal)`` the issue events
    (``ISSUE_EVENTS``) whose ``issued_by`` is ``id``, among those ``principal`` recorded,
    in log order (events recorded before the log kept ``via`` are found this way too).

    The walk follows every event, so that the credentials reached (and revoked with
    ``--revoke``) are all of them; the commands shown hold only the events ``visible`` lets
    the caller see of the log, as an audit search would show them."""
    lookups = _Lookups(view, now)
    reached = {
        root.token_id: _as_reached(root, TOKEN, root.token_id, root.principal, None, "root", now)
    }
    commands: dict[str, ActedCommand] = {}
    level = [root.token_id]
    truncated = False
    while level and not truncated:
        issued_in: dict[str, list[e.Event]] = {}
        for one in acted_through(level):
            if isinstance(one.event, REACHING_EVENTS):
                issued_in.setdefault(one.via, []).append(one.event)
            if not visible(one.event):
                continue
            command = commands.get(one.command_id)
            if command is None:
                command = commands[one.command_id] = ActedCommand(
                    via=one.via,
                    command_id=one.command_id,
                    correlation_id=one.correlation_id,
                    actor=one.actor,
                    recorded_at=one.recorded_at,
                )
            command.changes.append(_change(lookups, one))
        derived = lookups.derived([reached[source] for source in level])
        following: list[Reached] = []
        for source in level:
            issued = [*issued_in.get(source, ()), *_issued(reached[source], issued_through)]
            children = [
                lookups.reached(kind, credential_id, principal, source, "issued through")
                for kind, credential_id, principal in _issued_ids(issued)
                # Found through via and issued_by alike, or reached before: looked up once.
                if credential_id not in reached
            ]
            for child in [*children, *derived.get(source, [])]:
                if child is None or child.credential_id in reached:
                    continue
                if len(reached) >= MAX_CREDENTIALS:
                    truncated = True
                    break
                reached[child.credential_id] = child
                following.append(child)
        level = [c.credential_id for c in following if c.kind != S3_CREDENTIALS]  # never act
    ordered = sorted(commands.values(), key=lambda c: c.changes[0].position)
    return BlastRadius(
        token_id=root.token_id,
        credentials=list(reached.values()),
        commands=ordered,
        truncated=truncated,
    )


def _issued(
    source: Reached, issued_through: Callable[[str, str], Sequence[e.Event]]
) -> Sequence[e.Event]:
    if source.kind == S3_CREDENTIALS:
        return ()
    return issued_through(source.credential_id, source.principal)


def _issued_ids(issued: Sequence[e.Event]) -> Iterator[tuple[str, str, str]]:
    """The kind, id and principal of each credential ``issued`` brought into being."""
    for event in issued:
        match event:
            case e.TokenIssued():
                yield TOKEN, event.token_id, event.principal
            case e.ClientCredentialIssued():
                yield CLIENT_CREDENTIAL, event.client_id, event.account_id
            case e.S3CredentialIssued():
                yield S3_CREDENTIALS, event.access_key_id, event.account_id
            case e.IssuerTrusted():
                yield ISSUER_TRUST, event.trust_id, event.account_id


def _as_reached(
    credential: _Credential,
    kind: str,
    credential_id: str,
    principal: str,
    source: str | None,
    how: str,
    now: datetime,
) -> Reached:
    return Reached(
        credential_id=credential_id,
        kind=kind,
        principal=principal,
        source=source,
        how=how,
        status=credential.status(now),
        live=credential.live(now),
    )


class _Lookups:
    """The walk's reads of credentials as they stand now, each credential read once (it is
    met as a credential reached and again as what a command issued)."""

    def __init__(self, view: LedgerView, now: datetime) -> None:
        self.view = view
        self.now = now
        self._found: dict[str, _Credential | None] = {}

    def credential(self, kind: str, credential_id: str) -> _Credential | None:
        if credential_id not in self._found:
            look_up: Callable[[str], _Credential | None] = {
                TOKEN: self.view.token,
                CLIENT_CREDENTIAL: self.view.client_credential,
                S3_CREDENTIALS: self.view.s3_credential,
                ISSUER_TRUST: self.view.issuer_trust,
            }[kind]
            self._found[credential_id] = look_up(credential_id)
        return self._found[credential_id]

    def live(self, kind: str, credential_id: str) -> bool:
        credential = self.credential(kind, credential_id)
        return credential is not None and credential.live(self.now)

    def reached(
        self, kind: str, credential_id: str, principal: str, source: str | None, how: str
    ) -> Reached | None:
        credential = self.credential(kind, credential_id)
        if credential is None:
            return None
        return _as_reached(credential, kind, credential_id, principal, source, how, self.now)

    def derived(self, sources: list[Reached]) -> dict[str, list[Reached]]:
        """The tokens derived from each of ``sources`` (by parent), read in one lookup."""
        parents = [source.credential_id for source in sources if source.kind == TOKEN]
        found: dict[str, list[Reached]] = {}
        for child in self.view.child_tokens(parents) if parents else ():
            parent = child.parent_id
            assert parent is not None  # found by it
            self._found[child.token_id] = child
            reached = self.reached(TOKEN, child.token_id, child.principal, parent, "derived from")
            if reached is not None:
                found.setdefault(parent, []).append(reached)
        return found


def _change(lookups: _Lookups, acted: Acted) -> Change:
    kind, live = _judged(lookups, acted.event)
    return Change(
        position=acted.position,
        event_type=type(acted.event).__name__,
        summary=acted.summary,
        kind=kind,
        live=live,
    )


def _judged(lookups: _Lookups, event: e.Event) -> tuple[str, bool | None]:
    """What kind of thing ``event`` changed, and whether that change still holds."""
    view = lookups.view
    match event:
        case e.GrantSet():
            return "grant", _grant_holds(view, event.principal, event)
        case e.GrantRemoved():
            return "grant", None
        case e.MemberAdded() | e.MemberRoleChanged():
            return "role", view.memberships(event.email).get(event.org) == event.role
        case e.MemberRemoved():
            return "role", None
        case e.RoleCreated():
            return "role", view.role(event.org, event.role) is not None
        case e.RolePolicyAdded():
            grants = view.role(event.org, event.role)
            return "role", grants is not None and event.grant in grants
        case e.RolePolicyRemoved() | e.RoleDeleted():
            return "role", None
        case e.UserCreated():
            user = view.user(event.email)
            return "account", user is not None and not user.disabled
        case e.ServiceAccountCreated():
            account = view.service_account(event.account_id)
            return "account", account is not None and not account.deleted
        case e.ServiceAccountPermissionMoved() | e.ServiceAccountPermissionLevelChanged():
            account = view.service_account(event.account_id)
            return "account", (
                account is not None
                and not account.deleted
                and account.permission == event.permission
            )
        case e.UserDisabled() | e.ServiceAccountDeleted():
            return "account", None
        # What keeps working for whoever made it after the token is revoked: a webhook sends
        # an org's events (signed with a secret its maker saw) to its URL; a provider decides
        # who logs in to the org.
        case e.WebhookCreated():
            webhook = view.webhook(event.webhook_id)
            return "webhook", webhook is not None and not webhook.deleted
        case e.WebhookSecretRotated():  # its maker knows the secret until the next rotation
            webhook = view.webhook(event.webhook_id)
            return "webhook", (
                webhook is not None
                and not webhook.deleted
                and webhook.secret_generation == event.generation
            )
        case e.WebhookDeleted():
            return "webhook", None
        case e.IdentityProviderSet():
            provider = view.identity_provider(event.org)
            return "identity provider", (
                provider is not None
                and (provider.issuer, provider.oidc_client_id)
                == (event.issuer, event.oidc_client_id)
            )
        case (
            e.TokenIssued()
            | e.ClientCredentialIssued()
            | e.S3CredentialIssued()
            | e.IssuerTrusted()
        ):
            kind, credential_id, _ = next(_issued_ids([event]))
            return "credential", lookups.live(kind, credential_id)
        case (
            e.TokenRevoked()
            | e.ClientCredentialRevoked()
            | e.S3CredentialRevoked()
            | e.IssuerUntrusted()
        ):
            return "credential", None
    return "other", None


def _grant_holds(view: LedgerView, principal: str, event: e.GrantSet) -> bool:
    return event.grant in view.direct_grants(principal)
