"""What the client's calls return: the domain's own views where they fit (``TokenView``,
``ServiceAccountView``, ``ClientCredentialView``, ``Verification``), and a few small structs
for what only an answer holds (a secret shown once, the events a call appended, audit
entries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn, TypeVar

import msgspec

from tokenledger.domain.authority import Verification
from tokenledger.domain.events import Event, EventUnion
from tokenledger.domain.model import ClientCredentialView, ServiceAccountView, TokenView
from tokenledger.domain.outcome import Outcome, outcome_of
from tokenledger.domain.permissions import Grant
from tokenledger.errors import LedgerError
from tokenledger.service.commands import CommandPreview, PreviewReady
from tokenledger.store.records import RecordedEvent

__all__ = [
    "AuditRecord",
    "IssuedCredential",
    "IssuedToken",
    "Receipt",
    "TokenStory",
    "Verification",
    "audit_record",
    "convert",
    "dry_run_call",
    "preview_of",
    "receipt_of",
    "service_account_of",
    "token_story",
]


T = TypeVar("T")


def convert(value: Any, kind: type[T], what: str) -> T:
    """``value`` (decoded JSON) as ``kind``; an answer of the wrong shape is a ledger error
    naming what was expected, not a traceback."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise LedgerError(f"the server's answer is not {what}: {exc}") from None


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """What a mutating call did: its ids, the events it appended (in log order, with their
    positions) and what they amount to (``outcome``: revoked tokens, and so on)."""

    correlation_id: str
    command_id: str | None
    events: tuple[Event, ...]
    positions: tuple[int, ...]
    outcome: Outcome

    @property
    def revoked(self) -> list[str]:
        return list(self.outcome.revoked)

    @property
    def log_position(self) -> int | None:
        """The position of the last event the call appended (None when it appended none):
        what to ask ``min_position`` or ``Verifier.wait_for`` for to see its effect."""
        return self.positions[-1] if self.positions else None


class _EventWire(msgspec.Struct):
    position: int
    data: EventUnion


class _ReceiptWire(msgspec.Struct):
    correlation_id: str
    revoked: list[str] = []
    revoked_client_ids: list[str] = []
    command_id: str | None = None
    events: list[_EventWire] = []


def receipt_of(answer: Any) -> Receipt:
    wire: _ReceiptWire = convert(answer, _ReceiptWire, "a command's answer")
    events = tuple(e.data for e in wire.events)
    # A server that answers no events (an older one) still says what it revoked.
    outcome = (
        outcome_of(events)
        if events
        else Outcome(revoked=tuple(wire.revoked), revoked_client_ids=tuple(wire.revoked_client_ids))
    )
    return Receipt(
        correlation_id=wire.correlation_id,
        command_id=wire.command_id,
        events=events,
        positions=tuple(e.position for e in wire.events),
        outcome=outcome,
    )


class _PreviewedWire(msgspec.Struct):
    position: int
    stream_id: str
    stream_version: int
    event_id: str
    event_type: str
    schema_version: int
    recorded_at: datetime
    actor: str
    command_id: str
    correlation_id: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class _EventDataWire(msgspec.Struct):
    data: EventUnion


class _PreviewEventsWire(msgspec.Struct):
    events: list[_EventDataWire] = []


class _PreviewWire(msgspec.Struct):
    dry_run: bool
    log_position: int
    events: list[_PreviewedWire] = []


def preview_of(answer: Any) -> CommandPreview:
    """A dry run's answer (``?dry_run=true``) as the ``CommandPreview`` the database gives."""
    wire: _PreviewWire = convert(answer, _PreviewWire, "a dry run's answer")
    if not wire.dry_run:
        raise LedgerError("the server's answer is not a dry run's: it may have made the change")
    records = tuple(
        RecordedEvent(
            position=e.position,
            stream_id=e.stream_id,
            stream_version=e.stream_version,
            event_id=e.event_id,
            event_type=e.event_type,
            schema_version=e.schema_version,
            data=msgspec.json.encode(e.data),
            recorded_at=e.recorded_at,
            actor=e.actor,
            command_id=e.command_id,
            correlation_id=e.correlation_id,
            prev_hash=e.prev_hash,
            hash=e.hash,
        )
        for e in wire.events
    )
    decoded: _PreviewEventsWire = convert(answer, _PreviewEventsWire, "a dry run's answer")
    events = tuple(e.data for e in decoded.events)
    return CommandPreview(
        events=events,
        records=records,
        outcome=outcome_of(events),
        log_position=wire.log_position,
    )


def dry_run_call(
    client: Any,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> NoReturn:
    """Make a mutating call as a dry run (``?dry_run=true``) and raise its ``PreviewReady``."""
    answer = client.dry_run(method, path, json=json, params=params, headers=headers)
    raise PreviewReady(preview_of(answer))


class IssuedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A new token and its secret, which no later call shows again."""

    token: TokenView
    secret: str
    receipt: Receipt

    def __repr__(self) -> str:
        return f"IssuedToken(token_id={self.token.token_id!r}, secret=<hidden>)"


class IssuedCredential(msgspec.Struct, frozen=True, kw_only=True):
    """A new client credential and its secret, which no later call shows again."""

    credential: ClientCredentialView
    client_secret: str
    receipt: Receipt

    def __repr__(self) -> str:
        return f"IssuedCredential(client_id={self.credential.client_id!r}, client_secret=<hidden>)"


class _AccountWire(msgspec.Struct):
    id: str
    org: str
    name: str
    permission: Grant
    created_at: datetime
    deleted: bool = False
    disabled_at: datetime | None = None


def service_account_of(answer: Any) -> ServiceAccountView:
    wire: _AccountWire = convert(answer, _AccountWire, "a service account")
    return ServiceAccountView(
        account_id=wire.id,
        org=wire.org,
        name=wire.name,
        permission=wire.permission,
        deleted=wire.deleted,
        created_at=wire.created_at,
        disabled_at=wire.disabled_at,
    )


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One event of an audit answer: where it sits in the log, who recorded it, and the
    event itself."""

    position: int
    recorded_at: datetime
    event_type: str
    actor: str
    stream_id: str
    summary: str
    command_id: str
    correlation_id: str
    event_id: str
    stream_version: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    via: str | None = None
    """The token, client credential or session id the command acted through (None: the
    operator's, or recorded before the log kept it)."""
    event: Event


class _RecordWire(msgspec.Struct):
    position: int
    recorded_at: datetime
    event_type: str
    actor: str
    stream_id: str
    summary: str
    command_id: str
    correlation_id: str
    event_id: str
    data: EventUnion
    stream_version: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    via: str | None = None


# msgspec reads a struct's annotations the first time it meets the type; doing it now, at
# import, keeps a test clock (freezegun) that runs later from standing in for ``datetime``.
_RESOLVED = [
    msgspec.json.Decoder(kind)
    for kind in (
        _ReceiptWire,
        _AccountWire,
        _RecordWire,
        AuditRecord,
        list[TokenView],
        list[ClientCredentialView],
        Verification,
    )
]


def audit_record(answer: Any) -> AuditRecord:
    wire: _RecordWire = convert(answer, _RecordWire, "an audit entry")
    fields = msgspec.structs.asdict(wire)
    return AuditRecord(event=fields.pop("data"), **fields)


class TokenStory(msgspec.Struct, frozen=True, kw_only=True):
    """``audit explain``: a token's events and, when it was revoked, the revocation, its root
    cause and the other tokens revoked with it."""

    token_id: str
    principal: str
    status: str
    story: tuple[AuditRecord, ...]
    revocation: AuditRecord | None
    root_cause: AuditRecord | None
    revoked_with_it: tuple[str, ...]
    rotated_from: tuple[str, ...] = ()
    """The tokens it succeeded by rotation, oldest first."""
    rotated_to: tuple[str, ...] = ()
    """The tokens that succeeded it by rotation, in order."""
    proofs: tuple[dict[str, Any], ...] = ()
    """Asked with ``proof=True``: a proof bundle of each event cited (``logproof bundle``
    checks each against the server's log key)."""


def token_story(answer: Any) -> TokenStory:
    if not isinstance(answer, dict):
        raise LedgerError("the server's answer is not a token's story")

    def one(value: Any) -> AuditRecord | None:
        return audit_record(value) if value is not None else None

    return TokenStory(
        # A session's story (``audit explain ses_...``) is told in the same shape.
        token_id=convert(answer.get("token_id", answer.get("session_id")), str, "a token's story"),
        principal=convert(answer.get("principal"), str, "a token's story"),
        status=convert(answer.get("status"), str, "a token's story"),
        story=tuple(audit_record(e) for e in convert(answer.get("story"), list, "a story")),
        revocation=one(answer.get("revocation")),
        root_cause=one(answer.get("root_cause")),
        revoked_with_it=tuple(convert(answer.get("revoked_with_it"), list[str], "token ids")),
        rotated_from=tuple(convert(answer.get("rotated_from", []), list[str], "token ids")),
        rotated_to=tuple(convert(answer.get("rotated_to", []), list[str], "token ids")),
        proofs=tuple(convert(answer.get("proofs", []), list[dict[str, Any]], "proof bundles")),
    )
