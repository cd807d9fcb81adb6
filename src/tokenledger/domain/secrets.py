"""The shape of token secrets: recognisable, self-checking, and never stored.

A secret looks like ``tls_`` + 32 random base62 characters + a 6-character
checksum, 42 characters in all (the same idea as GitHub's ``ghp_`` tokens):

* The ``tl<kind>_`` prefix lets secret scanners (GitHub push protection,
  gitleaks, trufflehog, log scrubbers) recognise a leaked token with a simple
  pattern and few false positives, and tells a person at a glance what kind of
  credential they hold: ``tlp_`` personal (user) tokens, ``tls_`` service-account
  tokens, ``tld_`` short-lived tokens derived from a parent, ``tlc_`` client
  secrets, ``tlk_`` role keys.
* A role key is presented as ``ACCESS:SECRET`` (Element AI's role tokens): its public
  token id, a colon, and its ``tlk_`` secret. What is hashed and stored is that whole
  text, so the secret works only together with its own access id.
* The 32 random characters come from :mod:`secrets` and carry about 190 bits
  (32 x log2 62), well above the 160 bits the design asks for.
* The checksum is the CRC32 of the random part, in base62 and zero-padded to 6
  characters (62**6 > 2**32). A mistyped or truncated secret is rejected by
  :func:`parse_secret` without a database lookup, and a scanner can tell a real
  token from a random string that happens to share the prefix. CRC32 is not a
  MAC: it guards against accidents, not forgery; the randomness is what makes a
  secret unguessable.
* Only :func:`hash_secret` of a secret (hex SHA-256) is ever stored, and tokens
  are looked up by that hash, so a copy of the database does not hand out
  working credentials. A plain fast hash is enough here because the secret has
  full entropy; there is nothing for a slow password hash to protect.

Tokens are named in public by a separate id, ``tok_`` + 16 base62 characters
(:func:`new_token_id`), which is safe to log and display. Its first 7 characters are
the time it was issued, so ids issued one after another sort together: a new token's
rows then land on the last pages of every index keyed by its id (as with UUIDv7),
instead of one random page per index. :func:`looks_like_secret`
lets callers refuse a secret where an id was expected, and :func:`contains_secret`
finds one inside names and free text, so secrets do not end up in the log, other
logs or URLs by mistake.

Every error message here is about the shape of the input and never repeats the
input itself, since the input may be a real secret.

Everything in this module is pure: no I/O, no clock, no database.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tokenledger.errors import ValidationError

__all__ = [
    "BASE62_ALPHABET",
    "MAX_JWT_LENGTH",
    "SECRET_LENGTH",
    "SECRET_SHAPE",
    "TOKEN_ID_LENGTH",
    "TokenKind",
    "contains_secret",
    "generate_secret",
    "hash_secret",
    "is_refresh_token",
    "is_token_id",
    "looks_like_jwt",
    "looks_like_secret",
    "new_token_id",
    "parse_secret",
    "role_key_text",
    "secret_digest",
]

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_PREFIX_LENGTH = 4  # "tl" + kind letter + "_"
_RANDOM_LENGTH = 32  # 32 * log2(62) ~ 190.5 bits
_CHECKSUM_LENGTH = 6  # 62**6 ~ 5.7e10 > 2**32

SECRET_LENGTH = _PREFIX_LENGTH + _RANDOM_LENGTH + _CHECKSUM_LENGTH
"""Length of every secret, prefix included (42)."""

_TOKEN_ID_PREFIX = "tok_"
# 7 base62 digits of 10-millisecond ticks since the Unix epoch last until the year 3086;
# the 9 random digits carry about 53.6 bits, so even 10,000 ids made in one tick
# collide with a probability of about 10**-8.
_TOKEN_ID_TIME_LENGTH = 7
_TOKEN_ID_TICK = timedelta(milliseconds=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOKEN_ID_RANDOM_LENGTH = 9
TOKEN_ID_LENGTH = len(_TOKEN_ID_PREFIX) + _TOKEN_ID_TIME_LENGTH + _TOKEN_ID_RANDOM_LENGTH
"""Length of every public token id, prefix included (20)."""

# Input longer than this is refused before any other work (no strip, no scan):
# a secret plus a generous allowance for surrounding whitespace.
_MAX_INPUT_LENGTH = 256

# Only ASCII whitespace is stripped; anything else around a secret is an error.
_SURROUNDING_WHITESPACE = " \t\r\n\f\v"


class TokenKind(StrEnum):
    """The kind of credential a secret is; each has its own prefix."""

    PERSONAL = "personal"
    """A user's own token: ``tlp_``."""
    SERVICE = "service"
    """A service account's token: ``tls_``."""
    DERIVED = "derived"
    """A short-lived token derived from a parent token: ``tld_``."""
    CLIENT = "client"
    """A client secret: ``tlc_``."""
    REFRESH = "refresh"
    """A session's refresh token: ``tlr_``."""
    ROLE = "role"
    """A role key's secret: ``tlk_``, presented as ``ACCESS:SECRET`` (see ``role_key_text``)."""

    @property
    def prefix(self) -> str:
        """The secret prefix of this kind, e.g. ``"tls_"``."""
        return _PREFIX_BY_KIND[self]


_PREFIX_BY_KIND: dict[TokenKind, str] = {
    TokenKind.PERSONAL: "tlp_",
    TokenKind.SERVICE: "tls_",
    TokenKind.DERIVED: "tld_",
    TokenKind.CLIENT: "tlc_",
    TokenKind.REFRESH: "tlr_",
    TokenKind.ROLE: "tlk_",
}
_KIND_BY_PREFIX: dict[str, TokenKind] = {p: k for k, p in _PREFIX_BY_KIND.items()}
_PREFIXES: tuple[str, ...] = tuple(_KIND_BY_PREFIX)
assert all(len(p) == _PREFIX_LENGTH for p in _PREFIXES)
assert len(_KIND_BY_PREFIX) == len(TokenKind)


def _random_base62(length: int) -> str:
    # One uniform draw below 62**length, written in base62: each character is uniform
    # and independent, as with a choice per character, at a fraction of the cost.
    return _base62_fixed(secrets.randbelow(62**length), length)


def _base62_fixed(value: int, width: int) -> str:
    """``value`` in base62, most significant digit first, zero-padded to ``width``."""
    # Two digits per division (every command mints ids and secrets): least significant first.
    chunks = []
    if width % 2:
        value, digit = divmod(value, 62)
        chunks.append(BASE62_ALPHABET[digit])
    for _ in range(width // 2):
        value, pair = divmod(value, 62 * 62)
        chunks.append(_BASE62_PAIRS[pair])
    if value:
        raise ValueError("value does not fit in the given width")
    return "".join(reversed(chunks))


#: Every two-digit base62 string, at the index of its value.
_BASE62_PAIRS = tuple(high + low for high in BASE62_ALPHABET for low in BASE62_ALPHABET)


def _checksum(random_part: str) -> str:
    # _base62_fixed(crc, 6) unrolled into three pairs: every verification checks one.
    high, low = divmod(zlib.crc32(random_part.encode("ascii")), 62**4)  # high < 291
    middle, low = divmod(low, 62 * 62)
    return _BASE62_PAIRS[high] + _BASE62_PAIRS[middle] + _BASE62_PAIRS[low]


def _is_base62(text: str) -> bool:
    # The base62 alphabet is exactly the ASCII letters and digits.
    return text.isascii() and text.isalnum()


def _malformed(reason: str) -> ValidationError:
    # Never include the input: it may be a real secret.
    return ValidationError(f"malformed token: {reason}")


def is_refresh_token(value: str) -> bool:
    """Whether ``value`` is a well-formed refresh token's secret (``tlr_...``)."""
    try:
        return parse_secret(value) is TokenKind.REFRESH
    except ValidationError:
        return False


def generate_secret(kind: TokenKind) -> str:
    """A new random secret of ``kind``: prefix, 32 random base62 characters, checksum."""
    random_part = _random_base62(_RANDOM_LENGTH)
    return f"{TokenKind(kind).prefix}{random_part}{_checksum(random_part)}"


def parse_secret(text: str) -> TokenKind:
    """Check that ``text`` is a well-formed secret and return its kind.

    Surrounding ASCII whitespace (such as the newline at the end of a line read
    from stdin) is ignored; anything else that is not exactly a secret raises
    :class:`~tokenledger.errors.ValidationError` with a one-line message that
    never contains the input. A valid shape says nothing about whether the token
    exists or is still active; that takes a lookup by :func:`hash_secret`.

    A role key is the one secret presented with its access id, as ``ACCESS:SECRET``
    (``tok_...:tlk_...``); its ``tlk_`` secret alone is refused, and so is any other
    secret behind an access id.
    """
    if len(text) > _MAX_INPUT_LENGTH:
        raise _malformed(f"too long (a token has {SECRET_LENGTH} characters)")
    text = text.strip(_SURROUNDING_WHITESPACE)
    access, colon, secret = text.rpartition(":")
    if colon and access.startswith(_TOKEN_ID_PREFIX):
        if not is_token_id(access):
            raise _malformed("a role key is ACCESS:SECRET, its access id (tok_...) first")
        if _parse_bare(secret) is not TokenKind.ROLE:
            raise _malformed("only a role key (tlk_...) is presented as ACCESS:SECRET")
        return TokenKind.ROLE
    kind = _parse_bare(text)
    if kind is TokenKind.ROLE:
        raise _malformed("a role key is presented as ACCESS:SECRET (its access id, ':', tlk_...)")
    return kind


def role_key_text(access: str, secret: str) -> str:
    """What a role key's holder presents, and whose hash the ledger stores: ``ACCESS:SECRET``."""
    return f"{access}:{secret}"


def _parse_bare(text: str) -> TokenKind:
    if not text:
        raise _malformed("empty")
    kind = _KIND_BY_PREFIX.get(text[:_PREFIX_LENGTH])
    if kind is None:
        raise _malformed(f"unknown prefix (expected one of {', '.join(_PREFIXES)})")
    if len(text) != SECRET_LENGTH:
        raise _malformed(f"wrong length (a token has {SECRET_LENGTH} characters)")
    body = text[_PREFIX_LENGTH:]
    if not _is_base62(body):
        raise _malformed("invalid character (only 0-9, A-Z and a-z may follow the prefix)")
    random_part, checksum = body[:_RANDOM_LENGTH], body[_RANDOM_LENGTH:]
    if _checksum(random_part) != checksum:
        raise _malformed("bad checksum (check for a typo or a truncated copy)")
    return kind


def hash_secret(text: str) -> str:
    """The hex SHA-256 of the secret's UTF-8 bytes: what is stored and looked up.

    Surrounding ASCII whitespace is ignored exactly as :func:`parse_secret`
    ignores it, so a secret read with its trailing newline hashes the same as
    the secret itself. The text is not validated; call :func:`parse_secret` first.
    """
    return secret_digest(text).hex()


def secret_digest(text: str) -> bytes:
    """The 32-byte SHA-256 that :func:`hash_secret` writes out in hex (a compact cache key)."""
    return hashlib.sha256(text.strip(_SURROUNDING_WHITESPACE).encode("utf-8")).digest()


def new_token_id(issued_at: datetime) -> str:
    """A new public token id: ``tok_``, ``issued_at`` in 7 base62 characters, 9 random ones.

    Ids issued later sort after earlier ones (base62's alphabet is in ASCII order); ids
    issued in the same 10 ms tick differ by their random part.
    """
    ticks = (issued_at - _EPOCH) // _TOKEN_ID_TICK % 62**_TOKEN_ID_TIME_LENGTH
    return (
        _TOKEN_ID_PREFIX
        + _base62_fixed(ticks, _TOKEN_ID_TIME_LENGTH)
        + _random_base62(_TOKEN_ID_RANDOM_LENGTH)
    )


def is_token_id(text: str) -> bool:
    """Whether ``text`` is exactly the shape of a token id (no whitespace allowed)."""
    return (
        len(text) == TOKEN_ID_LENGTH
        and text.startswith(_TOKEN_ID_PREFIX)
        and _is_base62(text[len(_TOKEN_ID_PREFIX) :])
    )


#: What a secret looks like inside other text: a prefix, the random part and the checksum,
#: wherever it stands (a secret pasted into a sentence, or run together with a word).
SECRET_SHAPE = "(?:{})([0-9A-Za-z]{{{}}})([0-9A-Za-z]{{{}}})".format(
    "|".join(re.escape(prefix) for prefix in _PREFIXES), _RANDOM_LENGTH, _CHECKSUM_LENGTH
)
# Tried at every position (a lookahead consumes nothing): a look-alike just before a secret,
# such as "tlp_" and 36 letters, would otherwise swallow the secret's own "tl" and hide it.
_SECRET_IN_TEXT = re.compile(f"(?={SECRET_SHAPE})")


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds a well-formed secret anywhere in it, alone or inside longer
    text, for refusing text that would be stored.

    A secret is what :func:`parse_secret` accepts, checksum included: text that only
    shares the shape (``tls_`` and 38 letters, a prefix named in a sentence) is data.
    Callers bound the length first; the scan is linear in it.
    """
    return any(_checksum(match[1]) == match[2] for match in _SECRET_IN_TEXT.finditer(text))


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` starts with a secret prefix, ignoring leading ASCII whitespace.

    Meant for refusing secrets where something else (such as a token id) was
    expected, so it does not check the rest of the shape.
    """
    return text[:_MAX_INPUT_LENGTH].lstrip(_SURROUNDING_WHITESPACE).startswith(_PREFIXES)


#: The longest access token (JWT) looked at; a longer one is malformed.
MAX_JWT_LENGTH = 8192


def looks_like_jwt(text: str) -> bool:
    """Whether ``text`` has the shape of a compact JWS (three base64url parts), as opposed to a
    ledger secret; ``service.keys.KeyRing.decode`` checks the encoding and the signature."""
    return len(text) <= MAX_JWT_LENGTH and text.count(".") == 2 and text.startswith("eyJ")
