"""What an event concerns: the ids an auditor can search the log by.

An event concerns the org, user, service account, resource and token ids it
names; a resource also brings in its org, so ``--subject acme`` finds every
event inside org ``acme``. Read generically from the event's fields so that a
new event is indexed without a line here, as long as it uses the usual names.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from tokenledger.domain.events import Event
from tokenledger.domain.permissions import Grant, org_of

__all__ = ["subjects"]

#: Fields holding an id by themselves.
_ID_FIELDS = ("org", "email", "principal", "account_id", "token_id", "parent_id", "client_id")
#: Fields holding a resource path.
_PATH_FIELDS = ("path", "resource")
#: Fields holding one grant or several.
_GRANT_FIELDS = ("grant", "permission", "previous", "grants")


def subjects(event: Event) -> tuple[str, ...]:
    """Every id ``event`` concerns, without duplicates, in a stable order."""
    return tuple(dict.fromkeys(_collect(event)))


def _collect(event: Event) -> Iterator[str]:
    values = msgspec.structs.asdict(event)
    for name in _ID_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value:
            yield value
    for name in _PATH_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value:
            yield value
            yield org_of(value)
    for name in _GRANT_FIELDS:
        value = values.get(name)
        grants = value if isinstance(value, tuple) else (value,)
        for grant in grants:
            if isinstance(grant, Grant):
                yield grant.resource
                yield org_of(grant.resource)
    if "role" in values and "org" in values:
        yield f"{values['org']}:{values['role']}"
