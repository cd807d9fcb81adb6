"""Grant config files for ``tokenledger tokens create -c FILE`` (or ``-c -`` for standard input).

A config file is YAML or JSON (JSON is tried first, then YAML, which is a superset of it) in
UTF-8 (UTF-16 and UTF-32 are refused), holding one mapping with these keys (a key given twice
in one mapping is refused, in JSON and YAML alike):

``grants`` (required)
    A non-empty list of at most 1000 grants (after expansion), each in one of three forms.
``principal`` (or its Dyff alias ``account``)
    The token's user email, service-account id, or Dyff account id (32 hexadecimal digits,
    as ``accounts create`` prints).
``name``
    The token's display name.
``expires_in``
    A duration such as ``30d`` or ``12h``.

The three grant forms all become (resource, level) pairs, the ledger's native grant:

1. **Native**: ``{resource: acme/alpha, level: read}``.
2. **Dyff-style** (resources x functions x accounts)::

       {resources: [datasets, models], functions: [consume], accounts: [acme/alpha]}

   gives one grant on ``<account>/<resource>`` for every account and resource (a resource of
   ``"*"`` means the account's path itself), at the highest level any of the functions maps to.
3. **Element-style policy**: ``{policy: "data:get@acme/alpha"}``, that is
   ``<domain>:<verb>@<path>``, a grant on ``<path>`` (or the resource a URN names) at the
   level the verb maps to (the domain names the kind of API and does not change the grant).

Functions and verbs map to levels as follows (case-insensitive; anything else is refused):

* ``get``, ``list``, ``read``, ``consume``, ``download``: ``read``;
* ``create``, ``append``, ``upload``: ``append``;
* ``edit``, ``update``, ``write``, ``delete``: ``write``;
* ``admin``, ``manage``, ``*``: ``admin``;

and a grant with several functions takes the highest of their levels.

This module only reads and reshapes: resource paths and levels are validated by the
``IssueToken`` command the pairs are given to, and whether the principal may hold them by the
ledger. Every problem is reported as a one-line ``ValidationError`` naming the file, quoting at
most the offending value (cut to 40 characters), never the file's content.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from tokenledger.domain.policies import (
    LEVEL_BY_FUNCTION,
    POLICY_SHAPE,
    level_of_function,
    split_policy,
)
from tokenledger.errors import ValidationError

__all__ = [
    "LEVEL_BY_FUNCTION",
    "MAX_CONFIG_BYTES",
    "MAX_GRANTS",
    "GrantConfig",
    "GrantPair",
    "dyff_grants",
    "load_grant_config",
    "parse_grant_config",
]

MAX_CONFIG_BYTES = 1024 * 1024
MAX_GRANTS = 1000

_LEVEL_ORDER = ("read", "append", "write", "admin")

_TOP_LEVEL_KEYS = ("grants", "principal", "account", "name", "expires_in")
_NATIVE_KEYS = frozenset({"resource", "level"})
_DYFF_KEYS = frozenset({"resources", "functions", "accounts"})
_POLICY_KEYS = frozenset({"policy"})


@dataclass(frozen=True, slots=True)
class GrantPair:
    """One requested grant, not yet validated (the ``IssueToken`` command does that)."""

    resource: str
    level: str

    def as_spec(self) -> dict[str, str]:
        """The ``GrantSpec`` fields."""
        return {"resource": self.resource, "level": self.level}


@dataclass(frozen=True, slots=True)
class GrantConfig:
    grants: tuple[GrantPair, ...]
    principal: str | None = None
    name: str | None = None
    expires_in: str | None = None


def load_grant_config(source: str, stdin: IO[bytes] | None = None) -> GrantConfig:
    """Read and parse the config at path ``source``, or standard input when it is ``-``."""
    if source == "-":
        if stdin is None:
            raise ValidationError("<stdin>: no standard input to read the grant config from")
        return parse_grant_config(_read_limited(stdin, "<stdin>"), "<stdin>")
    try:
        with Path(source).open("rb") as stream:
            data = _read_limited(stream, source)
    except OSError as exc:
        raise ValidationError(f"{source}: cannot read the grant config: {exc.strerror}") from None
    return parse_grant_config(data, source)


def parse_grant_config(data: bytes | str, name: str = "<config>") -> GrantConfig:
    """Parse a config's text; ``name`` (a file name) is used in error messages only."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_CONFIG_BYTES:
        raise _error(name, "the grant config is larger than 1 MiB")
    document = _decode(raw, name)
    if not isinstance(document, Mapping):
        raise _error(name, "a grant config must be a mapping with a 'grants' list")
    return _config(document, name)


def _read_limited(stream: IO[bytes], name: str) -> bytes:
    data = stream.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise _error(name, "the grant config is larger than 1 MiB")
    return data


# -- decoding ---------------------------------------------------------------------------


def _decode(raw: bytes, name: str) -> Any:
    text = _utf8(raw, name)
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text, object_pairs_hook=lambda pairs: _unique(pairs, name))
        except json.JSONDecodeError:
            pass  # maybe YAML flow style; YAML gives the error message if it is not
        except ValueError:
            raise _error(name, f"invalid JSON: {_TOO_LONG}") from None
        except RecursionError:
            pass  # YAML says it: nested too deeply
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: no tags beyond plain data
    except yaml.YAMLError as exc:
        raise _error(name, f"invalid YAML{_where(exc)}: {_problem(exc)}") from None
    except RecursionError:
        raise _error(name, "invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:
        # Python refuses to read an integer of thousands of digits; YAML's timestamps
        # build dates, and an impossible one (month 13) is a ValueError too.
        problem = _TOO_LONG if "integer string conversion" in str(exc) else "an impossible value"
        raise _error(name, f"invalid YAML: {problem}") from None


_TOO_LONG = "a number too long to read (thousands of digits)"


def _utf8(raw: bytes, name: str) -> str:
    """The config's text: UTF-8 only (a UTF-8 byte order mark is allowed and dropped).

    YAML would also read UTF-16 and UTF-32 by their byte order marks, and JSON guesses
    them; the config is documented as UTF-8, and one text read one way by every tool
    leaves no room for a file that means one thing to a reviewer and another to us.
    """
    # UTF-32's byte order marks begin like UTF-16's; without a mark, text in either that
    # starts with an ASCII character has a NUL byte among its first four (RFC 4627's test).
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in raw[:4]:
        raise _error(name, "the grant config must be UTF-8 text, not UTF-16 or UTF-32")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _error(
            name, f"invalid YAML or JSON: not UTF-8 text (an invalid byte at offset {exc.start})"
        ) from None


def _unique(pairs: list[tuple[Any, Any]], name: str) -> dict[Any, Any]:
    """A JSON object's members, refused when one key comes twice (json keeps the last)."""
    found: dict[Any, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _error(name, f"duplicate key {_shown(key)}")
        found[key] = value
    return found


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that holds the same key twice.

    PyYAML keeps the last value silently; in a permissions file, a second ``principal``
    or ``grants`` further down would override what a reviewer read at the top.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        self._refuse_duplicate_keys(node)
        return super().construct_document(node)

    def _refuse_duplicate_keys(self, root: yaml.Node) -> None:
        # Over the composed nodes, before merge keys (<<) are expanded: a merge may
        # override a key, a mapping written with a key twice may not. Iterative, as a
        # document may be nested thousands deep; each node once, as aliases share them.
        stack, visited = [root], set()
        while stack:
            node = stack.pop()
            if id(node) in visited:
                continue
            visited.add(id(node))
            if isinstance(node, yaml.MappingNode):
                keys: set[Any] = set()
                for key_node, value_node in node.value:
                    stack.append(value_node)
                    if key_node.tag == _MERGE_TAG:
                        continue
                    stack.append(key_node)
                    if not isinstance(key_node, yaml.ScalarNode):
                        continue  # an unhashable key: the constructor refuses it
                    key = self.construct_object(key_node)
                    if key in keys:
                        raise yaml.constructor.ConstructorError(
                            problem=f"duplicate key {_shown(key)}",
                            problem_mark=key_node.start_mark,
                        )
                    keys.add(key)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return ""
    return f" at line {mark.line + 1}, column {mark.column + 1}"


def _problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "unreadable"
    return " ".join(str(problem).split())[:80]


# -- the document -------------------------------------------------------------------------


def _config(document: Mapping[Any, Any], name: str) -> GrantConfig:
    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            raise _error(name, f"unknown key {_shown(key)}: use {', '.join(_TOP_LEVEL_KEYS)}")
    if "principal" in document and "account" in document:
        raise _error(name, "give 'principal' or its alias 'account', not both")
    principal_key = "account" if "account" in document else "principal"
    return GrantConfig(
        grants=_grants(document.get("grants"), name),
        principal=_optional_text(document, principal_key, name),
        name=_optional_text(document, "name", name),
        expires_in=_optional_text(document, "expires_in", name),
    )


def _optional_text(document: Mapping[Any, Any], key: str, name: str) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _error(name, f"{key}: expected a string, not {_shown(value)}")
    return value


def _grants(value: Any, name: str) -> tuple[GrantPair, ...]:
    if value is None:
        raise _error(name, "missing 'grants': give a list of grants")
    if not _is_list(value):
        raise _error(name, f"grants: expected a list, not {_shown(value)}")
    pairs: list[GrantPair] = []
    for index, item in enumerate(value):
        where = f"grants[{index}]"
        pairs.extend(_expand(item, where, name, budget=MAX_GRANTS - len(pairs)))
    if not pairs:
        raise _error(name, "grants: the list is empty; give at least one grant")
    return tuple(pairs)


def _expand(item: Any, where: str, name: str, *, budget: int) -> list[GrantPair]:
    if not isinstance(item, Mapping):
        raise _error(name, f"{where}: expected a mapping, not {_shown(item)}")
    keys = frozenset(item)
    if keys == _NATIVE_KEYS:
        pairs = [_native(item, where, name)]
    elif keys == _DYFF_KEYS:
        pairs = _dyff(item, where, name, budget=budget)
    elif keys == _POLICY_KEYS:
        pairs = [_policy(item["policy"], where, name)]
    else:
        raise _error(
            name,
            f"{where}: unrecognised grant keys {_shown(', '.join(sorted(map(str, keys))))}: use "
            "{resource, level}, {resources, functions, accounts} or {policy}",
        )
    if len(pairs) > budget:
        raise _error(name, f"grants: more than {MAX_GRANTS} grants")
    return pairs


def _native(item: Mapping[Any, Any], where: str, name: str) -> GrantPair:
    return GrantPair(
        resource=_text(item["resource"], f"{where}.resource", name),
        level=_text(item["level"], f"{where}.level", name),
    )


def _dyff(item: Mapping[Any, Any], where: str, name: str, *, budget: int) -> list[GrantPair]:
    resources = _text_list(item["resources"], f"{where}.resources", name)
    accounts = _text_list(item["accounts"], f"{where}.accounts", name)
    functions = _text_list(item["functions"], f"{where}.functions", name)
    if len(resources) * len(accounts) > budget:
        raise _error(name, f"grants: more than {MAX_GRANTS} grants")
    return dyff_grants(resources, functions, accounts, f"{name}: {where}.functions")


def dyff_grants(
    resources: Sequence[str],
    functions: Sequence[str],
    accounts: Sequence[str],
    functions_label: str,
) -> list[GrantPair]:
    """One Dyff grant (resources x functions x accounts) as (resource, level) pairs: one on
    ``<account>/<resource>`` for every account and resource (``*``: the account's path
    itself), at the highest level any function maps to. The config file's form and
    ``tokens create -f -a -r`` alike; an unknown function is refused naming
    ``functions_label``."""
    level = _highest(_level_of(f, functions_label) for f in functions)
    return [
        GrantPair(resource=account if resource == "*" else f"{account}/{resource}", level=level)
        for account in accounts
        for resource in resources
    ]


def _policy(value: Any, where: str, name: str) -> GrantPair:
    text = _text(value, f"{where}.policy", name)
    parts = split_policy(text)
    if parts is None:
        raise _error(
            name, f"{where}.policy: invalid policy {_shown(text)}: expected {POLICY_SHAPE}"
        )
    verb, path = parts
    return GrantPair(resource=path, level=_level_of(verb, f"{name}: {where}.policy"))


def _level_of(function: str, label: str) -> str:
    level = level_of_function(function)
    if level is None:
        known = ", ".join(LEVEL_BY_FUNCTION)
        raise ValidationError(f"{label}: unknown function {_shown(function)}: use one of {known}")
    return level


def _highest(levels: Iterator[str]) -> str:
    return max(levels, key=_LEVEL_ORDER.index)


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise _error(name, f"{where}: expected a string, not {_shown(value)}")
    return value


def _text_list(value: Any, where: str, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not _is_list(value) or not value:
        raise _error(name, f"{where}: expected a non-empty list of strings")
    if len(value) > MAX_GRANTS:
        raise _error(name, f"{where}: more than {MAX_GRANTS} entries")
    return [_text(v, where, name) for v in value]


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _shown(value: Any) -> str:
    """The offending value, cut to 40 characters and kept on one line."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split()) if text.strip() else text
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _error(name: str, message: str) -> ValidationError:
    return ValidationError(f"{name}: {message}")
