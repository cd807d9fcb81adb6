"""Private files: written atomically and readable by their owner only, from creation on.

The credentials file and the access-token cache hold live credentials. A file that group or
others may read or write is refused rather than used: a credential someone else could read
must be assumed leaked, and one someone else could write may not be ours.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from tokenledger.errors import StorageError

__all__ = ["read_private", "write_private"]


def read_private(path: Path, what: str) -> bytes | None:
    """The bytes of ``path`` (None when there is no such file); refused when group or others
    may read or write it. ``what`` names the file in the one-line error."""
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            mode = stat.S_IMODE(info.st_mode)
            raise StorageError(
                f"{what} {path} is readable by others (mode {mode:04o}): run chmod 600 {path}"
            )
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a temporary file beside it, mode 0600 from
    its creation, synced, then renamed over it (the directory is created with mode 0700)."""
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600: no moment where another user may open it.
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
