"""The naming rules every identifier follows, with the messages that state them.

One rule covers org names, resource path segments, role names and service
account names: lowercase letters, digits, ``.``, ``_`` and ``-``, starting with
a letter or digit, at most 63 characters. Users are identified by email.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import urlsplit

from tokenledger.domain.model import SERVICE_ACCOUNT_DOMAIN, is_role_principal
from tokenledger.domain.secrets import TokenKind, contains_secret, is_token_id

__all__ = [
    "ACCESS_KEY_ID_PATTERN",
    "ACCOUNT_ID_PATTERN",
    "CLIENT_ID_PATTERN",
    "EMAIL_RULE",
    "ENDPOINT_ID_PATTERN",
    "LOOPBACK_HOSTS",
    "MAX_PATH_DEPTH",
    "NAME_RULE",
    "URN_PREFIX",
    "WEBHOOK_ID_PATTERN",
    "RoleReference",
    "check_access_key_id",
    "check_account_id",
    "check_account_name",
    "check_client_id",
    "check_email",
    "check_endpoint_id",
    "check_endpoint_url",
    "check_issuer",
    "check_name",
    "check_new_org_name",
    "check_no_secret",
    "check_path",
    "check_principal",
    "check_service_account_id",
    "check_session_id",
    "check_subject_pattern",
    "check_token_holder",
    "check_token_id",
    "check_token_principal",
    "check_webhook_id",
    "is_account_id",
    "is_endpoint_id",
    "is_loopback_url",
    "is_webhook_id",
    "resource_path",
    "resource_urn",
    "role_reference",
    "shown",
]

NAME_RULE = "^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME = re.compile(NAME_RULE)
NAME_RULE_TEXT = (
    "1 to 63 characters: lowercase letters, digits, '.', '_' or '-', "
    "starting with a letter or digit"
)

#: org/project/collection/dataset/object
MAX_PATH_DEPTH = 5

EMAIL_RULE = "local@domain, at most 254 characters, ASCII"
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)


def check_no_secret(value: str, what: str) -> str:
    """The one rule for every name, address and free text a command carries: no token
    secret in it, whole or inside longer text.

    A command's fields end up in the log, which can never be changed: a secret pasted
    into the wrong field would stay readable there for good. Callers bound the length
    first. The message names the field, never the value.
    """
    if contains_secret(value):
        raise ValueError(
            f"invalid {what}: it contains a token secret, which is never stored "
            "(not repeated here; revoke that token if the secret is real)"
        )
    return value


def check_name(value: str, what: str = "name") -> str:
    if len(value) > 63 or not _NAME.fullmatch(value):
        raise ValueError(f"invalid {what} {shown(value)}: {NAME_RULE_TEXT}")
    # A secret made only of lowercase letters and digits is rare but does fit the rule.
    return check_no_secret(value, what)


# Remembered: a verification checks the path it is asked about, mostly one of a few.
@functools.lru_cache(maxsize=1024)
def check_path(value: str) -> str:
    """A resource path: 1 to 5 names joined by '/' (org/project/collection/dataset/object)."""
    if len(value) > MAX_PATH_DEPTH * 64:
        raise ValueError(f"invalid resource path {shown(value)}: too long")
    segments = value.split("/")
    if len(segments) > MAX_PATH_DEPTH:
        raise ValueError(
            f"invalid resource path {shown(value)}: at most {MAX_PATH_DEPTH} segments "
            "(org/project/collection/dataset/object)"
        )
    for segment in segments:
        if not _NAME.fullmatch(segment):
            raise ValueError(
                f"invalid resource path {shown(value)}: each segment must be {NAME_RULE_TEXT}"
            )
    return check_no_secret(value, "resource path")


def check_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ValueError(f"invalid email address {shown(value)}: expected {EMAIL_RULE}")
    # Service accounts' ids are <name>@<org>.service.tokenledger; no user may hold an
    # address in that domain (itself or under it), or a user could pass for an account.
    domain = email.rpartition("@")[2]
    if domain == SERVICE_ACCOUNT_DOMAIN or domain.endswith("." + SERVICE_ACCOUNT_DOMAIN):
        raise ValueError(
            f"invalid email address {shown(value)}: the domain {SERVICE_ACCOUNT_DOMAIN} "
            "is reserved for service accounts"
        )
    # Checked as given: the address is stored lowercased, which hides a secret from the
    # scan but not from a reader (its checksum tells which letters were capitals).
    check_no_secret(value, "email address")
    return email


def check_service_account_id(value: str) -> str:
    name, sep, rest = value.partition("@")
    org, dot, domain = rest.partition(".")
    if not sep or not dot or domain != SERVICE_ACCOUNT_DOMAIN:
        raise ValueError(
            f"invalid service account id {shown(value)}: expected "
            f"<name>@<org>.{SERVICE_ACCOUNT_DOMAIN}"
        )
    check_name(name, "service account name")
    check_name(org, "org name")
    return value


def shown(value: str) -> str:
    """The offending value, cut short and made printable, for a one-line message.

    Anything that may hold a token secret is not repeated at all: a secret
    pasted into the wrong argument must not end up in an error or a log.
    """
    if any(kind.prefix in value for kind in TokenKind):
        return "(a value that looks like a token secret, not repeated)"
    text = value if len(value) <= 80 else value[:77] + "..."
    # ascii(): control characters and anything outside ASCII are escaped, so a look-alike
    # ("\u0430cme" for "acme") or a direction override cannot pass for something else.
    escaped = ascii(text)
    return escaped if len(escaped) <= 100 else escaped[:96] + "..." + escaped[0]


def check_token_id(value: str) -> str:
    if not is_token_id(value):
        raise ValueError(f"invalid token id {shown(value)}: expected tok_ and 16 letters or digits")
    return value


def check_principal(value: str) -> str:
    """A user's email (normalised) or a service account id."""
    if value.strip().endswith("." + SERVICE_ACCOUNT_DOMAIN):
        return check_service_account_id(value.strip())
    return check_email(value)


def check_token_holder(value: str) -> str:
    """Whose tokens a question names: a user's email, a service account id, or a role as
    ``ORG:ROLE``, the principal its keys act as (``model.role_principal``)."""
    text = value.strip()
    if is_role_principal(text):
        org, _, role = text.partition(":")
        check_name(org, "org name")
        check_name(role, "role name")
        return text
    return check_principal(value)


#: A client id: ``cid_`` and 16 base62 characters, public like a token id.
CLIENT_ID_PATTERN = "^cid_[0-9A-Za-z]{16}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


def check_client_id(value: str) -> str:
    if not _CLIENT_ID.fullmatch(value):
        raise ValueError(
            f"invalid client id {shown(value)}: expected cid_ and 16 letters or digits"
        )
    return value


#: A session id: ``ses_`` and 24 hexadecimal digits.
SESSION_ID_PATTERN = "^ses_[0-9a-f]{24}$"
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def check_session_id(value: str) -> str:
    if not _SESSION_ID.fullmatch(value):
        raise ValueError(f"invalid session id {shown(value)}: expected ses_ and 24 hex digits")
    return value


#: The names of this machine: the only hosts reached over plain HTTP (a development
#: provider, the command line's login redirect, a server on the same machine).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_url(value: str) -> bool:
    """Whether a URL names this machine (``localhost``, ``127.0.0.1`` or ``[::1]``)."""
    try:
        return urlsplit(value).hostname in LOOPBACK_HOSTS
    except ValueError:
        return False


def check_issuer(value: str) -> str:
    """An OpenID Connect issuer: an ``https`` URL (``http`` on this machine only) with no
    query, fragment or credentials, at most 500 characters; without a trailing slash
    it is compared exactly, as the ID tokens' ``iss`` will be."""
    if len(value) > 500 or not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValueError(f"invalid issuer {shown(value)}: an https URL of at most 500 characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or not host or parts.query or parts.fragment or parts.username:
        raise ValueError(
            f"invalid issuer {shown(value)}: an https URL without query, fragment or user"
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        raise ValueError(f"invalid issuer {shown(value)}: it must use https")
    return check_no_secret(value, "issuer")


#: A trust's pattern names its subjects by this many characters at least before any ``*``.
SUBJECT_PATTERN_PREFIX = 8


def check_subject_pattern(value: str) -> str:
    """The subjects a trust accepts: printable, at most 500 characters, ``*`` for any run
    of characters (``repo:acme/site:ref:refs/heads/*``). Before its first ``*`` a pattern
    spells out at least 8 characters (``repo:acme/``): an issuer is shared by everyone who
    uses it, and ``*:ref:refs/heads/main`` or ``repo:*`` would trust all of them."""
    if not value or len(value) > 500 or not value.isprintable():
        raise ValueError("invalid subject pattern: 1 to 500 printable characters")
    literal = value.partition("*")[0]
    if "*" in value and len(literal.strip()) < SUBJECT_PATTERN_PREFIX:
        raise ValueError(
            f"invalid subject pattern {shown(value)}: name the subjects to trust, not any: "
            f"spell out at least {SUBJECT_PATTERN_PREFIX} characters before the first *, "
            "e.g. repo:acme/site:*"
        )
    return check_no_secret(value, "subject pattern")


#: An endpoint's id: ``ep_`` and 24 hexadecimal digits.
ENDPOINT_ID_PATTERN = "^ep_[0-9a-f]{24}$"
_ENDPOINT_ID = re.compile(ENDPOINT_ID_PATTERN)


def is_endpoint_id(value: str) -> bool:
    return _ENDPOINT_ID.fullmatch(value) is not None


def check_endpoint_id(value: str) -> str:
    if not is_endpoint_id(value):
        raise ValueError(f"invalid endpoint id {shown(value)}: expected ep_ and 24 hex digits")
    return value


def check_endpoint_url(value: str) -> str:
    """A data proxy's base URL: ``http`` or ``https``, a host, no query, fragment or
    credentials, at most 500 characters. Plain HTTP is allowed: gateways often sit on a
    private network behind their own TLS terminator."""
    if len(value) > 500 or not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValueError(f"invalid endpoint url {shown(value)}: a URL of at most 500 characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not host
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise ValueError(
            f"invalid endpoint url {shown(value)}: an http(s) URL with a host and no query, "
            "fragment or user"
        )
    return check_no_secret(value, "endpoint url")


#: A webhook's id: ``wh_`` and 24 hex digits.
WEBHOOK_ID_PATTERN = "^wh_[0-9a-f]{24}$"
_WEBHOOK_ID = re.compile(WEBHOOK_ID_PATTERN)


def is_webhook_id(value: str) -> bool:
    return _WEBHOOK_ID.fullmatch(value) is not None


def check_webhook_id(value: str) -> str:
    if not is_webhook_id(value):
        raise ValueError(f"invalid webhook id {shown(value)}: expected wh_ and 24 hex digits")
    return value


#: An S3 access key id: ``TLS3`` and 16 base32 letters or digits (20 characters, the
#: length S3 clients expect).
ACCESS_KEY_ID_PATTERN = "^TLS3[A-Z2-7]{16}$"
_ACCESS_KEY_ID = re.compile(ACCESS_KEY_ID_PATTERN)


def check_access_key_id(value: str) -> str:
    if not _ACCESS_KEY_ID.fullmatch(value):
        raise ValueError(
            f"invalid access key id {shown(value)}: expected TLS3 and 16 letters or digits"
        )
    return value


# -- resource URNs ----------------------------------------------------------------------------

#: A resource's URN: this prefix, then its path's segments joined by ':'
#: (``urn:tokenledger:acme:alpha`` is ``acme/alpha``).
URN_PREFIX = "urn:tokenledger:"


def resource_urn(path: str) -> str:
    """The URN naming the resource at ``path``."""
    return URN_PREFIX + path.replace("/", ":")


@functools.lru_cache(maxsize=1024)
def resource_path(value: str) -> str:
    """A resource named by its path or by its URN, as its path: the one rule for every place
    a resource is given (commands, queries, policies, scopes)."""
    if value[: len(URN_PREFIX)].lower() != URN_PREFIX:
        return check_path(value)
    rest = value[len(URN_PREFIX) :]
    if "/" in rest:
        raise ValueError(f"invalid resource URN {shown(value)}: its segments are joined by ':'")
    try:
        return check_path(rest.replace(":", "/"))
    except ValueError:
        raise ValueError(
            f"invalid resource URN {shown(value)}: expected {URN_PREFIX}ORG[:PROJECT...], "
            f"each segment {NAME_RULE_TEXT}"
        ) from None


# -- role references --------------------------------------------------------------------------


class RoleReference(NamedTuple):
    """A role as a caller names it: ``org`` None when the name leaves it to the context."""

    org: str | None
    role: str
    #: As typed, to be printed back in the same form.
    typed: str


def role_reference(value: str) -> RoleReference:
    """``ORG:ROLE`` (native), ``ORG.ACCOUNT.ROLE`` (Element AI's form: the role
    ``ACCOUNT.ROLE`` of org ``ORG``) or a bare ``ROLE``.

    A name without ':' made of exactly three dot-separated parts is Element's form; a role
    whose own name has two dots, or of an org whose name has a dot, is named ``ORG:ROLE``.
    """
    org, sep, role = value.rpartition(":")
    if sep:
        check_name(org, "org name")
        check_name(role, "role name")
        return RoleReference(org, role, value)
    parts = value.split(".")
    if len(parts) == 3:
        if not all(parts):
            raise ValueError(f"invalid role name {shown(value)}: expected ORG.ACCOUNT.ROLE")
        org = check_name(parts[0], "org name")
        return RoleReference(org, check_name(f"{parts[1]}.{parts[2]}", "role name"), value)
    return RoleReference(None, check_name(value, "role name"), value)


# -- Dyff account ids ----------------------------------------------------------------------

#: A Dyff account id: 32 hexadecimal digits (a UUID without its dashes), naming a user
#: created by ``accounts create``. Stored and compared in lowercase.
ACCOUNT_ID_PATTERN = "^[0-9a-f]{32}$"
_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)
_ACCOUNT_ID_TEXT = "32 hexadecimal digits, as 'accounts create' prints"


def is_account_id(value: str) -> bool:
    """Whether ``value`` has the shape of a Dyff account id (lowercase, as stored)."""
    return _ACCOUNT_ID.fullmatch(value) is not None


def check_account_id(value: str) -> str:
    """A Dyff account id (uppercase digits are taken, and stored in lowercase)."""
    account_id = value.strip().lower()
    if len(account_id) != 32 or not is_account_id(account_id):
        raise ValueError(f"invalid account id {shown(value)}: expected {_ACCOUNT_ID_TEXT}")
    return account_id


def check_token_principal(value: str) -> str:
    """Whom a token is issued for: a user's email, a service account id, or a Dyff account
    id (anything without an ``@`` is taken for one, and must have its shape). The account id
    is resolved to its user by the decision (``domain.decide_accounts``)."""
    if "@" not in value:
        return check_account_id(value)
    return check_principal(value)


def check_account_name(value: str) -> str:
    """The NAME of ``accounts create -n NAME``: a Dyff account is a user here, and a user is
    named by an email address."""
    if "@" not in value:
        raise ValueError(
            f"invalid account name {shown(value)}: an account is a user here, named by an "
            f"email address ({EMAIL_RULE})"
        )
    return check_email(value)


def check_new_org_name(value: str) -> str:
    """A new org's name: a name, and not an account id's shape, so that an id in the log
    (a user's creation names its account id) never names an org as well."""
    check_name(value, "org name")
    if is_account_id(value):
        raise ValueError(
            f"invalid org name {shown(value)}: 32 hexadecimal digits are the shape of an "
            "account id, which no org may take"
        )
    return value
