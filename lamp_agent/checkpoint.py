"""Agent checkpoints: a folder a reader can trust or reject, never half-read.

```
<checkpoint>/
  weights.safetensors   every network's parameters and normaliser buffers
  state.pt              optimizer states and random streams (tensors and numbers only,
                        loadable with torch.load(weights_only=True))
  config.json           written last: format_version, preset, agent config, sizes, cameras,
                        phase, step, sha256 of the other two files, provenance and run info
                        (a checkpoint without ``cameras`` encodes the front camera alone; the
                        info's ``action_repeat`` is the one the agent acted at)
```
Each file is written atomically and ``config.json`` is the commit marker, so an interrupted
save leaves the previous checkpoint readable or no checkpoint at all.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lamp_data.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from lamp_data.errors import DamagedDataError, LampError
from lamp_data.provenance import file_sha256, provenance
from lamp_data.schema import CHECKPOINT_FORMAT_VERSION

CHECKPOINTS_DIR = "checkpoints"
"""Folder of a pretraining run that holds its checkpoints."""
LATEST_FILE = "latest.json"
"""File in ``checkpoints/`` naming the newest checkpoint."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.pt"
KIND = "lamp-agent"
ACTION_REPEAT_INFO = "action_repeat"
"""Key of an agent's info (``config.json``'s ``info``) holding the action repeat it acted at:
a pretrained agent's is its dataset's, and finetuning keeps acting at it unless told otherwise."""


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any], record: dict[str, Any]) -> Path:
    """Write a checkpoint folder ``path`` (created if needed) and return it.

    Args:
        path: The checkpoint folder.
        tensors: Every network's parameters and buffers by name (``weights.safetensors``).
        state: Optimizer states and random streams, tensors and numbers only (``state.pt``).
        record: What ``config.json`` records about the agent (preset, config, sizes, cameras,
            seed, phase, step, info); the format version, kind, checksums of the other two files
            and provenance are added, and it is written last.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_FILE) as temporary:
        save_file(tensors, str(temporary), metadata={"format_version": str(CHECKPOINT_FORMAT_VERSION)})
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(folder / STATE_FILE, buffer.getvalue())
    atomic_write_json(
        folder / CONFIG_FILE,
        {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "kind": KIND,
            **record,
            "sha256": {WEIGHTS_FILE: file_sha256(folder / WEIGHTS_FILE), STATE_FILE: file_sha256(folder / STATE_FILE)},
            "provenance": provenance(),
        },
    )
    return folder


def latest_checkpoint(run: str | Path) -> Path | None:
    """The newest checkpoint of a pretraining run folder (``checkpoints/latest.json``), if any."""
    pointer = Path(run) / CHECKPOINTS_DIR / LATEST_FILE
    if not pointer.is_file():
        return None
    try:
        record = json.loads(pointer.read_text())
        name = record["checkpoint"]
    except (ValueError, KeyError, TypeError) as error:
        raise DamagedDataError(f"damaged {pointer}: {error}; remove it to start over") from error
    if record.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise LampError(f"{pointer} has format_version {record.get('format_version')!r}; this version reads {CHECKPOINT_FORMAT_VERSION}")
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise DamagedDataError(
            f"damaged {pointer}: it names {name!r}, not a checkpoint folder inside {pointer.parent}; remove it to start over"
        )
    if (Path(run) / CHECKPOINTS_DIR / name).is_symlink():
        raise DamagedDataError(f"damaged {pointer}: {name} is a link, not a checkpoint folder of this run; remove it to start over")
    return Path(run) / CHECKPOINTS_DIR / name


def rotate_checkpoints(run: str | Path, newest: str | Path, keep: int, step: int) -> None:
    """Make ``newest`` (a finished checkpoint folder in ``<run>/checkpoints/``) the run's latest,
    then remove all but the newest ``keep`` checkpoints.

    Checkpoint folders are named so that their names sort by age (``step-<zero-padded step>``);
    only real folders with a ``config.json`` are counted or removed, never what a link points to.
    """
    folder = Path(run) / CHECKPOINTS_DIR
    atomic_write_json(folder / LATEST_FILE, {"format_version": CHECKPOINT_FORMAT_VERSION, "checkpoint": Path(newest).name, "step": step})
    finished = sorted(path for path in folder.glob("step-*") if not path.is_symlink() and (path / CONFIG_FILE).is_file())
    for old in finished[: max(len(finished) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder as given, or the newest checkpoint of a pretraining run folder."""
    folder = Path(path)
    if not (folder / CONFIG_FILE).exists():
        latest = latest_checkpoint(folder)
        if latest is not None:
            return latest
    return folder


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``config.json``, checked for kind and version; :class:`LampError` otherwise.

    ``path`` is a checkpoint folder or a pretraining run folder (its newest checkpoint is read).
    """
    folder = resolve_checkpoint(path)
    config_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise LampError(f"no agent checkpoint at {folder} (not a folder)")
    if not config_path.is_file():
        raise LampError(f"{folder} is not an agent checkpoint: {CONFIG_FILE} is missing (interrupted save?)")
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedDataError(f"damaged agent checkpoint {folder}: {CONFIG_FILE} is not valid JSON ({error})") from error
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise LampError(f"{folder} is not an agent checkpoint ({CONFIG_FILE} has no kind '{KIND}')")
    version = meta.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise LampError(
            f"agent checkpoint {folder} has format_version {version!r}; this version reads {CHECKPOINT_FORMAT_VERSION}"
        )
    return meta


def read_checkpoint(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder and its ``config.json`` (as :func:`read_checkpoint_config`), once the
    weights and the training state match the sha256 it records.

    Raises:
        LampError: The folder is missing or not a checkpoint, or a file is absent or damaged.
    """
    folder = resolve_checkpoint(path)
    meta = read_checkpoint_config(folder)
    recorded = meta.get("sha256")
    if not isinstance(recorded, dict):
        raise DamagedDataError(f"damaged agent checkpoint {folder}: {CONFIG_FILE} records no sha256 of its files ({recorded!r})")
    for name in (WEIGHTS_FILE, STATE_FILE):
        file = folder / name
        if not file.is_file():
            raise DamagedDataError(f"damaged agent checkpoint {folder}: {name} is missing")
        if file_sha256(file) != recorded.get(name):
            raise DamagedDataError(f"damaged agent checkpoint {folder}: {name} does not match its recorded sha256")
    return folder, meta


def check_state_archive(folder: Path) -> None:
    """Check that the members of the zip archive ``state.pt`` are all stored uncompressed, as
    ``torch.save`` writes them: then nothing in it expands past the file's own size (a file that
    is no zip archive is left to ``torch.load``, which refuses anything but tensors and numbers).

    Raises:
        DamagedDataError: a member is compressed, or the archive does not parse.
    """
    path = folder / STATE_FILE
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile) as error:
        raise DamagedDataError(f"damaged agent checkpoint {folder}: {STATE_FILE} is not a torch archive ({error})") from None
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED or member.file_size != member.compress_size:
            raise DamagedDataError(
                f"damaged agent checkpoint {folder}: {STATE_FILE} member {member.filename} is compressed "
                f"({member.compress_size:,} bytes that expand to {member.file_size:,}); lamp stores every member as it is"
            )


def read_checkpoint_tensors(folder: Path, device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and the training state of a checkpoint checked by :func:`read_checkpoint`, on ``device``.

    The weights are bounded by their file (safetensors checks every tensor's offsets against it)
    and the training state by its own (:func:`check_state_archive`).

    Raises:
        DamagedDataError: the training state is compressed or does not load as tensors and numbers only.
        safetensors.SafetensorError: the weights file does not parse.
    """
    tensors = load_file(str(folder / WEIGHTS_FILE), device=str(device))
    check_state_archive(folder)
    try:
        state = torch.load(folder / STATE_FILE, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as error:
        raise DamagedDataError(
            f"damaged agent checkpoint {folder}: {STATE_FILE} does not load as tensors and numbers only "
            f"({type(error).__name__}); it was not written by lamp or was tampered with"
        ) from None
    return tensors, state
