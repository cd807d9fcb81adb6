"""A resource's license and data class: what may be done with its data, and who may see it.

Both follow Aruna's: a data class is ``public``, ``private``, ``workspace`` or
``confidential`` (Aruna's API spells them ``DATA_CLASS_PUBLIC`` ...; either spelling is
taken, in any case), and a license is named by one SPDX-style identifier (``CC-BY-4.0``,
``MIT``, ``Apache-2.0``, ``proprietary``). Every place a caller gives one parses it here.
"""

from __future__ import annotations

import re
from enum import StrEnum

from tokenledger.domain.names import check_no_secret, shown

__all__ = [
    "ARUNA_DATA_CLASS_PREFIX",
    "LICENSE_MAX_LENGTH",
    "LICENSE_RULE",
    "DataClass",
    "check_data_class",
    "check_license",
]

#: Aruna's names for data classes: ``DATA_CLASS_`` and ours in capitals.
ARUNA_DATA_CLASS_PREFIX = "DATA_CLASS_"

#: The longest license identifier taken (SPDX's own run to about 40 characters).
LICENSE_MAX_LENGTH = 100

LICENSE_RULE = (
    f"one SPDX-style identifier of 1 to {LICENSE_MAX_LENGTH} characters: letters, digits, "
    "'.', '-' or '+', starting with a letter or digit (e.g. CC-BY-4.0, MIT, proprietary)"
)
_LICENSE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9.+-]{{0,{LICENSE_MAX_LENGTH - 1}}}$")


class DataClass(StrEnum):
    """Who a resource's data is for, from the widest audience to the narrowest."""

    PUBLIC = "public"
    PRIVATE = "private"
    WORKSPACE = "workspace"
    CONFIDENTIAL = "confidential"

    @classmethod
    def parse(cls, text: str) -> DataClass:
        """A data class by its name (``public``) or Aruna's (``DATA_CLASS_PUBLIC``), in any
        case: the one rule for every place a data class is given."""
        name = text.strip().lower().removeprefix(ARUNA_DATA_CLASS_PREFIX.lower())
        try:
            return cls(name)
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(
                f"unknown data class {shown(text)}: use one of {names} "
                f"(or Aruna's {ARUNA_DATA_CLASS_PREFIX}PUBLIC ...)"
            ) from None

    @property
    def aruna_name(self) -> str:
        """The data class as Aruna's API names it (``DATA_CLASS_PUBLIC``)."""
        return ARUNA_DATA_CLASS_PREFIX + self.name


def check_data_class(value: str) -> str:
    """A data class as given, stored by its own name (``DATA_CLASS_PUBLIC``: ``public``)."""
    return DataClass.parse(value).value


def check_license(value: str) -> str:
    """A license identifier, kept as given (SPDX identifiers are compared case-insensitively,
    but the log records what the admin wrote)."""
    if len(value) > LICENSE_MAX_LENGTH or not _LICENSE.fullmatch(value):
        raise ValueError(f"invalid license {shown(value)}: {LICENSE_RULE}")
    return check_no_secret(value, "license")
