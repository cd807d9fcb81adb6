"""Audit queries: who did what, when and why; the story of a token; export for SIEM tools.

Queries by subject, actor or type are answered from the audit index
projection (``audit_index``: one row per event and id it concerns, indexed by
each filter and position), queries by correlation id or time from the log's own
indexes (a time window with a subject, actor or type is turned into a window of
positions first); either way a query among millions of events reads a handful of index
pages, newest first by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa

from tokenledger.clock import checked_utc, ensure_utc
from tokenledger.domain import events as e
from tokenledger.domain.blast_radius import ISSUE_EVENTS, Acted
from tokenledger.domain.names import check_access_key_id, check_session_id, check_token_id, shown
from tokenledger.domain.secrets import TokenKind
from tokenledger.errors import NotFound, ValidationError
from tokenledger.projections.schema import audit_index, service_accounts
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.chain import format_timestamp
from tokenledger.store.eventstore import EVENT_COLUMNS, stored_events_read, to_record
from tokenledger.store.mapper import decode_event
from tokenledger.store.schema import events

__all__ = [
    "AuditEntry",
    "AuditQuery",
    "Explanation",
    "IssuedThrough",
    "acted_through",
    "cloudevent",
    "describe",
    "explain",
    "export",
    "search",
]

MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    subject: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    correlation_id: str | None = None
    limit: int = 50
    oldest_first: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValidationError(f"--limit must be between 1 and {MAX_LIMIT}")
        if self.event_type is not None and self.event_type not in e.event_types():
            raise ValidationError(_unknown_event_type(self.event_type))
        for name in ("actor", "subject", "correlation_id"):
            _check_filter(getattr(self, name), name)
        # Bounds in UTC, within the span the ledger holds: refused here, in one line, rather
        # than overflowing while the query is built.
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None:
                object.__setattr__(self, name, checked_utc(moment, name))


def _unknown_event_type(name: str) -> str:
    """The closest event types by name, or the kinds there are (the whole list is longer
    than one line)."""
    import difflib  # only for this message

    known = sorted(e.event_types())
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return f"unknown event type {shown(name)}: did you mean {' or '.join(close)}?"
    return (
        f"unknown event type {shown(name)}: a name such as TokenIssued, TokenRevoked or "
        f"SessionStarted ({len(known)} in all; docs/api.md lists them)"
    )


def _check_filter(value: str | None, name: str) -> None:
    """No identifier, actor or correlation id holds a control character, and PostgreSQL
    cannot even bind a NUL byte in text: such a filter is bad input on every backend."""
    if value is not None and not value.isprintable():
        raise ValidationError(
            f"invalid {name.replace('_', ' ')} {shown(value)}: control characters are not allowed"
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    record: RecordedEvent
    event: e.Event

    @property
    def summary(self) -> str:
        return describe(self.event)

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            "position": record.position,
            "recorded_at": format_timestamp(record.recorded_at),
            "event_type": record.event_type,
            "actor": record.actor,
            "stream_id": record.stream_id,
            "summary": self.summary,
            "command_id": record.command_id,
            "correlation_id": record.correlation_id,
            "via": record.via,
            "event_id": record.event_id,
            "data": msgspec.to_builtins(self.event),
        }


def search(store: EventStore, query: AuditQuery, *, beyond: int | None = None) -> list[AuditEntry]:
    """The events matching every filter given, newest first unless ``oldest_first``; with
    ``beyond``, only those after that position in that order (the next page).

    A subject that is an org also matches the events of the org's service accounts (their
    tokens, credentials and cascades name the account, whose id names the org): the index
    keeps one row per id an event names, and the org's rows are found beside them here.
    """
    indexed = query.subject is not None or query.actor is not None or query.event_type is not None
    source = audit_index if indexed else events
    conditions = []
    if beyond is not None:
        conditions.append(
            source.c.position > beyond if query.oldest_first else source.c.position < beyond
        )
    if query.actor is not None:
        conditions.append(source.c.actor == query.actor)
    if query.event_type is not None:
        conditions.append(source.c.event_type == query.event_type)
    if query.correlation_id is not None:
        conditions.append(source.c.correlation_id == query.correlation_id)
    if indexed:
        # The audit index keeps no time: recorded_at never decreases along the log, so a
        # time window is a window of positions, found on the log's recorded_at index and
        # then read off the audit index's (filter, position) keys. The bounds are
        # subqueries of the one statement, so they and the rows come from one snapshot.
        if query.since is not None:
            # No event that late: NULL, which no position is at or after.
            conditions.append(source.c.position >= _first_position_from(query.since))
        if query.until is not None:
            no_end = sa.literal(_NO_POSITION, sa.BigInteger)
            conditions.append(
                source.c.position < sa.func.coalesce(_first_position_from(query.until), no_end)
            )
    else:
        if query.since is not None:
            conditions.append(source.c.recorded_at >= ensure_utc(query.since))
        if query.until is not None:
            conditions.append(source.c.recorded_at < ensure_utc(query.until))
    order = source.c.position.asc() if query.oldest_first else source.c.position.desc()
    with store.engine.connect() as connection:
        if query.subject is None:
            positions = sa.select(source.c.position).where(*conditions)
            if indexed:
                # An event has a row per subject in the audit index: once in the answer.
                positions = positions.group_by(source.c.position)
            positions = positions.order_by(order).limit(query.limit)
        else:
            subjects = [query.subject]
            if not any(mark in query.subject for mark in "@/:"):  # could be an org's name
                subjects += _accounts_of(connection, query.subject)
            positions = None
        if positions is not None:
            wanted = [row[0] for row in connection.execute(positions)]
        else:
            wanted = _positions_of(
                connection, subjects, conditions, query.oldest_first, query.limit
            )
        records = _records_at(connection, wanted)
    return [AuditEntry(r, decode_event(r)) for r in records]


def _accounts_of(connection: sa.Connection, org: str) -> list[str]:
    """The ids of the service accounts an org has had (deleted ones included)."""
    rows = connection.execute(
        sa.select(service_accounts.c.account_id).where(service_accounts.c.org == org)
    )
    return [row[0] for row in rows]


#: Subjects merged by one statement: SQLite allows 500 terms in a compound SELECT.
_SUBJECTS_PER_STATEMENT = 200


def _positions_of(
    connection: sa.Connection,
    subjects: list[str],
    conditions: list[Any],
    oldest_first: bool,
    limit: int,
) -> list[int]:
    """Positions of the events concerning any of ``subjects``, in order, at most ``limit``:
    each subject's first ``limit`` positions read off its (subject, position) key, merged (the
    first ``limit`` of the merge are the answer), an event concerning several once."""

    def ordered(column: sa.ColumnElement[int]) -> sa.UnaryExpression[int]:
        return column.asc() if oldest_first else column.desc()

    def page(subject: str) -> sa.Select[Any]:
        return (
            sa.select(audit_index.c.position)
            .where(audit_index.c.subject == subject, *conditions)
            .order_by(ordered(audit_index.c.position))
            .limit(limit)
        )

    if len(subjects) == 1:  # read straight off the key, in order
        return [row[0] for row in connection.execute(page(subjects[0]))]
    found: set[int] = set()
    for start in range(0, len(subjects), _SUBJECTS_PER_STATEMENT):
        chunk = subjects[start : start + _SUBJECTS_PER_STATEMENT]
        statement: sa.Select[Any]
        if len(chunk) == 1:
            statement = page(chunk[0])
        else:
            pages = [page(subject).subquery() for subject in chunk]
            merged = sa.union(*(sa.select(p.c.position) for p in pages)).subquery()
            statement = (
                sa.select(merged.c.position).order_by(ordered(merged.c.position)).limit(limit)
            )
        found.update(row[0] for row in connection.execute(statement))
    return sorted(found, reverse=not oldest_first)[:limit]


#: Beyond any position (the largest BIGINT).
_NO_POSITION = 2**63 - 1


def _first_position_from(moment: datetime) -> sa.ScalarSelect[int]:
    """The position of the first event recorded at or after ``moment`` (NULL: none is).

    SQLite's recorded_at index ends in the rowid, the position: one index entry is read.
    PostgreSQL's holds the time alone and sorts the events sharing the first time at or
    after ``moment`` (one transaction's events, a cascade's thousands, or more while the
    clock stood still): an index with the position too would spare that, at a cost on
    every append, for a rarer query."""
    return (
        sa.select(events.c.position)
        .where(events.c.recorded_at >= ensure_utc(moment))
        .order_by(events.c.recorded_at, events.c.position)
        .limit(1)
        .scalar_subquery()
    )


def _records_at(connection: sa.Connection, positions: list[int]) -> list[RecordedEvent]:
    """The events at ``positions``, in that order."""
    if not positions:
        return []
    rows = connection.execute(sa.select(*EVENT_COLUMNS).where(events.c.position.in_(positions)))
    with stored_events_read(connection.engine):
        by_position = {row[0]: to_record(row) for row in rows}
    return [by_position[p] for p in positions]


# -- explanations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Explained:
    """What can be explained: a token, a session (``ses_...``) or S3 credentials
    (``TLS3...``), each with its own stream, first event and word for its end."""

    what: str
    id_field: str
    stream: str
    check: Callable[[str], str]
    first: type[e.Event]
    ended: str


_TOKEN = _Explained("token", "token_id", "token", check_token_id, e.TokenIssued, "revoked")
_SESSION = _Explained(
    "session", "session_id", "session", check_session_id, e.SessionStarted, "ended"
)
_S3 = _Explained(
    "S3 credentials", "access_key_id", "s3", check_access_key_id, e.S3CredentialIssued, "revoked"
)


def _explained(credential_id: str) -> _Explained:
    if credential_id.startswith("ses_"):
        return _SESSION
    if credential_id.startswith("TLS3"):
        return _S3
    return _TOKEN


@dataclass(frozen=True, slots=True)
class Explanation:
    """A token's, a session's or S3 credentials' whole story, in log order, and the cause of
    its revocation (or end) if it was revoked (or ended)."""

    token_id: str
    """The token's id, the session's (``ses_...``) or the access key id (``TLS3...``)."""
    principal: str
    story: list[AuditEntry]
    revocation: AuditEntry | None
    root_cause: AuditEntry | None
    siblings: list[str]
    rotated_from: list[str] = field(default_factory=list)
    """The tokens this one succeeded by rotation, oldest first."""
    rotated_to: list[str] = field(default_factory=list)
    """The tokens that succeeded it by rotation, in order."""

    @property
    def is_session(self) -> bool:
        return _explained(self.token_id) is _SESSION

    def to_dict(self) -> dict[str, Any]:
        """The same keys for every kind (``revocation``: a session's end), but the id's:
        ``token_id``, ``session_id`` or ``access_key_id``."""
        kind = _explained(self.token_id)
        return {
            kind.id_field: self.token_id,
            "principal": self.principal,
            "status": kind.ended if self.revocation else f"not {kind.ended}",
            "story": [entry.to_dict() for entry in self.story],
            "revocation": self.revocation.to_dict() if self.revocation else None,
            "root_cause": self.root_cause.to_dict() if self.root_cause else None,
            "revoked_with_it": self.siblings,
            "rotated_from": self.rotated_from,
            "rotated_to": self.rotated_to,
        }

    def lines(self) -> Iterator[str]:
        for entry in self.story:
            record = entry.record
            yield (
                f"{format_timestamp(record.recorded_at)}  #{record.position:<6} "
                f"{entry.summary}  (by {record.actor})"
            )
        if self.rotated_from or self.rotated_to:
            chain = [*self.rotated_from, f"[{self.token_id}]", *self.rotated_to]
            yield f"rotation chain: {' -> '.join(chain)}"
        if self.revocation is None:
            return
        cause = self.root_cause
        if cause is not None and cause.record.position != self.revocation.record.position:
            yield (f"root cause: #{cause.record.position} {cause.summary} by {cause.record.actor}")
        else:
            done = _explained(self.token_id).ended
            yield f"root cause: {done} directly by {self.revocation.record.actor}"
        record = self.revocation.record
        yield f"command {record.command_id}, correlation {record.correlation_id}"
        if self.siblings:
            together = "ended or revoked with it" if self.is_session else "revoked with it"
            yield f"{together} ({len(self.siblings)}): {', '.join(self.siblings)}"


#: Events that end what they name: a token's revocation, a session's end, S3 credentials'
#: revocation.
_ENDINGS = (e.TokenRevoked, e.SessionEnded, e.S3CredentialRevoked)
#: Events about one credential: another's are not part of this story.
_OWN_EVENTS = (
    e.TokenIssued,
    e.TokenRevoked,
    e.SessionStarted,
    e.SessionRefreshed,
    e.SessionEnded,
    e.S3CredentialIssued,
    e.S3CredentialRevoked,
    e.TokenRotated,
    e.TokenExpiryShortened,
    e.TokenDisabled,
    e.TokenEnabled,
    e.TokenUsed,
)


def explain(store: EventStore, token_id: str) -> Explanation:
    """Who issued the token with which grants (who logged in: a session's id; who was given
    S3 credentials: an access key id), what changed since, and why it was revoked (or
    ended)."""
    kind = _explained(token_id)
    try:
        kind.check(token_id)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    own = store.read_stream(f"{kind.stream}:{token_id}")
    if not own:
        raise NotFound(f"no {kind.what} {token_id}")
    first = decode_event(own[0])
    if not isinstance(first, kind.first):
        raise NotFound(f"no {kind.what} {token_id}")
    principal = str(getattr(first, "principal", None) or getattr(first, "account_id", ""))
    # Every later event about its principal: grants, roles, moves, disabling.
    about_principal = search(
        store, AuditQuery(subject=principal, limit=MAX_LIMIT, oldest_first=True)
    )
    story_records = {r.position: AuditEntry(r, decode_event(r)) for r in own}
    for entry in about_principal:
        if entry.record.position > own[0].position and not isinstance(entry.event, _OWN_EVENTS):
            story_records.setdefault(entry.record.position, entry)
    story = [story_records[p] for p in sorted(story_records)]
    revocation = next((s for s in story if isinstance(s.event, _ENDINGS)), None)
    root_cause, siblings = None, []
    if revocation is not None:
        command = _command_events(store, revocation.record.command_id)
        root_cause = next((c for c in command if not isinstance(c.event, _ENDINGS)), command[0])
        siblings = [
            ended
            for ended in (_ended_id(c.event) for c in command)
            if ended is not None and ended != token_id
        ]
    rotated_from, rotated_to = _rotation_chain(store, token_id)
    return Explanation(
        token_id=token_id,
        principal=principal,
        story=story,
        revocation=revocation,
        root_cause=root_cause,
        siblings=siblings,
        rotated_from=rotated_from,
        rotated_to=rotated_to,
    )


#: How far a rotation chain is followed either way (a chain is a token's rotations, one at a
#: time: this bounds the walk, not the chain).
_CHAIN_BOUND = 1000


def _rotation_chain(store: EventStore, token_id: str) -> tuple[list[str], list[str]]:
    """The tokens ``token_id`` succeeded (oldest first) and those that succeeded it."""
    from tokenledger.projections.view import SqlLedgerView  # the view imports this module's kin

    before: list[str] = []
    after: list[str] = []
    with store.engine.connect() as connection:
        view = SqlLedgerView(connection)
        previous = view.predecessor_of(token_id)
        while previous is not None and len(before) < _CHAIN_BOUND:
            before.insert(0, previous)
            previous = view.predecessor_of(previous)
        following = view.successor_of(token_id)
        while following is not None and len(after) < _CHAIN_BOUND:
            after.append(following)
            following = view.successor_of(following)
    return before, after


def _ended_id(event: e.Event) -> str | None:
    if isinstance(event, e.TokenRevoked):
        return event.token_id
    if isinstance(event, e.SessionEnded):
        return event.session_id
    if isinstance(event, e.S3CredentialRevoked):
        return event.access_key_id
    return None


def _command_events(store: EventStore, command_id: str) -> list[AuditEntry]:
    """Every event one command appended, in order (they are contiguous in the log)."""
    with store.engine.connect() as connection, stored_events_read(store.engine):
        rows = connection.execute(
            sa.select(*EVENT_COLUMNS)
            .where(events.c.command_id == command_id)
            .order_by(events.c.position)
        ).all()
    return [AuditEntry(r, decode_event(r)) for r in map(to_record, rows)]


# -- blast radius: what was done through a credential ---------------------------------------

#: Credentials (or positions) looked up by one statement: well under SQLite's limit on bound
#: values.
_VIA_PER_STATEMENT = 500


def acted_through(connection: sa.Connection, credential_ids: Sequence[str]) -> list[Acted]:
    """Every event of the commands the log records as acted through any of
    ``credential_ids`` (their ``via``), in log order, read off the log's ``via`` index."""
    found: list[RecordedEvent] = []
    ids = sorted(set(credential_ids))
    for start in range(0, len(ids), _VIA_PER_STATEMENT):
        chunk = ids[start : start + _VIA_PER_STATEMENT]
        rows = connection.execute(
            sa.select(*EVENT_COLUMNS).where(events.c.via.in_(chunk)).order_by(events.c.position)
        )
        with stored_events_read(connection.engine):
            found.extend(to_record(row) for row in rows)
    found.sort(key=lambda record: record.position)
    acted: list[Acted] = []
    for record in found:
        event = decode_event(record)
        assert record.via is not None  # selected by it
        acted.append(
            Acted(
                position=record.position,
                recorded_at=record.recorded_at,
                actor=record.actor,
                command_id=record.command_id,
                correlation_id=record.correlation_id,
                via=record.via,
                summary=describe(event),
                event=event,
            )
        )
    return acted


_ISSUE_TYPES = tuple(cls.__struct_config__.tag for cls in ISSUE_EVENTS)


class IssuedThrough:
    """The issue events naming a credential as what their issuer acted through
    (``issued_by``), found among those its principal recorded (the audit index's actor
    key): this finds them in logs recorded before ``via`` was kept too. Each principal's
    issues are read once per walk."""

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection
        self._by_principal: dict[str, dict[str, list[e.Event]]] = {}

    def __call__(self, credential_id: str, principal: str) -> list[e.Event]:
        issued = self._by_principal.get(principal)
        if issued is None:
            issued = self._by_principal[principal] = self._issued_by(principal)
        return issued.get(credential_id, [])

    def _issued_by(self, principal: str) -> dict[str, list[e.Event]]:
        positions = (
            sa.select(audit_index.c.position)
            .where(audit_index.c.actor == principal, audit_index.c.event_type.in_(_ISSUE_TYPES))
            .group_by(audit_index.c.position)
            .order_by(audit_index.c.position)
        )
        wanted = [row[0] for row in self._connection.execute(positions)]
        by_source: dict[str, list[e.Event]] = {}
        for start in range(0, len(wanted), _VIA_PER_STATEMENT):  # bound values per statement
            for record in _records_at(self._connection, wanted[start : start + _VIA_PER_STATEMENT]):
                event = decode_event(record)
                source = getattr(event, "issued_by", None)
                if isinstance(source, str):
                    by_source.setdefault(source, []).append(event)
        return by_source


# -- export ------------------------------------------------------------------------------


def export(
    store: EventStore, *, since: datetime | None = None, until: datetime | None = None
) -> Iterator[AuditEntry]:
    """Every event in the window, oldest first, in constant memory.

    The bounds are checked now, before the first event is read (and before a caller opens
    a file to write them to), not when the iteration first reaches them."""
    since = checked_utc(since, "since") if since is not None else None
    until = checked_utc(until, "until") if until is not None else None
    return _exported(store, since, until)


def _exported(
    store: EventStore, since: datetime | None, until: datetime | None
) -> Iterator[AuditEntry]:
    for record in store.read_all(since=since, until=until):
        yield AuditEntry(record, decode_event(record))


def cloudevent(entry: AuditEntry, source: str) -> dict[str, Any]:
    """The event as a CloudEvents 1.0 JSON object (structured mode)."""
    record = entry.record
    return {
        "specversion": "1.0",
        "id": record.event_id,
        "source": source,
        "type": f"io.tokenledger.{record.event_type}.v{record.schema_version}",
        "subject": record.stream_id,
        "time": format_timestamp(record.recorded_at),
        "datacontenttype": "application/json",
        "data": msgspec.to_builtins(entry.event),
        # Extension attributes: lowercase letters and digits only (CloudEvents 1.0).
        "tlposition": record.position,
        "tlactor": record.actor,
        "tlcommandid": record.command_id,
        "tlcorrelationid": record.correlation_id,
        "tlhash": record.hash,
        # Absent (not null) without one: CloudEvents attributes have no null value.
        **({"tlvia": record.via} if record.via is not None else {}),
    }


# -- one line per event, for people --------------------------------------------------------


def describe(event: e.Event) -> str:
    """A short sentence saying what the event records."""
    match event:
        case e.OrgCreated():
            return f"org {event.org} created"
        case e.UserCreated():
            return f"user {event.email} created"
        case e.UserDisabled():
            return f"user {event.email} disabled" + (f" ({event.reason})" if event.reason else "")
        case e.MemberAdded():
            return f"{event.email} joined {event.org} as {event.role}"
        case e.MemberRoleChanged():
            return f"{event.email}'s role in {event.org}: {event.previous_role} -> {event.role}"
        case e.MemberRemoved():
            return f"{event.email} removed from {event.org}"
        case e.ResourceCreated():
            return f"{event.kind} {event.path} created"
        case e.ResourceDeleted():
            return f"resource {event.path} deleted"
        case e.GrantSet():
            return f"{event.principal} granted {event.grant}"
        case e.GrantRemoved():
            return f"{event.principal} lost their grant on {event.resource} ({event.reason})"
        case e.RoleCreated():
            grants = " ".join(str(g) for g in event.grants)
            return f"role {event.org}:{event.role} created with {grants}"
        case e.ServiceAccountCreated():
            return f"service account {event.account_id} created with {event.permission}"
        case e.ServiceAccountPermissionMoved():
            return (
                f"service account {event.account_id} moved from {event.previous.resource} "
                f"to {event.permission.resource}"
            )
        case e.ServiceAccountPermissionLevelChanged():
            return (
                f"service account {event.account_id}: {event.previous.level} -> "
                f"{event.permission.level} on {event.permission.resource}"
            )
        case e.ServiceAccountDeleted():
            return f"service account {event.account_id} deleted"
        case e.TokenIssued() if event.kind == TokenKind.ROLE.value:
            return f"key {event.token_id} of role {event.principal} issued (acts as the role)"
        case e.TokenIssued():
            grants = " ".join(str(g) for g in event.grants)
            expiry = format_timestamp(event.expires_at) if event.expires_at else "never"
            parent = f", derived from {event.parent_id}" if event.parent_id else ""
            return (
                f"{event.kind} token {event.token_id} issued to {event.principal} with "
                f"{grants}, expires {expiry}{parent}"
            )
        case e.TokenRevoked():
            detail = f": {event.detail}" if event.detail else ""
            return f"token {event.token_id} revoked ({event.reason}){detail}"
        case e.ClientCredentialIssued():
            return f"client credential {event.client_id} issued to {event.account_id}"
        case e.ClientCredentialRevoked():
            detail = f": {event.detail}" if event.detail else ""
            return f"client credential {event.client_id} revoked ({event.reason}){detail}"
        case e.IdentityProviderSet():
            days = event.session_lifetime / 86400
            return (
                f"org {event.org} logs in through {event.issuer} (client {event.oidc_client_id}"
                f", sessions up to {days:g} days)"
            )
        case e.SessionStarted():
            return (
                f"{event.principal} logged in to {event.org} through {event.issuer}: session "
                f"{event.session_id} until {format_timestamp(event.expires_at)}"
            )
        case e.SessionRefreshed():
            return f"session {event.session_id} of {event.principal} refreshed ({event.generation})"
        case e.SessionEnded():
            detail = f": {event.detail}" if event.detail else ""
            return f"session {event.session_id} of {event.principal} ended ({event.reason}){detail}"
        case e.IssuerTrusted():
            return (
                f"{event.account_id} trusts {event.issuer} for {event.subject} "
                f"(audience {event.audience}): {event.trust_id}"
            )
        case e.IssuerUntrusted():
            detail = f": {event.detail}" if event.detail else ""
            return (
                f"trust {event.trust_id} of {event.account_id} withdrawn ({event.reason}){detail}"
            )
        case e.EndpointCreated():
            return f"endpoint {event.name} ({event.endpoint_id}) created at {event.url}"
        case e.EndpointDeleted():
            return f"endpoint {event.name} ({event.endpoint_id}) deleted"
        case e.EndpointTrusted():
            return f"{event.account_id} trusts endpoint {event.endpoint_id}"
        case e.EndpointUntrusted():
            detail = f": {event.detail}" if event.detail else ""
            return (
                f"endpoint {event.endpoint_id} left the trusted endpoints of {event.account_id} "
                f"({event.reason}){detail}"
            )
        case e.S3CredentialIssued():
            return (
                f"S3 credentials {event.access_key_id} issued to {event.account_id} at "
                f"endpoint {event.endpoint_id}"
            )
        case e.S3CredentialRevoked():
            detail = f": {event.detail}" if event.detail else ""
            return f"S3 credentials {event.access_key_id} revoked ({event.reason}){detail}"
        case e.RolePolicyAdded():
            return f"role {event.org}:{event.role} now grants {event.grant}"
        case e.RolePolicyRemoved():
            return f"role {event.org}:{event.role} no longer grants anything on {event.resource}"
        case e.RoleDeleted():
            return f"role {event.org}:{event.role} deleted"
        case e.ResourceLicenseSet():
            return f"license of {event.path} set to {event.license}"
        case e.ResourceDataClassSet():
            return f"data class of {event.path} set to {event.data_class}"
        case e.TokenDisabled() | e.TokenEnabled():
            return _suspension("token", event.token_id, event)
        case e.ServiceAccountDisabled() | e.ServiceAccountEnabled():
            return _suspension("service account", event.account_id, event)
        case e.ClientCredentialDisabled() | e.ClientCredentialEnabled():
            return _suspension("client credential", event.client_id, event)
        case e.TokenRotated():
            return (
                f"token {event.token_id} rotated: successor {event.successor_id}, it expires "
                f"{format_timestamp(event.expires_at)}"
            )
        case e.TokenExpiryShortened():
            detail = f": {event.detail}" if event.detail else ""
            return (
                f"token {event.token_id} now expires {format_timestamp(event.expires_at)} "
                f"({event.reason}){detail}"
            )
        case e.ClientCredentialRotated():
            return (
                f"client credential {event.client_id} rotated: successor {event.successor_id}, "
                f"it expires {format_timestamp(event.expires_at)}"
            )
        case e.ClientCredentialExpiryShortened():
            detail = f": {event.detail}" if event.detail else ""
            return (
                f"client credential {event.client_id} now expires "
                f"{format_timestamp(event.expires_at)} ({event.reason}){detail}"
            )
        case e.OrgPolicySet():
            return f"org {event.org}'s token policy set"
        case e.OrgPolicyCleared():
            return f"org {event.org}'s token policy cleared"
        case e.WebhookCreated():
            return (
                f"webhook {event.webhook_id} of {event.org} created at {event.url} "
                f"({','.join(event.events)})"
            )
        case e.WebhookSecretRotated():
            return f"webhook {event.webhook_id} of {event.org} signs with a new secret"
        case e.WebhookDeleted():
            return f"webhook {event.webhook_id} of {event.org} deleted"
        case e.TokenUsed():
            what = event.stream_id.partition(":")[0]
            return (
                f"{what} {event.credential_id} used {event.count} time(s) in the "
                f"{event.interval} s from {format_timestamp(event.bucket_start)}"
            )
    return type(event).__name__


def _suspension(
    what: str,
    name: str,
    event: e.TokenDisabled
    | e.TokenEnabled
    | e.ServiceAccountDisabled
    | e.ServiceAccountEnabled
    | e.ClientCredentialDisabled
    | e.ClientCredentialEnabled,
) -> str:
    verb = "enabled" if type(event).__name__.endswith("Enabled") else "disabled"
    cause = getattr(event, "cause", None)
    reason = getattr(event, "reason", None)
    said = f" with token {cause}" if cause else ""
    return f"{what} {name} {verb}{said}" + (f": {reason}" if reason else "")
