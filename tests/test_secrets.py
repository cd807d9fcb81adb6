"""Token secrets and ids: their shape, their checksum, and what errors may say."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tokenledger.domain.secrets import (
    BASE62_ALPHABET,
    SECRET_LENGTH,
    TOKEN_ID_LENGTH,
    TokenKind,
    generate_secret,
    hash_secret,
    is_token_id,
    looks_like_secret,
    new_token_id,
    parse_secret,
    role_key_text,
)
from tokenledger.errors import ValidationError

PREFIX_LENGTH = 4
SECRET_RE = re.compile(r"tl[psdcrk]_[0-9A-Za-z]{38}")
TOKEN_ID_RE = re.compile(r"tok_[0-9A-Za-z]{16}")
EXPECTED_PREFIXES = {
    TokenKind.PERSONAL: "tlp_",
    TokenKind.SERVICE: "tls_",
    TokenKind.DERIVED: "tld_",
    TokenKind.CLIENT: "tlc_",
    TokenKind.REFRESH: "tlr_",
    TokenKind.ROLE: "tlk_",
}

kinds = st.sampled_from(list(TokenKind))
body_positions = st.integers(min_value=PREFIX_LENGTH, max_value=SECRET_LENGTH - 1)
base62_chars = st.sampled_from(BASE62_ALPHABET)


def reject(text: str, secret: str, reason: str) -> str:
    """Assert ``parse_secret(text)`` fails for ``reason`` without leaking ``secret``."""
    with pytest.raises(ValidationError) as excinfo:
        parse_secret(text)
    message = str(excinfo.value)
    assert message.startswith(f"malformed token: {reason}")
    assert "\n" not in message
    body = secret[PREFIX_LENGTH:]
    # Not the body, nor any recognisable run of it (random part or checksum).
    for start in range(len(body) - 5):
        assert body[start : start + 6] not in message
    return message


def generate_checksum(random_part: str) -> str:
    crc = zlib.crc32(random_part.encode())
    digits = ""
    for _ in range(6):
        crc, digit = divmod(crc, 62)
        digits = BASE62_ALPHABET[digit] + digits
    return digits


# --- generation and round trip ----------------------------------------------


def test_kind_values_and_prefixes() -> None:
    assert [k.value for k in TokenKind] == [
        "personal",
        "service",
        "derived",
        "client",
        "refresh",
        "role",
    ]
    assert {k: k.prefix for k in TokenKind} == EXPECTED_PREFIXES


@pytest.mark.parametrize("kind", list(TokenKind))
def test_generated_secret_has_the_documented_shape(kind: TokenKind) -> None:
    secret = generate_secret(kind)
    assert len(secret) == SECRET_LENGTH == 42
    assert SECRET_RE.fullmatch(secret)
    assert secret.startswith(EXPECTED_PREFIXES[kind])


def presented(kind: TokenKind) -> str:
    """A new secret of ``kind`` as its holder presents it (a role key with its access id)."""
    secret = generate_secret(kind)
    if kind is TokenKind.ROLE:
        return role_key_text(new_token_id(datetime.now(UTC)), secret)
    return secret


@pytest.mark.parametrize("kind", list(TokenKind))
def test_generated_secret_parses_back_to_its_kind(kind: TokenKind) -> None:
    for _ in range(50):
        assert parse_secret(presented(kind)) is kind


def test_a_role_key_is_presented_only_with_its_access_id() -> None:
    key = presented(TokenKind.ROLE)
    access, _, secret = key.partition(":")
    with pytest.raises(ValidationError, match="ACCESS:SECRET"):
        parse_secret(secret)
    with pytest.raises(ValidationError, match="only a role key"):
        parse_secret(f"{access}:{generate_secret(TokenKind.PERSONAL)}")
    with pytest.raises(ValidationError, match="access id"):
        parse_secret(f"tok_short:{secret}")
    assert hash_secret(key) != hash_secret(secret)  # the whole key is what is stored


def test_checksum_is_zero_padded_base62_crc32_of_the_random_part() -> None:
    secret = generate_secret(TokenKind.SERVICE)
    random_part, checksum = secret[4:36], secret[36:]
    value = 0
    for ch in checksum:
        value = value * 62 + BASE62_ALPHABET.index(ch)
    assert value == zlib.crc32(random_part.encode())


def test_small_checksum_is_zero_padded() -> None:
    # A hand-built secret whose CRC32 is small still carries six checksum characters.
    random_part = next(
        candidate
        for candidate in (f"{n:032d}" for n in range(1_000_000))
        if zlib.crc32(candidate.encode()) < 62**4
    )
    digits = generate_checksum(random_part)
    assert digits.startswith("00")
    assert parse_secret(f"tlc_{random_part}{digits}") is TokenKind.CLIENT


@pytest.mark.parametrize("padding", ["\n", "\r\n", " ", "\t", "  \n", " \t\r\n"])
def test_surrounding_whitespace_is_ignored(padding: str) -> None:
    secret = generate_secret(TokenKind.PERSONAL)
    assert parse_secret(secret + padding) is TokenKind.PERSONAL
    assert parse_secret(padding + secret) is TokenKind.PERSONAL
    assert parse_secret(padding + secret + padding) is TokenKind.PERSONAL


def test_1000_secrets_are_all_distinct() -> None:
    generated = [generate_secret(TokenKind.SERVICE) for _ in range(1000)]
    assert len(set(generated)) == 1000
    # Distinct in the random part, not only through the checksum.
    assert len({s[4:36] for s in generated}) == 1000


def test_random_part_uses_the_whole_alphabet() -> None:
    seen = set("".join(generate_secret(TokenKind.DERIVED)[4:36] for _ in range(200)))
    assert seen == set(BASE62_ALPHABET)


# --- the checksum catches single-character changes ---------------------------


@given(kind=kinds, position=body_positions, replacement=base62_chars)
def test_any_single_character_change_in_the_body_is_rejected(
    kind: TokenKind, position: int, replacement: str
) -> None:
    secret = generate_secret(kind)
    assume(secret[position] != replacement)
    changed = secret[:position] + replacement + secret[position + 1 :]
    reject(changed, secret, "bad checksum")


@given(kind=kinds, position=body_positions)
def test_case_change_of_one_body_character_is_rejected(kind: TokenKind, position: int) -> None:
    secret = generate_secret(kind)
    assume(secret[position].isalpha())
    changed = secret[:position] + secret[position].swapcase() + secret[position + 1 :]
    reject(changed, secret, "bad checksum")


@given(kind=kinds, first=body_positions, second=body_positions)
def test_swapping_two_body_characters_is_rejected(kind: TokenKind, first: int, second: int) -> None:
    secret = generate_secret(kind)
    assume(secret[first] != secret[second])
    chars = list(secret)
    chars[first], chars[second] = chars[second], chars[first]
    reject("".join(chars), secret, "bad checksum")


# --- malformed input ---------------------------------------------------------


@pytest.fixture
def secret() -> str:
    return generate_secret(TokenKind.SERVICE)


@pytest.mark.parametrize("prefix", ["tlx_", "ghp_", "tok_", "tl_s", "xls_", "tls-", "tls:"])
def test_unknown_prefix_is_rejected(secret: str, prefix: str) -> None:
    message = reject(prefix + secret[4:], secret, "unknown prefix")
    assert "tlp_, tls_, tld_, tlc_" in message


def test_relabelling_the_kind_keeps_the_checksum_valid(secret: str) -> None:
    # The checksum covers the random part only, so relabelling the kind keeps it valid;
    # what a token may do is decided by the stored record found through the hash.
    relabelled = "tlp_" + secret[4:]
    assert parse_secret(relabelled) is TokenKind.PERSONAL
    assert hash_secret(relabelled) != hash_secret(secret)


@pytest.mark.parametrize(
    "transform",
    [str.upper, str.lower, str.swapcase, str.title, lambda s: s[:3].upper() + s[3:]],
    ids=["upper", "lower", "swapcase", "title", "upper-prefix"],
)
def test_case_changes_are_rejected(secret: str, transform: Callable[[str], str]) -> None:
    changed = transform(secret)
    assert changed != secret
    with pytest.raises(ValidationError) as excinfo:
        parse_secret(changed)
    message = str(excinfo.value)
    assert message.startswith("malformed token: ")
    assert secret[4:36] not in message
    assert changed[4:36] not in message


@pytest.mark.parametrize("cut", [1, 2, 6, 7, 20, 37, 38])
def test_truncated_secret_is_rejected(secret: str, cut: int) -> None:
    reject(secret[:-cut], secret, "wrong length")


def test_prefix_alone_is_rejected(secret: str) -> None:
    reject("tls_", secret, "wrong length")


@pytest.mark.parametrize("extra", ["0", "A", "abc", "=", "x" * 100])
def test_padded_secret_is_rejected(secret: str, extra: str) -> None:
    reject(secret + extra, secret, "wrong length")


def test_secret_given_twice_is_rejected(secret: str) -> None:
    reject(secret + secret, secret, "wrong length")


@pytest.mark.parametrize("position", [4, 20, 36, 40])
@pytest.mark.parametrize("char", [" ", "\t", "\n", "\x00", "-", "_", "+", "/", "=", "é"])
def test_bad_character_in_the_body_is_rejected(secret: str, position: int, char: str) -> None:
    changed = secret[:position] + char + secret[position + 1 :]
    reject(changed, secret, "invalid character")


def test_internal_whitespace_is_rejected(secret: str) -> None:
    reject(secret[:20] + " " + secret[21:], secret, "invalid character")
    reject(secret[:20] + " " + secret[20:], secret, "wrong length")


def test_nul_bytes_are_rejected(secret: str) -> None:
    reject(secret + "\x00", secret, "wrong length")
    reject("\x00" + secret, secret, "unknown prefix")
    reject(secret[:30] + "\x00" + secret[31:], secret, "invalid character")


@pytest.mark.parametrize(
    ("latin", "lookalike"),
    [
        ("a", "\u0430"),  # Cyrillic small a
        ("e", "\u0435"),  # Cyrillic small ie
        ("o", "\u043e"),  # Cyrillic small o
        ("A", "\u0391"),  # Greek capital alpha
        ("0", "\uff10"),  # fullwidth digit zero
        ("1", "\u0661"),  # Arabic-Indic digit one (str.isalnum() is true for it)
    ],
)
def test_unicode_lookalikes_in_the_body_are_rejected(latin: str, lookalike: str) -> None:
    assert lookalike.isalnum()
    random_part = (latin * 32)[:32]
    checksum = generate_checksum(random_part)
    genuine = f"tls_{random_part}{checksum}"
    assert parse_secret(genuine) is TokenKind.SERVICE
    forged = f"tls_{lookalike}{random_part[1:]}{checksum}"
    assert len(forged) == SECRET_LENGTH
    reject(forged, genuine, "invalid character")


def test_unicode_lookalike_in_the_prefix_is_rejected(secret: str) -> None:
    reject("tl\u0455_" + secret[4:], secret, "unknown prefix")  # Cyrillic dze for 's'


def test_non_ascii_whitespace_around_a_secret_is_rejected(secret: str) -> None:
    reject("\u00a0" + secret, secret, "unknown prefix")
    reject(secret + "\u2003", secret, "wrong length")


def test_one_megabyte_input_is_rejected(secret: str) -> None:
    huge = secret + "A" * 1_000_000
    message = reject(huge, secret, "too long")
    assert len(message) < 200


def test_one_megabyte_of_whitespace_is_rejected_before_stripping(secret: str) -> None:
    reject(" " * 500_000 + secret + "\n" * 500_000, secret, "too long")


@pytest.mark.parametrize("text", ["", " ", "\n", " \t\r\n "])
def test_empty_input_is_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match=r"^malformed token: empty$"):
        parse_secret(text)


@given(text=st.text(max_size=300))
def test_arbitrary_text_is_rejected_or_is_a_secret(text: str) -> None:
    try:
        kind = parse_secret(text)
    except ValidationError as exc:
        message = str(exc)
        assert message.startswith("malformed token: ")
        assert "\n" not in message
    else:
        assert SECRET_RE.fullmatch(text.strip())
        assert kind.prefix == text.strip()[:4]


# --- hashing -----------------------------------------------------------------


def test_hash_secret_is_deterministic_lowercase_hex_sha256(secret: str) -> None:
    digest = hash_secret(secret)
    assert digest == hash_secret(secret)
    assert len(digest) == 64
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hashlib.sha256(secret.encode("utf-8")).hexdigest()


def test_hash_secret_differs_between_secrets() -> None:
    hashes = {hash_secret(generate_secret(TokenKind.CLIENT)) for _ in range(100)}
    assert len(hashes) == 100


def test_hash_secret_ignores_the_same_whitespace_as_parse_secret(secret: str) -> None:
    assert hash_secret(secret + "\n") == hash_secret(secret)
    assert hash_secret(" \t" + secret + "\r\n") == hash_secret(secret)
    assert hash_secret(secret + "\u00a0") != hash_secret(secret)


def test_hash_does_not_contain_the_secret(secret: str) -> None:
    assert secret[4:] not in hash_secret(secret)


# --- token ids ---------------------------------------------------------------


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_token_id_has_the_documented_shape() -> None:
    token_id = new_token_id(NOW)
    assert len(token_id) == TOKEN_ID_LENGTH == 20
    assert TOKEN_ID_RE.fullmatch(token_id)
    assert is_token_id(token_id)


def test_token_ids_issued_at_the_same_time_are_distinct() -> None:
    ids = [new_token_id(NOW) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert len({token_id[:11] for token_id in ids}) == 1  # the time part


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(3000, 1, 1), timezones=st.just(UTC)
    ),
    st.timedeltas(min_value=timedelta(milliseconds=10), max_value=timedelta(days=3650)),
)
def test_token_ids_sort_in_the_order_they_were_issued(earlier: datetime, gap: timedelta) -> None:
    # Ids issued one after another land together at the end of every index keyed by them.
    assert new_token_id(earlier) < new_token_id(earlier + gap)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tok_",
        "tok_" + "a" * 15,
        "tok_" + "a" * 17,
        "TOK_" + "a" * 16,
        "tik_" + "a" * 16,
        "tok_" + "a" * 15 + "-",
        "tok_" + "a" * 15 + "\u0430",
        "tok_" + "a" * 15 + "\x00",
        " tok_" + "a" * 16,
        "tok_" + "a" * 16 + "\n",
        "tok_" + "a" * 1_000_000,
    ],
)
def test_is_token_id_rejects_other_shapes(text: str) -> None:
    assert not is_token_id(text)


@pytest.mark.parametrize("kind", list(TokenKind))
def test_secrets_and_token_ids_are_never_confused(kind: TokenKind) -> None:
    secret = generate_secret(kind)
    token_id = new_token_id(NOW)
    assert looks_like_secret(secret)
    assert not is_token_id(secret)
    assert not looks_like_secret(token_id)
    with pytest.raises(ValidationError, match="unknown prefix"):
        parse_secret(token_id)


# --- looks_like_secret -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tlp_", True),
        ("tls_whatever", True),
        ("tld_x", True),
        ("tlc_" + "x" * 1_000_000, True),
        ("  tls_abc\n", True),
        ("tlx_abc", False),
        ("TLS_abc", False),
        ("tls", False),
        ("tok_abc", False),
        ("", False),
        ("ghp_abc", False),
        ("x tls_abc", False),
    ],
)
def test_looks_like_secret(text: str, expected: bool) -> None:
    assert looks_like_secret(text) is expected
