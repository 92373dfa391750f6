"""Export a dataset into another robot-learning format: ``export_dataset(DIR, OUT, "lerobot")``.

Every episode goes out with its frames (every camera), proprio state, actions, the task's reward,
success flags, its task and instruction, and the chosen VLM reward columns: for each chosen
reward set, its scores against chosen prompts, or against each episode's own instruction. The
export is written into a hidden temporary file or folder beside ``OUT`` and renamed into place
when complete, so an interrupted export leaves nothing that looks finished.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_folder, atomic_path
from lamp_data.errors import LampError
from lamp_data.formats.base import (
    FORMATS,
    OWN_INSTRUCTION,
    ExchangeEpisode,
    ExchangeHeader,
    ExportOptions,
    RewardColumn,
    camera_name,
    default_dataset_id,
)
from lamp_data.progress import progress_bar
from lamp_data.store import layout
from lamp_data.store.reader import Dataset, iter_episodes, iter_shard_rewards, open_dataset


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_dataset` wrote."""

    out: Path
    """The exported file or folder."""
    format_name: str
    """The format's name."""
    episodes: int
    """Episodes written."""
    steps: int
    """Steps (actions) written."""
    columns: tuple[str, ...]
    """Labels of the VLM reward columns written."""
    checks: tuple[str, ...]
    """How the export was read back after writing (each a sentence)."""
    seconds: float
    """Wall time."""


def reward_columns(
    dataset: Dataset, reward_sets: Sequence[str], prompts: Sequence[str], own_instruction: bool, all_prompts: bool,
) -> tuple[list[RewardColumn], dict[str, dict[str, Any]]]:
    """The reward columns an export writes, and what it records of each reward set they come from.

    For each reward set: a column per prompt of ``prompts`` (every prompt of the set with
    ``all_prompts``), and one scoring each episode against its own instruction with
    ``own_instruction``, which is also what a reward set gets when neither is asked for.

    Raises:
        LampError: prompts without a reward set, an unknown reward set or prompt.
    """
    if (prompts or own_instruction or all_prompts) and not reward_sets:
        raise LampError("--prompt, --own-instruction and --all-prompts choose columns of a reward set: give --reward-set too")
    columns: list[RewardColumn] = []
    sets: dict[str, dict[str, Any]] = {}
    for fingerprint in dict.fromkeys(reward_sets):
        available = dataset.reward_set_prompts(fingerprint)
        chosen = list(available) if all_prompts else list(dict.fromkeys(prompts))
        missing = [prompt for prompt in chosen if prompt not in available]
        if missing:
            raise LampError(
                f"reward set {fingerprint} has no prompt {', '.join(repr(p) for p in missing)} ({len(available)} prompts; "
                "lamp-data info lists the sets)"
            )
        own = own_instruction or not chosen
        columns += [RewardColumn(fingerprint, prompt) for prompt in chosen]
        if own:
            columns.append(RewardColumn(fingerprint, OWN_INSTRUCTION))
        info = {key: value for key, value in dataset.reward_set_info(fingerprint).items() if key != layout.CHECKSUM}
        sets[fingerprint] = {"info": info, **({"prompts": list(available)} if chosen == list(available) else {})}
    return columns, sets


def _exchange_episodes(
    dataset: Dataset, columns: list[RewardColumn], cameras: tuple[str, ...],
) -> Iterator[ExchangeEpisode]:
    """The dataset's episodes as exchange records, with their reward columns."""
    fingerprints = list(dict.fromkeys(column.reward_set for column in columns))
    prompt_columns = {fp: {p: i for i, p in enumerate(dataset.reward_set_prompts(fp))} for fp in fingerprints}
    shard_rewards = {fp: iter_shard_rewards(dataset, fp) for fp in fingerprints}
    current: str | None = None
    rewards: dict[str, dict[str, np.ndarray]] = {}
    for episode in iter_episodes(dataset):
        name = episode["__shard__"]
        if name != current:
            current = name
            rewards = {}
            for fingerprint, shards in shard_rewards.items():
                shard, values = next(shards)
                assert shard == name, (shard, name)
                rewards[fingerprint] = values
        key, meta = episode["__key__"], episode[layout.META]
        vlm = None
        if columns:
            values = []
            for column in columns:
                prompt = column.prompt if column.prompt is not None else meta.get("instruction")
                index = prompt_columns[column.reward_set].get(prompt)
                if index is None:
                    raise LampError(
                        f"episode {key}'s instruction {prompt!r} is not a prompt of reward set {column.reward_set}; "
                        "choose prompts with --prompt instead of --own-instruction"
                    )
                values.append(rewards[column.reward_set][key][:, index])
            vlm = np.stack(values, axis=1).astype(np.float32)
        yield ExchangeEpisode(
            frames={camera: episode[schema.CAMERA_KEYS[camera]] for camera in cameras},
            state=episode[schema.STATE], action=episode[schema.ACTION], reward=episode[schema.REWARD],
            success=episode[schema.SUCCESS], terminal=bool(episode[schema.IS_TERMINAL][-1]),
            meta=meta, key=key, shard=name, vlm_reward=vlm,
        )


def check_new_output(out: Path, kind: str) -> None:
    """LampError unless ``out`` is free for a new ``kind`` (``"file"``: no such path; ``"folder"``:
    none or an empty folder), and its nearest existing folder is one."""
    if out.exists():
        if kind == "file" or not out.is_dir():
            raise LampError(f"{out} exists; give a new --out (nothing is overwritten)")
        if any(out.iterdir()):
            raise LampError(f"{out} is a non-empty folder; give a new or empty --out (nothing is overwritten)")
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise LampError(f"cannot create {out}: {ancestor} is a file")


def export_dataset(
    dataset: str | Path,
    out: str | Path,
    format_name: str,
    *,
    reward_sets: Sequence[str] = (),
    prompts: Sequence[str] = (),
    own_instruction: bool = False,
    all_prompts: bool = False,
    options: ExportOptions = ExportOptions(),
    progress: bool = True,
) -> ExportSummary:
    """Write a dataset's episodes into ``out`` in another format.

    Args:
        dataset: A dataset folder.
        out: The export: a new folder (``minari``, ``lerobot``) or a new ``.hdf5`` file (``hdf5``).
        format_name: A name of :data:`lamp_data.formats.FORMATS`.
        reward_sets: Reward sets (fingerprints) whose scores go out as reward columns.
        prompts: The prompts of those sets to write a column for.
        own_instruction: Also a column scoring each episode against its own instruction (the
            default when no prompt is chosen).
        all_prompts: A column for every prompt of each set (an import then rebuilds the set whole).
        options: Format settings (frames per second, video or images, ...).
        progress: Show a progress bar.

    Raises:
        LampError: unknown format (or its extra missing), unknown reward set or prompt, an
            ``out`` that exists, or settings the format cannot write; nothing is written then.
    """
    started = time.perf_counter()
    source = open_dataset(dataset)
    backend = FORMATS.create(format_name)
    out = Path(out)
    if backend.output == "file" and out.suffix.lower() not in backend.suffixes:
        raise LampError(f"a {format_name} export is one file ending in {' or '.join(backend.suffixes)}, got '{out.name}'")
    check_new_output(out, backend.output)
    if options.dataset_id is None:
        options = replace(options, dataset_id=default_dataset_id(out.resolve().name))
    columns, sets = reward_columns(source, reward_sets, prompts, own_instruction, all_prompts)
    cameras = tuple(camera_name(key) for key in schema.image_keys(layout.dataset_cameras(source.info)))
    info = {key: value for key, value in source.info.items() if key != layout.CHECKSUM}
    header = ExchangeHeader(
        name=source.path.resolve().name, cameras=cameras, fps=options.fps, reward_columns=tuple(columns),
        reward_sets=sets, dataset_info=info,
    )
    sidecars = source.shard_sidecars()
    count = sum(sidecar["nsamples"] for sidecar in sidecars.values())
    steps = sum(sidecar["nsteps"] for sidecar in sidecars.values())
    if not count:
        raise LampError(f"{source.path} holds no episodes yet")
    writing = atomic_path(out) if backend.output == "file" else atomic_folder(out)
    with progress_bar(f"export {format_name}", count, unit="episodes", enabled=progress) as bar, writing as temporary:
        result = backend.write(temporary, header, _exchange_episodes(source, columns, cameras), count, options, bar.advance)
    return ExportSummary(
        out=out, format_name=format_name, episodes=count, steps=steps, columns=tuple(column.label for column in columns),
        checks=tuple(result.get("checks", ())), seconds=time.perf_counter() - started,
    )
