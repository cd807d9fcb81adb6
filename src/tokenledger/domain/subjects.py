"""What an event concerns: the ids an auditor can search the log by.

An event concerns the org, user, service account, resource and token ids it
names; a resource also brings in its org, so ``--subject acme`` finds every
event inside org ``acme``. Read generically from the event's fields so that a
new event is indexed without a line here, as long as it uses the usual names.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from tokenledger.domain.events import Event
from tokenledger.domain.permissions import Grant, org_of

__all__ = ["subjects"]

#: Fields holding an id by themselves.
_ID_FIELDS = (
    "org",
    "orgs",
    "email",
    "principal",
    "account_id",
    "token_id",
    "parent_id",
    "client_id",
    "session_id",
    "trust_id",
    "endpoint_id",
    "access_key_id",
    "successor_id",
    "webhook_id",
)
#: Fields holding a resource path.
_PATH_FIELDS = ("path", "resource")
#: Fields holding one grant or several.
_GRANT_FIELDS = ("grant", "permission", "previous", "grants")


def subjects(event: Event) -> tuple[str, ...]:
    """Every id ``event`` concerns, without duplicates, in a stable order."""
    found: list[str] = []
    _collect(event, _fields_of(type(event)), found)
    return tuple(dict.fromkeys(found))


class _Fields(NamedTuple):
    """Which of the well-known fields an event class has (worked out once per class)."""

    ids: tuple[str, ...]
    paths: tuple[str, ...]
    grants: tuple[str, ...]
    role: bool


@cache
def _fields_of(cls: type[Event]) -> _Fields:
    names = set(cls.__struct_fields__)
    return _Fields(
        ids=tuple(n for n in _ID_FIELDS if n in names),
        paths=tuple(n for n in _PATH_FIELDS if n in names),
        grants=tuple(n for n in _GRANT_FIELDS if n in names),
        role="role" in names and "org" in names,
    )


def _collect(event: Event, fields: _Fields, found: list[str]) -> None:
    # Appends rather than yields: a cascade indexes thousands of events in one command.
    add = found.append
    for name in fields.ids:
        value = getattr(event, name)
        if isinstance(value, str):
            if value:
                add(value)
        elif isinstance(value, tuple):  # several ids (a revoked user token's orgs)
            found.extend(item for item in value if isinstance(item, str) and item)
    for name in fields.paths:
        value = getattr(event, name)
        if isinstance(value, str) and value:
            add(value)
            add(org_of(value))
    for name in fields.grants:
        value = getattr(event, name)
        grants = value if isinstance(value, tuple) else (value,)
        for grant in grants:
            if isinstance(grant, Grant):
                add(grant.resource)
                add(org_of(grant.resource))
    if fields.role:
        add(f"{event.org}:{event.role}")  # type: ignore[attr-defined]
