"""robomimic's HDF5 layout, written and read with ``h5py``.

An export is one ``.hdf5`` file laid out as robomimic's datasets are::

    data                      attrs: total (steps), env_args (JSON: env_name, type, env_kwargs),
                                     lamp (the lamp record: dataset info, reward columns)
    data/demo_<i>             attrs: num_samples (T), lamp (the episode's key, shard, task,
                                     instruction, seed... as JSON)
    data/demo_<i>/obs/<camera>_image        uint8 [T, H, W, 3]   frames 0 .. T-1 (front, wrist)
    data/demo_<i>/obs/state                 float32 [T, S]
    data/demo_<i>/next_obs/<same keys>      frames and states 1 .. T
    data/demo_<i>/actions                   float32 [T, A]
    data/demo_<i>/rewards                   float32 [T]  the task's reward of each step
    data/demo_<i>/dones                     uint8 [T]    1 at the last step
    data/demo_<i>/success                   uint8 [T]    success after each step
    data/demo_<i>/vlm_rewards               float32 [T, K]  reward columns: step t's reward is
                                            the score of the frame it reaches; attrs: columns
                                            (JSON labels), initial (float32 [K], the first frame's)
    mask/<split>              demo names of each task split (pretrain, heldout), robomimic's filter keys

Frames are stored gzip-compressed (lossless). Reading takes any robomimic-style file: a camera
is an ``obs`` key holding uint8 ``[T, H, W, 3]`` (``--camera agentview_image``); the state is
``obs/state`` or else every other ``obs`` array, flattened, in key order; the last frame comes from
``next_obs`` when the file has it (else the last action is dropped, so every action has the frame
it leads to).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lamp_data import schema
from lamp_data.errors import LampError
from lamp_data.formats.base import (
    ExchangeEpisode,
    ExchangeHeader,
    ExportOptions,
    ImportOptions,
    ImportSource,
    episode_record,
    json_text,
    read_episode_record,
)

IMAGE_SUFFIX = "_image"
"""A camera's frames are ``obs/<camera>_image`` (robomimic: ``agentview_image``)."""
FRAME_COMPRESSION = {"compression": "gzip", "compression_opts": 4}
"""h5py options of frame datasets: lossless, about what robomimic's own image datasets use."""
_DEMO = re.compile(r"^demo_(\d+)$")


class RobomimicFormat:
    """robomimic's HDF5 layout, through ``h5py``."""

    output = "file"
    suffixes = (".hdf5", ".h5")

    def write(self, out: Path, header: ExchangeHeader, episodes: Iterator[ExchangeEpisode], count: int,
              options: ExportOptions, advance: Any) -> dict[str, Any]:
        """Write every episode into the HDF5 file ``out``; see the module docstring."""
        info = header.dataset_info or {}
        env = info.get("env") or {}
        splits: dict[str, list[str]] = {}
        split_of = {task: split for split in ("pretrain", "heldout") for task in (info.get("task_split") or {}).get(split, [])}
        steps = 0
        with h5py.File(out, "w") as handle:
            data = handle.create_group("data")
            data.attrs["env_args"] = json_text({"env_name": env.get("name"), "type": "lamp", "env_kwargs": env.get("config") or {}})
            data.attrs["lamp"] = json_text(header.record())
            data.attrs["fps"] = options.fps
            for index, episode in enumerate(episodes):
                name = f"demo_{index}"
                self._write_demo(data.create_group(name), episode, header)
                steps += episode.steps
                split = split_of.get(episode.meta.get("task"))
                if split:
                    splits.setdefault(split, []).append(name)
                advance(1)
            data.attrs["total"] = steps
            mask = handle.create_group("mask")
            for split, names in splits.items():
                mask.create_dataset(split, data=np.array(names, dtype="S"))
        with h5py.File(out, "r") as handle:
            demos = [name for name in handle["data"] if _DEMO.match(name)]
            found = sum(int(handle["data"][name].attrs["num_samples"]) for name in demos)
        if (len(demos), found) != (count, steps):
            raise LampError(f"h5py reads {len(demos)} demos and {found} steps back, {count} and {steps} were written")
        return {"checks": [f"read back with h5py {h5py.__version__}: {len(demos)} demos, {found} steps"]}

    @staticmethod
    def _write_demo(group: Any, episode: ExchangeEpisode, header: ExchangeHeader) -> None:
        steps = episode.steps
        group.attrs["num_samples"] = steps
        group.attrs["lamp"] = episode_record(episode)
        for side, rows in (("obs", slice(0, steps)), ("next_obs", slice(1, steps + 1))):
            observations = group.create_group(side)
            for camera in header.cameras:
                observations.create_dataset(camera + IMAGE_SUFFIX, data=episode.frames[camera][rows], chunks=True, **FRAME_COMPRESSION)
            observations.create_dataset(schema.STATE, data=np.asarray(episode.state[rows], np.float32))
        group.create_dataset("actions", data=np.asarray(episode.action, np.float32))
        group.create_dataset("rewards", data=np.asarray(episode.reward, np.float32))
        dones = np.zeros(steps, np.uint8)
        dones[-1] = 1
        group.create_dataset("dones", data=dones)
        group.create_dataset("success", data=np.asarray(episode.success[1:], np.uint8))
        if episode.vlm_reward is not None:
            vlm = np.asarray(episode.vlm_reward, np.float32)
            rewards = group.create_dataset("vlm_rewards", data=vlm[1:])
            rewards.attrs["columns"] = json_text([column.label for column in header.reward_columns])
            rewards.attrs["initial"] = vlm[0]

    def read(self, src: Path | str, options: ImportOptions) -> ImportSource:
        """Open a robomimic-style HDF5 file."""
        path = Path(src)
        if not path.is_file():
            raise LampError(f"{src} is not a file; an hdf5 source is one robomimic-style .hdf5 file")
        try:
            with h5py.File(path, "r") as handle:
                data = handle["data"]
                demos = sorted((name for name in data if _DEMO.match(name)), key=lambda name: int(_DEMO.match(name).group(1)))
                record = data.attrs.get("lamp")
                env_args = data.attrs.get("env_args")
                first_obs = data[demos[0]]["obs"] if demos else None
                cameras = tuple(
                    key for key in (first_obs if first_obs is not None else ()) if first_obs[key].dtype == np.uint8 and first_obs[key].ndim == 4
                    and first_obs[key].shape[-1] == 3
                )
        except (OSError, KeyError) as error:
            raise LampError(f"{src} is not a robomimic-style HDF5 file (no readable data group: {error})") from None
        own = record is not None
        if own:
            header = ExchangeHeader.from_record(record, str(src))
        else:
            name = path.stem
            if env_args is not None:
                try:
                    name = str(json.loads(env_args).get("env_name") or name)
                except (ValueError, AttributeError):
                    pass
            header = ExchangeHeader(name=name, cameras=cameras, fps=1)
        return ImportSource(
            header=header, episodes=_read_demos(path, demos, header, own, cameras, options), count=len(demos),
            own_export=own, cameras=tuple(header.cameras) if own else cameras,
        )


def _read_demos(path: Path, demos: list[str], header: ExchangeHeader, own: bool, cameras: tuple[str, ...],
                options: ImportOptions) -> Iterator[ExchangeEpisode]:
    with h5py.File(path, "r") as handle:
        for name in demos:
            demo = handle["data"][name]
            where = f"{path} {name}"
            observations = demo["obs"]
            following = demo.get("next_obs")
            keys = [camera + IMAGE_SUFFIX for camera in header.cameras] if own else list(cameras)
            has_next = following is not None and all(key in following for key in keys)
            actions = np.asarray(demo["actions"], np.float32).reshape(len(demo["actions"]), -1)
            rewards = np.asarray(demo["rewards"], np.float32).reshape(-1) if "rewards" in demo else np.zeros(len(actions), np.float32)
            if not has_next:  # no frame after the last action: drop that action
                actions, rewards = actions[:-1], rewards[:-1]

            def with_last(key: str) -> np.ndarray:
                values = np.asarray(observations[key])
                return np.concatenate([values, np.asarray(following[key][-1:])]) if has_next else values

            frames = {camera: with_last(key) for camera, key in zip(header.cameras if own else cameras, keys)}
            if schema.STATE in observations:
                state = with_last(schema.STATE).astype(np.float32)
            else:
                others = [key for key in observations if key not in keys and np.asarray(observations[key]).dtype.kind == "f"]
                state = (np.concatenate([with_last(key).reshape(len(actions) + 1, -1) for key in sorted(others)], axis=1).astype(np.float32)
                         if others else np.zeros((len(actions) + 1, 0), np.float32))
            success = np.zeros(len(actions) + 1, bool)
            if "success" in demo:
                success[1:] = np.asarray(demo["success"], bool)[: len(actions)]
            if own:
                record = read_episode_record(demo.attrs.get("lamp", "{}"), where)
                vlm = None
                if "vlm_rewards" in demo:
                    rewards_set = demo["vlm_rewards"]
                    vlm = np.concatenate([np.asarray(rewards_set.attrs["initial"], np.float32)[None], np.asarray(rewards_set, np.float32)])
                yield ExchangeEpisode(
                    frames=frames, state=state, action=actions, reward=rewards, success=success,
                    terminal=bool(record.get("terminal")), meta=record["meta"], key=record.get("key"),
                    shard=record.get("shard"), vlm_reward=vlm,
                )
                continue
            if len(actions) < 1:
                raise LampError(f"{where}: fewer than two frames")
            meta = {"task": header.name, "instruction": options.instruction, "source_episode": name}
            yield ExchangeEpisode(frames=frames, state=state, action=actions, reward=rewards, success=success, terminal=False, meta=meta)
