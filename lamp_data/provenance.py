"""What every artifact records about the software and machine that made it."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
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


NUMERICS_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
"""CPU features whose presence changes which float kernels run (and so the last bits of results)."""


@functools.lru_cache(maxsize=1)
def cpu_description() -> dict[str, Any]:
    """The CPU's model name and which of :data:`NUMERICS_FLAGS` it has (from ``/proc/cpuinfo``;
    the processor name alone where that file does not exist)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags":
            flags = set(value.split())
        if flags and model:
            break
    return {"model": model, "numerics_flags": [flag for flag in NUMERICS_FLAGS if flag in flags], "cores": os.cpu_count()}


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit the toolkit's own source was checked out at (with ``+dirty`` when it has
    uncommitted changes outside ``results/``, whose reports the toolkit itself rewrites), or None
    for an installed package outside a git checkout."""
    folder = Path(__file__).resolve().parent.parent
    if not (folder / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def portable_argv(argv: list[str] | None = None) -> list[str]:
    """The command line with no path of this machine in it: the program by its name alone,
    absolute paths inside the working folder made relative to it, other absolute paths cut to
    their last component behind ``.../``."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return argv
    here = Path.cwd()

    def portable(value: str) -> str:
        if not value.startswith(os.sep):
            return value
        path = Path(value)
        try:
            return str(path.relative_to(here)) or "."
        except ValueError:
            return f".../{path.name}"

    return [Path(argv[0]).name, *(portable(value) for value in argv[1:])]


def provenance() -> dict[str, Any]:
    """Versions, platform, CPU, commit, command line (without this machine's paths), torch's
    thread count when torch is loaded, and UTC creation time, for an artifact's metadata."""
    record = {
        "versions": package_versions(),
        "platform": platform.platform(),
        "cpu": cpu_description(),
        "commit": source_commit(),
        "argv": portable_argv(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        record["torch_threads"] = torch.get_num_threads()
    return record


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
