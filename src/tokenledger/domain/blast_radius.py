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

What the answer shows is what the caller could see through the ordinary listings (the rules
of ``domain.authority``, asked, not restated); the rest is counted. Of what is shown and live,
what a removal command withdraws is a ``Withdrawal`` (``--revoke`` runs them all in one
command), judged by that command's own decision; the changes still in force that it leaves
(grants, roles, accounts, an identity provider) carry how to undo each by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from tokenledger.domain import events as e
from tokenledger.domain.authority import (
    may_see_token,
    require_principal_visible,
    require_token_access,
)
from tokenledger.domain.model import Actor, LedgerView, TokenView
from tokenledger.errors import NotFound, PermissionDenied, ValidationError

if TYPE_CHECKING:
    from tokenledger.domain import commands as c

__all__ = [
    "ISSUE_EVENTS",
    "Acted",
    "ActedCommand",
    "BlastRadius",
    "Change",
    "Reached",
    "Withdrawal",
    "blast_radius",
    "withdrawn_ids",
    "withdrawn_lines",
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
WEBHOOK = "webhook"
#: What stands for a credential the caller may not see, where one is named.
HIDDEN_CREDENTIAL = "one you may not see"
ENDPOINT_TRUST = "endpoint trust"


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reached:
        return cls(
            credential_id=data["id"],
            kind=data["kind"],
            principal=data["principal"],
            source=data["source"],
            how=data["how"],
            status=data["status"],
            live=data["live"],
        )


@dataclass(frozen=True, slots=True)
class Change:
    """What one event of an acted command changed."""

    position: int
    event_type: str
    summary: str
    kind: str
    """``grant``, ``role``, ``account``, ``credential``, ``webhook``, ``endpoint trust``,
    ``identity provider`` or ``other``."""
    live: bool | None
    """Whether it still holds (None: not something that can: a removal, a deletion)."""
    undo: str | None = None
    """While it holds and ``--revoke`` does not withdraw it: how to undo it by hand."""
    target: str | None = None
    """What ``--revoke`` withdraws while it holds (a webhook's id; an endpoint trust's
    ``ACCOUNT ENDPOINT_ID``), or None."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "event_type": self.event_type,
            "summary": self.summary,
            "kind": self.kind,
            "live": self.live,
            "undo": self.undo,
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        return cls(
            position=data["position"],
            event_type=data["event_type"],
            summary=data["summary"],
            kind=data["kind"],
            live=data["live"],
            undo=data.get("undo"),
            target=data.get("target"),
        )


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A live thing of the radius, shown to the caller, that a removal command withdraws:
    a credential (revoked), an issuer trust or endpoint trust (withdrawn), a webhook
    (deleted)."""

    kind: str
    target: str
    """Its id; an endpoint trust's is ``ACCOUNT ENDPOINT_ID``."""
    refused: str | None = None
    """Why the caller may not withdraw it, as its removal refuses (None: ``--revoke`` does)."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.target, "refused": self.refused}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Withdrawal:
        return cls(kind=data["kind"], target=data["id"], refused=data["refused"])

    def command_fields(self) -> dict[str, list[Any]]:
        """Its part of the command withdrawing it (``RevokeCredentials``)."""
        if self.kind == ENDPOINT_TRUST:
            return {"endpoint_trusts": [tuple(self.target.split(" ", 1))]}
        return {_COMMAND_FIELD[self.kind]: [self.target]}


#: The field of ``RevokeCredentials`` naming each kind of withdrawal.
_COMMAND_FIELD = {
    TOKEN: "token_ids",
    CLIENT_CREDENTIAL: "client_ids",
    S3_CREDENTIALS: "access_key_ids",
    ISSUER_TRUST: "trust_ids",
    WEBHOOK: "webhook_ids",
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActedCommand:
        recorded_at = data["recorded_at"]
        return cls(
            via=data["via"],
            command_id=data["command_id"],
            correlation_id=data["correlation_id"],
            actor=data["actor"],
            recorded_at=(
                datetime.fromisoformat(recorded_at) if isinstance(recorded_at, str) else recorded_at
            ),
            changes=[Change.from_dict(change) for change in data["changes"]],
        )


@dataclass(frozen=True, slots=True)
class BlastRadius:
    token_id: str
    credentials: list[Reached]
    """The token first, then what it reached, breadth first: those the caller may see."""
    commands: list[ActedCommand]
    """In log order."""
    truncated: bool = False
    """The walk stopped at ``MAX_CREDENTIALS``."""
    hidden_credentials: int = 0
    """The credentials reached that the caller may not see (never withdrawn by it)."""
    hidden_changes: int = 0
    """The changes made through the radius that the caller may not see of the log."""
    withdrawals: list[Withdrawal] = field(default_factory=list)
    """What ``--revoke`` withdraws (those not ``refused``), in the order shown."""

    @property
    def live_token_ids(self) -> list[str]:
        """The live tokens of the radius (the root included), by id."""
        return self._live_ids(TOKEN)

    @property
    def live_other_credentials(self) -> list[Reached]:
        """The live client and S3 credentials and issuer trusts of the radius."""
        return [r for r in self.credentials if r.kind != TOKEN and r.live]

    @property
    def by_hand(self) -> list[Change]:
        """The changes still in force that ``--revoke`` leaves: grants, roles and accounts
        (undoing them could take away legitimate access), and what no command removes (an
        org's identity provider); each with how to undo it by hand."""
        return [change for change in self._changes() if change.live and change.undo]

    def _changes(self) -> Iterator[Change]:
        for command in self.commands:
            yield from command.changes

    def _live_ids(self, kind: str) -> list[str]:
        return sorted(r.credential_id for r in self.credentials if r.kind == kind and r.live)

    def revocation(self, reason: str | None) -> c.RevokeCredentials | None:
        """The command withdrawing every live thing of the radius the caller may withdraw
        (``--revoke``): its tokens (and the tokens derived from them), client credentials
        and S3 credentials, issuer trusts, the webhooks and endpoint trusts made through it,
        all in one; None when nothing in it is left to withdraw.

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
        fields: dict[str, list[Any]] = {}
        for withdrawal in self.withdrawals:
            if withdrawal.refused is None:
                for name, ids in withdrawal.command_fields().items():
                    fields.setdefault(name, []).extend(ids)
        if not fields:
            return None
        return c.build(c.RevokeCredentials, **fields, reason=reason, radius_of=self.token_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "credentials": [r.to_dict() for r in self.credentials],
            "commands": [command.to_dict() for command in self.commands],
            "live_tokens": self.live_token_ids,
            "live_credentials": [r.credential_id for r in self.live_other_credentials],
            "truncated": self.truncated,
            "hidden_credentials": self.hidden_credentials,
            "hidden_changes": self.hidden_changes,
            "withdrawals": [withdrawal.to_dict() for withdrawal in self.withdrawals],
            "by_hand": [
                {"position": change.position, "summary": change.summary, "undo": change.undo}
                for change in self.by_hand
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlastRadius:
        """The radius ``to_dict`` gave (as a server answers it)."""
        return cls(
            token_id=data["token_id"],
            credentials=[Reached.from_dict(r) for r in data["credentials"]],
            commands=[ActedCommand.from_dict(command) for command in data["commands"]],
            truncated=data["truncated"],
            hidden_credentials=data.get("hidden_credentials", 0),
            hidden_changes=data.get("hidden_changes", 0),
            withdrawals=[Withdrawal.from_dict(w) for w in data.get("withdrawals", ())],
        )

    def lines(self) -> Iterator[str]:
        """The radius as a tree of credentials, then the commands acted through them, then
        what ``--revoke`` would leave."""
        children: dict[str | None, list[Reached]] = {}
        for reached in self.credentials:
            children.setdefault(reached.source, []).append(reached)

        def branch(reached: Reached, prefix: str, last: bool, top: bool) -> Iterator[str]:
            joint = "" if top else ("└─ " if last else "├─ ")
            if reached.how == "root":
                how = ""
            elif reached.source is None:
                how = f"  ({reached.how})"
            else:
                how = f"  ({reached.how} {reached.source})"
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
        # Reached through one the caller may not see: shown on their own, not under it.
        for orphan in children.get(None, [])[1:]:
            yield from branch(orphan, "", True, True)
        if self.hidden_credentials:
            yield f"({self.hidden_credentials} more credential(s) you may not see)"
        if self.truncated:
            yield f"(cut short at {MAX_CREDENTIALS} credentials)"
        if self.commands or self.hidden_changes:
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
        if self.hidden_changes:
            yield f"  ({self.hidden_changes} more change(s) you may not see)"
        others = self.live_other_credentials
        yield ""
        yield (
            f"live: {len(self.live_token_ids)} token(s)"
            + (f", {len(others)} other credential(s)" if others else "")
        )
        left = list(self.left_lines())
        if left:
            yield ""
            yield "not withdrawn by --revoke:"
            yield from (f"  {line}" for line in left)

    def left_lines(self) -> Iterator[str]:
        """What ``--revoke`` leaves, and why: what the caller may not withdraw or see, and
        the changes still in force with how to undo each by hand."""
        for withdrawal in self.withdrawals:
            if withdrawal.refused is not None:
                yield f"{withdrawal.kind} {withdrawal.target}: {withdrawal.refused}"
        if self.hidden_credentials:
            yield f"{self.hidden_credentials} more credential(s) you may not see"
        if self.hidden_changes:
            yield f"{self.hidden_changes} more change(s) you may not see"
        for change in self.by_hand:
            yield f"#{change.position} {change.summary}  (by hand: {change.undo})"


def withdrawn_ids(events: Iterable[e.Event]) -> dict[str, list[Any]]:
    """What a withdrawal's events withdrew, by kind (the answer of ``--revoke``)."""
    found: dict[str, list[Any]] = {
        "revoked": [],
        "revoked_client_ids": [],
        "revoked_access_key_ids": [],
        "withdrawn_trust_ids": [],
        "deleted_webhook_ids": [],
        "untrusted_endpoints": [],
    }
    for event in events:
        match event:
            case e.TokenRevoked():
                found["revoked"].append(event.token_id)
            case e.ClientCredentialRevoked():
                found["revoked_client_ids"].append(event.client_id)
            case e.S3CredentialRevoked():
                found["revoked_access_key_ids"].append(event.access_key_id)
            case e.IssuerUntrusted():
                found["withdrawn_trust_ids"].append(event.trust_id)
            case e.WebhookDeleted():
                found["deleted_webhook_ids"].append(event.webhook_id)
            case e.EndpointUntrusted():
                found["untrusted_endpoints"].append(
                    {"account_id": event.account_id, "endpoint_id": event.endpoint_id}
                )
    return found


def withdrawn_lines(events: Iterable[e.Event]) -> Iterator[str]:
    """A line per thing a withdrawal's events withdrew."""
    found = withdrawn_ids(events)
    yield from (f"token {token_id}" for token_id in found["revoked"])
    yield from (f"client credential {client_id}" for client_id in found["revoked_client_ids"])
    yield from (f"S3 credentials {key}" for key in found["revoked_access_key_ids"])
    yield from (f"issuer trust {trust_id}" for trust_id in found["withdrawn_trust_ids"])
    yield from (f"webhook {webhook_id}" for webhook_id in found["deleted_webhook_ids"])
    yield from (
        f"endpoint trust {pair['account_id']} {pair['endpoint_id']}"
        for pair in found["untrusted_endpoints"]
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
    actor: Actor,
) -> BlastRadius:
    """The radius of ``root``: ``acted_through(ids)`` gives the events of every command acted
    through any of ``ids``, in log order; ``issued_through(id, principal)`` the issue events
    (``ISSUE_EVENTS``) whose ``issued_by`` is ``id``, among those ``principal`` recorded,
    in log order (events recorded before the log kept ``via`` are found this way too).

    The walk follows every event, so that the credentials reached are all of them; what is
    shown is what ``actor`` could see through the ordinary listings: the credentials whose
    principal's tokens it may see (``require_token_access``), the events ``visible`` lets
    it see of the log (as an audit search would show them); the rest is counted. Of what is
    shown and live, each thing a removal command withdraws is a ``Withdrawal``, judged by
    that command's own decision (``decide_bulk.withdrawal_refusal``)."""
    lookups = _Lookups(view, now)
    reached = {
        root.token_id: _as_reached(root, TOKEN, root.token_id, root.principal, None, "root", now)
    }
    commands: dict[str, ActedCommand] = {}
    hidden_changes = 0
    level = [root.token_id]
    truncated = False
    while level and not truncated:
        issued_in: dict[str, list[e.Event]] = {}
        for one in acted_through(level):
            if isinstance(one.event, REACHING_EVENTS):
                issued_in.setdefault(one.via, []).append(one.event)
            if not visible(one.event):
                hidden_changes += 1
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
    shown = _shown(lookups, actor, list(reached.values()))
    shown_ids = {r.credential_id for r in shown}
    ordered = [
        command if command.via in shown_ids else dataclasses.replace(command, via=HIDDEN_CREDENTIAL)
        for command in ordered
    ]
    return BlastRadius(
        token_id=root.token_id,
        credentials=shown,
        commands=ordered,
        truncated=truncated,
        hidden_credentials=len(reached) - len(shown),
        hidden_changes=hidden_changes,
        withdrawals=_withdrawals(view, actor, now, shown, ordered),
    )


def _shown(lookups: _Lookups, actor: Actor, reached: list[Reached]) -> list[Reached]:
    """The credentials of ``reached`` that ``actor`` may see, the root first (the caller was
    let see it). One reached through a credential it may not see is shown on its own, so
    that the hidden one's id is not named."""
    root, rest = reached[0], reached[1:]
    shown = [root, *(r for r in rest if _may_see(lookups, actor, r))]
    ids = {r.credential_id for r in shown}
    return [
        r
        if r.source is None or r.source in ids
        else dataclasses.replace(r, source=None, how=f"{r.how} {HIDDEN_CREDENTIAL}")
        for r in shown
    ]


def _may_see(lookups: _Lookups, actor: Actor, reached: Reached) -> bool:
    """Whether ``actor`` sees ``reached`` in its principal's listing (``tokens list``,
    ``service-accounts credentials``, ``trusts``, ``s3-credentials``): the rules those
    listings ask, here asked again, never restated."""
    view, now = lookups.view, lookups.now
    try:
        if reached.kind != TOKEN:
            require_principal_visible(view, actor, reached.principal, now)
        require_token_access(view, actor, reached.principal, now, token_id=reached.credential_id)
    except (PermissionDenied, NotFound):
        return False
    if reached.kind == TOKEN:
        token = lookups.credential(TOKEN, reached.credential_id)
        return isinstance(token, TokenView) and may_see_token(actor, token)
    return True


def _withdrawals(
    view: LedgerView,
    actor: Actor,
    now: datetime,
    shown: list[Reached],
    commands: list[ActedCommand],
) -> list[Withdrawal]:
    """Each live thing shown that a removal command withdraws, with the refusal that
    command would give ``actor`` for it alone (None: it may)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.decide import Context
    from tokenledger.domain.decide_bulk import withdrawal_refusal

    found = [Withdrawal(r.kind, r.credential_id) for r in shown if r.live]
    for command in commands:
        for change in command.changes:
            if change.live and change.target is not None:
                found.append(Withdrawal(change.kind, change.target))
    ctx = Context(actor=actor, now=now)
    judged: list[Withdrawal] = []
    for withdrawal in dict.fromkeys(found):
        alone = c.build(c.RevokeCredentials, **withdrawal.command_fields())
        refused = withdrawal_refusal(alone, view, ctx)
        judged.append(dataclasses.replace(withdrawal, refused=refused))
    return judged


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
        undo=_undo(acted.event) if live else None,
        target=_target(acted.event),
    )


def _target(event: e.Event) -> str | None:
    """What a removal command withdraws of what ``event`` made (``Withdrawal.target``)."""
    match event:
        case e.WebhookCreated():
            return event.webhook_id
        case e.EndpointTrusted():
            return f"{event.account_id} {event.endpoint_id}"
    return None


def _undo(event: e.Event) -> str | None:
    """How to undo by hand a change ``--revoke`` leaves in force. Grants, roles and
    accounts are not undone by it: the change may since carry legitimate access."""
    match event:
        case e.GrantSet():
            return f"tokenledger grants set {event.principal} {event.grant.resource} none"
        case e.MemberAdded():
            return f"tokenledger orgs remove-member {event.org} {event.email}"
        case e.MemberRoleChanged():
            return (
                f"tokenledger orgs add-member {event.org} {event.email} "
                f"--role {event.previous_role}"
            )
        case e.RoleCreated():
            return f"tokenledger roles delete {event.org}:{event.role}"
        case e.RolePolicyAdded():
            return (
                f"tokenledger roles policy delete {event.org}:{event.role} {event.grant.resource}"
            )
        case e.UserCreated():
            return f"tokenledger users disable {event.email}"
        case e.ServiceAccountCreated():
            return f"tokenledger service-accounts delete {event.account_id}"
        case e.ServiceAccountPermissionMoved() | e.ServiceAccountPermissionLevelChanged():
            previous = event.previous
            return (
                f"tokenledger service-accounts set-permission {event.account_id} "
                f"{previous.resource} {previous.level}"
            )
        case e.WebhookSecretRotated():  # a webhook made elsewhere: its secret is known
            return f"tokenledger webhooks rotate-secret {event.webhook_id}"
        case e.IdentityProviderSet():
            return (
                f"no command removes a provider: set the one {event.org} should have with "
                f"tokenledger orgs set-idp {event.org} --issuer ISSUER --client-id CLIENT_ID"
            )
    return None


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
        case e.EndpointTrusted():
            trusted = view.trusted_endpoints_of(event.account_id)
            return ENDPOINT_TRUST, any(t.endpoint_id == event.endpoint_id for t in trusted)
        case e.EndpointUntrusted():
            return ENDPOINT_TRUST, None
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
