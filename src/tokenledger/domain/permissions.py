"""Permission levels, grants and the arithmetic of covering and intersecting them.

A grant is (resource path, level) and covers the resource and all its
descendants. Levels are ordered ``none < read < append < write < admin``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import msgspec

__all__ = [
    "ARUNA_LEVEL_PREFIX",
    "Grant",
    "Level",
    "covers",
    "grants_allow",
    "is_within",
    "level_at",
    "org_of",
    "parent_of",
]


#: Aruna's names for levels: ``PERMISSION_LEVEL_`` and ours in capitals.
ARUNA_LEVEL_PREFIX = "PERMISSION_LEVEL_"


class Level(IntEnum):
    NONE = 0
    READ = 1
    APPEND = 2
    WRITE = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        # A dict read, not Enum's ``name`` descriptor: every verification labels a level.
        return _LABEL_BY_LEVEL[self]

    @classmethod
    def parse(cls, text: str) -> Level:
        """A level by its name (``read``), in any case, or by Aruna's (``PERMISSION_LEVEL_READ``,
        its API's enum): one rule for every place a level is given."""
        name = text.strip().upper()
        if name.startswith(ARUNA_LEVEL_PREFIX):
            name = name.removeprefix(ARUNA_LEVEL_PREFIX)
        try:
            return cls[name]
        except KeyError:
            names = ", ".join(level.label for level in cls)
            raise ValueError(
                f"unknown level {text!r}: use one of {names} (or Aruna's PERMISSION_LEVEL_READ ...)"
            ) from None

    @property
    def aruna_name(self) -> str:
        """The level as Aruna's API names it (``PERMISSION_LEVEL_WRITE``)."""
        return ARUNA_LEVEL_PREFIX + self.name


class Grant(msgspec.Struct, frozen=True, order=True):
    """A permission on a resource and everything below it."""

    resource: str
    level: str

    @property
    def rank(self) -> Level:
        # A dict read: every verification ranks each grant it weighs.
        found = _LEVEL_BY_LABEL.get(self.level)
        return found if found is not None else Level[self.level.upper()]

    def __str__(self) -> str:
        return f"{self.level}:{self.resource}"


_LABEL_BY_LEVEL = {level: level.name.lower() for level in Level}
_LEVEL_BY_LABEL = {label: level for level, label in _LABEL_BY_LEVEL.items()}


def is_within(path: str, ancestor: str) -> bool:
    """True when ``path`` is ``ancestor`` or lies below it."""
    return path == ancestor or path.startswith(ancestor + "/")


def covers(grant: Grant, path: str) -> bool:
    return is_within(path, grant.resource)


def org_of(path: str) -> str:
    return path.split("/", 1)[0]


def parent_of(path: str) -> str | None:
    head, sep, _ = path.rpartition("/")
    return head if sep else None


def level_at(grants: Iterable[Grant], path: str) -> Level:
    """The highest level any of ``grants`` gives on ``path``."""
    best = Level.NONE
    for grant in grants:
        # covers(grant, path), written out: every verification weighs its grants here.
        resource = grant.resource
        if path == resource or path.startswith(resource + "/"):
            rank = grant.rank
            if rank > best:
                best = rank
    return best


def grants_allow(grants: Iterable[Grant], path: str, level: Level) -> bool:
    return level_at(grants, path) >= level
