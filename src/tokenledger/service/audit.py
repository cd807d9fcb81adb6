"""Audit answers for an actor: the events it may see, and a token's story."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tokenledger.domain import blast_radius as radius
from tokenledger.domain import events as e
from tokenledger.domain.authority import may_see, may_see_event, sees_every_event
from tokenledger.domain.model import Actor
from tokenledger.domain.subjects import subjects
from tokenledger.errors import NotFound
from tokenledger.projections import audit_queries
from tokenledger.projections.audit_queries import AuditEntry, AuditQuery, Explanation
from tokenledger.service import queries
from tokenledger.service.reading import Reader

__all__ = ["audit_search", "blast_radius", "explain_token", "visible_events"]

#: Rows read at a time when an audit answer is filtered to what the caller may see.
_PAGE = 200


@contextmanager
def visible_events(reader: Reader, actor: Actor) -> Iterator[Callable[[e.Event], bool]]:
    """Whether ``actor`` may see an event (``may_see_event``), judged against one read of the
    projections at one moment: the one rule of what an actor sees of the log, for audit
    answers and the event stream alike. An operator sees every event and reads nothing."""
    if sees_every_event(actor):
        yield _every_event
        return
    now = reader.now()
    readable: dict[str, bool] = {}
    with reader.view() as view:

        def may_read_org(name: str) -> bool:
            if name not in readable:
                readable[name] = view.org_exists(name) and may_see(view, actor, name, now)
            return readable[name]

        def visible(event: e.Event) -> bool:
            return may_see_event(actor, subjects(event), may_read_org)

        yield visible


def _every_event(event: e.Event) -> bool:
    return True


def audit_search(reader: Reader, actor: Actor, query: AuditQuery) -> list[AuditEntry]:
    """The events matching ``query`` that ``actor`` may see (``visible_events``), up to its
    limit: the limit counts the rows the actor may see, so a narrow token asking for 3 gets 3
    while there are 3 to see, however many others lie between."""
    if sees_every_event(actor):  # no page to filter
        return audit_queries.search(reader.store, query)
    page = dataclasses.replace(query, limit=max(query.limit, _PAGE))
    visible: list[AuditEntry] = []
    beyond: int | None = None
    with visible_events(reader, actor) as may_see_it:
        while len(visible) < query.limit:
            entries = audit_queries.search(reader.store, page, beyond=beyond)
            visible.extend(entry for entry in entries if may_see_it(entry.event))
            if len(entries) < page.limit:
                break
            beyond = entries[-1].record.position
    return visible[: query.limit]


def explain_token(reader: Reader, actor: Actor, token_id: str) -> Explanation:
    """A token's story and the cause of its revocation, for whoever may see the token; or a
    session's (``ses_...``) and the cause of its end, for whoever may see the session; or S3
    credentials' (``TLS3...``), for whoever may see their account's tokens."""
    if token_id.startswith("ses_"):
        queries.get_session(reader, actor, token_id)
    elif token_id.startswith("TLS3"):
        _s3_credential(reader, actor, token_id)
    else:
        queries.get_token(reader, actor, token_id)
    return audit_queries.explain(reader.store, token_id)


def blast_radius(reader: Reader, actor: Actor, token_id: str) -> radius.BlastRadius:
    """Everything done through a token, transitively (``domain.blast_radius``), for whoever
    may see the token (as its story, ``explain_token``): of the credentials reached, those
    the caller may see; of the commands acted through them, the events the caller may see of
    the log (``visible_events``); the rest counted."""
    queries.get_token(reader, actor, token_id)
    with visible_events(reader, actor) as may_see_it, reader.view() as view:
        root = view.token(token_id)
        if root is None:  # seen a moment ago, and tokens are never deleted: for the type checker
            raise NotFound(f"no token {token_id}")
        return radius.blast_radius(
            view,
            root,
            reader.now(),
            acted_through=lambda ids: audit_queries.acted_through(view.connection, ids),
            issued_through=audit_queries.IssuedThrough(view.connection),
            visible=may_see_it,
            actor=actor,
        )


def _s3_credential(reader: Reader, actor: Actor, access_key_id: str) -> None:
    """Not found unless the credentials exist and ``actor`` may see their account's."""
    from tokenledger.service import s3  # loaded on first use

    with reader.view() as view:
        credential = view.s3_credential(access_key_id)
    if credential is None:
        raise NotFound(f"no S3 credentials {access_key_id}")
    s3.s3_credentials_of(reader, actor, credential.account_id, include_revoked=True)
