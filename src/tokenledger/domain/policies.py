"""Element AI's policies (``data:get@acme/alpha``) and Dyff's functions, as grants.

A policy is ``<domain>:<verb>@<resource>``: a grant on the resource (a path or its URN) at
the level the verb maps to; the domain names the kind of API and does not change the grant.
Grant config files (``cli.grant_files``) and role policies (``roles policy new``) both read
verbs through ``LEVEL_BY_FUNCTION``.
"""

from __future__ import annotations

import re

from tokenledger.domain.names import resource_path, resource_urn, shown
from tokenledger.domain.permissions import Grant, Level
from tokenledger.errors import ValidationError

__all__ = [
    "LEVEL_BY_FUNCTION",
    "POLICY_DOMAIN",
    "POLICY_SHAPE",
    "level_of_function",
    "parse_policy",
    "policy_resource",
    "policy_text",
    "split_policy",
]

#: Dyff functions and Element verbs, and the ledger level each one needs.
LEVEL_BY_FUNCTION: dict[str, str] = {
    **dict.fromkeys(("get", "list", "read", "consume", "download"), "read"),
    **dict.fromkeys(("create", "append", "upload"), "append"),
    **dict.fromkeys(("edit", "update", "write", "delete"), "write"),
    **dict.fromkeys(("admin", "manage", "*"), "admin"),
}

#: The verb a level is printed back with (the first verb mapping to it).
_VERB_BY_LEVEL = {"read": "get", "append": "create", "write": "update", "admin": "admin"}

#: The domain policies are printed back with.
POLICY_DOMAIN = "data"

POLICY_SHAPE = "<domain>:<verb>@<path>"
_POLICY = re.compile(r"(?P<domain>[a-z][a-z0-9_.-]*):(?P<verb>[^@\s]+)@(?P<path>\S+)")


def split_policy(text: str) -> tuple[str, str] | None:
    """(verb, resource) of a policy's text, unchecked; None when it has not the shape."""
    match = _POLICY.fullmatch(text.strip())
    return None if match is None else (match["verb"], match["path"])


def level_of_function(function: str) -> str | None:
    """The level a verb or function maps to (case-insensitive); None for an unknown one."""
    return LEVEL_BY_FUNCTION.get(function.strip().lower())


def parse_policy(text: str) -> Grant:
    """A policy as the grant it gives; a one-line ``ValidationError`` when it is not one."""
    if len(text) > 1000:
        raise ValidationError("invalid policy: too long")
    parts = split_policy(text)
    if parts is None:
        raise ValidationError(f"invalid policy {shown(text)}: expected {POLICY_SHAPE}")
    verb, resource = parts
    level = level_of_function(verb)
    if level is None:
        known = ", ".join(LEVEL_BY_FUNCTION)
        raise ValidationError(
            f"invalid policy {shown(text)}: unknown verb {shown(verb)}: use one of {known}"
        )
    try:
        return Grant(resource_path(resource), level)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def policy_resource(text: str) -> str:
    """The resource a policy to delete names: a policy's text, a path or a URN."""
    if split_policy(text) is not None and not text.lower().startswith("urn:"):
        return parse_policy(text).resource
    try:
        return resource_path(text.strip())
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def policy_text(grant: Grant) -> str:
    """A grant as a policy: ``data:get@urn:tokenledger:acme:alpha``."""
    verb = _VERB_BY_LEVEL.get(grant.level, Level.parse(grant.level).label)
    return f"{POLICY_DOMAIN}:{verb}@{resource_urn(grant.resource)}"
