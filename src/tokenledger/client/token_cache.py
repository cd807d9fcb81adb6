"""Access tokens obtained with client credentials, kept until they near their expiry.

A process asks the token endpoint once per (server, client id) and reuses the answer; so do
later processes of the same user, through a file per client beside the credentials file:
``access-<SHA-256 of server and client id>.json``, mode 0600, holding the access token and
its expiry, never the client secret. The file is a cache: one that cannot be read is
ignored and written anew.
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

_memory: dict[tuple[str, str], AccessToken] = {}
_memory_lock = threading.Lock()


class AccessTokenCache:
    """The cached access tokens of client credentials, in memory and under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, server: str, client_id: str) -> Path:
        digest = hashlib.sha256(f"{server}\n{client_id}".encode()).hexdigest()
        return self.directory / f"access-{digest}.json"

    def get(self, server: str, client_id: str, now: datetime, leeway: float) -> AccessToken | None:
        """A cached token valid for more than ``leeway`` seconds, else None."""
        with _memory_lock:
            held = _memory.get((server, client_id))
        if held is not None and held.fresh(now, leeway):
            return held
        stored = self._read(self.path(server, client_id))
        if stored is not None and stored.fresh(now, leeway):
            with _memory_lock:
                _memory[(server, client_id)] = stored
            return stored
        return None

    def put(self, server: str, client_id: str, token: AccessToken) -> None:
        with _memory_lock:
            _memory[(server, client_id)] = token
        write_private(self.path(server, client_id), encode(token))

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
