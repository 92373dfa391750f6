"""LeRobotDataset v3.0 on disk, written and read with ``pyarrow`` and PyAV (``av``).

Written from the format's description (LeRobot's documentation of ``codebase_version`` v3.0),
not with the ``lerobot`` package, which pins an older torch than this toolkit's; where ``lerobot``
is installed beside the toolkit, an export is also loaded with its ``LeRobotDataset`` and the
export says so. What an export holds::

    meta/info.json           codebase_version "v3.0", robot_type, fps, total_episodes, total_frames,
                             total_tasks, chunks_size, data_files_size_in_mb, video_files_size_in_mb,
                             splits {"train": "0:N"}, data_path, video_path, features (dtype, shape,
                             names; videos also their info: codec, pix_fmt, fps...), and "lamp" (the
                             lamp record: dataset info, reward columns)
    meta/tasks.parquet       one row per task text: task_index, the text as the (pandas) index
    meta/episodes/chunk-000/file-000.parquet
                             per episode: episode_index, tasks, length, data/chunk_index,
                             data/file_index, dataset_from_index, dataset_to_index,
                             videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp},
                             meta/episodes/{chunk_index, file_index}, stats/<feature>/<stat>, and
                             lamp (the episode's key, shard, task, instruction... as JSON)
    meta/stats.json          per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
                             (images: per channel, scaled to [0, 1], shape [3, 1, 1])
    data/chunk-000/file-000.parquet   one row per frame (a new file past data_files_size_in_mb)
    videos/observation.images.<camera>/chunk-000/file-000.mp4   H.264 (yuv420p, or yuv444p), one file for many
                             episodes, each between its from_timestamp and to_timestamp
    README.md                a dataset card whose configs read data/*/*.parquet

One row per frame, T + 1 rows for an episode of T steps: ``observation.images.<camera>`` (front,
wrist), ``observation.state``, ``action`` (zeros in the last row, which has no action),
``next.reward`` (the task's reward of the row's action; 0 in the last row), ``next.done`` (the
episode ends with the row's action; also true in the last row), ``next.success`` (success after
the row's action; the last row repeats the one before), ``vlm_reward`` (float32 [K], the reward
columns; names: their labels; row t scores frame t), and LeRobot's ``timestamp`` (frame_index /
fps), ``frame_index``, ``episode_index``, ``index``, ``task_index``. The task of an episode is its
instruction. With ``video=False`` frames are PNG images inside the parquet files instead
(``dtype: "image"``, lossless).

Reading takes a v3.0 dataset: the chosen camera's frames (video or images), ``observation.state``
(else every other numeric ``observation.*`` feature, flattened, in name order), ``action``,
``next.reward`` and ``next.success`` where present; the last row's action is dropped (a frame
without an action after it), and an episode's task text becomes its task and instruction.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lamp_data.errors import LampError
from lamp_data.formats.base import (
    ExchangeEpisode,
    ExchangeHeader,
    ExportOptions,
    ImportOptions,
    ImportSource,
    episode_record,
    read_episode_record,
)

CODEBASE_VERSION = "v3.0"
"""The LeRobotDataset version written and read."""
CHUNKS_SIZE = 1000
"""Files per chunk folder."""
DATA_FILES_SIZE_IN_MB = 100
"""A data file grows to about this size before the next one starts."""
VIDEO_FILES_SIZE_IN_MB = 200
"""A video file grows to about this size before the next one starts."""
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.parquet"
STATS_PATH = "meta/stats.json"
IMAGE_PREFIX = "observation.images."
STATE = "observation.state"
ACTION = "action"
REWARD = "next.reward"
DONE = "next.done"
SUCCESS = "next.success"
VLM_REWARD = "vlm_reward"
LAMP_COLUMN = "lamp"
"""Column of the episodes table holding each episode's lamp record."""
VIDEO_CODEC = "libx264"
GOP = 2
"""Frames between key frames, as LeRobot encodes (random access to any frame stays cheap)."""
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STATS_FRAMES = 100
"""Frames per episode (evenly spaced) that image statistics are computed on."""
_ROBOT_TYPES = {"metaworld": "sawyer"}
_DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
_IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _arrow_type(feature: dict[str, Any]) -> pa.DataType:
    dtype = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}[feature["dtype"]]
    return dtype if list(feature["shape"]) == [1] else pa.list_(dtype, int(feature["shape"][0]))


def _stats(values: np.ndarray, image: bool = False) -> dict[str, list]:
    """LeRobot's statistics of one feature over frames: per dimension, or per channel of images
    (scaled to [0, 1], shaped [3, 1, 1])."""
    count = len(values)
    if image:
        values = values.reshape(-1, 3).astype(np.float64) / 255.0
    else:
        values = values.astype(np.float64).reshape(count, -1)
    stats = {
        "min": values.min(axis=0), "max": values.max(axis=0), "mean": values.mean(axis=0), "std": values.std(axis=0),
        **{f"q{round(q * 100):02d}": np.quantile(values, q, axis=0) for q in QUANTILES},
    }
    shaped: dict[str, list] = {name: (value.reshape(3, 1, 1) if image else value).tolist() for name, value in stats.items()}
    shaped["count"] = [count]
    return shaped


def _aggregate(episodes: list[dict[str, dict[str, list]]]) -> dict[str, dict[str, Any]]:
    """Dataset statistics from per-episode ones: extremes, count-weighted means (quantiles too, as
    LeRobot aggregates them) and the pooled standard deviation."""
    result: dict[str, dict[str, Any]] = {}
    for name in episodes[0]:
        parts = [stats[name] for stats in episodes]
        counts = np.array([part["count"][0] for part in parts], np.float64)
        weights = counts.reshape(-1, *([1] * np.asarray(parts[0]["mean"]).ndim)) / counts.sum()
        means = np.array([part["mean"] for part in parts])
        mean = (weights * means).sum(axis=0)
        variance = (weights * (np.array([part["std"] for part in parts]) ** 2 + (means - mean) ** 2)).sum(axis=0)
        merged = {
            "min": np.min([part["min"] for part in parts], axis=0).tolist(),
            "max": np.max([part["max"] for part in parts], axis=0).tolist(),
            "mean": mean.tolist(), "std": np.sqrt(variance).tolist(), "count": [int(counts.sum())],
        }
        for key in parts[0]:
            if key.startswith("q"):
                merged[key] = (weights * np.array([part[key] for part in parts])).sum(axis=0).tolist()
        result[name] = merged
    return result


@dataclass
class _FileCursor:
    """Where the next episode of one file series (data, or one camera's video) goes."""

    chunk: int = 0
    file: int = 0
    frames: int = 0
    """Frames already in the current file."""

    def next_file(self) -> None:
        self.frames = 0
        self.file += 1
        if self.file == CHUNKS_SIZE:
            self.chunk, self.file = self.chunk + 1, 0


class _VideoWriter:
    """One camera's mp4 files: episodes appended back to back, a new file past the size limit."""

    def __init__(self, root: Path, key: str, options: ExportOptions, size: tuple[int, int]):
        self.root, self.key, self.fps, self.crf, self.pixel_format = root, key, options.fps, options.crf, options.pixel_format
        self.height, self.width = size
        if self.pixel_format == "yuv420p" and (self.height % 2 or self.width % 2):
            raise LampError(
                f"H.264 video in yuv420p needs even frame sizes, frames are {self.width}x{self.height}; "
                "export with --pix-fmt yuv444p or --images"
            )
        self.cursor = _FileCursor()
        self.container: Any = None
        self.stream: Any = None
        self.path: Path | None = None
        self.first_path: Path | None = None

    def _open(self) -> None:
        self.path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.cursor.chunk, file_index=self.cursor.file)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.first_path = self.first_path or self.path
        self.container = av.open(str(self.path), mode="w", format="mp4")
        self.stream = self.container.add_stream(VIDEO_CODEC, rate=self.fps, options={"crf": str(self.crf), "g": str(GOP)})
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, self.pixel_format

    def add(self, frames: np.ndarray) -> dict[str, Any]:
        """Append an episode's frames; returns its ``videos/<key>/...`` entries of the episodes table."""
        if self.container is not None and self.path.stat().st_size >= VIDEO_FILES_SIZE_IN_MB * 2**20:
            self.close()
            self.cursor.next_file()
        if self.container is None:
            self._open()
        start = self.cursor.frames
        for offset, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts, picture.time_base = start + offset, Fraction(1, self.fps)
            for packet in self.stream.encode(picture):
                self.container.mux(packet)
        self.cursor.frames += len(frames)
        prefix = f"videos/{self.key}/"
        return {prefix + "chunk_index": self.cursor.chunk, prefix + "file_index": self.cursor.file,
                prefix + "from_timestamp": start / self.fps, prefix + "to_timestamp": self.cursor.frames / self.fps}

    def close(self) -> None:
        if self.container is not None:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
            self.container = None

    def info(self) -> dict[str, Any]:
        """The feature's ``info`` as LeRobot records it, read from the first file written."""
        with av.open(str(self.first_path)) as container:
            stream = container.streams.video[0]
            return {
                "video.height": stream.height, "video.width": stream.width, "video.codec": stream.codec_context.name,
                "video.pix_fmt": stream.pix_fmt, "video.is_depth_map": False, "video.fps": self.fps, "video.channels": 3,
                "has_audio": False,
            }


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    stream = io.BytesIO()
    Image.fromarray(frame).save(stream, format="PNG")
    return stream.getvalue()


class LeRobotFormat:
    """LeRobotDataset v3.0, through ``pyarrow`` and PyAV."""

    output = "folder"
    suffixes: tuple[str, ...] = ()

    def write(self, out: Path, header: ExchangeHeader, episodes: Iterator[ExchangeEpisode], count: int,
              options: ExportOptions, advance: Any) -> dict[str, Any]:
        """Write a LeRobotDataset v3.0 into the folder ``out``; see the module docstring."""
        root = Path(out)
        writer = _Writer(root, header, options)
        for episode in episodes:
            writer.add(episode)
            advance(1)
        writer.close()
        return {"checks": [_read_back(root, writer.frames, writer.episodes), _lerobot_check(root, header.name, writer.frames)]}

    def read(self, src: Path | str, options: ImportOptions) -> ImportSource:
        """Open a LeRobotDataset v3.0 folder."""
        root = Path(src)
        info_path = root / INFO_PATH
        if not info_path.is_file():
            raise LampError(f"{src} is not a LeRobot dataset (no {INFO_PATH})")
        try:
            info = json.loads(info_path.read_text())
        except ValueError as error:
            raise LampError(f"{info_path} is not JSON ({error})") from None
        if not isinstance(info, dict) or "codebase_version" not in info:
            raise LampError(f"{src} is not a LeRobot dataset ({INFO_PATH} has no codebase_version)")
        version = str(info["codebase_version"])
        if not version.startswith("v3."):
            raise LampError(f"{src} is a LeRobotDataset {version}; this reads {CODEBASE_VERSION} (lerobot converts older ones)")
        features = info.get("features") or {}
        cameras = tuple(key for key, feature in features.items() if feature.get("dtype") in ("video", "image"))
        record = info.get("lamp")
        own = record is not None
        if own:
            header = ExchangeHeader.from_record(record, str(src))
        else:
            header = ExchangeHeader(name=root.resolve().name, cameras=cameras, fps=int(info.get("fps") or 1))
        table = _episodes_table(root)
        return ImportSource(
            header=header, episodes=_Reader(root, info, header, own, options, table).episodes(), count=len(table),
            own_export=own, cameras=tuple(key[len(IMAGE_PREFIX):] for key in cameras) if own else cameras,
        )


@dataclass
class _Writer:
    root: Path
    header: ExchangeHeader
    options: ExportOptions
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, dict[str, list]]] = field(default_factory=list)
    videos: dict[str, _VideoWriter] = field(default_factory=dict)
    data: _FileCursor = field(default_factory=_FileCursor)
    arrow_schema: Any = None
    parquet: Any = None
    data_path: Path | None = None
    frames: int = 0
    episodes: int = 0

    def _start(self, episode: ExchangeEpisode) -> None:
        height, width = episode.frames[self.header.cameras[0]].shape[1:3]
        camera = {"dtype": "video" if self.options.video else "image", "shape": [int(height), int(width), 3],
                  "names": ["height", "width", "channels"]}
        self.features = {IMAGE_PREFIX + name: dict(camera) for name in self.header.cameras}
        self.features[STATE] = {"dtype": "float32", "shape": [int(episode.state.shape[1])], "names": None}
        self.features[ACTION] = {"dtype": "float32", "shape": [int(episode.action.shape[1])], "names": None}
        self.features[REWARD] = {"dtype": "float32", "shape": [1], "names": None}
        self.features[DONE] = {"dtype": "bool", "shape": [1], "names": None}
        self.features[SUCCESS] = {"dtype": "bool", "shape": [1], "names": None}
        if self.header.reward_columns:
            labels = [column.label for column in self.header.reward_columns]
            self.features[VLM_REWARD] = {"dtype": "float32", "shape": [len(labels)], "names": labels}
        self.features.update({name: dict(feature) for name, feature in _DEFAULT_FEATURES.items()})
        if self.options.video:
            self.videos = {
                name: _VideoWriter(self.root, IMAGE_PREFIX + name, self.options, (int(height), int(width)))
                for name in self.header.cameras
            }
        columns = [(name, _IMAGE_TYPE if feature["dtype"] == "image" else _arrow_type(feature))
                   for name, feature in self.features.items() if feature["dtype"] != "video"]
        self.arrow_schema = pa.schema(columns)

    def add(self, episode: ExchangeEpisode) -> None:
        if not self.features:
            self._start(episode)
        length = episode.steps + 1
        task = str(episode.instruction or episode.meta.get("task") or "unknown")
        task_index = self.tasks.setdefault(task, len(self.tasks))
        actions = np.concatenate([np.asarray(episode.action, np.float32), np.zeros((1, episode.action.shape[1]), np.float32)])
        rewards = np.concatenate([np.asarray(episode.reward, np.float32), [0.0]]).astype(np.float32)
        done = np.zeros(length, bool)
        done[-2:] = True
        success = np.asarray(episode.success, bool)
        columns: dict[str, np.ndarray] = {
            STATE: np.asarray(episode.state, np.float32), ACTION: actions, REWARD: rewards, DONE: done,
            SUCCESS: np.concatenate([success[1:], success[-1:]]),
            "timestamp": (np.arange(length) / self.options.fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, self.episodes, np.int64),
            "index": np.arange(self.frames, self.frames + length, dtype=np.int64),
            "task_index": np.full(length, task_index, np.int64),
        }
        if VLM_REWARD in self.features:
            columns[VLM_REWARD] = np.asarray(episode.vlm_reward, np.float32)
        arrays = []
        for name in self.arrow_schema.names:
            if name.startswith(IMAGE_PREFIX):
                images = episode.frames[name[len(IMAGE_PREFIX):]]
                arrays.append(pa.array([{"bytes": _png(frame), "path": None} for frame in images], _IMAGE_TYPE))
            elif isinstance(self.arrow_schema.field(name).type, pa.FixedSizeListType):
                values = columns[name]
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1]))
            else:
                arrays.append(pa.array(columns[name], self.arrow_schema.field(name).type))
        table = pa.Table.from_arrays(arrays, schema=self.arrow_schema)
        entry = self._write_rows(table)
        for name, video in self.videos.items():
            entry.update(video.add(episode.frames[name]))
        stats = {name: _stats(values[:, None] if values.ndim == 1 else values) for name, values in columns.items()}
        for name in self.header.cameras:
            frames = episode.frames[name]
            shown = frames[np.unique(np.linspace(0, len(frames) - 1, min(STATS_FRAMES, len(frames))).astype(int))]
            stats[IMAGE_PREFIX + name] = _stats(shown, image=True)
        self.stats.append(stats)
        self.rows.append({
            "episode_index": self.episodes, "tasks": [task], "length": length, **entry,
            "dataset_from_index": self.frames, "dataset_to_index": self.frames + length,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            **{f"stats/{name}/{stat}": value for name, feature_stats in stats.items() for stat, value in feature_stats.items()},
            LAMP_COLUMN: episode_record(episode),
        })
        self.frames += length
        self.episodes += 1

    def _write_rows(self, table: pa.Table) -> dict[str, Any]:
        if self.parquet is not None and self.data_path.stat().st_size >= DATA_FILES_SIZE_IN_MB * 2**20:
            self.parquet.close()
            self.parquet = None
            self.data.next_file()
        if self.parquet is None:
            self.data_path = self.root / DATA_PATH.format(chunk_index=self.data.chunk, file_index=self.data.file)
            self.data_path.parent.mkdir(parents=True, exist_ok=True)
            self.parquet = pq.ParquetWriter(self.data_path, self.arrow_schema, compression="snappy")
        self.parquet.write_table(table)
        return {"data/chunk_index": self.data.chunk, "data/file_index": self.data.file}

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        for video in self.videos.values():
            video.close()
        for name, video in self.videos.items():
            self.features[IMAGE_PREFIX + name]["info"] = video.info()
        episodes_path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.rows), episodes_path, compression="snappy")
        _write_tasks(self.root / TASKS_PATH, list(self.tasks))
        (self.root / STATS_PATH).write_text(json.dumps(_aggregate(self.stats), indent=4))
        backend = ((self.header.dataset_info or {}).get("env") or {}).get("spec", {}).get("backend")
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": _ROBOT_TYPES.get(backend),
            "total_episodes": self.episodes,
            "total_frames": self.frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": self.options.fps,
            "splits": {"train": f"0:{self.episodes}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.options.video else None,
            "features": self.features,
            "lamp": self.header.record(),
        }
        (self.root / INFO_PATH).write_text(json.dumps(info, indent=4))
        (self.root / "README.md").write_text(_card(self.header, info))


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """``meta/tasks.parquet`` as LeRobot writes it: ``task_index`` with the task texts as the pandas index."""
    import pandas as pd

    pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task")).to_parquet(path)


def _card(header: ExchangeHeader, info: dict[str, Any]) -> str:
    import yaml

    front = {
        "license": "other",
        "task_categories": ["robotics"],
        "tags": ["LeRobot", "lamp"],
        "configs": [{"config_name": "default", "data_files": "data/*/*.parquet"}],
    }
    return (
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n"
        f"# {header.name}\n\nEpisodes exported by `lamp-data export --format lerobot` as a LeRobotDataset "
        f"{CODEBASE_VERSION}: {info['total_episodes']} episodes, {info['total_frames']} frames at {info['fps']} fps, "
        f"{info['total_tasks']} tasks. `meta/info.json` lists the features; `vlm_reward` (if present) holds reward-model "
        "scores, one column per name in its feature's `names`.\n"
    )


def _read_back(root: Path, frames: int, episodes: int) -> str:
    """Read the export back with pyarrow and PyAV: rows, and frames of every video file."""
    rows = sum(pq.read_metadata(path).num_rows for path in sorted((root / "data").glob("*/*.parquet")))
    videos = sorted((root / "videos").glob("*/*/*.mp4")) if (root / "videos").is_dir() else []
    decoded = 0
    for path in videos:
        with av.open(str(path)) as container:
            decoded += sum(1 for _ in container.decode(video=0))
    cameras = len({path.parent.parent.name for path in videos}) or 1
    if rows != frames or (videos and decoded != frames * cameras):
        raise LampError(f"read back {rows} rows and {decoded} video frames, {frames} frames were written")
    what = f", {decoded} video frames decoded with PyAV {av.__version__}" if videos else ""
    return f"read back with pyarrow {pa.__version__}: {episodes} episodes, {rows} rows{what}"


def _lerobot_check(root: Path, name: str, frames: int) -> str:
    """Load the export with ``lerobot``'s own ``LeRobotDataset`` where it is installed."""
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except Exception:  # not installed, or it fails to import beside this torch
        return ("lerobot is not installed here: written from the LeRobotDataset v3.0 format description, "
                "not loaded with lerobot's own LeRobotDataset")
    from importlib.metadata import version

    try:
        dataset = LeRobotDataset(f"lamp/{name}", root=root)
        loaded = len(dataset)
        dataset[0]
    except Exception as error:  # report, keep the export
        return f"warning: lerobot {version('lerobot')}'s LeRobotDataset could not load it: {type(error).__name__}: {error}"
    if loaded != frames:
        return f"warning: lerobot {version('lerobot')}'s LeRobotDataset loads {loaded} frames, {frames} were written"
    return f"loaded with lerobot {version('lerobot')}'s LeRobotDataset: {loaded} frames"


def _episodes_table(root: Path) -> list[dict[str, Any]]:
    paths = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not paths:
        raise LampError(f"{root} has no episodes table (meta/episodes/chunk-*/file-*.parquet)")
    rows = [row for path in paths for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda row: int(row["episode_index"]))


def _task_texts(root: Path) -> dict[int, str]:
    path = root / TASKS_PATH
    if not path.is_file():
        return {}
    table = pq.read_table(path)
    index = [name for name in table.column_names if name != "task_index"]
    if not index:
        return {}
    return dict(zip(table.column("task_index").to_pylist(), (str(text) for text in table.column(index[0]).to_pylist())))


class _VideoFrames:
    """The frames of one video file in presentation order, taken episode by episode."""

    def __init__(self, path: Path, fps: int):
        self.path, self.fps = path, fps
        self.container = av.open(str(path))
        self.frames = ((frame.time, frame.to_ndarray(format="rgb24")) for frame in self.container.decode(video=0))
        self.pending: tuple[float, np.ndarray] | None = None

    def take(self, start: float, stop: float, where: str) -> np.ndarray:
        """The frames timed in ``[start, stop)`` (within half a frame)."""
        slack = 0.5 / self.fps
        taken = []
        while True:
            item = self.pending or next(self.frames, None)
            self.pending = None
            if item is None:
                break
            time, frame = item
            if time < start - slack:
                continue
            if time >= stop - slack:
                self.pending = item
                break
            taken.append(frame)
        if not taken:
            raise LampError(f"{where}: no frames between {start:.3f} s and {stop:.3f} s in {self.path}")
        return np.stack(taken)

    def close(self) -> None:
        self.container.close()


class _Reader:
    """Episodes of a LeRobot dataset, one data file and one video file per camera open at a time."""

    def __init__(self, root: Path, info: dict[str, Any], header: ExchangeHeader, own: bool, options: ImportOptions,
                 table: list[dict[str, Any]]):
        self.root, self.info, self.header, self.own, self.options, self.table = root, info, header, own, options, table
        self.features = info.get("features") or {}
        self.fps = int(info.get("fps") or 1)
        self.tasks = _task_texts(root)
        self.data_file: tuple[Path, dict[str, np.ndarray], np.ndarray] | None = None
        self.videos: dict[str, _VideoFrames] = {}

    def camera_keys(self) -> dict[str, str]:
        """Frames key of the exchange record -> the feature holding them."""
        if self.own:
            return {name: IMAGE_PREFIX + name for name in self.header.cameras}
        return {key: key for key in self.header.cameras}

    def episodes(self) -> Iterator[ExchangeEpisode]:
        try:
            for row in self.table:
                yield self._episode(row)
        finally:
            for video in self.videos.values():
                video.close()

    def _rows(self, row: dict[str, Any]) -> dict[str, np.ndarray]:
        path = self.root / self.info["data_path"].format(chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]))
        if self.data_file is None or self.data_file[0] != path:
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowInvalid) as error:
                raise LampError(f"cannot read {path}: {error}") from None
            columns = {name: table.column(name).combine_chunks() for name in table.column_names}
            self.data_file = (path, columns, np.asarray(columns["episode_index"].to_numpy(zero_copy_only=False)))
        _, columns, episode_index = self.data_file
        selected = np.flatnonzero(episode_index == int(row["episode_index"]))
        if len(selected) != int(row["length"]):
            raise LampError(f"{path}: episode {row['episode_index']} has {len(selected)} rows, the episodes table says {row['length']}")
        return {name: _column(column, selected) for name, column in columns.items()}

    def _frames(self, row: dict[str, Any], key: str, rows: dict[str, np.ndarray], where: str) -> np.ndarray:
        if self.features[key].get("dtype") == "image":
            from PIL import Image

            return np.stack([np.asarray(Image.open(io.BytesIO(item["bytes"])).convert("RGB")) for item in rows[key]])
        prefix = f"videos/{key}/"
        path = self.root / self.info["video_path"].format(
            video_key=key, chunk_index=int(row[prefix + "chunk_index"]), file_index=int(row[prefix + "file_index"]))
        video = self.videos.get(key)
        start, stop = float(row[prefix + "from_timestamp"]), float(row[prefix + "to_timestamp"])
        if video is None or video.path != path or (video.pending and video.pending[0] > start + 0.5 / self.fps):
            if video is not None:
                video.close()
            video = self.videos[key] = _VideoFrames(path, self.fps)
        frames = video.take(start, stop, where)
        if len(frames) != int(row["length"]):
            raise LampError(f"{where}: {len(frames)} frames in {path} between {start:.3f} s and {stop:.3f} s, {row['length']} rows")
        return frames

    def _episode(self, row: dict[str, Any]) -> ExchangeEpisode:
        where = f"{self.root} episode {row['episode_index']}"
        rows = self._rows(row)
        length = int(row["length"])
        if length < 2:
            raise LampError(f"{where}: fewer than two frames")
        frames = {name: self._frames(row, key, rows, where) for name, key in self.camera_keys().items()}
        actions = rows[ACTION].reshape(length, -1).astype(np.float32)[:-1] if ACTION in rows else None
        if actions is None:
            raise LampError(f"{where}: no '{ACTION}' feature")
        if STATE in rows:
            state = rows[STATE].reshape(length, -1).astype(np.float32)
        else:
            others = [name for name, feature in sorted(self.features.items()) if name.startswith("observation.")
                      and feature.get("dtype") not in ("video", "image", "string") and name in rows]
            state = (np.concatenate([rows[name].reshape(length, -1) for name in others], axis=1).astype(np.float32)
                     if others else np.zeros((length, 0), np.float32))
        reward = rows[REWARD].reshape(-1).astype(np.float32)[:-1] if REWARD in rows else np.zeros(length - 1, np.float32)
        success = np.zeros(length, bool)
        if SUCCESS in rows:
            success[1:] = rows[SUCCESS].reshape(-1).astype(bool)[:-1]
        if self.own:
            record = read_episode_record(row.get(LAMP_COLUMN) or "{}", where)
            vlm = rows[VLM_REWARD].reshape(length, -1).astype(np.float32) if VLM_REWARD in rows else None
            return ExchangeEpisode(
                frames=frames, state=state, action=actions, reward=reward, success=success,
                terminal=bool(record.get("terminal")), meta=record["meta"], key=record.get("key"), shard=record.get("shard"),
                vlm_reward=vlm,
            )
        task_index = int(rows["task_index"][0]) if "task_index" in rows else None
        text = self.tasks.get(task_index) if task_index is not None else None
        if text is None and row.get("tasks"):
            text = str(row["tasks"][0])
        meta = {"task": text or self.header.name, "instruction": text or self.options.instruction,
                "source_episode": int(row["episode_index"])}
        return ExchangeEpisode(frames=frames, state=state, action=actions, reward=reward, success=success, terminal=False, meta=meta)


def _column(column: pa.Array, rows: np.ndarray) -> np.ndarray:
    """Rows of an arrow column as numpy: vectors stacked into a 2-D array, images as their structs."""
    taken = column.take(pa.array(rows, pa.int64()))
    if isinstance(taken.type, pa.FixedSizeListType):
        return np.asarray(taken.flatten().to_numpy(zero_copy_only=False)).reshape(len(rows), taken.type.list_size)
    if pa.types.is_list(taken.type) or pa.types.is_large_list(taken.type):
        return np.array(taken.to_pylist(), dtype=np.float64)
    if pa.types.is_struct(taken.type):
        return np.array(taken.to_pylist(), dtype=object)
    return np.asarray(taken.to_numpy(zero_copy_only=False))
