"""Where things live inside a dataset folder, how sample fields are encoded, and shard sidecars.

A dataset is a folder::

    meta/info.json                      format_version, env, collection config, runs, prompt set
    meta/prompts.json                   the prompt set, in order (reward column i = prompt i)
    shards/<run>-<first episode>.tar    whole episodes, one WebDataset sample per episode
    shards/<run>-<first episode>.json   sidecar, written last: the shard's commit marker
    rewards/<fingerprint>/info.json     the reward model and prompt set behind a reward set
    rewards/<fingerprint>/prompts.json  that set's prompts
    rewards/<fingerprint>/<shard>.tar   rewards of every episode of data shard <shard> (+ sidecar)
    README.md                           dataset card for Hugging Face ``datasets`` (derived, rewritten
                                        with meta/info.json and when a reward set is added)

Shards are named after their run and first episode index (``collect-00000040``), not after the
worker that wrote them: the episodes of a shard are fixed by the plan, so a resume with another
worker count rewrites an interrupted shard under the same name and never duplicates one.

A tar counts only once its sidecar exists. A tar without one, and any hidden ``.*.tmp`` file,
is what an interrupted write leaves behind; readers ignore both and ``collect`` removes them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_write_json, is_temporary
from lamp_data.errors import LampError

META_DIR = "meta"
SHARDS_DIR = "shards"
REWARDS_DIR = "rewards"
INFO_FILE = "info.json"
PROMPTS_FILE = "prompts.json"
README_FILE = "README.md"
LOCK_FILE = ".lock"

META = "meta"
"""Sample field holding the episode's JSON metadata."""

FIELD_FILES = {
    schema.IMAGE: "image.npy.gz",
    schema.STATE: "state.npy",
    schema.ACTION: "action.npy",
    schema.REWARD: "reward.npy",
    schema.SUCCESS: "success.npy",
    schema.IS_FIRST: "is_first.npy",
    schema.IS_LAST: "is_last.npy",
    schema.IS_TERMINAL: "is_terminal.npy",
    META: "meta.json",
}
"""Step key -> file extension inside a sample. Frames are gzip-compressed ``.npy``, which stock
webdataset and HF ``datasets`` both decompress and decode."""

FIELD_DTYPES = {
    schema.IMAGE: np.uint8,
    schema.STATE: np.float32,
    schema.ACTION: np.float32,
    schema.REWARD: np.float32,
    schema.SUCCESS: np.bool_,
    schema.IS_FIRST: np.bool_,
    schema.IS_LAST: np.bool_,
    schema.IS_TERMINAL: np.bool_,
}
ACTION_ROWS = (schema.ACTION, schema.REWARD)
"""Fields with one row per action (T); every other array field has T + 1 rows."""

REWARD_FILE = "vlm_reward.npy"
"""File extension of the per-episode reward array in reward shards."""

FRAME_COMPRESSLEVEL = 6
"""gzip level for frames. On Meta-World frames level 6 stores about 7 % of the raw bytes (level 1:
about 15 %, level 9 barely better than 6) for about 0.15 ms per 64 px frame, small next to the
env's several ms per step (see ``bench/collect.py``)."""

SIDECAR_FORMAT_VERSION = 1
_KEY = re.compile(r"^ep(\d{8,})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def episode_key(index: int) -> str:
    """Sample key of episode ``index``: ``ep00000042``."""
    return f"ep{index:08d}"


def episode_index(key: str) -> int:
    """Inverse of :func:`episode_key`."""
    match = _KEY.match(key)
    if not match:
        raise LampError(f"'{key}' is not an episode key like ep00000042")
    return int(match.group(1))


def shard_name(run: str, first_episode: int) -> str:
    """Name of the shard of run ``run`` that starts at episode ``first_episode``."""
    return f"{run}-{first_episode:08d}"


def check_run_name(run: str) -> str:
    """A run name is a plain word: letters, digits, ``_``, ``-``, ``.``."""
    if not _NAME.match(run) or run.endswith(".tmp"):
        raise LampError(f"run name '{run}' must be letters, digits, '_', '-' or '.'")
    return run


def encode_array(array: np.ndarray, compress: bool = False) -> bytes:
    """``.npy`` bytes of ``array`` (never pickled); gzip with a fixed mtime if ``compress``."""
    stream = io.BytesIO()
    np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
    data = stream.getvalue()
    if compress:
        data = gzip.compress(data, compresslevel=FRAME_COMPRESSLEVEL, mtime=0)
    return data


def decode_field(extension: str, data: bytes) -> Any:
    """Decode one sample file by its extension (``.npy``, ``.npy.gz``, ``.json``), never unpickling."""
    if extension.endswith(".gz"):
        data = gzip.decompress(data)
        extension = extension[:-3]
    if extension.endswith(".npy"):
        return np.load(io.BytesIO(data), allow_pickle=False)
    if extension.endswith(".json"):
        return json.loads(data)
    raise ValueError(f"unknown field type '{extension}'")


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class ShardInfo:
    """A committed shard as its sidecar describes it."""

    name: str
    """Shard name without extension, e.g. ``collect-00000040``."""
    tar_path: Path
    """Path of the tar file."""
    nsamples: int
    """Number of samples (episodes)."""
    nsteps: int
    """Total env steps (actions) over its episodes."""
    sha256: str
    """sha256 of the tar file."""
    bytes: int
    """Size of the tar file."""


def write_sidecar(tar_path: Path, samples: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Hash a finished tar and write its sidecar ``<name>.json`` atomically (the commit marker).

    Args:
        tar_path: The tar, already in its final place.
        samples: One dict per sample in order, each with ``key`` and ``steps`` (plus any
            per-sample summary such as ``task`` and ``success``).
        **extra: More fields for the sidecar (``run``, ...).
    """
    sha256, size = file_digest(tar_path)
    sidecar = {
        "format_version": SIDECAR_FORMAT_VERSION,
        "name": tar_path.stem,
        "nsamples": len(samples),
        "nsteps": int(sum(sample["steps"] for sample in samples)),
        "sha256": sha256,
        "bytes": size,
        "samples": samples,
        **extra,
    }
    atomic_write_json(tar_path.with_suffix(".json"), sidecar)
    return sidecar


def read_sidecar(path: Path) -> dict[str, Any]:
    """Load and sanity-check a sidecar; LampError naming the file if it is unreadable."""
    try:
        sidecar = json.loads(path.read_text())
        if sidecar.get("format_version") != SIDECAR_FORMAT_VERSION:
            raise ValueError(f"unknown sidecar format_version {sidecar.get('format_version')!r}")
        for field in ("nsamples", "nsteps", "sha256", "bytes", "samples"):
            if field not in sidecar:
                raise ValueError(f"missing '{field}'")
    except (OSError, ValueError) as error:
        raise LampError(f"sidecar {path} is unreadable: {error}") from error
    return sidecar


def shard_info(sidecar_path: Path, sidecar: dict[str, Any]) -> ShardInfo:
    """The :class:`ShardInfo` of a sidecar."""
    return ShardInfo(
        name=sidecar_path.stem,
        tar_path=sidecar_path.with_suffix(".tar"),
        nsamples=int(sidecar["nsamples"]),
        nsteps=int(sidecar["nsteps"]),
        sha256=str(sidecar["sha256"]),
        bytes=int(sidecar["bytes"]),
    )


def committed_sidecars(folder: Path) -> list[Path]:
    """Sidecars of committed tars in ``folder`` (both files present), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.glob("*.json")
        if not is_temporary(path) and path.name not in (INFO_FILE, PROMPTS_FILE)
        and path.with_suffix(".tar").is_file()
    )


def interrupted_writes(folder: Path) -> list[Path]:
    """Leftovers of interrupted writes in ``folder``: temporary files and tars without a sidecar."""
    if not folder.is_dir():
        return []
    leftovers = [path for path in folder.iterdir() if is_temporary(path)]
    leftovers += [
        path for path in folder.glob("*.tar")
        if not is_temporary(path) and not path.with_suffix(".json").exists()
    ]
    return sorted(leftovers)
