"""Writing a dataset: creating it, committing shards, and reward sets.

A shard is written through ``webdataset.TarWriter`` into a hidden temporary file, fsynced and
renamed into place (:func:`lamp_data.atomic.atomic_path`), and only then is its sidecar written,
also atomically. A crash (or a full disk) at any moment leaves either nothing, a temporary file,
or a complete tar without a sidecar; readers see none of them. On resume ``collect`` removes the
temporary files and re-derives the missing sidecars (:func:`recover_orphans`), which never
deletes a tar.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_path, atomic_write_json, exclusive_lock, fsync_dir, is_locked
from lamp_data.errors import DamagedDataError, LampError, StorageError
from lamp_data.provenance import stable_hash
import lamp_data.store.layout as layout
from lamp_data.store.card import write_dataset_card
from lamp_data.store.reader import (
    DamagedShardError,
    Dataset,
    check_episode,
    check_rewards,
    decode_samples,
    image_size,
    iter_decoded,
    open_dataset,
)


def encode_episode(key: str, episode: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    """The WebDataset sample (field file -> bytes) of one episode.

    Args:
        key: Sample key, ``layout.episode_key(index)``.
        episode: The ``schema`` step keys with ``T + 1`` rows (``T`` for action and reward), and
            the frames of further cameras (``image_wrist``) if recorded; those are stored too.
        meta: JSON-able metadata (task, instruction, seed, episode index, policy, ...).

    Raises:
        ValueError: if a field is missing or has the wrong number of rows.
    """
    steps = len(episode[schema.ACTION])
    sample: dict[str, Any] = {"__key__": key}
    fields = {**layout.FIELD_DTYPES, **{field: np.uint8 for field in layout.CAMERA_FIELD_FILES if field in episode}}
    for field, dtype in fields.items():
        array = np.asarray(episode[field]).astype(dtype, copy=False)
        rows = steps if field in layout.ACTION_ROWS else steps + 1
        if len(array) != rows:
            raise ValueError(f"episode {key}: field '{field}' has {len(array)} rows, expected {rows}")
        extension = layout.FIELD_FILES.get(field) or layout.CAMERA_FIELD_FILES[field]
        sample[extension] = layout.encode_array(array, compress=extension.endswith(".gz"))
    sample[layout.FIELD_FILES[layout.META]] = json_bytes(meta)
    return sample


def shard_entry(key: str, meta: dict[str, Any]) -> dict[str, Any]:
    """What a data shard's sidecar records of one episode: key, index, steps, task and success
    (from its metadata, as :func:`encode_episode` stores it)."""
    return {"key": key, "episode": meta["episode"], "steps": meta["steps"], "task": meta.get("task"), "success": bool(meta.get("success", False))}


def json_bytes(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys), so equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class ShardWriter:
    """Writes one shard: ``with ShardWriter(path) as shard: shard.add(sample, summary)``.

    Leaving the block normally closes the tar, fsyncs and renames it into place, then writes the
    sidecar (the commit marker). Leaving it with an exception removes the temporary file.

    Args:
        tar_path: Final path of the tar (``.../<name>.tar``).
        **sidecar_extra: More fields recorded in the sidecar (``run``, ``fingerprint``, ...).
    """

    def __init__(self, tar_path: Path, **sidecar_extra: Any):
        self.tar_path = Path(tar_path)
        self.sidecar_extra = sidecar_extra
        self.summaries: list[dict[str, Any]] = []
        self.sidecar: dict[str, Any] | None = None
        self._stack: contextlib.ExitStack | None = None
        self._tar: Any = None

    def __enter__(self) -> "ShardWriter":
        import webdataset as wds

        stack = contextlib.ExitStack()
        temporary = stack.enter_context(atomic_path(self.tar_path))
        handle = stack.enter_context(open(temporary, "wb"))
        self._tar = wds.TarWriter(handle, encoder=False, mtime=0)
        self._stack = stack
        return self

    def add(self, sample: dict[str, Any], summary: dict[str, Any]) -> None:
        """Append an encoded sample; ``summary`` (with ``key`` and ``steps``) goes to the sidecar."""
        self._tar.write(sample)
        self.summaries.append(summary)

    def __exit__(self, exc_type, exc, traceback) -> None:
        assert self._stack is not None
        if exc_type is not None:
            with contextlib.suppress(Exception):  # marks the tar stream closed, so nothing writes to the file once it is gone
                self._tar.close()
            self._stack.__exit__(exc_type, exc, traceback)
            return
        with self._stack:  # a failing close (disk full) removes the temporary file, like any error
            self._tar.close()
        self.sidecar = layout.write_sidecar(self.tar_path, self.summaries, **self.sidecar_extra)


def create_dataset(path: str | Path, info: dict[str, Any]) -> Dataset:
    """Create a dataset folder with ``meta/info.json`` (``format_version`` added) and its
    ``README.md`` card (:func:`~lamp_data.store.card.write_dataset_card`), each atomically."""
    folder = Path(path)
    info = layout.seal_info({**info, "format_version": schema.DATASET_FORMAT_VERSION})
    try:
        layout.shards_dir(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(layout.shards_dir(folder), error) from error
    atomic_write_json(layout.info_path(folder), info)
    dataset = Dataset(folder, info)
    write_dataset_card(dataset)
    return dataset


def update_info(dataset: Dataset, info: dict[str, Any]) -> Dataset:
    """Replace ``meta/info.json`` atomically (keeping ``format_version``, with a fresh checksum)
    and rewrite the card."""
    info = layout.seal_info({**info, "format_version": schema.DATASET_FORMAT_VERSION})
    atomic_write_json(layout.info_path(dataset.path), info)
    dataset.info = info
    write_dataset_card(dataset)
    return dataset


@contextlib.contextmanager
def writer_lock(path: str | Path) -> Iterator[None]:
    """Hold the dataset's writer lock (``meta/.lock``); LampError if another writer holds it.

    The lock is released by the OS when the holder dies, so a killed ``collect`` never leaves
    a stale lock behind.
    """
    with exclusive_lock(layout.lock_path(path), f"another process is writing to {path}; wait for it to finish"):
        yield


def writer_active(path: str | Path) -> bool:
    """True if a process holds the dataset's writer lock now (a collect or relabel is writing)."""
    return is_locked(layout.lock_path(path))


@dataclass
class Recovery:
    """What :func:`recover_orphans` did (or, with ``dry_run``, would do), as dataset-relative paths."""

    removed: list[str] = field(default_factory=list)
    """Temporary files of interrupted writes, removed."""
    rederived: list[str] = field(default_factory=list)
    """Tars without a sidecar that decode completely: their sidecar was written again, the same
    as the one the interrupted write would have written."""
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)
    """(tar, where it was moved, why) for tars without a sidecar that do not decode completely."""


def recover_orphans(dataset: Dataset, *, dry_run: bool = False) -> Recovery:
    """Remove temporary files and recover every tar without a sidecar, in ``shards/`` and in
    every reward set: re-derive its sidecar when it decodes completely and fits its name (a data
    shard: consecutive episodes from the one its name gives, of its run, none in another shard; a
    reward shard: the keys and rows of the data shard of its name), else move it to
    ``quarantine/``. No tar is ever deleted.

    Call it only while holding :func:`writer_lock` (not needed with ``dry_run``, which changes
    nothing and only reports).
    """
    recovery = Recovery()
    folders = [dataset.shards_dir]
    if dataset.rewards_dir.is_dir():
        folders += [path for path in sorted(dataset.rewards_dir.iterdir()) if path.is_dir()]
    for folder in folders:
        for leftover in layout.interrupted_writes(folder):
            recovery.removed.append(_relative(dataset, leftover))
            if not dry_run:
                leftover.unlink(missing_ok=True)
    data_sidecars = _readable_sidecars(dataset.shards_dir)
    for folder in folders:
        for tar_path in layout.orphan_tars(folder):
            try:
                if folder == dataset.shards_dir:
                    samples, extra = _rederive_data_shard(dataset, tar_path, data_sidecars)
                else:
                    samples, extra = _rederive_reward_shard(dataset, tar_path, data_sidecars)
            except DamagedShardError as error:
                target = set_aside(dataset, tar_path, dry_run=dry_run)
                recovery.quarantined.append((_relative(dataset, tar_path), _relative(dataset, target), error.reason))
                continue
            recovery.rederived.append(_relative(dataset, tar_path))
            if not dry_run:
                sidecar = layout.write_sidecar(tar_path, samples, **extra)
                if folder == dataset.shards_dir:
                    data_sidecars[tar_path.stem] = sidecar
    return recovery


def _readable_sidecars(folder: Path) -> dict[str, dict[str, Any]]:
    """Shard name -> sidecar, for the committed shards in ``folder`` whose sidecar parses."""
    sidecars = {}
    for path in layout.committed_sidecars(folder):
        try:
            sidecars[path.stem] = layout.read_sidecar(path)
        except DamagedDataError:
            continue  # verify names it; lamp-data verify --repair sets it aside
    return sidecars


def _relative(dataset: Dataset, path: Path) -> str:
    return str(path.relative_to(dataset.path))


def set_aside(dataset: Dataset, path: Path, *, dry_run: bool = False) -> Path:
    """Move a file or folder of the dataset to a free path under ``quarantine/`` that mirrors its
    place (``shards/x.tar`` -> ``quarantine/shards/x.tar``, then ``x.1.tar``, ...) and return that
    path; nothing is deleted. With ``dry_run`` only the path is returned.

    Raises:
        StorageError: the move failed.
    """
    relative = path.relative_to(dataset.path)
    target = layout.quarantine_dir(dataset.path) / relative
    number = 1
    while target.exists() or target.is_symlink():
        target = target.with_name(f"{path.stem}.{number}{path.suffix}")
        number += 1
    if not dry_run:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            fsync_dir(path.parent)
        except OSError as error:
            raise StorageError(path, error) from error
    return target


def _rederive_data_shard(dataset: Dataset, tar_path: Path, data_sidecars: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The sidecar entries and fields of an orphan data shard; DamagedShardError if it is not complete."""
    run, _, first = tar_path.stem.rpartition("-")
    if not run or not first.isdigit():
        raise DamagedShardError(tar_path, "its name is not <run>-<first episode>")
    try:
        keys = layout.tar_keys(tar_path)
    except (OSError, ValueError) as error:  # a truncated or foreign tar
        raise DamagedShardError(tar_path, f"cannot read the tar ({error})") from error
    expected = [layout.episode_key(int(first) + offset) for offset in range(len(keys))]
    if not keys or keys != expected:
        raise DamagedShardError(tar_path, f"its samples are not consecutive episodes from {layout.episode_key(int(first))}")
    owners = {entry["key"] for sidecar in data_sidecars.values() for entry in sidecar["samples"]}
    if owners & set(keys):
        raise DamagedShardError(tar_path, "some of its episodes are in a committed shard already")
    # steps are not known before decoding: bound each episode by the longest one collect records
    limit = {key: layout.MAX_SAMPLE_STEPS for key in keys}
    size = image_size(dataset.info)
    entries = []
    for sample in iter_decoded(tar_path, limit, size):
        meta = sample.get(layout.META)
        try:
            check_episode(sample, None, size, layout.dataset_cameras(dataset.info))
            if meta.get("run") != run or meta.get("episode") != layout.episode_index(sample["__key__"]):
                raise ValueError(f"{sample['__key__']}: its metadata names run {meta.get('run')!r}, episode {meta.get('episode')!r}")
        except (ValueError, AttributeError, LampError) as error:
            raise DamagedShardError(tar_path, str(error)) from error
        entries.append({
            "key": sample["__key__"], "episode": meta["episode"], "steps": len(sample[schema.ACTION]),
            "task": meta.get("task"), "success": bool(meta.get("success", False)),
        })
    return entries, {"run": run}


def _rederive_reward_shard(dataset: Dataset, tar_path: Path, data_sidecars: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The sidecar entries and fields of an orphan reward shard; DamagedShardError if it does not
    fit the committed data shard of its name."""
    data_sidecar = data_sidecars.get(tar_path.stem)
    if data_sidecar is None:
        raise DamagedShardError(tar_path, "no committed data shard of its name")
    fingerprint = tar_path.parent.name
    try:
        prompt_count = len(dataset.reward_set_prompts(fingerprint))
    except LampError as error:
        raise DamagedShardError(tar_path, str(error)) from error
    steps = {entry["key"]: entry["steps"] for entry in data_sidecar["samples"]}
    rewards = decode_samples(tar_path, steps, kind="rewards", prompt_count=prompt_count)
    check_rewards(tar_path, rewards, data_sidecar, prompt_count)
    entries = [{"key": entry["key"], "steps": entry["steps"]} for entry in data_sidecar["samples"]]
    return entries, {"fingerprint": fingerprint, "data_sha256": data_sidecar["sha256"]}


def _comparable(info: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in info.items() if key not in ("provenance", "format_version", "fingerprint", layout.CHECKSUM)}


class RewardSetWriter:
    """Writes the reward shards of one reward set, ``rewards/<fingerprint>/``.

    The set's ``info.json`` (``format_version`` = ``schema.REWARD_FORMAT_VERSION``) and
    ``prompts.json`` are created once; opening an existing set with different info (apart
    from its ``provenance``) or prompts raises :class:`LampError`, so two reward models are
    never mixed under one fingerprint.

    Args:
        dataset: The dataset folder or an open :class:`Dataset`.
        fingerprint: The reward set's name (``reward_fingerprint(...)``).
        info: Reward model spec, preprocessing, prompt-set hash and name, provenance.
        prompts: The prompts, in reward-column order.
    """

    def __init__(self, dataset: str | Path | Dataset, fingerprint: str, info: dict[str, Any], prompts: list[str]):
        self.dataset = open_dataset(dataset)
        layout.check_run_name(fingerprint)
        if not prompts or not all(isinstance(prompt, str) for prompt in prompts):
            raise LampError("a reward set needs a non-empty list of prompt strings")
        self.fingerprint = fingerprint
        self.prompts = list(prompts)
        self.folder = self.dataset.reward_dir(fingerprint)
        info = layout.seal_info({
            **info,
            "format_version": schema.REWARD_FORMAT_VERSION,
            "fingerprint": fingerprint,
            "prompt_count": len(self.prompts),
            "prompts_hash": stable_hash(self.prompts),
        })
        info_path = layout.reward_set_info_path(self.dataset.path, fingerprint)
        prompts_path = layout.reward_set_prompts_path(self.dataset.path, fingerprint)
        if info_path.is_file():
            existing = layout.check_info(info_path, layout.read_json(info_path))
            if layout.read_prompts(prompts_path) != self.prompts:
                raise LampError(f"reward set {fingerprint} in {self.dataset.path} has different prompts; refusing to mix them")
            if _comparable(existing) != _comparable(info):
                raise LampError(f"reward set {fingerprint} in {self.dataset.path} was made with a different reward model or settings; refusing to mix them")
            self.info = existing
        else:
            atomic_write_json(prompts_path, self.prompts)
            atomic_write_json(info_path, info)
            self.info = info
            write_dataset_card(self.dataset)

    def has_shard(self, shard_name: str) -> bool:
        """True if the reward shard for data shard ``shard_name`` is committed."""
        tar_path = layout.reward_shard_path(self.dataset.path, self.fingerprint, shard_name)
        return layout.sidecar_path(tar_path).is_file() and tar_path.is_file()

    def write_shard(self, shard_name: str, rewards: dict[str, np.ndarray]) -> None:
        """Write the rewards of every episode of data shard ``shard_name``, atomically.

        Args:
            shard_name: The data shard's name (the reward shard gets the same name).
            rewards: Episode key -> float16 ``[T+1, P]``; keys and rows must match the data shard.

        Raises:
            LampError: no such committed data shard, or keys / rows / columns do not match.
        """
        data_tar_path = layout.shard_path(self.dataset.path, shard_name)
        data_sidecar_path = layout.sidecar_path(data_tar_path)
        if not (data_sidecar_path.is_file() and data_tar_path.is_file()):
            raise LampError(f"{self.dataset.path} has no committed data shard '{shard_name}'")
        data_sidecar = layout.read_sidecar(data_sidecar_path)
        expected = {entry["key"]: entry["steps"] + 1 for entry in data_sidecar["samples"]}
        if sorted(rewards) != sorted(expected):
            raise LampError(
                f"rewards for shard {shard_name} cover {len(rewards)} episodes, the shard holds {len(expected)} (keys differ)"
            )
        with ShardWriter(
            layout.reward_shard_path(self.dataset.path, self.fingerprint, shard_name), fingerprint=self.fingerprint, data_sha256=data_sidecar["sha256"]
        ) as shard:
            for entry in data_sidecar["samples"]:
                key = entry["key"]
                values = np.asarray(rewards[key], dtype=np.float16)
                if values.shape != (expected[key], len(self.prompts)):
                    raise LampError(
                        f"rewards for {key} in shard {shard_name} have shape {values.shape}, expected {(expected[key], len(self.prompts))}"
                    )
                sample = {"__key__": key, layout.REWARD_FILE: layout.encode_array(values)}
                shard.add(sample, {"key": key, "steps": entry["steps"]})
