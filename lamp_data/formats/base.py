"""What a format backend reads and writes: episodes in a form every format shares, and the header
that says what they hold.

A backend (one module per format, found by name in :data:`FORMATS`) writes a stream of
:class:`ExchangeEpisode` records into its format and reads them back. The export and import
stages (:mod:`lamp_data.formats.export`, :mod:`lamp_data.formats.ingest`) turn a dataset's
episodes into these records and back, so a backend knows nothing of shards, sidecars or
reward sets.

Every export also carries a *lamp record* (:meth:`ExchangeHeader.record`, with its own
``format_version``): the dataset's ``meta/info.json`` and what every reward column holds; and
beside each episode, its key, shard and metadata (:func:`episode_record`). An import that finds
them rebuilds the dataset as it was, shard for shard; a file written by other tools has none,
and its episodes get new keys and shards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from lamp_data import schema
from lamp_data.errors import LampError
from lamp_data.registry import Registry

RECORD_FORMAT_VERSION = 1
"""Version of the lamp record an export carries (:meth:`ExchangeHeader.record`)."""
OWN_INSTRUCTION = None
"""The ``prompt`` of a reward column that scores each episode against its own instruction."""
PIXEL_FORMATS = ("yuv420p", "yuv444p")
"""Pixel formats of exported H.264 videos."""
CAMERAS = tuple(schema.CAMERA_KEYS)
"""Camera names as exports spell them (``front``, ``wrist``): keys, feature and dataset names."""


@dataclass(frozen=True)
class RewardColumn:
    """One exported column of VLM rewards: a reward set scored against one prompt."""

    reward_set: str
    """Fingerprint of the reward set it comes from."""
    prompt: str | None
    """The prompt it scores; None (:data:`OWN_INSTRUCTION`): each episode's own instruction."""

    @property
    def label(self) -> str:
        """``<fingerprint>: <prompt>`` (or ``: own instruction``), the column's name in an export."""
        return f"{self.reward_set}: {self.prompt if self.prompt is not None else 'own instruction'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as the lamp record lists it."""
        return {"reward_set": self.reward_set, "prompt": self.prompt, "label": self.label}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "RewardColumn":
        """Inverse of :meth:`to_dict`."""
        return cls(str(value["reward_set"]), None if value.get("prompt") is None else str(value["prompt"]))


@dataclass
class ExchangeEpisode:
    """One episode as every format holds it."""

    frames: dict[str, np.ndarray]
    """Camera name (``front``, ``wrist``, or the source's own) -> uint8 ``[T+1, H, W, 3]``."""
    state: np.ndarray
    """float32 ``[T+1, S]`` proprio state."""
    action: np.ndarray
    """float32 ``[T, A]``."""
    reward: np.ndarray
    """float32 ``[T]`` the task's own reward for each step."""
    success: np.ndarray
    """bool ``[T+1]`` the success flag after each frame."""
    terminal: bool
    """Whether the env ended the episode (else it was cut off)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Task, instruction, seed, policy... (a lamp episode's ``meta.json``)."""
    key: str | None = None
    """The lamp episode key (``ep00000012``) when the export carries it."""
    shard: str | None = None
    """The lamp shard it was stored in, when the export carries it."""
    vlm_reward: np.ndarray | None = None
    """float32 ``[T+1, K]``: column k scores every frame as reward column k of the header does."""

    @property
    def steps(self) -> int:
        """Actions in the episode (it has one frame more)."""
        return len(self.action)

    @property
    def instruction(self) -> str | None:
        """The episode's instruction, if known."""
        value = self.meta.get("instruction")
        return None if value is None else str(value)


@dataclass(frozen=True)
class ExchangeHeader:
    """What an exported dataset holds, besides its episodes."""

    name: str
    """The dataset's name (its folder's)."""
    cameras: tuple[str, ...]
    """Camera names of the episodes' frames, the front camera first."""
    fps: int
    """Frames per second the export states (videos and timestamps)."""
    reward_columns: tuple[RewardColumn, ...] = ()
    """What each column of :attr:`ExchangeEpisode.vlm_reward` holds."""
    reward_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Fingerprint -> ``{"info": its info.json, "prompts": its prompts}`` of every set a column
    comes from (the prompts only when every one of them is exported, in order)."""
    dataset_info: dict[str, Any] | None = None
    """The source dataset's ``meta/info.json`` (without its checksum) when it is a lamp dataset."""

    def record(self) -> dict[str, Any]:
        """The lamp record an export carries (JSON-able)."""
        return {
            "format_version": RECORD_FORMAT_VERSION,
            "name": self.name,
            "cameras": list(self.cameras),
            "fps": self.fps,
            "reward_columns": [column.to_dict() for column in self.reward_columns],
            "reward_sets": self.reward_sets,
            "dataset_info": self.dataset_info,
        }

    @classmethod
    def from_record(cls, record: Any, where: str) -> "ExchangeHeader":
        """Inverse of :meth:`record`.

        Raises:
            LampError: not a record of a version this toolkit reads.
        """
        if isinstance(record, (str, bytes)):
            try:
                record = json.loads(record)
            except ValueError as error:
                raise LampError(f"{where}: its lamp record is not JSON ({error})") from None
        if not isinstance(record, dict) or record.get("format_version") != RECORD_FORMAT_VERSION:
            version = record.get("format_version") if isinstance(record, dict) else None
            raise LampError(f"{where}: lamp record format_version {version!r}; this version reads {RECORD_FORMAT_VERSION}")
        return cls(
            name=str(record.get("name", "")),
            cameras=tuple(record.get("cameras") or ("front",)),
            fps=int(record.get("fps") or 1),
            reward_columns=tuple(RewardColumn.from_dict(column) for column in record.get("reward_columns", [])),
            reward_sets=dict(record.get("reward_sets") or {}),
            dataset_info=record.get("dataset_info"),
        )


@dataclass(frozen=True)
class ExportOptions:
    """How a backend writes what it is given (each takes what applies to its format)."""

    fps: int = 15
    """Frames per second the export states (LeRobot: timestamps and videos; Minari and HDF5: metadata)."""
    video: bool = True
    """LeRobot: frames as mp4 video per camera (lossy, what LeRobot datasets use); False: lossless
    PNG images inside the parquet files."""
    crf: int = 18
    """LeRobot videos: the H.264 constant rate factor (0 lossless luma .. 51; lower keeps more detail)."""
    pixel_format: str = "yuv420p"
    """LeRobot videos: ``yuv420p`` (LeRobot's own, plays in browsers; halves colour resolution, which
    costs small, colourful frames most) or ``yuv444p`` (full colour resolution)."""

    def __post_init__(self) -> None:
        if self.pixel_format not in PIXEL_FORMATS:
            raise LampError(f"pixel format must be one of {', '.join(PIXEL_FORMATS)}, got '{self.pixel_format}'")
        if not 1 <= self.fps <= 1000 or not 0 <= self.crf <= 51:
            raise LampError(f"fps must be in [1, 1000] and crf in [0, 51], got {self.fps} and {self.crf}")
    dataset_id: str | None = None
    """Minari: the dataset id recorded (default :func:`default_dataset_id` of the export's name)."""


@dataclass(frozen=True)
class ImportOptions:
    """What an import takes from a source that is not a lamp export."""

    camera: str | None = None
    """The source camera to store as the front camera (default: a lamp export's own cameras, or
    the source's only camera)."""
    instruction: str | None = None
    """Instruction of every episode whose source states none."""


@dataclass
class ImportSource:
    """What a backend read: the header (a lamp record's, or one made from the source's own
    metadata) and the episodes, read as they are iterated."""

    header: ExchangeHeader
    """What the source holds."""
    episodes: Iterator[ExchangeEpisode]
    """Its episodes, in order."""
    count: int
    """How many there are."""
    own_export: bool
    """True when the source carries a lamp record (it was written by :func:`export_dataset`)."""
    cameras: tuple[str, ...] = ()
    """Every camera the source holds, by its own names."""


class FormatBackend(Protocol):
    """One format: ``write`` a dataset's episodes, ``read`` them back."""

    output: str
    """``"file"`` or ``"folder"``: what ``--out`` names."""
    suffixes: tuple[str, ...]
    """File name endings an output file may have (for ``"file"`` outputs)."""

    def write(self, out: Path, header: ExchangeHeader, episodes: Iterator[ExchangeEpisode], count: int,
              options: ExportOptions, advance: Any) -> dict[str, Any]:
        """Write ``count`` episodes into ``out`` (a new file or an empty folder); ``advance(n)``
        after each; returns what the stage reports (paths, counts, what was checked)."""

    def read(self, src: Path | str, options: ImportOptions) -> ImportSource:
        """Open ``src`` (LampError if it is not of this format)."""


FORMATS: Registry[FormatBackend] = Registry("format")
"""Exchange formats by name: ``minari``, ``hdf5`` (robomimic's layout), ``lerobot`` (LeRobotDataset v3)."""
FORMATS.register("minari", "lamp_data.formats.minari_format:MinariFormat", extra="minari",
                 description="Farama Minari dataset (its HDF5 backend, written and read through the minari package)")
FORMATS.register("hdf5", "lamp_data.formats.robomimic:RobomimicFormat", extra="hdf5",
                 description="robomimic's HDF5 layout: data/demo_N/{obs/<camera>_image, actions, rewards, dones}")
FORMATS.register("lerobot", "lamp_data.formats.lerobot:LeRobotFormat", extra="lerobot",
                 description="LeRobotDataset v3.0 on disk: meta/, parquet data chunks, mp4 video per camera")


def default_dataset_id(name: str) -> str:
    """A Minari dataset id for an export named ``name``: ``lamp/<name>-v0`` (``lamp/<name>`` when
    ``name`` already ends in ``-v<N>``)."""
    name = re.sub(r"[^-_\w]", "_", name) or "dataset"
    return f"lamp/{name}" if re.search(r"-v\d+$", name) else f"lamp/{name}-v0"


def episode_record(episode: ExchangeEpisode) -> str:
    """What an export stores beside an episode (JSON text): its key, shard, metadata and end."""
    return json_text({"key": episode.key, "shard": episode.shard, "meta": episode.meta, "terminal": episode.terminal})


def read_episode_record(text: Any, where: str) -> dict[str, Any]:
    """Inverse of :func:`episode_record`; LampError naming ``where`` if it is not one."""
    if isinstance(text, bytes):
        text = text.decode()
    try:
        value = json.loads(str(text))
    except ValueError as error:
        raise LampError(f"{where}: its lamp episode record is not JSON ({error})") from None
    if not isinstance(value, dict) or not isinstance(value.get("meta"), dict):
        raise LampError(f"{where}: its lamp episode record holds no episode metadata")
    return value


def camera_name(step_key: str) -> str:
    """The camera name of a frames step key (``image`` -> ``front``)."""
    return {key: name for name, key in schema.CAMERA_KEYS.items()}[step_key]


def check_frames(frames: np.ndarray, where: str) -> np.ndarray:
    """``frames`` as uint8 ``[N, H, W, 3]``; LampError naming ``where`` otherwise."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise LampError(f"{where}: frames of shape {frames.shape}, expected [frames, height, width, 3] RGB")
    if frames.dtype != np.uint8:
        raise LampError(f"{where}: frames are {frames.dtype}, expected uint8")
    return frames


def json_text(value: Any) -> str:
    """Canonical JSON text (sorted keys) of a record."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
