"""What every artifact records about the software and machine that made it."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from typing import Any

_PACKAGES = (
    "lamp-toolkit", "numpy", "torch", "mujoco", "metaworld", "gymnasium", "webdataset",
    "transformers", "safetensors",
)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape our outputs."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def provenance() -> dict[str, Any]:
    """Versions, platform, command line and UTC creation time, for an artifact's metadata."""
    return {
        "versions": package_versions(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def stable_hash(value: Any, length: int = 16) -> str:
    """A short sha256 of ``value``'s canonical JSON (sorted keys), stable across runs."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def update_from_file(digest: Any, path: str | os.PathLike) -> int:
    """Feed a file's bytes to ``digest`` (a ``hashlib`` hash) in 1 MiB blocks.

    Returns:
        The number of bytes read.
    """
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size


def file_sha256(path: str | os.PathLike) -> str:
    """Full sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    update_from_file(digest, path)
    return digest.hexdigest()
