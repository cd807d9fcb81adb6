"""Access tokens obtained with client credentials, kept until they near their expiry.

A process asks the token endpoint once per (server, client id, client secret) and reuses the
answer; so do later processes of the same user, through a file per client beside the
credentials file: ``access-<SHA-256 of server, client id and secret>.json``, mode 0600,
holding the access token and its expiry, never the client secret. The secret is part of the
key so that a wrong (or revoked and replaced) secret never meets a token the right one got.
The file is a cache: one that cannot be read is ignored and written anew.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from pathlib import Path

import msgspec

from tokenledger.client.credentials import AccessToken, decode_access_token, encode
from tokenledger.client.files import read_private, write_private
from tokenledger.errors import StorageError

__all__ = ["AccessTokenCache", "forget_all"]

_memory: dict[str, AccessToken] = {}
_memory_lock = threading.Lock()


class AccessTokenCache:
    """The cached access tokens of client credentials, in memory and under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(server: str, client_id: str, client_secret: str) -> str:
        """The cache's key: a digest, so that neither memory nor a file name holds the secret."""
        return hashlib.sha256(f"{server}\n{client_id}\n{client_secret}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"access-{key}.json"

    def get(self, key: str, now: datetime, leeway: float) -> AccessToken | None:
        """A cached token valid for more than ``leeway`` seconds, else None."""
        with _memory_lock:
            held = _memory.get(key)
        if held is not None and held.fresh(now, leeway):
            return held
        stored = self._read(self.path(key))
        if stored is not None and stored.fresh(now, leeway):
            with _memory_lock:
                _memory[key] = stored
            return stored
        return None

    def put(self, key: str, token: AccessToken) -> None:
        with _memory_lock:
            _memory[key] = token
        write_private(self.path(key), encode(token))

    @staticmethod
    def _read(path: Path) -> AccessToken | None:
        try:
            data = read_private(path, "the access token cache")
        except StorageError:
            return None  # too open or unreadable: ignored, and replaced by the next write
        if data is None:
            return None
        try:
            return decode_access_token(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None


def forget_all() -> None:
    """Empty the in-memory cache (the files stay)."""
    with _memory_lock:
        _memory.clear()
