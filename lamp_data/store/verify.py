"""Checking a whole dataset: every shard against its sidecar, every reward set against its shards,
the checksums of the info files, and what would become of tars found without a sidecar."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lamp_data.errors import LampError
import lamp_data.store.layout as layout
from lamp_data.store.reader import (
    DamagedShardError,
    Dataset,
    check_reward_binding,
    check_rewards,
    check_shard_file,
    image_size,
    open_dataset,
    iter_episode_shard,
    read_shard_samples,
)
from lamp_data.store.writer import recover_orphans, writer_active


@dataclass
class VerifyReport:
    """What :func:`verify_dataset` found."""

    path: Path
    """The dataset folder."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) for every damaged or inconsistent file."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) for what readers ignore or accept with a note: temporary files of
    interrupted writes, quarantined tars, files written before checksums."""
    shards: int = 0
    """Data shards checked."""
    episodes: int = 0
    """Episodes checked."""
    reward_shards: int = 0
    """Reward shards checked."""

    @property
    def ok(self) -> bool:
        """True if no problem was found."""
        return not self.problems


def verify_dataset(path: str | Path) -> VerifyReport:
    """Check every committed shard (size, sha256, sample keys, counts, decodable fields with the
    right dtypes and row counts, the frames of every camera the dataset records), episode keys
    unique across shards, and every reward set (info, prompts, each reward shard against its
    sidecar and its data shard).

    Raises:
        LampError: ``path`` is not a dataset (bad input rather than damaged data).
    """
    dataset = open_dataset(path)
    report = VerifyReport(dataset.path)
    cameras = layout.dataset_cameras(dataset.info)

    def relative(file: Path) -> str:
        return str(file.relative_to(dataset.path))

    folders = [dataset.shards_dir] + [dataset.reward_dir(fp) for fp in dataset.reward_sets()]
    for folder in folders:
        for sidecar_path in folder.glob("*.json"):
            if sidecar_path.name in (layout.INFO_FILE, layout.PROMPTS_FILE) or sidecar_path.name.startswith("."):
                continue
            if not sidecar_path.with_suffix(".tar").exists():
                report.problems.append((relative(sidecar_path), "sidecar without its tar (shard missing or renamed)"))
    recovery = recover_orphans(dataset, dry_run=True)
    for leftover in recovery.removed:
        report.warnings.append((leftover, "temporary file of an interrupted write (ignored by readers, removed by collect)"))
    orphans = [(orphan, None, None) for orphan in recovery.rederived] + list(recovery.quarantined)
    if orphans and writer_active(dataset.path):  # a writer commits a tar, then its sidecar: those are being written
        for orphan, _, _ in orphans:
            if not layout.sidecar_path(dataset.path / orphan).exists():
                report.warnings.append((orphan, "being written (a collect or relabel holds the dataset's lock; its sidecar comes last)"))
        orphans = []
    for orphan, target, reason in orphans:
        if layout.sidecar_path(dataset.path / orphan).exists():
            continue  # committed while this check ran
        if target is None:
            report.problems.append((orphan, "tar without its sidecar; it decodes completely, so `lamp-data verify --repair` "
                                            "(or the next collect) re-derives its sidecar"))
        else:
            report.problems.append((orphan, f"tar without its sidecar that does not decode ({reason}); `lamp-data verify --repair` "
                                            f"(or the next collect) moves it to {target}"))
    quarantine = layout.quarantine_dir(dataset.path)
    if quarantine.is_dir():
        for kept in sorted(p for p in quarantine.rglob("*") if p.is_file()):
            report.warnings.append((relative(kept), "set aside by a repair: not part of the dataset, kept for inspection"))

    data_sidecars: dict[str, dict] = {}
    owners: dict[str, str] = {}
    for sidecar_path in layout.committed_sidecars(dataset.shards_dir):
        tar_path = sidecar_path.with_suffix(".tar")
        report.shards += 1
        keys: list[str] = []
        try:
            sidecar = layout.read_sidecar(sidecar_path)
            steps = 0
            for sample in iter_episode_shard(tar_path, sidecar, image_size(dataset.info), cameras):  # one episode in memory at a time
                keys.append(sample["__key__"])
                steps += len(sample["action"])
            if sidecar["nsamples"] != len(keys) or sidecar["nsteps"] != steps:
                raise DamagedShardError(tar_path, "sample or step count differs from its sidecar")
        except LampError as error:
            report.problems.append((relative(tar_path), str(error)))
            continue
        data_sidecars[sidecar_path.stem] = sidecar
        report.episodes += len(keys)
        for key in keys:
            if key in owners:
                report.problems.append((relative(tar_path), f"episode {key} is also in shard {owners[key]}"))
            owners[key] = sidecar_path.stem

    for fingerprint in dataset.reward_sets():
        folder = dataset.reward_dir(fingerprint)
        try:
            prompt_count = len(dataset.reward_set_prompts(fingerprint))
        except LampError as error:
            report.problems.append((relative(layout.reward_set_info_path(dataset.path, fingerprint)), str(error)))
            continue
        for sidecar_path in layout.committed_sidecars(folder):
            tar_path = sidecar_path.with_suffix(".tar")
            report.reward_shards += 1
            if sidecar_path.stem not in data_sidecars:
                report.problems.append((relative(tar_path), "reward shard without an intact data shard of that name"))
                continue
            try:
                sidecar = layout.read_sidecar(sidecar_path)
                rewards = read_shard_samples(tar_path, sidecar, kind="rewards", prompt_count=prompt_count)
                check_rewards(tar_path, rewards, data_sidecars[sidecar_path.stem], prompt_count, sidecar)
            except LampError as error:
                report.problems.append((relative(tar_path), str(error)))
                continue
            if "data_sha256" not in sidecar:
                report.warnings.append((relative(sidecar_path), "does not record the sha256 of the data shard it scores "
                                                                "(written by an older lamp; relabel to bind it)"))
    return report


def damaged_shards(dataset: Dataset, reward_set: str | None = None) -> dict[str, str]:
    """The committed data shards whose bytes differ from their sidecar (size, sha256), and with
    ``reward_set`` those whose reward shard is damaged (:func:`damaged_reward_shards`): shard
    name -> why. Nothing is decoded, so this costs one read of every shard.

    Raises:
        DamagedDataError: a sidecar is unreadable (``lamp-data verify --repair`` re-derives it).
        LampError: no such reward set.
    """
    damaged: dict[str, str] = {}
    for name, sidecar in dataset.shard_sidecars().items():
        try:
            check_shard_file(layout.shard_path(dataset.path, name), sidecar)
        except DamagedShardError as error:
            damaged[name] = str(error)
    if reward_set is not None:
        damaged.update({name: reason for name, reason in damaged_reward_shards(dataset, reward_set).items() if name not in damaged})
    return damaged


def damaged_reward_shards(dataset: Dataset, reward_set: str) -> dict[str, str]:
    """The committed reward shards of ``reward_set`` whose bytes differ from their sidecar, or
    that score another data shard than the one of their name (or one the dataset lacks): data
    shard name -> why. The data shards themselves are not read.

    Raises:
        DamagedDataError: a sidecar is unreadable.
    """
    data_sidecars = dataset.shard_sidecars()
    damaged: dict[str, str] = {}
    for name, sidecar in dataset.reward_shard_sidecars(reward_set).items():
        tar_path = layout.reward_shard_path(dataset.path, reward_set, name)
        if name not in data_sidecars:
            damaged[name] = f"damaged shard {tar_path}: no committed data shard of its name"
            continue
        try:
            check_reward_binding(tar_path, sidecar, data_sidecars[name])
            check_shard_file(tar_path, sidecar)
        except DamagedShardError as error:
            damaged[name] = str(error)
    return damaged
