"""Minari datasets (Farama's offline-RL standard), written and read through the ``minari`` package.

An export is a Minari dataset folder (``OUT/data/metadata.json`` and ``OUT/data/main_data.hdf5``,
Minari's HDF5 backend, frames stored raw: ``jpeg_encoding=False``). ``minari.MinariDataset(OUT /
"data")`` opens it, and so does ``minari.load_dataset(ID)`` once ``OUT`` sits at
``$MINARI_DATASETS_PATH/<ID>`` (the id recorded is ``lamp/<OUT's name>-v0`` unless given). Each
episode holds:

- ``observations``: a dict like the env's own, ``image`` (front camera) and ``image_wrist`` uint8
  ``[T+1, H, W, 3]``, ``state`` float32 ``[T+1, S]``;
- ``actions`` float32 ``[T, A]``; ``rewards`` float32 ``[T]`` (the task's reward);
  ``terminations`` / ``truncations`` ``[T]``;
- ``infos``: ``success`` bool ``[T+1]`` and, with reward columns, ``vlm_reward`` float32 ``[T+1, K]``
  (row t scores frame t, so row t + 1 is the reward of step t; the dataset's metadata lists the
  columns under ``lamp.reward_columns``);
- episode metadata ``seed`` and ``lamp`` (key, shard, task, instruction... as JSON).

Reading takes any Minari dataset whose observations hold an RGB image (a ``uint8`` ``[H, W, 3]``
box, alone or in a dict); the other boxes of a dict, flattened in key order, become the state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage

from lamp_data import schema
from lamp_data.errors import LampError
from lamp_data.formats.base import (
    ExchangeEpisode,
    ExchangeHeader,
    ExportOptions,
    ImportOptions,
    ImportSource,
    default_dataset_id,
    episode_record,
    read_episode_record,
)

DATA_DIR = "data"
"""Minari keeps a dataset's files in ``<dataset folder>/data``."""
BATCH_EPISODES = 16
"""Episodes handed to Minari's storage per write (each write opens the HDF5 file once)."""
_OBSERVATION_KEYS = dict(schema.CAMERA_KEYS)
"""Camera name -> its key in the observation dict (the env's own keys: ``image``, ``image_wrist``)."""


def _spaces(episode: ExchangeEpisode, cameras: tuple[str, ...]) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    height, width = episode.frames[cameras[0]].shape[1:3]
    observations = {_OBSERVATION_KEYS[camera]: gym.spaces.Box(0, 255, (height, width, 3), np.uint8) for camera in cameras}
    observations[schema.STATE] = gym.spaces.Box(-np.inf, np.inf, episode.state.shape[1:], np.float32)
    actions = gym.spaces.Box(-1.0, 1.0, episode.action.shape[1:], np.float32)
    return gym.spaces.Dict(observations), actions


def _buffer(episode: ExchangeEpisode, cameras: tuple[str, ...]) -> EpisodeBuffer:
    terminations = np.zeros(episode.steps, bool)
    terminations[-1] = episode.terminal
    truncations = np.zeros(episode.steps, bool)
    truncations[-1] = not episode.terminal
    infos: dict[str, np.ndarray] = {"success": np.asarray(episode.success, bool)}
    if episode.vlm_reward is not None:
        infos["vlm_reward"] = np.asarray(episode.vlm_reward, np.float32)
    seed = episode.meta.get("seed")
    return EpisodeBuffer(
        seed=int(seed) if isinstance(seed, int) else None,
        observations={**{_OBSERVATION_KEYS[c]: episode.frames[c] for c in cameras}, schema.STATE: np.asarray(episode.state, np.float32)},
        actions=np.asarray(episode.action, np.float32),
        rewards=np.asarray(episode.reward, np.float32),
        terminations=terminations,
        truncations=truncations,
        infos=infos,
    )


class MinariFormat:
    """Minari datasets, through the ``minari`` package (HDF5 backend)."""

    output = "folder"
    suffixes: tuple[str, ...] = ()

    def write(self, out: Path, header: ExchangeHeader, episodes: Iterator[ExchangeEpisode], count: int,
              options: ExportOptions, advance: Any) -> dict[str, Any]:
        """Write a Minari dataset into the folder ``out``; see the module docstring."""
        data = Path(out) / DATA_DIR
        first = next(episodes)
        observation_space, action_space = _spaces(first, header.cameras)
        storage = MinariStorage.new(
            data, observation_space=observation_space, action_space=action_space, data_format="hdf5", jpeg_encoding=False,
        )
        info = header.dataset_info or {}
        policies = sorted({str(run.get("policy")) for run in (info.get("runs") or {}).values()}) or ["unknown"]
        dataset_id = options.dataset_id or default_dataset_id(header.name)
        storage.update_metadata({
            "dataset_id": dataset_id,
            "minari_version": minari.__version__,
            "algorithm_name": "+".join(policies),
            "author": {"lamp-toolkit"},
            "description": (
                f"Episodes of {(info.get('env') or {}).get('name')} exported by lamp-data from dataset '{header.name}'. "
                "infos['success'] flags success after each frame; infos['vlm_reward'] holds VLM reward columns "
                "(metadata lamp.reward_columns), row t scoring frame t."
            ),
            "lamp": header.record(),
        })
        written = steps = 0
        batch: list[ExchangeEpisode] = []

        def flush() -> None:
            nonlocal written
            if not batch:
                return
            storage.update_episodes([_buffer(episode, header.cameras) for episode in batch])
            indices = range(written, written + len(batch))
            storage.update_episode_metadata([{"lamp": episode_record(episode)} for episode in batch], indices)
            written += len(batch)
            advance(len(batch))
            batch.clear()

        for episode in _chain(first, episodes):
            batch.append(episode)
            steps += episode.steps
            if len(batch) >= BATCH_EPISODES:
                flush()
        flush()
        loaded = minari.MinariDataset(data)
        if (loaded.total_episodes, loaded.total_steps) != (written, steps):
            raise LampError(f"minari reads {loaded.total_episodes} episodes and {loaded.total_steps} steps back, {written} and {steps} were written")
        return {
            "checks": [f"read back with minari {minari.__version__}'s MinariDataset: {written} episodes, {steps} steps (id {dataset_id})"],
        }

    def read(self, src: Path | str, options: ImportOptions) -> ImportSource:
        """Open a Minari dataset: a folder (the dataset's or its ``data/``) or an id in the local cache."""
        path = Path(src)
        try:
            if path.is_dir():
                dataset = minari.MinariDataset(path / DATA_DIR if (path / DATA_DIR).is_dir() else path)
            elif path.exists():
                raise LampError(f"{src} is a file; a Minari dataset is a folder (or an id of the local Minari cache)")
            else:
                dataset = minari.load_dataset(str(src))
        except (ValueError, FileNotFoundError, KeyError, OSError) as error:
            raise LampError(f"{src} is not a Minari dataset this minari reads ({error})") from None
        metadata = dataset.storage.metadata
        record = metadata.get("lamp")
        own = record is not None
        if own:
            header = ExchangeHeader.from_record(record, str(src))
            cameras = header.cameras
        else:
            cameras = _image_keys(dataset.observation_space)
            header = ExchangeHeader(name=str(metadata.get("dataset_id", path.name)), cameras=cameras, fps=1)
        return ImportSource(
            header=header, episodes=_read_episodes(dataset, header, own, options, str(src)), count=dataset.total_episodes,
            own_export=own, cameras=cameras,
        )


def _chain(first: ExchangeEpisode, rest: Iterator[ExchangeEpisode]) -> Iterator[ExchangeEpisode]:
    yield first
    yield from rest


def _is_image(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3


def _image_keys(space: gym.Space) -> tuple[str, ...]:
    """The observation keys holding RGB images (``observation`` for an image-only space)."""
    if isinstance(space, gym.spaces.Dict):
        return tuple(key for key, sub in space.spaces.items() if _is_image(sub))
    return ("observation",) if _is_image(space) else ()


def _read_episodes(dataset: Any, header: ExchangeHeader, own: bool, options: ImportOptions, where: str) -> Iterator[ExchangeEpisode]:
    space = dataset.observation_space
    indices = [int(index) for index in dataset.episode_indices]
    for index, episode in zip(indices, dataset.iterate_episodes(indices)):
        name = f"{where} episode {episode.id}"
        observations = episode.observations
        actions = np.asarray(episode.actions)
        if actions.dtype.kind not in "fiu" or (actions.ndim == 1 and isinstance(dataset.action_space, gym.spaces.Discrete)):
            raise LampError(f"{name}: actions of type {actions.dtype} {getattr(dataset.action_space, 'shape', '')}; a dataset holds continuous action vectors")
        actions = actions.reshape(len(actions), -1).astype(np.float32)
        infos = episode.infos or {}
        success = np.asarray(infos.get("success", np.zeros(len(actions) + 1, bool)), bool).reshape(-1)
        if len(success) == len(actions):
            success = np.concatenate([[False], success])
        if own:
            (metadata,) = dataset.storage.get_episode_metadata([index])
            record = read_episode_record(metadata.get("lamp", "{}"), name)
            yield ExchangeEpisode(
                frames={camera: observations[_OBSERVATION_KEYS[camera]] for camera in header.cameras},
                state=observations[schema.STATE], action=actions, reward=np.asarray(episode.rewards, np.float32),
                success=success, terminal=bool(record.get("terminal", episode.terminations[-1])),
                meta=record["meta"], key=record.get("key"), shard=record.get("shard"),
                vlm_reward=infos.get("vlm_reward") if header.reward_columns else None,
            )
            continue
        if isinstance(space, gym.spaces.Dict):
            frames = {key: observations[key] for key in header.cameras}
            others = [np.asarray(observations[key], np.float32).reshape(len(actions) + 1, -1)
                      for key, sub in space.spaces.items() if key not in header.cameras and isinstance(sub, gym.spaces.Box)]
        else:
            frames, others = {"observation": observations}, []
        state = np.concatenate(others, axis=1) if others else np.zeros((len(actions) + 1, 0), np.float32)
        meta = {"task": header.name, "instruction": options.instruction, "source_episode": int(episode.id)}
        yield ExchangeEpisode(
            frames=frames, state=state, action=actions, reward=np.asarray(episode.rewards, np.float32), success=success,
            terminal=bool(episode.terminations[-1]), meta=meta,
        )

