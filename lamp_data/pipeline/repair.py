"""Bringing a damaged dataset back: ``lamp-data verify --repair`` (:func:`repair_dataset`).

Every damage :func:`~lamp_data.store.verify_dataset` names has a way back, and no file is ever
deleted: what can be rebuilt is rebuilt, what cannot is moved to ``quarantine/`` (mirroring its
place) and listed, and what a later command can make again is said as that command.

* ``meta/info.json`` without its checksum, or whose fields no longer match it: every intact data
  shard is checked against it (env, dataset seed and each episode's env seed, run and policy,
  episode length, image size, cameras); if they all agree it is sealed again, else nothing is
  changed and it has to come back from a copy (as an ``info.json`` that is not JSON has to).
* A reward set's ``info.json`` without or against its checksum: sealed again if its prompts,
  prompt hash and fingerprint agree, else the whole set is set aside.
* A sidecar that does not parse, or whose tar is gone: set aside; a tar left without a sidecar
  gets it re-derived when it decodes completely (:func:`~lamp_data.store.writer.recover_orphans`),
  else is set aside.
* A data shard whose bytes, members or episodes do not match its sidecar, or that repeats
  another shard's episode: set aside with the reward shards of its name; ``lamp-data collect``
  records its episodes again, byte for byte (an agent's episodes cannot be).
* A reward shard that is damaged, scores another data shard, or whose data shard is gone: set
  aside; ``lamp-data relabel DATASET --rewards FINGERPRINT`` scores what is missing.
"""

from __future__ import annotations

import math
import shlex
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamp_data import schema
from lamp_data.atomic import atomic_write_json
from lamp_data.errors import DamagedDataError, LampError
from lamp_data.pipeline.collect import episode_seeds
from lamp_data.provenance import stable_hash
from lamp_data.store import layout
from lamp_data.store.card import write_dataset_card
from lamp_data.store.reader import (
    DamagedShardError,
    Dataset,
    check_reward_binding,
    check_rewards,
    image_size,
    check_shard_file,
    iter_episode_shard,
    read_shard_samples,
)
from lamp_data.store.writer import recover_orphans, set_aside, writer_lock


@dataclass
class RepairReport:
    """What :func:`repair_dataset` did, as dataset-relative paths."""

    path: Path
    """The dataset folder."""
    sealed: list[str] = field(default_factory=list)
    """``info.json`` files checked against the shards and sealed again."""
    rederived: list[str] = field(default_factory=list)
    """Tars without a sidecar whose sidecar was re-derived."""
    removed: list[str] = field(default_factory=list)
    """Temporary files of interrupted writes, removed."""
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)
    """(file or folder, where it went under ``quarantine/``, why)."""
    commands: list[str] = field(default_factory=list)
    """Commands that make again what was set aside, in the order to run them."""
    lost: list[str] = field(default_factory=list)
    """What was set aside that no command makes again (an agent's episodes, a reward set whose
    model is not recorded)."""

    def summary(self) -> str:
        """One line: what was done, and what to run next."""
        done = [f"{len(items)} {label}" for items, label in (
            (self.sealed, "info files sealed"), (self.rederived, "sidecars re-derived"),
            (self.quarantined, "files set aside in quarantine/"), (self.removed, "temporary files removed")) if items]
        line = f"repaired {self.path}: " + (", ".join(done) if done else "nothing to repair")
        if self.commands:
            line += "; then run " + " && ".join(self.commands)
        return line


def repair_dataset(path: str | Path) -> RepairReport:
    """Repair the dataset at ``path`` as the module docstring says, holding its writer lock.

    Raises:
        LampError: ``path`` is not a dataset, or another process writes to it.
        DamagedDataError: its ``meta/info.json`` is not JSON, or disagrees with its shards
            (nothing is changed then).
    """
    folder = Path(path)
    info_path = layout.info_path(folder)
    if not folder.is_dir() or not info_path.is_file():
        raise LampError(f"{folder} is not a dataset (no {layout.META_DIR}/{layout.INFO_FILE})")
    with writer_lock(folder):
        info = layout.read_json(info_path)
        if not isinstance(info, dict):
            raise DamagedDataError(f"damaged {info_path}: it does not hold a JSON object; restore it from a copy")
        if info.get("format_version") != schema.DATASET_FORMAT_VERSION:
            raise LampError(f"{folder} has dataset format_version {info.get('format_version')!r}; this version of lamp "
                            f"reads {schema.DATASET_FORMAT_VERSION}")
        dataset = Dataset(folder, info)
        report = RepairReport(folder)
        seal = layout.info_seal(info)
        if seal != "sealed":
            _check_info_against_shards(dataset, info_path, seal)
            atomic_write_json(info_path, layout.seal_info(info))
            dataset.info = layout.seal_info(info)
            report.sealed.append(_relative(dataset, info_path))
        runs = _set_aside_broken_sidecars(dataset, report)
        recovery = recover_orphans(dataset)
        report.removed += recovery.removed
        report.rederived += recovery.rederived
        report.quarantined += recovery.quarantined
        shard_episodes = (dataset.info.get("collection") or {}).get("shard_episodes") or 1
        for orphan, target, _ in recovery.quarantined:  # a tar that lost its sidecar and does not decode
            run, _, first = Path(orphan).stem.rpartition("-")
            if Path(orphan).parent.name == layout.SHARDS_DIR and run and first.isdigit():
                runs.setdefault(run, []).extend([*range(int(first), int(first) + shard_episodes), *_tar_episodes(folder / target)])
        for run, episodes in _set_aside_damaged_data_shards(dataset, report).items():
            runs.setdefault(run, []).extend(episodes)
        reward_sets, relabel_set_aside = _repair_reward_sets(dataset, report, runs)
        report.commands += _collect_commands(dataset, runs, report)
        report.commands += [f"lamp-data relabel {shlex.quote(str(folder))} --rewards {fingerprint}" for fingerprint in reward_sets
                            if runs or _has_missing_shards(dataset, fingerprint)]
        report.commands += relabel_set_aside
        write_dataset_card(dataset.path)
    return report


def _relative(dataset: Dataset, path: Path) -> str:
    return str(path.relative_to(dataset.path))


def _set_aside_shard(dataset: Dataset, tar_path: Path, reason: str, report: RepairReport) -> None:
    """Set aside a committed shard: its sidecar first (so it is no longer committed), then its tar."""
    for file in (layout.sidecar_path(tar_path), tar_path):
        if file.exists():
            report.quarantined.append((_relative(dataset, file), _relative(dataset, set_aside(dataset, file)), reason))


def _check_info_against_shards(dataset: Dataset, info_path: Path, seal: str) -> None:
    """DamagedDataError unless every intact data shard agrees with ``meta/info.json``."""
    info = dataset.info
    collection = info.get("collection") if isinstance(info.get("collection"), dict) else {}
    env_name = (info.get("env") or {}).get("name") if isinstance(info.get("env"), dict) else None
    seed = collection.get("seed")
    runs = info.get("runs") if isinstance(info.get("runs"), dict) else {}
    length, repeat = collection.get("episode_length"), collection.get("action_repeat", 1)
    decisions = math.ceil(length / repeat) if isinstance(length, int) and isinstance(repeat, int) and repeat > 0 else None
    why = "has no checksum" if seal == "missing" else "does not match its checksum"

    def disagree(reason: str) -> DamagedDataError:
        return DamagedDataError(f"damaged {info_path}: it {why}, and {reason}; nothing was changed: restore it from a copy")

    if not isinstance(seed, int) or env_name is None:
        raise disagree("it records no env name or seed")
    size, cameras = image_size(info), layout.dataset_cameras(info)
    frame_fields = set(layout.sample_fields(cameras)) & ({schema.IMAGE} | set(layout.CAMERA_FIELD_FILES))
    for sidecar_path in layout.committed_sidecars(dataset.shards_dir):
        tar_path = sidecar_path.with_suffix(".tar")
        try:
            sidecar = layout.read_sidecar(sidecar_path)
            check_shard_file(tar_path, sidecar)
            episodes = list(iter_episode_shard(tar_path, sidecar))  # decoded without what info.json says
        except LampError:
            continue  # a damaged shard says nothing about info.json; it is set aside below
        for episode in episodes:
            meta, key = episode[layout.META], episode["__key__"]
            record = runs.get(meta.get("run"))
            frames = episode[schema.IMAGE].shape[1:3]
            if size is not None and frames != (size, size):
                raise disagree(f"{tar_path.name} holds {key} with frames of {frames[1]}x{frames[0]} px, not {size}")
            if {field for field in episode if field in frame_fields or field in layout.CAMERA_FIELD_FILES} != frame_fields:
                raise disagree(f"{tar_path.name} holds {key} with other cameras than {', '.join(cameras)}")
            if meta.get("env") != env_name or meta.get("dataset_seed") != seed:
                raise disagree(f"{tar_path.name} holds {key} of env {meta.get('env')}, seed {meta.get('dataset_seed')}")
            if meta.get("seed") != episode_seeds(seed, layout.episode_index(key))[0]:
                raise disagree(f"{tar_path.name} holds {key}, whose env seed is not that of dataset seed {seed}")
            if not isinstance(record, dict):
                raise disagree(f"{tar_path.name} holds {key} of run {meta.get('run')!r}, which it does not record")
            if not record.get("custom_policy") and (meta.get("policy"), meta.get("noise")) != (record.get("policy"), record.get("noise")):
                raise disagree(f"{tar_path.name} holds {key} of policy {meta.get('policy')}, not {record.get('policy')}")
            if decisions is not None and len(episode[schema.ACTION]) > decisions:
                raise disagree(f"{tar_path.name} holds {key} of {len(episode[schema.ACTION])} steps, more than its episode length allows")


def _set_aside_broken_sidecars(dataset: Dataset, report: RepairReport) -> dict[str, list[int]]:
    """Set aside sidecars that do not parse (their tar then gets one re-derived, or is set aside)
    and sidecars whose tar is gone; run -> the episodes of data shards whose tar is gone."""
    runs: dict[str, list[int]] = {}
    folders = [dataset.shards_dir]
    if dataset.rewards_dir.is_dir():
        folders += sorted(path for path in dataset.rewards_dir.iterdir() if path.is_dir())
    for folder in folders:
        for sidecar_path in sorted(folder.glob("*.json")):
            if sidecar_path.name in (layout.INFO_FILE, layout.PROMPTS_FILE) or sidecar_path.name.startswith("."):
                continue
            if not sidecar_path.with_suffix(".tar").exists():
                reason = "sidecar without its tar (shard missing or renamed)"
                if folder == dataset.shards_dir:
                    try:
                        sidecar = layout.read_sidecar(sidecar_path)
                        run = str(sidecar.get("run") or sidecar_path.stem.rpartition("-")[0])
                        runs.setdefault(run, []).extend(layout.episode_index(entry["key"]) for entry in sidecar["samples"])
                    except LampError:
                        pass  # which episodes it held is not known; collect records whatever is missing
            else:
                try:
                    layout.read_sidecar(sidecar_path)
                    continue
                except DamagedDataError as error:
                    reason = str(error).split("; `lamp-data")[0]
            report.quarantined.append((_relative(dataset, sidecar_path), _relative(dataset, set_aside(dataset, sidecar_path)), reason))
    return runs


def _set_aside_damaged_data_shards(dataset: Dataset, report: RepairReport) -> dict[str, list[int]]:
    """Set aside every data shard that verify would call damaged (and one repeating an episode of
    a shard before it), with the reward shards of its name; run -> the episodes set aside."""
    runs: dict[str, list[int]] = {}
    owners: set[str] = set()
    for name, sidecar in dataset.shard_sidecars().items():
        tar_path = layout.shard_path(dataset.path, name)
        keys: list[str] = []
        try:
            for episode in iter_episode_shard(tar_path, sidecar, image_size(dataset.info), layout.dataset_cameras(dataset.info)):
                keys.append(episode["__key__"])
            repeated = sorted(owners & set(keys))
            if repeated:
                raise DamagedShardError(tar_path, f"episode {repeated[0]} is also in a shard before it")
        except DamagedShardError as error:
            _set_aside_shard(dataset, tar_path, error.reason, report)
            reward_dirs = sorted(path for path in dataset.rewards_dir.iterdir() if path.is_dir()) if dataset.rewards_dir.is_dir() else []
            for fingerprint_dir in reward_dirs:
                reward_tar = fingerprint_dir / f"{name}.tar"
                if reward_tar.exists():
                    _set_aside_shard(dataset, reward_tar, f"its data shard {name} was set aside", report)
            run = sidecar.get("run") or name.rpartition("-")[0]
            runs.setdefault(str(run), []).extend(layout.episode_index(entry["key"]) for entry in sidecar["samples"])
            continue
        owners.update(keys)
    return runs


def _repair_reward_sets(dataset: Dataset, report: RepairReport, runs: dict[str, list[int]]) -> tuple[list[str], list[str]]:
    """Seal again or set aside each reward set's ``info.json``, set aside its damaged shards (the
    episodes of those whose data shard is gone go into ``runs``); the fingerprints of the sets
    still in place, and the relabel commands that make the sets set aside again."""
    if not dataset.rewards_dir.is_dir():
        return [], []
    kept, commands = [], []
    data_sidecars = dataset.shard_sidecars()
    for folder in sorted(path for path in dataset.rewards_dir.iterdir() if path.is_dir()):
        fingerprint = folder.name
        info_path = layout.reward_set_info_path(dataset.path, fingerprint)
        if not info_path.is_file():
            continue
        problem, info, prompts = _reward_set_record(dataset, fingerprint)
        if problem is not None:
            target = set_aside(dataset, folder)
            report.quarantined.append((_relative(dataset, folder), _relative(dataset, target), problem))
            spec = (info or {}).get("provenance", {}).get("model_spec") if isinstance((info or {}).get("provenance"), dict) else None
            if spec and prompts is not None:
                commands.append(f"lamp-data relabel {shlex.quote(str(dataset.path))} --vlm {shlex.quote(spec)} "
                                       f"--prompts {shlex.quote(str(target / layout.PROMPTS_FILE))}")
            else:
                report.lost.append(f"reward set {fingerprint}: relabel with the model that made it")
            continue
        if layout.info_seal(info) != "sealed":
            atomic_write_json(info_path, layout.seal_info(info))
            report.sealed.append(_relative(dataset, info_path))
        kept.append(fingerprint)
        for sidecar_path in layout.committed_sidecars(folder):
            tar_path = sidecar_path.with_suffix(".tar")
            try:
                sidecar = layout.read_sidecar(sidecar_path)
                if sidecar_path.stem not in data_sidecars:
                    run = sidecar_path.stem.rpartition("-")[0]
                    runs.setdefault(run, []).extend(layout.episode_index(entry["key"]) for entry in sidecar["samples"])
                    raise DamagedShardError(tar_path, "no committed data shard of its name")
                check_reward_binding(tar_path, sidecar, data_sidecars[sidecar_path.stem])
                rewards = read_shard_samples(tar_path, sidecar, kind="rewards", prompt_count=len(prompts))
                check_rewards(tar_path, rewards, data_sidecars[sidecar_path.stem], len(prompts), sidecar)
            except DamagedShardError as error:
                _set_aside_shard(dataset, tar_path, error.reason.split("; `lamp-data")[0], report)
    return kept, commands


def _reward_set_record(dataset: Dataset, fingerprint: str) -> tuple[str | None, dict[str, Any] | None, list[str] | None]:
    """(why the set cannot stay, or None; its info; its prompts) for the reward set ``fingerprint``."""
    info_path = layout.reward_set_info_path(dataset.path, fingerprint)
    try:
        info = layout.read_json(info_path)
    except LampError as error:
        return str(error), None, None
    if not isinstance(info, dict) or info.get("format_version") != schema.REWARD_FORMAT_VERSION:
        return f"{layout.INFO_FILE} is not a reward set record this lamp reads", None, None
    try:
        prompts = layout.read_prompts(layout.reward_set_prompts_path(dataset.path, fingerprint))
    except LampError as error:
        return str(error), info, None
    if layout.info_seal(info) != "sealed":
        recorded = (info.get("fingerprint"), info.get("prompts_hash"), info.get("prompt_count"))
        if recorded != (fingerprint, stable_hash(prompts), len(prompts)):
            return f"{layout.INFO_FILE} does not match its checksum nor its prompts and folder name", info, prompts
    return None, info, prompts


def _tar_episodes(tar_path: Path) -> list[int]:
    """The episode indices a tar's member headers name, as far as they can be read."""
    indices = []
    try:
        with tarfile.open(tar_path, mode="r:") as archive:
            for member in archive:
                key = member.name.partition(".")[0]
                if key.startswith("ep") and key[2:].isdigit():
                    indices.append(int(key[2:]))
    except (OSError, tarfile.TarError, EOFError):
        pass
    return indices


def _collect_commands(dataset: Dataset, runs: dict[str, list[int]], report: RepairReport) -> list[str]:
    """The collect commands that record the set-aside episodes again, lowest episodes first, one
    per run that a built-in policy recorded (each records only episodes below its ``--episodes``
    that no shard holds, under that run's own policy; never more than the dataset records)."""
    recorded = dataset.info.get("runs") or {}
    total = (dataset.info.get("collection") or {}).get("episodes")
    commands = []
    for run, episodes in sorted(runs.items(), key=lambda item: min(item[1])):
        if isinstance(total, int):
            episodes = [index for index in episodes if index < total]
        if not episodes:
            continue
        if (recorded.get(run) or {}).get("custom_policy") or run not in recorded:
            report.lost.append(f"episodes {min(episodes)}-{max(episodes)} of run {run} (an agent's; they cannot be recorded again)")
            continue
        commands.append(f"lamp-data collect --out {shlex.quote(str(dataset.path))} --run {shlex.quote(run)} --episodes {max(episodes) + 1}")
    return commands


def _has_missing_shards(dataset: Dataset, fingerprint: str) -> bool:
    """True if some committed data shard has no committed reward shard in the set."""
    present = set(dataset.reward_shard_sidecars(fingerprint))
    return any(name not in present for name in dataset.shard_sidecars())

