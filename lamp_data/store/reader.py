"""Reading a dataset: the folder handle, checked shard reads, the episode iterator and the
indexable episode view (:func:`index_episodes`).

Every shard's size and sha256 are compared with its sidecar first; only then is the tar parsed,
streamed member by member (regular files named ``<key>.<field>`` only, the fields of its kind
only), each file read only if its stored size and decoded only within the size that its
sidecar's step count, the dataset's image size and the reward set's prompt count give it
(:func:`~lamp_data.store.layout.member_limit`), so a truncated, bit-flipped or crafted shard
never yields a single sample to a reader, and nothing it claims takes more memory: it raises
:class:`DamagedShardError` naming the shard, or with ``on_error="skip"`` is skipped with a warning.
A reward shard must also score the data shard that is there (its sidecar's ``data_sha256``).
"""

from __future__ import annotations

import collections
import copy
import json
import operator
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.errors import DamagedDataError, LampError, StorageError
import lamp_data.store.layout as layout
from lamp_data.store.layout import ShardInfo

ON_ERROR = ("raise", "skip")


class DamagedShardError(DamagedDataError):
    """A shard does not match its sidecar or cannot be decoded."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"damaged shard {path}: {reason}")
        self.path = path
        self.reason = reason


class Dataset:
    """A dataset folder with a known ``meta/info.json``; see :mod:`lamp_data.store.layout`.

    Attributes:
        path: The dataset folder.
        info: The parsed ``meta/info.json``.
    """

    def __init__(self, path: Path, info: dict[str, Any]):
        self.path = path
        self.info = info

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r})"

    @property
    def shards_dir(self) -> Path:
        """Folder of the data shards."""
        return layout.shards_dir(self.path)

    @property
    def rewards_dir(self) -> Path:
        """Folder holding one sub-folder per reward set."""
        return layout.rewards_dir(self.path)

    def reward_dir(self, fingerprint: str) -> Path:
        """Folder of one reward set."""
        return layout.reward_dir(self.path, fingerprint)

    def shard_sidecars(self) -> dict[str, dict[str, Any]]:
        """Committed shard name -> its parsed sidecar, sorted by name."""
        return {path.stem: layout.read_sidecar(path) for path in layout.committed_sidecars(self.shards_dir)}

    def shards(self) -> list[ShardInfo]:
        """Committed shards only (sidecar present), sorted by name."""
        return [
            layout.shard_info(layout.sidecar_path(layout.shard_path(self.path, name)), sidecar)
            for name, sidecar in self.shard_sidecars().items()
        ]

    def prompts(self) -> list[str] | None:
        """The dataset's prompt set (``meta/prompts.json``), if it has one."""
        path = layout.prompts_path(self.path)
        return layout.read_prompts(path) if path.is_file() else None

    def reward_sets(self) -> list[str]:
        """Fingerprints of the reward sets under ``rewards/`` (those with an ``info.json``)."""
        if not self.rewards_dir.is_dir():
            return []
        return sorted(p.name for p in self.rewards_dir.iterdir() if layout.reward_set_info_path(self.path, p.name).is_file())

    def reward_set_info(self, fingerprint: str) -> dict[str, Any]:
        """``rewards/<fingerprint>/info.json``; LampError if there is no such set."""
        path = layout.reward_set_info_path(self.path, fingerprint)
        if not path.is_file():
            known = ", ".join(self.reward_sets()) or "none"
            raise LampError(f"{self.path} has no reward set '{fingerprint}' (present: {known})")
        info = layout.read_json(path)
        version = info.get("format_version") if isinstance(info, dict) else None
        if version != schema.REWARD_FORMAT_VERSION:
            raise LampError(
                f"reward set {fingerprint} has format_version {version!r}; this version reads {schema.REWARD_FORMAT_VERSION}"
            )
        return layout.check_info(path, info)

    def reward_set_prompts(self, fingerprint: str) -> list[str]:
        """The prompts of a reward set, in column order."""
        self.reward_set_info(fingerprint)
        return layout.read_prompts(layout.reward_set_prompts_path(self.path, fingerprint))

    def reward_shard_sidecars(self, fingerprint: str) -> dict[str, dict[str, Any]]:
        """Committed reward shard name -> sidecar, for one reward set."""
        folder = self.reward_dir(fingerprint)
        return {path.stem: layout.read_sidecar(path) for path in layout.committed_sidecars(folder)}

    def episode_count(self) -> int:
        """Episodes in the committed shards."""
        return sum(sidecar["nsamples"] for sidecar in self.shard_sidecars().values())

    def rewarded_shards(self, fingerprint: str) -> list[str]:
        """Names of the shards the reward set scores, sorted."""
        return sorted(self.reward_shard_sidecars(fingerprint))

    def longest_rewarded_episode(self, fingerprint: str) -> int:
        """Frames of the longest episode the reward set scores (0 if it scores none)."""
        return max(
            (entry["steps"] + 1 for sidecar in self.reward_shard_sidecars(fingerprint).values() for entry in sidecar["samples"]),
            default=0,
        )

    def has_run(self, run: str) -> bool:
        """True if a committed shard of collection run ``run`` exists."""
        return any(name.startswith(f"{run}-") for name in self.shard_sidecars())

    def check_reward_set(self, fingerprint: str, on_damage: str = "fail") -> dict[str, Any]:
        """The reward set's info, after checking it scores this dataset's shards and lists its prompts.

        Raises:
            LampError: No such reward set, a reward shard for a shard the dataset lacks, no shard
                with rewards at all, or a prompt count that does not match its prompt list.
            DamagedShardError: with ``on_damage="fail"``, a reward shard that scores other bytes or
                other episodes than the data shard of its name (with ``"skip"`` readers skip it).
        """
        info = self.reward_set_info(fingerprint)
        data_sidecars = self.shard_sidecars()
        reward_sidecars = self.reward_shard_sidecars(fingerprint)
        for name, sidecar in reward_sidecars.items():
            if name not in data_sidecars:
                raise LampError(
                    f"reward set {fingerprint} does not match {self.path}: it scores shard '{name}', which the dataset lacks"
                )
            try:
                check_reward_binding(layout.reward_shard_path(self.path, fingerprint, name), sidecar, data_sidecars[name])
            except DamagedShardError:
                if on_damage == "fail":
                    raise
        if not reward_sidecars:
            raise LampError(f"reward set {fingerprint} has rewards for none of the shards of {self.path}; run lamp-data relabel")
        prompts = self.reward_set_prompts(fingerprint)
        count = info.get("prompt_count", len(prompts))
        if count != len(prompts):
            raise LampError(f"reward set {fingerprint} records {count} prompts but lists {len(prompts)}")
        return info


def prompt_set_name(info: dict[str, Any]) -> str | None:
    """The name of the prompt set that ``info`` records, None if it records none.

    ``info`` is a dataset's or a reward set's ``info.json`` (the name under ``prompt_set``, or a
    reward set's under its provenance's ``prompt_set_name``), or the record of something made from
    a reward set, such as a pretrained agent's (under ``prompt_set_name``). A record that names
    no prompt set but its reward set (``reward_set``) and dataset folder (``pretrain.data``) gets
    the name from that reward set's ``info.json`` when the dataset is on this machine.
    """
    name = _named_prompt_set(info)
    source = info.get("pretrain")
    reward_set = info.get("reward_set")
    if name or not (isinstance(source, dict) and source.get("data") and reward_set):
        return name
    try:
        recorded = json.loads(layout.reward_set_info_path(str(source["data"]), str(reward_set)).read_text())
    except (OSError, ValueError):
        return None
    return _named_prompt_set(recorded) if isinstance(recorded, dict) else None


def _named_prompt_set(info: dict[str, Any]) -> str | None:
    """The prompt set's name under ``prompt_set_name``, ``prompt_set`` (or its ``name``) or
    ``provenance.prompt_set_name`` of ``info``, in that order; None if none holds one."""
    provenance = info.get("provenance")
    candidates = [info.get("prompt_set_name"), info.get("prompt_set")]
    candidates.append(provenance.get("prompt_set_name") if isinstance(provenance, dict) else None)
    for value in candidates:
        if isinstance(value, dict):
            value = value.get("name")
        if value:
            return str(value)
    return None


def image_size(info: dict[str, Any]) -> int | None:
    """The frame side in pixels a dataset's ``meta/info.json`` records, None if it records none."""
    size = (info.get("collection") or {}).get("image_size") or ((info.get("env") or {}).get("config") or {}).get("image_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def open_dataset(path: str | Path | Dataset) -> Dataset:
    """Open a dataset folder.

    Raises:
        LampError: if ``path`` is not a dataset or its ``format_version`` is unknown.
    """
    if isinstance(path, Dataset):
        return path
    folder = Path(path)
    info_path = layout.info_path(folder)
    if not folder.is_dir():
        raise LampError(f"dataset folder {folder} does not exist")
    if not info_path.is_file():
        raise LampError(f"{folder} is not a dataset (no {layout.META_DIR}/{layout.INFO_FILE})")
    info = layout.read_json(info_path)
    if not isinstance(info, dict):
        raise DamagedDataError(f"damaged {info_path}: it does not hold a JSON object")
    version = info.get("format_version")
    if version != schema.DATASET_FORMAT_VERSION:
        raise LampError(
            f"{folder} has dataset format_version {version!r}; this version of lamp reads {schema.DATASET_FORMAT_VERSION}"
        )
    return Dataset(folder, layout.check_info(info_path, info))


SHARD_MEMBERS = {"data": layout.DATA_MEMBERS, "rewards": layout.REWARD_MEMBERS}
"""The file extensions each kind of shard may hold."""


def check_shard_file(tar_path: Path, sidecar: dict[str, Any]) -> None:
    """Check a shard's size and sha256 (read in chunks) against its sidecar.

    Raises:
        DamagedShardError: it cannot be read, or its size or sha256 differ.
    """
    try:
        size = tar_path.stat().st_size
        if size == sidecar["bytes"]:
            digest, size = layout.file_digest(tar_path)
    except (OSError, StorageError) as error:
        raise DamagedShardError(tar_path, f"cannot read ({error})") from error
    if size != sidecar["bytes"]:
        raise DamagedShardError(tar_path, f"{size} bytes, sidecar says {sidecar['bytes']} (truncated?)")
    if digest != sidecar["sha256"]:
        raise DamagedShardError(tar_path, "sha256 does not match its sidecar (corrupted bytes)")


def iter_shard_samples(
    tar_path: Path, sidecar: dict[str, Any], image_size: int | None = None, *, kind: str = "data", prompt_count: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Check a shard against its sidecar (:func:`check_shard_file`), then yield its decoded samples
    one at a time, in order (:func:`iter_decoded`).

    Each sample maps field names (``image``, ``meta``, ...) to decoded values and carries
    ``__key__``. Every file is decoded within what its sidecar entry's step count allows (frames
    of ``image_size`` pixels, rewards of ``prompt_count`` columns, if given).

    Raises:
        DamagedShardError: size, checksum, members, sample keys, or decoding do not match.
    """
    check_shard_file(tar_path, sidecar)
    yield from iter_decoded(tar_path, {entry["key"]: entry["steps"] for entry in sidecar["samples"]}, image_size,
                            kind=kind, prompt_count=prompt_count)


def read_shard_samples(
    tar_path: Path, sidecar: dict[str, Any], image_size: int | None = None, *, kind: str = "data", prompt_count: int | None = None,
) -> list[dict[str, Any]]:
    """Every sample of :func:`iter_shard_samples`, decoded before any is returned.

    Raises:
        DamagedShardError: size, checksum, members, sample keys, or decoding do not match.
    """
    return list(iter_shard_samples(tar_path, sidecar, image_size, kind=kind, prompt_count=prompt_count))


def iter_decoded(
    tar_path: Path, steps: dict[str, int] | None, image_size: int | None = None, *, kind: str = "data", prompt_count: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the tar of a shard whose samples have ``steps`` (key -> step count, in order; None
    for a tar without a sidecar, whose keys are not known) and yield its samples one at a time.

    Only the fields of ``kind`` (:data:`SHARD_MEMBERS`) are accepted; each member is read only if
    its stored size, and decoded only within the size :func:`~lamp_data.store.layout.member_limit`
    gives it from its episode's step count, so at most one sample is held in memory, and never
    more of it than its declared shapes.

    Raises:
        DamagedShardError: the tar does not parse, its keys differ from ``steps``, it holds a
            member of another kind, or a file does not decode within its limit.
    """
    allowed = SHARD_MEMBERS[kind]
    expected = list(steps) if steps is not None else None
    seen: set[str] = set()
    sample: dict[str, Any] | None = None
    try:
        with tarfile.open(tar_path, mode="r:") as archive:
            for member in layout.iter_tar_members(archive):
                key, extension = member.key, member.extension
                if sample is None or sample["__key__"] != key:
                    if sample is not None:
                        yield sample
                    if key in seen:
                        raise DamagedShardError(tar_path, f"sample {key!r} appears twice")
                    if expected is not None and (len(seen) >= len(expected) or expected[len(seen)] != key):
                        wanted = expected[len(seen)] if len(seen) < len(expected) else "no more samples"
                        raise DamagedShardError(tar_path, f"holds sample {key} where its sidecar lists {wanted}")
                    seen.add(key)
                    sample = {"__key__": key}
                if extension not in allowed:
                    raise DamagedShardError(tar_path, f"member {key}.{extension} is not a field of a {kind} shard")
                field = extension.split(".", 1)[0]
                if field in sample:
                    raise DamagedShardError(tar_path, f"member {key}.{extension} appears twice")
                limit = layout.member_limit(extension, steps[key] if steps is not None else None, image_size, prompt_count)
                if member.size > limit:
                    raise DamagedShardError(tar_path, f"cannot decode {key}.{extension}: it holds {member.size:,} bytes, "
                                                      f"more than the {limit:,} its episode allows")
                handle = archive.extractfile(member.member)
                data = handle.read() if handle is not None else b""
                try:
                    sample[field] = layout.decode_field(extension, data, limit)
                except Exception as error:  # any decoding failure means the shard is damaged
                    raise DamagedShardError(tar_path, f"cannot decode {key}.{extension} ({type(error).__name__}: {error})") from error
                del data
    except (tarfile.TarError, ValueError, EOFError) as error:
        raise DamagedShardError(tar_path, f"cannot read the tar ({error})") from error
    except OSError as error:
        raise DamagedShardError(tar_path, f"cannot read ({error})") from error
    if sample is not None:
        yield sample
    if expected is not None and len(seen) != len(expected):
        raise DamagedShardError(tar_path, f"holds {len(seen)} samples, its sidecar lists {len(expected)}")


def decode_samples(tar_path: Path, steps: dict[str, int] | None, image_size: int | None = None, *, kind: str = "data",
                   prompt_count: int | None = None) -> list[dict[str, Any]]:
    """Every sample of :func:`iter_decoded`, in order.

    Raises:
        DamagedShardError: as :func:`iter_decoded`.
    """
    return list(iter_decoded(tar_path, steps, image_size, kind=kind, prompt_count=prompt_count))


def iter_episode_shard(
    tar_path: Path, sidecar: dict[str, Any], image_size: int | None = None, cameras: tuple[str, ...] | None = None,
) -> Iterator[dict[str, Any]]:
    """:func:`iter_shard_samples` for a data shard, each episode checked by :func:`check_episode`
    (against ``cameras``, the dataset's, if given) before it is yielded.

    Raises:
        DamagedShardError: the shard or one of its episodes does not match its sidecar.
    """
    entries = iter(sidecar["samples"])
    for sample in iter_shard_samples(tar_path, sidecar, image_size):
        try:
            check_episode(sample, next(entries)["steps"], image_size, cameras)
        except ValueError as error:
            raise DamagedShardError(tar_path, str(error)) from error
        yield sample


def read_episode_shard(
    tar_path: Path, sidecar: dict[str, Any], image_size: int | None = None, cameras: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Every episode of :func:`iter_episode_shard`, all checked before any is returned.

    Raises:
        DamagedShardError: the shard or one of its episodes does not match its sidecar.
    """
    return list(iter_episode_shard(tar_path, sidecar, image_size, cameras))


def check_episode(
    sample: dict[str, Any], steps: int | None = None, image_size: int | None = None, cameras: tuple[str, ...] | None = None,
) -> None:
    """Check an episode sample's fields, dtypes and row counts (T + 1 frames, T actions), and its
    frames' side against ``image_size`` if given. Frames of every camera it holds must have the
    front camera's shape; with ``cameras`` (the dataset's) it must hold exactly their frames.

    Raises:
        ValueError: naming the first problem.
    """
    required = layout.FIELD_FILES if cameras is None else layout.sample_fields(cameras)
    missing = [field for field in required if field not in sample]
    if missing:
        raise ValueError(f"{sample.get('__key__')}: missing fields {missing}")
    length = len(sample[schema.ACTION])
    if steps is not None and length != steps:
        raise ValueError(f"{sample['__key__']}: {length} steps, sidecar says {steps}")
    for field, dtype in layout.FIELD_DTYPES.items():
        array = sample[field]
        rows = length if field in layout.ACTION_ROWS else length + 1
        if not isinstance(array, np.ndarray) or array.dtype != dtype or len(array) != rows:
            shape = getattr(array, "shape", None)
            raise ValueError(f"{sample['__key__']}: field '{field}' is {getattr(array, 'dtype', type(array))} {shape}, expected {np.dtype(dtype)} with {rows} rows")
    image = sample[schema.IMAGE]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"{sample['__key__']}: frames have shape {image.shape}, expected [T+1, H, W, 3]")
    if image_size is not None and image.shape[1:3] != (image_size, image_size):
        raise ValueError(f"{sample['__key__']}: frames are {image.shape[2]}x{image.shape[1]} px, the dataset records {image_size} px")
    for field in layout.CAMERA_FIELD_FILES:
        if field not in sample:
            continue
        if cameras is not None and field not in required:
            raise ValueError(f"{sample['__key__']}: holds '{field}', a camera the dataset does not record")
        frames = sample[field]
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.shape != image.shape:
            shape = getattr(frames, "shape", None)
            raise ValueError(f"{sample['__key__']}: field '{field}' is {getattr(frames, 'dtype', type(frames))} {shape}, expected uint8 {image.shape} like '{schema.IMAGE}'")
    if not isinstance(sample[layout.META], dict):
        raise ValueError(f"{sample['__key__']}: meta is not a JSON object")


def check_reward_binding(tar_path: Path, reward_sidecar: dict[str, Any], data_sidecar: dict[str, Any]) -> None:
    """Check that a reward shard scores the data shard that is there: the ``data_sha256`` its
    sidecar records (reward sets written before it are let through) and its keys and step counts.

    Raises:
        DamagedShardError: it scores other bytes or other episodes (copied from another dataset,
            or the data shard was rewritten).
    """
    bound = reward_sidecar.get("data_sha256")
    if bound is not None and bound != data_sidecar["sha256"]:
        raise DamagedShardError(
            tar_path, "it scores another data shard than the one of its name (sha256 differs: copied from another "
            f"dataset, or the data shard was rewritten); `lamp-data relabel {tar_path.parent.parent.parent} --rewards "
            f"{tar_path.parent.name}` scores it again"
        )
    mine = [(entry["key"], entry["steps"]) for entry in reward_sidecar["samples"]]
    theirs = [(entry["key"], entry["steps"]) for entry in data_sidecar["samples"]]
    if mine != theirs:
        raise DamagedShardError(tar_path, "it scores other episodes than the data shard of its name holds")


def check_rewards(
    tar_path: Path, rewards: list[dict[str, Any]], data_sidecar: dict[str, Any], prompt_count: int | None,
    reward_sidecar: dict[str, Any] | None = None,
) -> None:
    """Check a reward shard's samples against the data shard's sidecar (keys and rows), and with
    ``reward_sidecar`` its binding to that data shard (:func:`check_reward_binding`).

    Raises:
        DamagedShardError: binding, keys, row counts or prompt columns do not match.
    """
    if reward_sidecar is not None:
        check_reward_binding(tar_path, reward_sidecar, data_sidecar)
    expected = {entry["key"]: entry["steps"] + 1 for entry in data_sidecar["samples"]}
    found = [sample["__key__"] for sample in rewards]
    if sorted(found) != sorted(expected):
        raise DamagedShardError(tar_path, f"reward keys do not match the data shard ({len(found)} vs {len(expected)} episodes)")
    for sample in rewards:
        values = sample.get("vlm_reward")
        rows = expected[sample["__key__"]]
        if not isinstance(values, np.ndarray) or values.ndim != 2 or len(values) != rows:
            raise DamagedShardError(tar_path, f"{sample['__key__']}: rewards {getattr(values, 'shape', None)}, expected {rows} rows")
        if prompt_count is not None and values.shape[1] != prompt_count:
            raise DamagedShardError(tar_path, f"{sample['__key__']}: {values.shape[1]} reward columns, the set has {prompt_count} prompts")


def _select_shards(dataset: Dataset, shards: list[str] | None) -> dict[str, dict[str, Any]]:
    """Sidecars of the committed shards, or of ``shards`` only (LampError naming unknown ones)."""
    sidecars = dataset.shard_sidecars()
    if shards is None:
        return sidecars
    unknown = [name for name in shards if name not in sidecars]
    if unknown:
        raise LampError(f"{dataset.path} has no committed shards named {', '.join(unknown)}")
    return {name: sidecars[name] for name in shards}


def _handle(error: LampError, on_error: str) -> None:
    if on_error == "raise":
        raise error
    warnings.warn(f"skipping: {error}", stacklevel=3)


def iter_episodes(
    dataset: str | Path | Dataset,
    *,
    reward_set: str | None = None,
    shards: list[str] | None = None,
    on_error: str = "raise",
) -> Iterator[dict[str, Any]]:
    """Yield every episode of the committed shards, shard by shard in name order.

    Args:
        dataset: A dataset folder or an open :class:`Dataset`.
        reward_set: A reward-set fingerprint; each episode then also holds
            ``schema.VLM_REWARD`` float16 ``[T+1, P]``, joined by key with counts checked.
        shards: Only these shard names (default: all committed shards).
        on_error: ``"raise"`` (default) stops with :class:`LampError` naming a damaged shard;
            ``"skip"`` warns and goes on with the next shard.

    Yields:
        Dicts with the ``schema`` step keys, ``"meta"`` (dict), ``"__key__"`` and ``"__shard__"``.
    """
    if on_error not in ON_ERROR:
        raise LampError(f"on_error must be one of {', '.join(ON_ERROR)}, got '{on_error}'")
    dataset = open_dataset(dataset)
    sidecars = _select_shards(dataset, shards)
    join = _RewardJoin(dataset, reward_set) if reward_set is not None else None
    for name, sidecar in sidecars.items():
        try:
            samples = _read_episodes(dataset, name, sidecar, join)
        except LampError as error:
            _handle(error, on_error)
            continue
        yield from samples


class _RewardJoin:
    """What joining one reward set needs: its prompt count and committed shard sidecars."""

    def __init__(self, dataset: Dataset, fingerprint: str):
        self.fingerprint = fingerprint
        self.prompt_count = len(dataset.reward_set_prompts(fingerprint))
        self.sidecars = dataset.reward_shard_sidecars(fingerprint)


def _read_episodes(dataset: Dataset, name: str, sidecar: dict[str, Any], join: _RewardJoin | None) -> list[dict[str, Any]]:
    """The checked episodes of data shard ``name``, with ``__shard__`` and, given ``join``, rewards."""
    samples = read_episode_shard(
        layout.shard_path(dataset.path, name), sidecar, image_size(dataset.info), layout.dataset_cameras(dataset.info)
    )
    rewards = None
    if join is not None:
        rewards = _read_rewards(dataset, join.fingerprint, name, sidecar, join.sidecars, join.prompt_count)
    for sample in samples:
        sample["__shard__"] = name
        if rewards is not None:
            sample[schema.VLM_REWARD] = rewards[sample["__key__"]]
    return samples


class EpisodeIndex:
    """The episodes of a dataset by position: ``len(episodes)``, ``episodes[i]``, ``episodes.find(key)``.

    Built by :func:`index_episodes` from the shard sidecars (no tar is read); positions follow
    :func:`iter_episodes` order and ``episodes[i]`` equals the ``i``-th episode it yields. Reading
    an episode reads and checks its whole shard (sha256 against the sidecar); the most recently
    read shards are kept decoded, so walking the episodes in order reads each shard once. Shards
    committed after the index was built are not seen.

    Attributes:
        dataset: The dataset.
        reward_set: The joined reward set's fingerprint, or None.
    """

    def __init__(
        self,
        dataset: Dataset,
        sidecars: dict[str, dict[str, Any]],
        join: _RewardJoin | None = None,
        cached_shards: int = 1,
    ):
        self.dataset = dataset
        self.reward_set = join.fingerprint if join is not None else None
        self._sidecars = sidecars
        self._join = join
        self._cached_shards = max(1, cached_shards)
        self._cache: collections.OrderedDict[str, list[dict[str, Any]]] = collections.OrderedDict()
        self._positions = [(name, row) for name, sidecar in sidecars.items() for row in range(len(sidecar["samples"]))]
        self._keys = [entry["key"] for sidecar in sidecars.values() for entry in sidecar["samples"]]
        self._by_key = {key: position for position, key in enumerate(self._keys)}

    def __repr__(self) -> str:
        return f"EpisodeIndex({str(self.dataset.path)!r}, episodes={len(self)}, reward_set={self.reward_set!r})"

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[index] for index in range(len(self)))

    @property
    def keys(self) -> list[str]:
        """Episode keys (``ep00000042``) by position."""
        return list(self._keys)

    def find(self, key: str) -> int:
        """Position of the episode with sample key ``key``.

        Raises:
            LampError: no such episode.
        """
        try:
            return self._by_key[key]
        except KeyError:
            raise LampError(f"{self.dataset.path} has no episode {key} ({len(self)} episodes)") from None

    def __getitem__(self, position):
        """The episode at ``position`` (negative counts from the end), as :func:`iter_episodes` yields it.

        Raises:
            IndexError: ``position`` is out of range.
            DamagedShardError: its shard or reward shard does not match its sidecar.
        """
        if isinstance(position, slice):
            return [self[index] for index in range(*position.indices(len(self)))]
        index = operator.index(position)
        if not -len(self) <= index < len(self):
            raise IndexError(f"episode {index} out of range: {self.dataset.path} has {len(self)} episodes")
        name, row = self._positions[index]
        samples = self._cache.pop(name, None)
        if samples is None:
            samples = _read_episodes(self.dataset, name, self._sidecars[name], self._join)
            while len(self._cache) >= self._cached_shards:
                self._cache.popitem(last=False)
        self._cache[name] = samples
        return copy.deepcopy(samples[row])


def index_episodes(
    dataset: str | Path | Dataset,
    *,
    reward_set: str | None = None,
    shards: list[str] | None = None,
    cached_shards: int = 1,
) -> EpisodeIndex:
    """An indexable view of a dataset's committed episodes (see :class:`EpisodeIndex`).

    Args:
        dataset: A dataset folder or an open :class:`Dataset`.
        reward_set: A reward-set fingerprint to join, as in :func:`iter_episodes`.
        shards: Only these shard names (default: all committed shards).
        cached_shards: Decoded shards kept in memory.

    Raises:
        LampError: not a dataset, an unknown shard name or reward set, or an unreadable sidecar.
    """
    dataset = open_dataset(dataset)
    sidecars = _select_shards(dataset, shards)
    join = _RewardJoin(dataset, reward_set) if reward_set is not None else None
    return EpisodeIndex(dataset, sidecars, join, cached_shards)


def iter_shard_rewards(
    dataset: str | Path | Dataset, fingerprint: str, *, missing: str = "raise",
) -> Iterator[tuple[str, dict[str, np.ndarray] | None]]:
    """The rewards of one reward set, data shard by data shard in :func:`iter_episodes` order:
    ``(shard name, {episode key: float16 [T+1, P]})``, each checked against the data shard's
    sidecar as :func:`iter_episodes` checks a joined reward set.

    Args:
        dataset: A dataset folder or an open :class:`Dataset`.
        fingerprint: The reward set.
        missing: ``"raise"`` for a data shard the set has no rewards for, or ``"skip"`` (yields
            ``(shard name, None)`` for it: an incomplete set, still being relabelled).

    Raises:
        LampError: no such reward set, or (``missing="raise"``) it has no committed shard for some data shard.
        DamagedShardError: a reward shard does not match its sidecar or the data shard.
    """
    dataset = open_dataset(dataset)
    join = _RewardJoin(dataset, fingerprint)
    for name, data_sidecar in dataset.shard_sidecars().items():
        if missing == "skip" and name not in join.sidecars:
            yield name, None
            continue
        yield name, _read_rewards(dataset, fingerprint, name, data_sidecar, join.sidecars, join.prompt_count)


def _read_rewards(
    dataset: Dataset,
    fingerprint: str,
    name: str,
    data_sidecar: dict[str, Any],
    reward_sidecars: dict[str, dict[str, Any]],
    prompt_count: int,
) -> dict[str, np.ndarray]:
    reward_path = layout.reward_shard_path(dataset.path, fingerprint, name)
    if name not in reward_sidecars:
        raise LampError(f"reward set {fingerprint} has no committed shard for data shard {name} (run relabel or collect to fill it)")
    check_reward_binding(reward_path, reward_sidecars[name], data_sidecar)
    rewards = read_shard_samples(reward_path, reward_sidecars[name], kind="rewards", prompt_count=prompt_count)
    check_rewards(reward_path, rewards, data_sidecar, prompt_count)
    return {sample["__key__"]: sample["vlm_reward"] for sample in rewards}
