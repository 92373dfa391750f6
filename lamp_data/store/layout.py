"""Where things live inside a dataset folder, how sample fields are encoded, and shard sidecars.

A dataset is a folder::

    meta/info.json                      format_version, env, collection config, runs, prompt set
    meta/prompts.json                   the prompt set, in order (reward column i = prompt i)
    shards/<run>-<first episode>.tar    whole episodes, one WebDataset sample per episode
    shards/<run>-<first episode>.json   sidecar, written last: the shard's commit marker
    rewards/<fingerprint>/info.json     the reward model and prompt set behind a reward set
    rewards/<fingerprint>/prompts.json  that set's prompts
    rewards/<fingerprint>/<shard>.tar   rewards of every episode of data shard <shard> (+ sidecar)
    README.md                           dataset card for Hugging Face ``datasets`` (derived, rewritten
                                        with meta/info.json and when a reward set is added)
    quarantine/<same relative path>     tars set aside because they had no sidecar and did not
                                        decode completely (never read; kept for a person to inspect)

Shards are named after their run and first episode index (``collect-00000040``), not after the
worker that wrote them: the episodes of a shard are fixed by the plan, so a resume with another
worker count rewrites an interrupted shard under the same name and never duplicates one.

A tar counts only once its sidecar exists. A hidden ``.*.tmp`` file is what an interrupted write
leaves behind: readers ignore it and ``collect`` removes it. A tar without a sidecar is either a
shard whose sidecar write was interrupted (the tar is renamed into place only when complete) or
one whose sidecar was lost: readers ignore it, and ``collect`` (or ``lamp-data verify --repair``)
re-derives its sidecar when it decodes completely, else moves it to ``quarantine/``; it is never
deleted, since an agent's episodes cannot be re-recorded.

Integrity: every sidecar records its own shard name (a renamed shard is refused), the sha256 and
size of its tar, and a reward shard's sidecar also the sha256 of the data shard it scores
(``data_sha256``), so a reward set copied from another dataset is refused (reward sidecars written
before it still load, and ``verify`` notes them). ``meta/info.json`` and a reward set's
``info.json`` carry a ``checksum`` of their other fields; one without it is refused like one that
does not match it, until ``lamp-data verify --repair`` (:mod:`lamp_data.pipeline.repair`) has checked the
shards against it and sealed it.

Tars are read by streaming their members (:func:`iter_tar_members`), each decoded within the size
its episode's declared shape gives it (:func:`member_limit`, :func:`decode_field`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_write_json, is_temporary
from lamp_data.errors import DamagedDataError, LampError, StorageError
from lamp_data.provenance import update_from_file

META_DIR = "meta"
SHARDS_DIR = "shards"
REWARDS_DIR = "rewards"
INFO_FILE = "info.json"
PROMPTS_FILE = "prompts.json"
README_FILE = "README.md"
LOCK_FILE = ".lock"
QUARANTINE_DIR = "quarantine"
CHECKSUM = "checksum"
"""Field of ``info.json`` files holding the sha256 of their other fields."""
MAX_FIELD_BYTES = 4 << 30
"""Largest decoded size of one sample file when nothing tighter is known."""
NPY_HEADER_BYTES = 1 << 16
"""Room for a ``.npy`` header on top of its array data."""
MAX_META_BYTES = 1 << 20
"""Largest ``meta.json`` of an episode (a few hundred bytes as collect writes it)."""
INFLATE_CHUNK = 1 << 20
"""Bytes decompressed at a time into a frame array."""

META = "meta"
"""Sample field holding the episode's JSON metadata."""

FIELD_FILES = {
    schema.IMAGE: "image.npy.gz",
    schema.STATE: "state.npy",
    schema.ACTION: "action.npy",
    schema.REWARD: "reward.npy",
    schema.SUCCESS: "success.npy",
    schema.IS_FIRST: "is_first.npy",
    schema.IS_LAST: "is_last.npy",
    schema.IS_TERMINAL: "is_terminal.npy",
    META: "meta.json",
}
"""Step key -> file extension inside a sample, for the fields every episode has. Frames are
gzip-compressed ``.npy``, which stock webdataset and HF ``datasets`` both decompress and decode."""

CAMERA_FIELD_FILES = {schema.IMAGE_WRIST: "image_wrist.npy.gz"}
"""Frames of the cameras other than the front one (``image``), stored like it, only in episodes
recorded with them. ``meta/info.json`` lists a dataset's cameras under ``cameras``; a dataset
without that entry (made before the option) has the front camera only."""

FIELD_DTYPES = {
    schema.IMAGE: np.uint8,
    schema.STATE: np.float32,
    schema.ACTION: np.float32,
    schema.REWARD: np.float32,
    schema.SUCCESS: np.bool_,
    schema.IS_FIRST: np.bool_,
    schema.IS_LAST: np.bool_,
    schema.IS_TERMINAL: np.bool_,
}
ACTION_ROWS = (schema.ACTION, schema.REWARD)
"""Fields with one row per action (T); every other array field has T + 1 rows."""

REWARD_FILE = "vlm_reward.npy"
"""File extension of the per-episode reward array in reward shards."""
META_FILE = FIELD_FILES[META]
FRAME_FILES = frozenset({FIELD_FILES[schema.IMAGE], *CAMERA_FIELD_FILES.values()})
"""The gzip-compressed fields: frames of every camera. No other file of a shard may be compressed."""
DATA_MEMBERS = frozenset({*FIELD_FILES.values(), *CAMERA_FIELD_FILES.values()})
"""File extensions a data shard's samples may hold."""
REWARD_MEMBERS = frozenset({REWARD_FILE})
"""File extensions a reward shard's samples may hold."""

FRAME_COMPRESSLEVEL = 6
"""gzip level for frames. On Meta-World frames level 6 stores about 7 % of the raw bytes (level 1:
about 15 %, level 9 barely better than 6) for about 0.15 ms per 64 px frame, small next to the
env's several ms per step (see ``bench/collect.py``)."""

SIDECAR_FORMAT_VERSION = 1
MAX_SAMPLE_STEPS = 10_000
"""Most steps one episode may have (``lamp_data.envs.base.MAX_EPISODE_LENGTH``)."""
_KEY = re.compile(r"^ep(\d{8,})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MEMBER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def info_path(folder: str | Path) -> Path:
    """``meta/info.json`` of the dataset folder ``folder``: its record and commit marker."""
    return Path(folder) / META_DIR / INFO_FILE


def is_dataset(folder: str | Path) -> bool:
    """True if ``folder`` holds a dataset (its ``meta/info.json`` exists); nothing is read."""
    return info_path(folder).is_file()


def prompts_path(folder: str | Path) -> Path:
    """``meta/prompts.json``: the dataset's prompt set, in order."""
    return Path(folder) / META_DIR / PROMPTS_FILE


def lock_path(folder: str | Path) -> Path:
    """``meta/.lock``: the file a writer holds its lock on."""
    return Path(folder) / META_DIR / LOCK_FILE


def card_path(folder: str | Path) -> Path:
    """``README.md``: the dataset card."""
    return Path(folder) / README_FILE


def quarantine_dir(folder: str | Path) -> Path:
    """``quarantine/``: where repairs set aside tars that do not decode."""
    return Path(folder) / QUARANTINE_DIR


def shards_dir(folder: str | Path) -> Path:
    """``shards/``: the data shards."""
    return Path(folder) / SHARDS_DIR


def shard_path(folder: str | Path, name: str) -> Path:
    """``shards/<name>.tar``: the tar of data shard ``name``."""
    return shards_dir(folder) / f"{name}.tar"


def rewards_dir(folder: str | Path) -> Path:
    """``rewards/``: one sub-folder per reward set."""
    return Path(folder) / REWARDS_DIR


def reward_dir(folder: str | Path, fingerprint: str) -> Path:
    """``rewards/<fingerprint>/``: the folder of one reward set."""
    return rewards_dir(folder) / fingerprint


def reward_set_info_path(folder: str | Path, fingerprint: str) -> Path:
    """``rewards/<fingerprint>/info.json``: the reward model and prompt set behind a reward set."""
    return reward_dir(folder, fingerprint) / INFO_FILE


def reward_set_prompts_path(folder: str | Path, fingerprint: str) -> Path:
    """``rewards/<fingerprint>/prompts.json``: a reward set's prompts, in column order."""
    return reward_dir(folder, fingerprint) / PROMPTS_FILE


def reward_shard_path(folder: str | Path, fingerprint: str, name: str) -> Path:
    """``rewards/<fingerprint>/<name>.tar``: the rewards of data shard ``name`` in one reward set."""
    return reward_dir(folder, fingerprint) / f"{name}.tar"


def sidecar_path(tar_path: Path) -> Path:
    """The sidecar of a shard's tar: the same name with ``.json``."""
    return tar_path.with_suffix(".json")


def reward_set_location(path: str | Path) -> tuple[Path, str] | None:
    """The dataset folder and fingerprint of a reward set's folder ``DATASET/rewards/<fingerprint>``,
    None if ``path`` is not of that form (whether the set has been written is not checked)."""
    path = Path(path)
    if path.parent.name != REWARDS_DIR or not path.name:
        return None
    return path.parent.parent, path.name


def dataset_cameras(info: dict[str, Any]) -> tuple[str, ...]:
    """The cameras a dataset's ``meta/info.json`` records (``("front",)`` if it records none).

    Raises:
        LampError: it records an unknown camera (written by a newer lamp).
    """
    return schema.check_cameras(info.get("cameras") or schema.DEFAULT_CAMERAS)


def sample_fields(cameras: tuple[str, ...] = schema.DEFAULT_CAMERAS) -> dict[str, str]:
    """Step key -> file extension of every field of an episode recorded with ``cameras``."""
    extra = {key: CAMERA_FIELD_FILES[key] for key in schema.image_keys(cameras) if key != schema.IMAGE}
    return {**FIELD_FILES, **extra}


def episode_key(index: int) -> str:
    """Sample key of episode ``index``: ``ep00000042``."""
    return f"ep{index:08d}"


def episode_index(key: str) -> int:
    """Inverse of :func:`episode_key`."""
    match = _KEY.match(key)
    if not match:
        raise LampError(f"'{key}' is not an episode key like ep00000042")
    return int(match.group(1))


def shard_name(run: str, first_episode: int) -> str:
    """Name of the shard of run ``run`` that starts at episode ``first_episode``."""
    return f"{run}-{first_episode:08d}"


def check_run_name(run: str) -> str:
    """A run name is a plain word: letters, digits, ``_``, ``-``, ``.``."""
    if not _NAME.match(run) or run.endswith(".tmp"):
        raise LampError(f"run name '{run}' must be letters, digits, '_', '-' or '.'")
    return run


def encode_array(array: np.ndarray, compress: bool = False) -> bytes:
    """``.npy`` bytes of ``array`` (never pickled); gzip with a fixed mtime if ``compress``."""
    stream = io.BytesIO()
    np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
    data = stream.getvalue()
    if compress:
        data = gzip.compress(data, compresslevel=FRAME_COMPRESSLEVEL, mtime=0)
    return data


def member_limit(extension: str, steps: int | None, image_size: int | None = None, prompt_count: int | None = None) -> int:
    """Most bytes a sample file ``<key>.<extension>`` may decode to, from the shape and dtype its
    episode must have: frames ``uint8 [steps + 1, image_size, image_size, 3]``, rewards ``float16
    [steps + 1, prompt_count]``, metadata :data:`MAX_META_BYTES`; :data:`MAX_FIELD_BYTES` for
    what is not known (``steps`` of a tar that lost its sidecar, a dataset without an image size).
    Files stored without compression never decode to more than they hold."""
    if extension == META_FILE:
        return MAX_META_BYTES
    rows = (steps + 1) if steps is not None else None
    if extension in FRAME_FILES and rows is not None and image_size:
        return min(rows * image_size**2 * 3, MAX_FIELD_BYTES) + NPY_HEADER_BYTES
    if extension == REWARD_FILE and rows is not None and prompt_count:
        return rows * prompt_count * 2 + NPY_HEADER_BYTES
    return MAX_FIELD_BYTES


def decode_field(extension: str, data: bytes | memoryview, max_bytes: int = MAX_FIELD_BYTES) -> Any:
    """Decode one sample file by its extension (``.npy``, ``.npy.gz``, ``.json``), never unpickling.

    A ``.npy`` header must describe exactly the bytes that follow it and at most ``max_bytes``;
    a gzip-compressed one is checked before its array is allocated and decompressed into it in
    chunks, so neither a crafted header nor a small file that decompresses to gigabytes takes
    more memory than ``max_bytes``.

    Raises:
        ValueError: an unknown extension, or a file that is malformed or larger than ``max_bytes``.
    """
    if len(data) > max_bytes:
        raise ValueError(f"holds {len(data):,} bytes, more than the {max_bytes:,} its episode allows")
    if extension.endswith(".npy.gz"):
        return _gunzip_npy(data, max_bytes)
    if extension.endswith(".npy"):
        return _load_npy(data, max_bytes)
    if extension.endswith(".json"):
        return json.loads(bytes(data))
    raise ValueError(f"unknown field type '{extension}'")


def _npy_header(head: bytes | memoryview) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of the ``.npy`` header at the start of ``head``; no object arrays."""
    stream = io.BytesIO(bytes(head[:NPY_HEADER_BYTES]))
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except EOFError:
        raise ValueError(f"the .npy header is cut short or longer than {NPY_HEADER_BYTES:,} bytes") from None
    if dtype.hasobject:
        raise ValueError("object arrays are refused (they would need unpickling)")
    if fortran_order and len(shape) > 1:
        raise ValueError("Fortran-ordered arrays are not written by lamp")
    return tuple(int(n) for n in shape), dtype, stream.tell()


def _array_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _load_npy(data: bytes | memoryview, max_bytes: int) -> np.ndarray:
    """An array from ``.npy`` bytes whose header matches the data's size."""
    shape, dtype, offset = _npy_header(data)
    size = _array_bytes(shape, dtype)
    if size > max_bytes or size != len(data) - offset:
        raise ValueError(f"array header says {shape} {dtype} ({size:,} bytes), the file holds {len(data) - offset:,}")
    return np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape).copy()


def _gunzip_npy(data: bytes | memoryview, max_bytes: int) -> np.ndarray:
    """The array of one gzip member holding a ``.npy``: its header is read first, the array of
    the size it declares (at most ``max_bytes``) allocated, and the rest decompressed into it in
    chunks of :data:`INFLATE_CHUNK` bytes, never past it."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        head = decompressor.decompress(data, NPY_HEADER_BYTES)
        shape, dtype, offset = _npy_header(head)
        size = _array_bytes(shape, dtype)
        if size + offset > max_bytes:
            raise ValueError(f"decompresses to more than {max_bytes:,} bytes (its header says {shape} {dtype}), "
                             "more than its sidecar and image size allow")
        array = np.empty(shape, dtype)
        target = memoryview(array.reshape(-1).view(np.uint8)) if size else memoryview(bytearray())
        filled = len(head) - offset
        if filled > size:
            raise ValueError(f"decompresses to more than its header's {size:,} bytes")
        target[:filled] = head[offset:]
        while True:
            chunk = decompressor.decompress(decompressor.unconsumed_tail, min(INFLATE_CHUNK, size - filled + 1))
            if not chunk:
                break
            if filled + len(chunk) > size:
                raise ValueError(f"decompresses to more than its header's {size:,} bytes")
            target[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    except zlib.error as error:
        raise ValueError(f"not valid gzip data ({error})") from None
    if filled != size or not decompressor.eof or decompressor.unused_data or decompressor.unconsumed_tail:
        raise ValueError("gzip data is truncated or has trailing bytes")
    return array


@dataclass(frozen=True)
class TarMember:
    """A regular file of a shard's tar: ``<key>.<extension>``, ``size`` bytes."""

    key: str
    extension: str
    size: int
    member: tarfile.TarInfo


def iter_tar_members(archive: tarfile.TarFile) -> Iterator[TarMember]:
    """The members of an open tar in order, each a regular file named ``<key>.<extension>``.

    Raises:
        ValueError: a member that is not a regular file (symlink, folder, device) or a name with
            a path in it.
    """
    for member in archive:
        if not member.isreg():
            raise ValueError(f"member {member.name!r} is not a regular file")
        key, _, extension = member.name.partition(".")
        if not _MEMBER.match(member.name) or not extension:
            raise ValueError(f"member name {member.name!r} is not <key>.<field>")
        yield TarMember(key, extension, member.size, member)


def tar_keys(tar_path: Path) -> list[str]:
    """The sample keys of a tar, in order, from its member headers alone (no file is read).

    Raises:
        OSError: it cannot be read.
        ValueError: a member that is not ``<key>.<field>``, a key whose members are not
            consecutive, or a tar that does not parse.
    """
    keys: list[str] = []
    try:
        with tarfile.open(tar_path, mode="r:") as archive:
            for member in iter_tar_members(archive):
                if not keys or keys[-1] != member.key:
                    if member.key in keys:
                        raise ValueError(f"sample {member.key!r} appears twice")
                    keys.append(member.key)
    except (tarfile.TarError, EOFError) as error:
        raise ValueError(str(error) or type(error).__name__) from None
    return keys


def read_json(path: Path) -> Any:
    """The JSON value in ``path``.

    Raises:
        StorageError: the file cannot be read.
        DamagedDataError: it is not valid JSON.
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise StorageError(path, error, "read") from error
    try:
        return json.loads(text)
    except ValueError as error:
        raise DamagedDataError(f"damaged {path}: not valid JSON ({error})") from error


def read_prompts(path: Path) -> list[str]:
    """A prompt set from a ``prompts.json``: a list of strings (or an object holding it under ``prompts``).

    Raises:
        LampError: the file holds no list of strings (or cannot be read, or is not JSON).
    """
    value = read_json(path)
    prompts = value.get("prompts") if isinstance(value, dict) else value
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise LampError(f"{path} does not hold a list of prompts")
    return prompts


def info_checksum(info: dict[str, Any]) -> str:
    """``sha256:<hex>`` of an ``info.json``'s fields other than :data:`CHECKSUM`, as canonical JSON.

    Raises:
        LampError: a field holds NaN or an infinity (not JSON; refused rather than written).
    """
    body = {key: value for key, value in info.items() if key != CHECKSUM}
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise LampError("refusing to record a non-finite number (NaN or infinity) in info.json") from None
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def seal_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with its :func:`info_checksum` under :data:`CHECKSUM`."""
    return {**info, CHECKSUM: info_checksum(info)}


def info_seal(info: dict[str, Any]) -> str:
    """``"sealed"`` if ``info`` carries the checksum of its fields, ``"missing"`` if it carries
    none (written by an older lamp, or the checksum was removed), ``"changed"`` if it differs."""
    recorded = info.get(CHECKSUM)
    if recorded is None:
        return "missing"
    return "sealed" if recorded == info_checksum(info) else "changed"


REPAIR_HINT = "`lamp-data verify --repair` on the dataset checks its shards against it and seals it, or restore it from a copy"


def check_info(path: Path, info: Any) -> dict[str, Any]:
    """``info`` read from ``path`` if it is a JSON object that carries the checksum of its fields.

    Raises:
        DamagedDataError: not an object, changed after it was written, or without a checksum
            (one removed would let an edited file through).
    """
    if not isinstance(info, dict):
        raise DamagedDataError(f"damaged {path}: it does not hold a JSON object")
    seal = info_seal(info)
    if seal == "changed":
        raise DamagedDataError(f"damaged {path}: its fields do not match its checksum (changed after lamp wrote it); {REPAIR_HINT}")
    if seal == "missing":
        raise DamagedDataError(f"damaged {path}: it has no checksum (written by an older lamp, or the checksum was removed); {REPAIR_HINT}")
    return info


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file."""
    digest = hashlib.sha256()
    size = update_from_file(digest, path)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class ShardInfo:
    """A committed shard as its sidecar describes it."""

    name: str
    """Shard name without extension, e.g. ``collect-00000040``."""
    tar_path: Path
    """Path of the tar file."""
    nsamples: int
    """Number of samples (episodes)."""
    nsteps: int
    """Total env steps (actions) over its episodes."""
    sha256: str
    """sha256 of the tar file."""
    bytes: int
    """Size of the tar file."""


def write_sidecar(tar_path: Path, samples: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Hash a finished tar and write its sidecar ``<name>.json`` atomically (the commit marker).

    Args:
        tar_path: The tar, already in its final place.
        samples: One dict per sample in order, each with ``key`` and ``steps`` (plus any
            per-sample summary such as ``task`` and ``success``).
        **extra: More fields for the sidecar (``run``, ...).
    """
    sha256, size = file_digest(tar_path)
    sidecar = {
        "format_version": SIDECAR_FORMAT_VERSION,
        "name": tar_path.stem,
        "nsamples": len(samples),
        "nsteps": int(sum(sample["steps"] for sample in samples)),
        "sha256": sha256,
        "bytes": size,
        "samples": samples,
        **extra,
    }
    atomic_write_json(sidecar_path(tar_path), sidecar)
    return sidecar


def read_sidecar(path: Path) -> dict[str, Any]:
    """Load and check a sidecar: its fields and types, and that it names its own shard.

    Raises:
        DamagedDataError: naming the file, if it is unreadable, malformed, or records another
            shard name (the shard was renamed).
    """
    try:
        sidecar = json.loads(path.read_text())
        if not isinstance(sidecar, dict):
            raise ValueError("not a JSON object")
        if sidecar.get("format_version") != SIDECAR_FORMAT_VERSION:
            raise ValueError(f"unknown sidecar format_version {sidecar.get('format_version')!r}")
        for field in ("nsamples", "nsteps", "sha256", "bytes", "samples"):
            if field not in sidecar:
                raise ValueError(f"missing '{field}'")
        _check_sidecar_fields(sidecar)
    except (OSError, ValueError) as error:
        raise DamagedDataError(
            f"sidecar {path} is unreadable: {error}; `lamp-data verify --repair` on the dataset re-derives it from its tar"
        ) from error
    name = sidecar.get("name", path.stem)
    if name != path.stem:
        raise DamagedDataError(
            f"sidecar {path} records shard '{name}': the shard was renamed; give both files back the name {name}"
        )
    return sidecar


def _check_sidecar_fields(sidecar: dict[str, Any]) -> None:
    """ValueError unless the counts, checksum and per-sample entries have sane types and values."""
    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53

    if not (count(sidecar["nsamples"]) and count(sidecar["nsteps"]) and count(sidecar["bytes"])):
        raise ValueError("nsamples, nsteps and bytes must be non-negative whole numbers")
    if not isinstance(sidecar["sha256"], str) or not _SHA256.match(sidecar["sha256"]):
        raise ValueError("sha256 is not a sha256 hex digest")
    samples = sidecar["samples"]
    if not isinstance(samples, list) or len(samples) != sidecar["nsamples"]:
        raise ValueError("samples must list nsamples entries")
    for entry in samples:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not count(entry.get("steps")):
            raise ValueError("every sample entry needs a key and a step count")
        if entry["steps"] > MAX_SAMPLE_STEPS:
            raise ValueError(f"sample {entry['key']} claims {entry['steps']:,} steps (at most {MAX_SAMPLE_STEPS:,})")
    if sum(entry["steps"] for entry in samples) != sidecar["nsteps"]:
        raise ValueError("nsteps is not the sum of the samples' steps")


def shard_info(sidecar_path: Path, sidecar: dict[str, Any]) -> ShardInfo:
    """The :class:`ShardInfo` of a sidecar."""
    return ShardInfo(
        name=sidecar_path.stem,
        tar_path=sidecar_path.with_suffix(".tar"),
        nsamples=int(sidecar["nsamples"]),
        nsteps=int(sidecar["nsteps"]),
        sha256=str(sidecar["sha256"]),
        bytes=int(sidecar["bytes"]),
    )


def committed_sidecars(folder: Path) -> list[Path]:
    """Sidecars of committed tars in ``folder`` (both files present), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.glob("*.json")
        if not is_temporary(path) and path.name not in (INFO_FILE, PROMPTS_FILE)
        and path.with_suffix(".tar").is_file()
    )


def interrupted_writes(folder: Path) -> list[Path]:
    """Temporary files that interrupted writes left in ``folder`` (never a finished file)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_temporary(path))


def orphan_tars(folder: Path) -> list[Path]:
    """Tars in ``folder`` without a sidecar: complete shards whose sidecar was never written or
    was lost, or damaged ones; see :func:`lamp_data.store.writer.recover_orphans`."""
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.glob("*.tar") if not is_temporary(path) and not sidecar_path(path).exists()
    )


def creation_leftovers(folder: Path) -> list[Path] | None:
    """The files in ``folder`` that creating a dataset writes before its first shard
    (``meta/info.json``, ``meta/prompts.json``, ``meta/.lock``, the card, an empty reward set's
    ``info.json`` and ``prompts.json``, temporary files), deepest first; None if it holds anything
    else (a tar, a sidecar, a link, a file lamp does not write), which is never to be removed."""
    files_written = {Path(META_DIR, INFO_FILE), Path(META_DIR, PROMPTS_FILE), Path(META_DIR, LOCK_FILE), Path(README_FILE)}
    folders_made = {Path(META_DIR), Path(SHARDS_DIR), Path(REWARDS_DIR)}
    files: list[Path] = []
    for path in sorted(folder.rglob("*"), key=lambda item: -len(item.parts)):
        relative = path.relative_to(folder)
        in_reward_set = len(relative.parts) == 3 and relative.parts[0] == REWARDS_DIR
        if path.is_symlink():
            return None
        if path.is_dir():
            if relative in folders_made or (len(relative.parts) == 2 and relative.parts[0] == REWARDS_DIR):
                continue
            return None
        if is_temporary(path) or relative in files_written or (in_reward_set and path.name in (INFO_FILE, PROMPTS_FILE)):
            files.append(path)
            continue
        return None
    return files
