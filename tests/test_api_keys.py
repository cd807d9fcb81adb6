"""The signing key store: the key file, rotation, the JWKS, signing and checking access tokens."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from tokenledger.errors import StorageError, ValidationError
from tokenledger.service.keys import (
    KEYS_ENV,
    InvalidAccessToken,
    KeyRing,
    KeyStore,
    default_keys_file,
    looks_like_jwt,
)
from tokenledger.store import parse_database_url

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://ledger.test"


def claims(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": ISSUER,
        "sub": "ci@acme.service.tokenledger",
        "client_id": "cid_0000000000000000",
        "jti": "j1",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    return {**base, **extra}


def test_rotation_writes_a_private_file_and_keeps_old_public_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    assert store.ring().keys == ()
    first = store.rotate(NOW)
    second = store.rotate(NOW + timedelta(hours=1))
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    ring = store.ring()
    assert ring.active is not None
    assert ring.active.kid == second.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [second.kid, first.kid]
    stored = json.loads((tmp_path / "keys.json").read_text())
    retired = next(k for k in stored["keys"] if k["kid"] == first.kid)
    assert retired["private_pem"] is None
    assert all("d" not in k for k in ring.jwks()["keys"])  # no private halves published


def test_retired_keys_are_forgotten_after_the_retention(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    first = store.rotate(NOW)
    store.rotate(NOW + timedelta(hours=1))
    third = store.rotate(NOW + timedelta(days=2))
    kids = [k["kid"] for k in store.ring().jwks()["keys"]]
    assert first.kid not in kids
    assert third.kid in kids


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    store.rotate(NOW)
    os.chmod(tmp_path / "keys.json", 0o644)
    with pytest.raises(StorageError, match="chmod 600"):
        KeyStore(tmp_path / "keys.json").ring()


def test_a_corrupt_key_file_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{nope")
    path.chmod(0o600)
    with pytest.raises(StorageError, match="cannot be read"):
        KeyStore(path).ring()


def test_keys_from_the_environment_are_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = KeyStore(tmp_path / "keys.json")
    source.rotate(NOW)
    monkeypatch.setenv(KEYS_ENV, (tmp_path / "keys.json").read_text())
    store = KeyStore.from_environment(parse_database_url("sqlite:///x.db"))
    assert store.read_only
    assert store.ring().active is not None
    with pytest.raises(ValidationError):
        store.rotate(NOW)


def test_the_default_key_file_lies_beside_the_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENLEDGER_KEYS_FILE", raising=False)
    assert default_keys_file(parse_database_url("/srv/ledger.db")) == Path("/srv/ledger.keys.json")
    assert default_keys_file(parse_database_url("postgresql://h/db")) == Path(
        "tokenledger.keys.json"
    )
    monkeypatch.setenv("TOKENLEDGER_KEYS_FILE", "/etc/tl/keys.json")
    assert default_keys_file(parse_database_url("/srv/ledger.db")) == Path("/etc/tl/keys.json")


def test_sign_and_decode(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    store.rotate(NOW)
    ring = store.ring()
    token = ring.sign(claims())
    assert looks_like_jwt(token)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert ring.decode(token, issuer=ISSUER, now=NOW)["sub"] == "ci@acme.service.tokenledger"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda ring, t: ring.sign(claims(exp=int(NOW.timestamp()))), "expired"),
        (lambda ring, t: ring.sign(claims(iss="https://elsewhere")), "wrong_issuer"),
        (lambda ring, t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"), "bad_signature"),
        (lambda ring, t: "eyJ.x.y", "malformed"),
        (lambda ring, t: "not a jwt", "malformed"),
        (lambda ring, t: jwt.encode(claims(), "k" * 32, algorithm="HS256"), "malformed"),
        (
            lambda ring, t: ring.sign({k: v for k, v in claims().items() if k != "client_id"}),
            "malformed",
        ),
    ],
)
def test_invalid_access_tokens(tmp_path: Path, mutate: object, reason: str) -> None:
    store = KeyStore(tmp_path / "keys.json")
    store.rotate(NOW)
    ring = store.ring()
    token = mutate(ring, ring.sign(claims()))  # type: ignore[operator]
    with pytest.raises(InvalidAccessToken) as caught:
        ring.decode(token, issuer=ISSUER, now=NOW)
    assert caught.value.reason == reason


def test_a_token_from_another_key_is_unknown(tmp_path: Path) -> None:
    other = KeyStore(tmp_path / "other.json")
    other.rotate(NOW)
    mine = KeyStore(tmp_path / "keys.json")
    mine.rotate(NOW)
    with pytest.raises(InvalidAccessToken) as caught:
        mine.ring().decode(other.ring().sign(claims()), issuer=ISSUER, now=NOW)
    assert caught.value.reason == "unknown_key"


def test_an_empty_ring_cannot_sign() -> None:
    with pytest.raises(StorageError, match="keys rotate"):
        KeyRing([]).sign(claims())
