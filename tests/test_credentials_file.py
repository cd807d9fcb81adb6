"""The credentials file and the access-token cache: private from creation, atomic, refused in
one line (saying how to fix it) when others may read it, when corrupt, or of another
version."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tokenledger.client.credentials import (
    AccessToken,
    Credentials,
    Session,
    credentials_path,
    load_credentials,
    remove_session,
    save_credentials,
)
from tokenledger.client.token_cache import AccessTokenCache, forget_all
from tokenledger.errors import StorageError

REFRESH = "tlr_" + "r" * 38
JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"


def credentials(**changes: object) -> Credentials:
    fields: dict[str, object] = {
        "version": 1,
        "server": "https://ledger.example",
        "org": "acme",
        "principal": "alice@acme.example",
        "session": Session(
            session_id="ses_abc",
            refresh_token=REFRESH,
            expires_at=datetime(2027, 1, 5, 12, tzinfo=UTC),
        ),
        "access_token": AccessToken(token=JWT, expires_at=datetime(2026, 12, 6, 13, tzinfo=UTC)),
    }
    fields.update(changes)
    return Credentials(**fields)  # type: ignore[arg-type]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read new files: the file must be private all the same."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_file_holds_exactly_the_documented_fields(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "home" / ".tokenledger" / "credentials.json"
    save_credentials(credentials(), path)
    assert json.loads(path.read_text()) == {
        "version": 1,
        "server": "https://ledger.example",
        "org": "acme",
        "principal": "alice@acme.example",
        "session": {
            "session_id": "ses_abc",
            "refresh_token": REFRESH,
            "expires_at": "2027-01-05T12:00:00+00:00",
        },
        "access_token": {"token": JWT, "expires_at": "2026-12-06T13:00:00+00:00"},
    }
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temp file left
    assert load_credentials(path) == credentials()


def test_the_repr_shows_no_token(tmp_path: Path) -> None:
    shown = repr(credentials())
    assert REFRESH not in shown
    assert JWT not in shown
    assert "ses_abc" in shown


def test_an_absent_file_is_no_credentials(tmp_path: Path) -> None:
    assert load_credentials(tmp_path / "nothing.json") is None


def test_the_path_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "c.json"))
    assert credentials_path() == tmp_path / "c.json"
    monkeypatch.delenv("TOKENLEDGER_CREDENTIALS_PATH")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert credentials_path() == tmp_path / ".tokenledger" / "credentials.json"


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_file_others_may_read_or_write_is_refused(tmp_path: Path, bits: int) -> None:
    path = tmp_path / "credentials.json"
    save_credentials(credentials(), path)
    path.chmod(bits)
    with pytest.raises(StorageError) as refused:
        load_credentials(path)
    message = str(refused.value)
    assert message == (
        f"the credentials file {path} is readable by others (mode {bits:04o}): run chmod 600 {path}"
    )
    assert REFRESH not in message


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "cannot be read: JSON is malformed"),
        (b"[1, 2]", "cannot be read: not a JSON object"),
        (b'{"version": 1, "server": 7}', "cannot be read: Expected `str`"),
        (b'{"version": 1, "server": "https://x", "password": "p"}', "cannot be read"),
        (b'{"version": 2, "server": "https://x"}', "has version 2, not 1"),
        (b'{"server": "https://x"}', "has version None, not 1"),
    ],
)
def test_a_corrupt_or_foreign_file_is_refused_saying_how_to_fix_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(StorageError) as refused:
        load_credentials(path)
    message = str(refused.value)
    assert why in message
    assert message.endswith("delete it and log in again ('tokenledger auth login')")
    assert "\n" not in message


def test_removing_the_session_keeps_the_server(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    save_credentials(credentials(), path)
    before = remove_session(path)
    assert before == credentials()
    after = json.loads(path.read_text())
    assert after == {
        "version": 1,
        "server": "https://ledger.example",
        "org": "acme",
        "principal": "alice@acme.example",
    }
    assert REFRESH not in path.read_text()
    assert mode(path) == 0o600
    assert remove_session(path) == credentials(session=None, access_token=None)
    assert remove_session(tmp_path / "absent.json") is None


def test_a_save_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    save_credentials(credentials(), path)
    inode = path.stat().st_ino
    save_credentials(credentials(org="other"), path)
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    loaded = load_credentials(path)
    assert loaded is not None
    assert loaded.org == "other"


def test_times_without_a_zone_are_utc(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    document = {
        "version": 1,
        "server": "https://x",
        "access_token": {"token": JWT, "expires_at": "2026-12-06T13:00:00"},
    }
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    loaded = load_credentials(path)
    assert loaded is not None
    assert loaded.access_token == AccessToken(
        token=JWT, expires_at=datetime(2026, 12, 6, 13, tzinfo=UTC)
    )


# -- the access-token cache of client credentials ------------------------------------------


def test_the_cache_keeps_a_token_per_server_client_and_secret(
    tmp_path: Path, open_umask: None
) -> None:
    forget_all()
    cache = AccessTokenCache(tmp_path / "dir")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token = AccessToken(token=JWT, expires_at=datetime(2026, 1, 1, 1, tzinfo=UTC))
    secret = "tlc_" + "A" * 38
    key = cache.key("https://a", "cid_1", secret)
    cache.put(key, token)
    path = cache.path(key)
    assert path.name.startswith("access-")
    assert len(path.name) == len("access-") + 64 + len(".json")
    assert secret not in path.name
    assert secret not in path.read_text()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert json.loads(path.read_text()) == {"token": JWT, "expires_at": "2026-01-01T01:00:00+00:00"}
    assert cache.get(key, now, 500) == token
    assert cache.get(cache.key("https://b", "cid_1", secret), now, 500) is None
    assert cache.get(cache.key("https://a", "cid_2", secret), now, 500) is None
    # A wrong secret never meets the token the right one got.
    assert cache.get(cache.key("https://a", "cid_1", "tlc_" + "B" * 38), now, 500) is None
    forget_all()  # as a new process would: from the file
    assert cache.get(key, now, 500) == token
    # Within the leeway of its expiry, it is not handed out any more.
    late = datetime(2026, 1, 1, 0, 52, tzinfo=UTC)
    assert cache.get(key, late, 500) is None


def test_an_unreadable_cache_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    forget_all()
    cache = AccessTokenCache(tmp_path)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    key = cache.key("https://a", "cid_1", "tlc_" + "A" * 38)
    path = cache.path(key)
    path.write_text("garbage")
    path.chmod(0o600)
    assert cache.get(key, now, 500) is None
    path.chmod(0o644)
    assert cache.get(key, now, 500) is None
    token = AccessToken(token=JWT, expires_at=datetime(2026, 1, 1, 1, tzinfo=UTC))
    cache.put(key, token)
    assert mode(path) == 0o600
    forget_all()
    assert cache.get(key, now, 500) == token
