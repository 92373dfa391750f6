"""Crash-safe file writes: a reader sees the old file, or the whole new one, never a part.

Every file the project writes goes through here: data is written to a hidden temporary
file in the target folder, flushed and fsynced, renamed over the target, and the folder is
fsynced so the rename itself survives a power loss. When the disk is full or the folder is not
writable, the target is left as it was and :class:`~lamp_data.errors.StorageError` names it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lamp_data.errors import LampError, StorageError

WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})
"""errno values of a write the filesystem refused (rather than of some other failing call)."""


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory so renames inside it are durable."""
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    The caller writes the temporary path by any means (a library writer, say). On an
    exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(handle)
    except OSError as error:
        raise StorageError(target, error) from error
    temporary_path = Path(temporary)
    try:
        try:
            yield temporary_path
        except OSError as error:
            if error.errno in WRITE_FAILURES:
                raise StorageError(target, error) from error
            raise
        try:
            with open(temporary_path, "rb+") as written:
                os.fsync(written.fileno())
            os.chmod(temporary_path, 0o666 & ~_umask())
            os.replace(temporary_path, target)
            fsync_dir(target.parent)
        except OSError as error:
            raise StorageError(target, error) from error
    finally:
        temporary_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden temporary folder beside ``path`` (an absolute path); on success it is
    renamed to ``path``.

    ``path`` must not exist or be an empty folder. On an exception the temporary folder and
    everything in it is removed and ``path`` is left as it was, so a reader never meets a folder
    written in part.
    """
    import shutil

    target = Path(path).absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary_path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as error:
        raise StorageError(target, error) from error
    try:
        try:
            yield temporary_path
        except OSError as error:
            if error.errno in WRITE_FAILURES:
                raise StorageError(target, error) from error
            raise
        try:
            os.chmod(temporary_path, 0o777 & ~_umask())
            for folder, _, files in os.walk(temporary_path):
                for name in files:
                    with open(os.path.join(folder, name), "rb") as written:
                        os.fsync(written.fileno())
                fsync_dir(folder)
            os.replace(temporary_path, target)
            fsync_dir(target.parent)
        except OSError as error:
            raise StorageError(target, error) from error
    finally:
        shutil.rmtree(temporary_path, ignore_errors=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` atomically on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only, got mode {mode!r}")
    with atomic_path(path) as temporary, open(temporary, mode) as handle:
        yield handle
        handle.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.write("\n")


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the leftovers of an interrupted atomic write."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp")


@contextlib.contextmanager
def exclusive_lock(lock_file: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if needed) while the block runs.

    The OS releases the lock when the holder dies, so a killed process never leaves a stale one.

    Args:
        lock_file: The lock file; its folder is created if needed.
        busy: The message of the :class:`LampError` raised when another process holds the lock.
    """
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LampError(busy) from None
        yield
    finally:
        os.close(handle)


def is_locked(lock_file: str | os.PathLike) -> bool:
    """True if a process holds :func:`exclusive_lock` on ``lock_file`` now (nothing is created,
    and the answer may change the moment after)."""
    try:
        handle = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False
