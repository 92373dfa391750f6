"""Import another format's trajectories as a dataset: ``import_dataset(SRC, OUT, "minari")``.

The result is an ordinary dataset (shards, sidecars, ``meta/info.json``, card) that ``relabel``,
``view``, ``verify`` and ``pretrain`` take. An export of this toolkit (it carries a lamp record,
:mod:`lamp_data.formats.base`) comes back as the dataset it was: the same episode keys, shards
and metadata, and each reward set whose every prompt was exported, under its own fingerprint;
lossless formats give byte-identical shards. Reward columns of some prompts of a set come back as
a reward set of those prompts (``imported-<hash>``); columns that scored each episode against its
own instruction are not brought back (a reward set scores every episode against the same prompts).

Anything else becomes episodes ``ep00000000...`` of one run, ``import``: the chosen camera's
frames (``camera``) as the front camera, centre-cropped and resized to ``image_size`` if asked,
the source's state, actions, rewards and success flags where it has them (see each backend), and
its task text. The whole dataset is written into a hidden temporary folder and renamed into place
when complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_folder
from lamp_data.envs.base import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from lamp_data.errors import LampError
from lamp_data.formats.base import FORMATS, ExchangeEpisode, ExchangeHeader, ImportOptions, ImportSource
from lamp_data.formats.export import check_new_output
from lamp_data.pipeline.rollout import stored_episode
from lamp_data.progress import progress_bar
from lamp_data.provenance import provenance, stable_hash
from lamp_data.store import layout
from lamp_data.store.writer import RewardSetWriter, ShardWriter, create_dataset, encode_episode, shard_entry, update_info

IMPORT_RUN = "import"
"""Run name (shard prefix) of episodes imported from a source that is not a lamp export."""
DROPPED_INFO = ("format_version", layout.CHECKSUM, "prompt_set", "reward_sets")
"""Fields of an exported ``meta/info.json`` an import does not restore (the import writes its own
version and checksum; the dataset's prompt set and reward sets are those it brings back)."""


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_dataset` wrote."""

    out: Path
    """The new dataset folder."""
    format_name: str
    """The source's format."""
    episodes: int
    """Episodes imported."""
    steps: int
    """Their steps (actions)."""
    shards: int
    """Data shards written."""
    reward_sets: tuple[str, ...]
    """Fingerprints of the reward sets brought back."""
    lamp_export: bool
    """True when the source was an export of this toolkit (restored as it was)."""
    cameras: tuple[str, ...]
    """The source's cameras (its own names)."""
    image_size: int
    """Frame side of the imported dataset in pixels."""
    notes: tuple[str, ...]
    """What was left behind, and why (each a sentence)."""
    seconds: float
    """Wall time."""


def import_dataset(
    src: str | Path,
    out: str | Path,
    format_name: str,
    *,
    camera: str | None = None,
    instruction: str | None = None,
    image_size: int | None = None,
    shard_episodes: int = 10,
    progress: bool = True,
) -> ImportSummary:
    """Read ``src`` (a file or folder of ``format``) into a new dataset folder ``out``.

    Args:
        src: The source: a folder (``minari``: the dataset folder or its ``data/``, or a dataset id
            of the local Minari cache; ``lerobot``: the dataset root) or an ``.hdf5`` file (``hdf5``).
        out: A new (or empty) folder.
        format_name: A name of :data:`lamp_data.formats.FORMATS`.
        camera: The source camera stored as the front camera (default: a lamp export's own, or the
            source's only camera).
        instruction: Instruction of every episode whose source states none (the prompt ``view``
            draws and ``--own-instruction`` scores).
        image_size: Centre-crop frames to a square and resize them to this side; default: keep
            them, which needs square frames.
        shard_episodes: Episodes per shard (sources that are not lamp exports).
        progress: Show a progress bar.

    Raises:
        LampError: unknown format (or its extra missing), a source that is not of the format, a
            camera it lacks, frames the store cannot hold, or an ``out`` that is not new or empty;
            nothing is written then (a source found bad midway leaves no folder behind).
    """
    started = time.perf_counter()
    backend = FORMATS.create(format_name)
    out = Path(out)
    check_new_output(out, "folder")
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise LampError(f"image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} px, got {image_size}")
    if not 1 <= shard_episodes <= 100_000:
        raise LampError(f"shard episodes must be between 1 and 100,000, got {shard_episodes}")
    source = backend.read(src, ImportOptions(camera=camera, instruction=instruction))
    if not source.count:
        raise LampError(f"{src} holds no episodes")
    header = source.header
    if source.own_export and image_size is not None:
        raise LampError("a lamp export comes back with its own frames; leave out --image-size")
    chosen = _chosen_cameras(source, camera)
    sets, notes = _reward_sets(header)
    with atomic_folder(out) as folder, progress_bar(f"import {format_name}", source.count, unit="episodes", enabled=progress) as bar:
        writer = _DatasetWriter(folder, format_name, src, source, chosen, image_size, shard_episodes, sets)
        for episode in source.episodes:
            writer.add(episode)
            bar.advance(1)
        writer.close()
    return ImportSummary(
        out=out, format_name=format_name, episodes=writer.episodes, steps=writer.steps, shards=writer.shards,
        reward_sets=tuple(sets), lamp_export=source.own_export, cameras=source.cameras or header.cameras,
        image_size=writer.image_size or 0, notes=tuple(notes), seconds=time.perf_counter() - started,
    )


def _chosen_cameras(source: ImportSource, camera: str | None) -> dict[str, str]:
    """Source camera name -> the step key its frames are stored under."""
    available = source.cameras or source.header.cameras
    if source.own_export:
        if camera not in (None, "front"):
            raise LampError("a lamp export keeps its own cameras (front first); leave out --camera")
        return {name: schema.CAMERA_KEYS[name] for name in source.header.cameras}
    if camera is None:
        if len(available) != 1:
            raise LampError(f"the source has cameras {', '.join(available) or 'none'}; choose the one to import with --camera")
        camera = available[0]
    if camera not in available:
        raise LampError(f"the source has no camera '{camera}' (cameras: {', '.join(available) or 'none'})")
    return {camera: schema.IMAGE}


def _reward_sets(header: ExchangeHeader) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Fingerprint -> {"columns": [column index], "prompts", "info"} of each reward set to rebuild,
    and notes on the columns that are not."""
    groups: dict[str, list[int]] = {}
    notes = []
    for index, column in enumerate(header.reward_columns):
        if column.prompt is None:
            notes.append(f"column '{column.label}' scored each episode against its own instruction: not imported as a reward set")
            continue
        groups.setdefault(column.reward_set, []).append(index)
    sets: dict[str, dict[str, Any]] = {}
    for fingerprint, indices in groups.items():
        prompts = [header.reward_columns[index].prompt for index in indices]
        recorded = header.reward_sets.get(fingerprint, {})
        info = dict(recorded.get("info") or {})
        if recorded.get("prompts") == prompts:
            sets[fingerprint] = {"columns": indices, "prompts": prompts, "info": info}
            continue
        name = f"imported-{stable_hash([fingerprint, prompts], length=12)}"
        sets[name] = {
            "columns": indices, "prompts": prompts,
            "info": {"model": info.get("model"), "source_reward_set": fingerprint, "source_info": info, "provenance": provenance()},
        }
        notes.append(f"{len(prompts)} of the prompts of reward set {fingerprint} were exported: imported as reward set {name}")
    return sets, notes


class _DatasetWriter:
    """Writes imported episodes into a new dataset folder, shard by shard, with their reward sets."""

    def __init__(self, folder: Path, format_name: str, src: str | Path, source: ImportSource, cameras: dict[str, str],
                 image_size: int | None, shard_episodes: int, sets: dict[str, dict[str, Any]]):
        self.folder = folder
        self.format_name = format_name
        self.src = str(src)
        self.source = source
        self.cameras = cameras
        self.resize = image_size
        self.image_size: int | None = None
        self.shard_episodes = shard_episodes
        self.sets = sets
        self.dataset: Any = None
        self.reward_writers: dict[str, RewardSetWriter] = {}
        self.pending: list[tuple[str, dict[str, np.ndarray], dict[str, Any], np.ndarray | None]] = []
        self.pending_shard: str | None = None
        self.shard_names: set[str] = set()
        self.tasks: dict[str, None] = {}
        self.longest = 0
        self.episodes = self.steps = self.shards = 0

    def add(self, episode: ExchangeEpisode) -> None:
        """Queue one episode; a shard is written once it is whole."""
        where = f"{self.src} episode {self.episodes}"
        frames = {key: self._frames(episode.frames[name], where) for name, key in self.cameras.items()}
        arrays = stored_episode(frames, episode.state, episode.action, episode.reward, episode.success, episode.terminal)
        if self.source.own_export and episode.key is not None and episode.shard is not None:
            key, shard, meta = episode.key, episode.shard, dict(episode.meta)
        else:
            index = self.episodes
            key, shard = layout.episode_key(index), layout.shard_name(IMPORT_RUN, index - index % self.shard_episodes)
            meta = {"episode": index, "run": IMPORT_RUN, "policy": "imported", **episode.meta}
            meta.update({"episode": index, "run": IMPORT_RUN, "steps": episode.steps, "success": bool(episode.success.any())})
        if shard != self.pending_shard:
            self._flush()
            if shard in self.shard_names:
                raise LampError(f"{self.src}: the episodes of shard {shard} are not consecutive")
            self.pending_shard = shard
        self.pending.append((key, arrays, meta, episode.vlm_reward))
        self.tasks[str(meta.get("task"))] = None
        self.longest = max(self.longest, episode.steps)
        self.episodes += 1
        self.steps += episode.steps

    def _frames(self, frames: np.ndarray, where: str) -> np.ndarray:
        """Frames as the store keeps them: square, resized if asked, all episodes one size."""
        if self.resize is not None:
            frames = resize_frames(frames, self.resize)
        height, width = frames.shape[1:3]
        if height != width:
            raise LampError(f"{where}: frames are {width}x{height} px; a dataset holds square frames: give --image-size N to crop and resize them")
        if not MIN_IMAGE_SIZE <= height <= MAX_IMAGE_SIZE:
            raise LampError(f"{where}: frames are {height} px; give --image-size between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}")
        if self.image_size is None:
            self.image_size = int(height)
        elif height != self.image_size:
            raise LampError(f"{where}: frames are {height} px, earlier episodes {self.image_size} px; give --image-size N")
        return frames

    def _open(self) -> None:
        """Create the dataset from the first shard's episodes (frame size and state known by then)."""
        self.dataset = create_dataset(self.folder, self._info())
        for fingerprint, reward_set in self.sets.items():
            self.reward_writers[fingerprint] = RewardSetWriter(self.dataset, fingerprint, reward_set["info"], reward_set["prompts"])

    def _info(self) -> dict[str, Any]:
        header = self.source.header
        imported = {"format": self.format_name, "source": self.src, "lamp_export": self.source.own_export, "cameras": list(self.cameras)}
        if self.source.own_export and header.dataset_info:
            info = {key: value for key, value in header.dataset_info.items() if key not in DROPPED_INFO}
            return {**info, "imported": {**imported, "provenance": info.get("provenance")}, "provenance": provenance()}
        config = {"image_size": self.image_size, "episode_length": self.longest, "action_repeat": 1}
        return {
            "env": {"name": None, "spec": {"backend": f"imported-{self.format_name}", "source": header.name}, "config": config},
            "collection": {"seed": None, "episodes": self.episodes, "shard_episodes": self.shard_episodes,
                           "image_size": self.image_size, "episode_length": self.longest, "action_repeat": 1},
            "runs": {IMPORT_RUN: {"policy": "imported"}},
            "task_split": {"collected": list(self.tasks)},
            "cameras": list(schema.DEFAULT_CAMERAS),
            "sample_fields": layout.sample_fields(schema.DEFAULT_CAMERAS),
            "imported": imported,
            "provenance": provenance(),
        }

    def _flush(self) -> None:
        """Write the queued episodes as one shard, then their reward shards."""
        if not self.pending:
            return
        if self.dataset is None:
            self._open()
        name = self.pending_shard
        run = name.rpartition("-")[0]
        with ShardWriter(layout.shard_path(self.dataset.path, name), run=run) as shard:
            for key, arrays, meta, _ in self.pending:
                shard.add(encode_episode(key, arrays, meta), shard_entry(key, meta))
        for fingerprint, reward_set in self.sets.items():
            rewards = {key: vlm[:, reward_set["columns"]].astype(np.float16) for key, _, _, vlm in self.pending}
            self.reward_writers[fingerprint].write_shard(name, rewards)
        self.shard_names.add(name)
        self.shards += 1
        self.pending = []

    def close(self) -> None:
        """Write the last shard; for a non-lamp source, record the final episode count and length."""
        self._flush()
        if not self.source.own_export and self.dataset is not None:
            update_info(self.dataset, self._info())


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Frames centre-cropped to a square and resized to ``size`` px (PIL, area-averaging)."""
    from PIL import Image

    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    cropped = frames[:, top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(cropped)
    return np.stack([np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BOX)) for frame in cropped])
