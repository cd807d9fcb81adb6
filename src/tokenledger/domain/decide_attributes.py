"""Decisions on a resource's license and data class.

Registered on ``decide`` (``domain.decide`` imports this module). Who may set them is
decided in ``domain.authority`` (``authorise_resource_attributes``); what a valid license
or data class is, in ``domain.resource_attributes``.

Setting a value a resource already has records nothing: the command names only what is
asked for, and when nothing of it would change it is refused as a ``Conflict``, as granting
a level someone already holds is. When one of the two changes, only that one is recorded.
"""

from __future__ import annotations

from tokenledger.domain import commands as c
from tokenledger.domain.authority import authorise_resource_attributes
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import Event, ResourceDataClassSet, ResourceLicenseSet
from tokenledger.domain.model import LedgerView, ResourceView
from tokenledger.errors import Conflict, NotFound

__all__ = ["attribute_events"]


@decide.register
def _set_resource_attributes(
    cmd: c.SetResourceAttributes, view: LedgerView, ctx: Context
) -> list[Event]:
    # Authority before existence: only an admin of the place learns whether it exists.
    authorise_resource_attributes(view, ctx.actor, cmd.path, ctx.now)
    resource = view.resource(cmd.path)
    if resource is None:
        raise NotFound(f"no resource {cmd.path}")
    events = attribute_events(resource, cmd.license, cmd.data_class)
    if not events:
        asked = []
        if cmd.license is not None:
            asked.append(f"license {cmd.license}")
        if cmd.data_class is not None:
            asked.append(f"data class {cmd.data_class}")
        raise Conflict(f"resource {cmd.path} already has {' and '.join(asked)}")
    return events


def attribute_events(
    resource: ResourceView, license: str | None, data_class: str | None
) -> list[Event]:
    """The events that give ``resource`` the license and data class asked for (None: left as
    it is), one for each that differs from what it has."""
    events: list[Event] = []
    if license is not None and license != resource.license:
        events.append(ResourceLicenseSet(path=resource.path, license=license))
    if data_class is not None and data_class != resource.data_class:
        events.append(ResourceDataClassSet(path=resource.path, data_class=data_class))
    return events
