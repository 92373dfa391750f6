"""Record episodes into a dataset, resumably, with K workers.

``collect(out, CollectConfig(episodes=N, ...))`` makes ``out`` hold exactly episodes ``0..N-1``.
Episode ``i`` gets its env seed and its policy's random numbers from ``(config.seed, i)`` alone
(``numpy.random.SeedSequence(seed, spawn_key=(i,))``), so its content never depends on the
worker count, the shard size or interruptions. Episodes are grouped into shards of
``shard_episodes`` by index (episodes ``[k*M, (k+1)*M)``), each named after its run and first
episode (``collect-00000040``) and written by one worker. Each episode is played by the one
episode loop of :mod:`lamp_data.pipeline.rollout`; the shards are the work units handed to an executor
(:mod:`lamp_data.pipeline.executors`: this process, worker processes, or Ray actors), whose workers
encode and write them, so the driver only counts progress and keeps ``meta/`` up to date.

Running again on the same folder resumes: temporary files of interrupted writes are removed, a
tar whose sidecar is missing gets it re-derived if it decodes completely or is moved to
``quarantine/`` (never deleted), committed shards are kept and only missing episodes are recorded; a larger ``episodes`` extends the
dataset; :func:`resolve_config` takes the settings a resuming call leaves out from the dataset
itself. A folder made with another env, env config or seed is refused. What may differ between
runs into one dataset: the worker count, shard size, episode count, and the policy, but a
policy (with its noise) is bound to its run name: record another policy under another
``run`` name. An in-process policy object (the agent collecting as it learns) always writes
under its own ``run`` name.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_write_json
from lamp_data.devices import check_device, check_device_name
from lamp_data.envs import DEFAULT_ENV, ENVS, make_env
from lamp_data.envs.base import EnvConfig
from lamp_data.errors import DamagedDataError, LampError, check_count, check_number, check_on_damage
from lamp_data.pipeline.executors import ExecutorConfig, WorkerReady, check_local_path, check_visible, import_ray, session, worker_count, worker_pool
from lamp_data.pipeline.rollout import POLICIES, Policy, records_noise, run_episode
from lamp_data.progress import ProgressBar, progress_bar
from lamp_data.provenance import provenance, stable_hash
from lamp_data.rewards.prompts import load_prompt_set
from lamp_data.store import layout
from lamp_data.store.reader import iter_episodes, open_dataset
from lamp_data.store.verify import damaged_shards
from lamp_data.store.writer import (
    RewardSetWriter,
    ShardWriter,
    create_dataset,
    encode_episode,
    recover_orphans,
    shard_entry,
    update_info,
    writer_lock,
)
from lamp_data.envs.tasks import BACKENDS, SPLITS, list_tasks
from lamp_data.rewards.vlm.base import check_reward_spec
from lamp_data.rewards.vlm.scoring import EpisodeScorer, make_scorer

LIMITS = {"episodes": 10_000_000, "shard_episodes": 100_000}
"""Largest accepted value of each count (episode keys have eight digits); the env config bounds
its own (:class:`~lamp_data.envs.base.EnvConfig`)."""
MAX_EPISODE_FRAME_BYTES = 4 << 30
"""Largest frame memory of one episode, ``(steps + 1) * image_size ** 2 * 3`` bytes per camera."""


@dataclass(frozen=True)
class CollectConfig:
    """What to record and how."""

    env: str = DEFAULT_ENV
    """Registered env name."""
    episodes: int = 10
    """Total episodes the dataset should hold (episode indices 0..episodes-1)."""
    policy: str = "random"
    """A built-in policy of :data:`lamp_data.pipeline.rollout.POLICIES` (random | expert | noisy-expert),
    or a label for the record when a policy object is given."""
    seed: int = 0
    """Dataset seed; episode i's content depends only on (seed, i)."""
    env_config: EnvConfig = field(default_factory=EnvConfig)
    """The env's settings: frame size, cameras, episode length, action repeat, randomization
    (:meth:`EnvConfig.of` builds one from the command line's options)."""
    shard_episodes: int = 10
    """Episodes per shard."""
    noise: float = 0.2
    """Gaussian action noise of the noisy-expert policy."""
    vlm: str | None = None
    """Reward model spec for inline rewards (e.g. ``r3m:/path/model.pt``); None for none."""
    prompts: str | None = None
    """Prompt set name for inline rewards."""
    device: str = "cpu"
    """Torch device of the inline reward model."""
    run: str = "collect"
    """Run name: prefix of the shards this collection writes."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_config, EnvConfig):
            raise LampError(f"env_config must be an EnvConfig, got {type(self.env_config).__name__}")
        for name, limit in LIMITS.items():
            check_count(name, getattr(self, name), limit)
        env = self.env_config
        frame_bytes = (env.episode_length // env.action_repeat + 1) * env.image_size**2 * 3 * len(env.cameras)
        if frame_bytes > MAX_EPISODE_FRAME_BYTES:
            raise LampError(
                f"an episode of {env.episode_length} steps at {env.image_size} px from {len(env.cameras)} camera(s) holds {frame_bytes / 2**30:.1f} GiB "
                f"of frames in memory (at most {MAX_EPISODE_FRAME_BYTES >> 30} GiB); shorten --episode-length or --image-size"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise LampError(f"seed must be a whole number in [0, 2**63), got {self.seed!r}")
        check_number("noise", self.noise, low=0.0)
        check_device_name(self.device)

    def run_record(self) -> dict[str, Any]:
        """What a run name is bound to in ``meta/info.json``."""
        record: dict[str, Any] = {"policy": self.policy}
        if records_noise(self.policy):
            record["noise"] = self.noise
        return record


@dataclass(frozen=True)
class CollectSummary:
    """What one call of :func:`collect` did."""

    out: str
    """The dataset folder."""
    episodes_total: int
    """Episodes in the dataset afterwards."""
    episodes_written: int
    """Episodes recorded by this call."""
    shards_written: int
    """Data shards committed by this call."""
    reward_shards_written: int
    """Reward shards committed by this call (inline rewards)."""
    leftovers_removed: int
    """Temporary files of interrupted writes removed before starting."""
    steps: int
    """Env steps recorded by this call."""
    seconds: float
    """Wall time from every worker having built its env to the last shard committed (worker
    shut-down excluded)."""
    timed_steps: int
    """Env steps recorded within ``seconds`` (what steps/s is measured on)."""
    success_rate: float
    """Fraction of this call's episodes that reached success at least once."""
    rederived: tuple[str, ...] = ()
    """Tars found without a sidecar that decoded completely; their sidecar was written again."""
    quarantined: tuple[tuple[str, str, str], ...] = ()
    """(tar, its place under ``quarantine/``, why) for tars without a sidecar that did not decode."""
    damaged: tuple[tuple[str, str], ...] = ()
    """(shard, why) for the damaged shards an ``on_damage="skip"`` call left as they were."""

    @property
    def steps_per_second(self) -> float:
        """Recorded env steps per wall-clock second."""
        return self.timed_steps / self.seconds if self.seconds > 0 else 0.0


def episode_seeds(dataset_seed: int, index: int) -> tuple[int, np.random.Generator]:
    """Env reset seed and policy generator of episode ``index``, from ``(dataset_seed, index)`` only."""
    sequence = np.random.SeedSequence(entropy=dataset_seed, spawn_key=(index,))
    env_sequence, policy_sequence = sequence.spawn(2)
    return int(env_sequence.generate_state(1, np.uint32)[0]), np.random.default_rng(policy_sequence)


def record_episode(env: Any, config: CollectConfig, index: int, policy: Policy | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Play episode ``index`` and return its stored arrays (``schema`` keys) and metadata.

    Args:
        env: The env, built from ``config.env_config``.
        config: What to record.
        index: The episode's index in the dataset; its env seed and the built-in policy's
            random numbers come from ``(config.seed, index)``.
        policy: An in-process policy; None: ``config.policy`` from :data:`lamp_data.pipeline.rollout.POLICIES`.
    """
    env_seed, rng = episode_seeds(config.seed, index)
    acting = policy if policy is not None else POLICIES.create(config.policy, env, rng, config.noise)
    played = run_episode(env, acting, env_seed, max_steps=config.env_config.episode_length)
    info = played.reset_info
    meta = {
        "episode": index,
        "env": config.env,
        "run": config.run,
        "policy": config.policy,
        "seed": env_seed,
        "dataset_seed": config.seed,
        "task": info.get("task"),
        "instruction": info.get("instruction"),
        "randomization": info.get("randomization", {}),
        "steps": len(played),
        "success": played.success,
    }
    if policy is None and records_noise(config.policy):
        meta["noise"] = config.noise
    describe = getattr(acting, "episode_meta", None)
    if describe is not None:  # what a policy says about its episode (an agent: the prompt it acted on)
        meta.update({key: value for key, value in describe().items() if key not in meta})
    return played.episode(), meta


@dataclass(frozen=True)
class EpisodeRecorded:
    """A worker recorded one episode (not yet committed: its shard commits it)."""

    steps: int
    """Its recorded steps."""
    success: bool
    """Whether it reached success at least once."""


@dataclass(frozen=True)
class ShardCommitted:
    """A worker committed a data shard."""

    name: str
    """The shard's name."""


@dataclass(frozen=True)
class RewardShardCommitted:
    """A worker committed an inline reward shard."""

    name: str
    """The data shard it scores."""


@dataclass(frozen=True)
class RewardSetOpened:
    """A worker opened the inline reward set (sent by every worker as it starts)."""

    fingerprint: str
    """The reward set's fingerprint."""
    prompts: tuple[str, ...]
    """Its prompt set, in reward-column order."""


@dataclass(frozen=True)
class _Unit:
    kind: str
    """"collect" (record episodes into a new shard) or "score" (add missing inline rewards)."""
    name: str
    indices: tuple[int, ...] = ()


class _ShardRecorder:
    """A collect worker: one env, a policy and an inline scorer; turns units into committed shards."""

    def __init__(self, out: str, config: CollectConfig, policy: Policy | None, scorer_factory: Callable[[], EpisodeScorer] | None):
        import webdataset  # noqa: F401  (imports torch: pay for it before the clock starts)

        self.out = Path(out)
        self.config = config
        self.policy = policy
        self.scorer_factory = scorer_factory
        self.env = None
        self.scorer = None
        self.reward_writer = None

    def start(self, emit: Callable[[Any], None]) -> None:
        """Check the dataset is visible here, build the env (and render once) and the scorer, open the reward set."""
        check_visible(self.out)
        config = self.config
        self.env = make_env(config.env, config.env_config)
        # The first reset sets up the renderer (about a second); paid here, a worker is ready when it says so
        # (every episode resets with its own seed, so this reset changes no episode)
        self.env.reset(seed=0)
        if self.scorer_factory is not None:
            self.scorer = self.scorer_factory()
        elif config.vlm:
            self.scorer = make_scorer(config.vlm, config.prompts, device=config.device)
        if self.scorer is not None:
            scorer = self.scorer
            self.reward_writer = RewardSetWriter(self.out, scorer.fingerprint, scorer.info, scorer.prompts)
            emit(RewardSetOpened(scorer.fingerprint, tuple(scorer.prompts)))

    def close(self) -> None:
        """Close the env."""
        if self.env is not None:
            self.env.close()
            self.env = None

    def do(self, unit: _Unit, emit: Callable[[Any], None]) -> None:
        """Record a unit's episodes into its shard (or score a stored shard), then commit."""
        if unit.kind == "score":
            self.score_stored(unit.name, emit)
            return
        rewards: dict[str, np.ndarray] = {}
        with ShardWriter(layout.shard_path(self.out, unit.name), run=self.config.run) as shard:
            for index in unit.indices:
                episode, meta = record_episode(self.env, self.config, index, self.policy)
                key = layout.episode_key(index)
                shard.add(encode_episode(key, episode, meta), shard_entry(key, meta))
                if self.scorer is not None:
                    rewards[key] = self.scorer.score(episode[schema.IMAGE])
                emit(EpisodeRecorded(meta["steps"], meta["success"]))
        emit(ShardCommitted(unit.name))
        if self.reward_writer is not None:
            self.reward_writer.write_shard(unit.name, rewards)
            emit(RewardShardCommitted(unit.name))

    def score_stored(self, name: str, emit: Callable[[Any], None]) -> None:
        """Add the inline rewards of a committed shard that lacks them."""
        if self.reward_writer is None or self.reward_writer.has_shard(name):
            return
        rewards = {
            episode["__key__"]: self.scorer.score(episode[schema.IMAGE])
            for episode in iter_episodes(self.out, shards=[name])
        }
        self.reward_writer.write_shard(name, rewards)
        emit(RewardShardCommitted(name))


ENV_OPTIONS = ("image_size", "cameras", "episode_length", "action_repeat", "canonical", "goal_marker")
"""The options of :func:`resolve_config` that go into the env config (:meth:`EnvConfig.of`)."""


def recorded_options(out: str | Path, run: str = CollectConfig.run) -> dict[str, Any]:
    """The options the dataset at ``out`` was collected with, ``{}`` if ``out`` holds no dataset:
    env, image size, cameras, episode length, action repeat, randomization (``canonical``), goal
    marker, seed and shard size, plus the policy (and noise) recorded for ``run``."""
    out = Path(out)
    if not layout.is_dataset(out):
        return {}
    info = open_dataset(out).info
    env = _with_action_repeat(info.get("env", {}))
    env_config = EnvConfig.from_dict(env.get("config") or {})
    collection = info.get("collection", {})
    options: dict[str, Any] = {
        "env": env.get("name"),
        "image_size": env_config.image_size,
        "cameras": env_config.cameras,
        "episode_length": env_config.episode_length,
        "action_repeat": env_config.action_repeat,
        "canonical": not env_config.randomization.enabled,
        "goal_marker": env_config.goal_marker,
        "seed": collection.get("seed"),
        "shard_episodes": collection.get("shard_episodes"),
    }
    record = info.get("runs", {}).get(run) or {}
    if not record.get("custom_policy"):
        options["policy"] = record.get("policy")
        options["noise"] = record.get("noise")
    return {name: value for name, value in options.items() if value is not None}


def resolve_config(out: str | Path, **options: Any) -> CollectConfig:
    """The config for collecting into ``out``: each option given (not None) as it is, each
    other one as the existing dataset recorded it (:func:`recorded_options`), else the
    default. A given option that differs from the dataset is kept, so :func:`collect` refuses it.

    Args:
        out: Dataset folder, existing or not.
        **options: :class:`CollectConfig` fields other than ``env_config``, and the env options
            of :data:`ENV_OPTIONS`; None means "not given".
    """
    given = {name: value for name, value in options.items() if value is not None}
    recorded = recorded_options(out, given.get("run", CollectConfig.run))
    if "policy" in given and given["policy"] != recorded.get("policy"):
        recorded.pop("noise", None)  # noise belongs to the recorded policy
    merged = {**recorded, **given}
    env_options = {name: merged.pop(name) for name in ENV_OPTIONS if name in merged}
    return CollectConfig(env_config=EnvConfig.of(**env_options), **merged)


def _check_output(out: Path) -> None:
    """Refuse output paths that are files or non-dataset folders, before writing anything."""
    if out.exists() and not out.is_dir():
        raise LampError(f"output path {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not layout.is_dataset(out) and layout.creation_leftovers(out) is None:
        raise LampError(f"{out} is a non-empty folder that is not a dataset; choose an empty or new folder")
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise LampError(f"cannot create {out}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise LampError(f"cannot write to {ancestor}: permission denied")


OPTION_OF_FIELD = {
    "image_size": "--image-size", "episode_length": "--episode-length", "action_repeat": "--action-repeat",
    "cameras": "--cameras", "goal_marker": "--goal-marker", "randomization": "--canonical/--randomized",
}
"""The ``collect`` option that sets each env config field (what a mismatch message names)."""


def _full_env_config(config: Any) -> Any:
    """Every field of a recorded env config (``to_dict`` leaves default cameras and goal marker out)."""
    try:
        parsed = EnvConfig.from_dict(config)
    except (LampError, TypeError, ValueError, AttributeError):
        return config
    return {**asdict(parsed), "cameras": list(parsed.cameras)}


def config_differences(existing: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(field, existing value, new value)`` for every leaf in which two JSON-like records differ,
    nested fields named with dots (``randomization.textures``)."""
    if isinstance(existing, dict) and isinstance(new, dict):
        found: list[tuple[str, Any, Any]] = []
        for key in sorted(set(existing) | set(new), key=str):
            found += config_differences(existing.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if existing == new else [(prefix.rstrip("."), existing, new)]


def describe_differences(differences: list[tuple[str, Any, Any]], limit: int = 3) -> str:
    """``image size 64 in the dataset, 96 asked (--image-size); ...``: the first ``limit`` fields that
    differ (those nested in one field, such as randomization's, named together)."""
    def shown(value: Any) -> str:
        text = ",".join(map(str, value)) if isinstance(value, list) else json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)
        return text if len(text) <= 40 else text[:39] + "\u2026"

    grouped: dict[str, list[tuple[str, Any, Any]]] = {}
    for path, existing, new in differences:
        grouped.setdefault(path.split(".")[0], []).append((path, existing, new))
    parts = []
    for top, items in grouped.items():
        option = OPTION_OF_FIELD.get(top)
        where = f" ({option})" if option else ""
        if len(items) == 1 and items[0][0] == top:
            parts.append(f"{top.replace('_', ' ')} {shown(items[0][1])} in the dataset, {shown(items[0][2])} asked{where}")
        else:
            names = ", ".join(path[len(top) + 1:].replace("_", " ") or top for path, _, _ in items)
            parts.append(f"{top.replace('_', ' ')} differs in {names}{where}")
    more = len(parts) - limit
    return "; ".join(parts[:limit]) + (f"; and {more} more" if more > 0 else "")


def _check_compatible(info: dict[str, Any], wanted: dict[str, Any], out: Path) -> None:
    """LampError naming the first setting in which an existing dataset differs from this run, and
    the fields that differ in it."""
    env = _with_action_repeat(info.get("env", {}))
    checks = [
        ("env", env.get("name"), wanted["env"]["name"]),
        ("env config", _full_env_config(env.get("config")), _full_env_config(wanted["env"]["config"])),
        ("env spec", env.get("spec"), wanted["env"]["spec"]),
        ("seed", info.get("collection", {}).get("seed"), wanted["collection"]["seed"]),
    ]
    for what, existing, new in checks:
        if existing != new:
            detail = describe_differences(config_differences(existing, new)) if isinstance(existing, dict) else f"{existing} in the dataset, {new} asked"
            raise LampError(
                f"{out} was collected with a different {what}: {detail}; leave those options out to extend it, or use a new folder"
            )
    runs = info.get("runs", {})
    for run, record in wanted["runs"].items():
        if run in runs and runs[run] != record:
            raise LampError(
                f"run '{run}' in {out} was recorded with other settings: {describe_differences(config_differences(runs[run], record))}; "
                "give this collection another run name (--run)"
            )


def _with_action_repeat(env: dict[str, Any]) -> dict[str, Any]:
    """A dataset's env record with ``action_repeat: 1`` filled in where it predates the option."""
    env = json.loads(json.dumps(env))
    config = env.get("config")
    if isinstance(config, dict):
        config.setdefault("action_repeat", 1)
    spec_config = (env.get("spec") or {}).get("config")
    if isinstance(spec_config, dict):
        spec_config.setdefault("action_repeat", 1)
    return env


def _task_split(spec: dict[str, Any]) -> dict[str, list[str]]:
    """The tasks this env samples from and, for a known backend, its pretrain / held-out split."""
    split = {"collected": list(spec.get("tasks", []))}
    if spec.get("backend") in BACKENDS:
        for name in SPLITS:
            split[name] = [task.name for task in list_tasks(name, spec["backend"])]
    return split


def _dataset_info(config: CollectConfig, env: Any, custom_policy: bool) -> dict[str, Any]:
    spec = env.spec_dict() if hasattr(env, "spec_dict") else env.unwrapped.spec_dict()
    run_record = config.run_record()
    if custom_policy:
        run_record["custom_policy"] = True
    return {
        "env": {"name": config.env, "spec": spec, "config": config.env_config.to_dict()},
        "collection": {"seed": config.seed, "episodes": config.episodes, "shard_episodes": config.shard_episodes,
                       "image_size": config.env_config.image_size, "episode_length": config.env_config.episode_length,
                       "action_repeat": config.env_config.action_repeat, "canonical": not config.env_config.randomization.enabled},
        "runs": {config.run: run_record},
        "task_split": _task_split(spec),
        "cameras": list(config.env_config.cameras),
        "sample_fields": layout.sample_fields(config.env_config.cameras),
        "provenance": provenance(),
    }


def _plan(dataset, config: CollectConfig) -> tuple[list[_Unit], int]:
    """Units for the missing episodes below ``config.episodes``, and the count already present."""
    present: set[int] = set()
    for sidecar in dataset.shard_sidecars().values():
        present.update(layout.episode_index(entry["key"]) for entry in sidecar["samples"])
    blocks: dict[int, list[int]] = {}
    for index in range(config.episodes):
        if index not in present:
            blocks.setdefault(index // config.shard_episodes, []).append(index)
    units = [_Unit("collect", layout.shard_name(config.run, indices[0]), tuple(indices)) for _, indices in sorted(blocks.items())]
    return units, len(present)


def collect(
    out: str | Path,
    config: CollectConfig,
    *,
    policy: Policy | None = None,
    scorer_factory: Callable[[], EpisodeScorer] | None = None,
    progress: bool = True,
    executor: ExecutorConfig | None = None,
    on_damage: str = "fail",
) -> CollectSummary:
    """Make the dataset at ``out`` hold episodes ``0..config.episodes-1``, resuming if it exists.

    Args:
        out: Dataset folder (created if missing).
        config: What to record; see :class:`CollectConfig`.
        policy: An in-process policy object; then collection runs in this process (one
            local worker) and writes under ``config.run``.
        scorer_factory: A picklable zero-arg callable building the scorer of inline rewards: an
            :class:`~lamp_data.rewards.vlm.scoring.EpisodeScorer`, or any object with its ``fingerprint``,
            ``info``, ``prompts`` and ``score(frames)`` (default: ``make_scorer(config.vlm,
            config.prompts)`` if ``config.vlm``).
        progress: Show a live progress bar.
        executor: Where the workers run and how many (default: one, in this process); see
            :mod:`lamp_data.pipeline.executors`.
        on_damage: An existing dataset's committed shards are checked first (size and sha256
            against their sidecars): ``"fail"`` refuses to extend a dataset with a damaged one,
            ``"skip"`` extends it and lists them in the summary (they stay as they are).

    Raises:
        LampError: bad settings, an unusable ``out``, or a dataset made with another env, env
            config or seed (nothing is written or removed then).
        DamagedDataError: with ``on_damage="fail"``, a damaged shard (nothing is written then).
    """
    executor = executor or ExecutorConfig()
    check_on_damage(on_damage)
    check_local_path(out)
    out = Path(out)
    layout.check_run_name(config.run)
    if executor.is_ray:
        import_ray()
        if policy is not None:
            raise LampError("an in-process policy collects in this process; use the local executor")
    if policy is None:
        POLICIES.get(config.policy)  # unknown policy -> LampError naming the known ones
    if policy is not None and (executor.workers or 1) != 1:
        raise LampError("an in-process policy collects with workers=1")
    if config.vlm is not None and config.prompts is None and scorer_factory is None:
        raise LampError("inline rewards need a prompt set: give --prompts with --vlm")
    if config.vlm is not None and not executor.is_ray:
        check_device(config.device)
    if config.vlm is not None and scorer_factory is None:
        check_reward_spec(config.vlm)  # unknown family, a model file that is not there
        load_prompt_set(config.prompts)  # unknown prompt set
    ENVS.get(config.env)  # unknown env -> LampError naming the known ones
    _check_output(out)
    existing = open_dataset(out) if layout.is_dataset(out) else None

    env = make_env(config.env, config.env_config)
    try:
        if policy is None:  # a policy that cannot act in this env (no scripted expert) fails here, before any write
            probe = POLICIES.create(config.policy, env, np.random.default_rng(0), config.noise)
            observation, info = env.reset(seed=0)
            probe.reset(info)
            probe(observation)
        wanted = _dataset_info(config, env, policy is not None)
    finally:
        env.close()
    if existing is not None:
        _check_compatible(existing.info, wanted, out)

    with _undone_on_failure(out, creating=existing is None):
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LampError(f"cannot create {out}: {error.strerror}") from error
        with session(executor), writer_lock(out):
            damaged: dict[str, str] = {}
            if existing is None:
                _remove_leftovers(out)  # of a creation that failed before its first shard
                dataset = create_dataset(out, wanted)
            else:
                dataset = open_dataset(out)
                _check_compatible(dataset.info, wanted, out)
                damaged = damaged_shards(dataset)
                if damaged and on_damage == "fail":
                    first = sorted(damaged)[0]
                    raise DamagedDataError(
                        f"{out} has {len(damaged)} damaged shard(s), {', '.join(sorted(damaged))} ({damaged[first]}); "
                        f"`lamp-data verify {out} --repair` sets them aside, then collect records their episodes again; "
                        "or pass --on-damage skip to extend the dataset as it is"
                    )
            recovery = recover_orphans(dataset)
            units, present = _plan(dataset, config)
            if config.vlm is not None or scorer_factory is not None:
                units += [_Unit("score", name) for name in dataset.shard_sidecars() if name not in damaged]
            total = present + sum(len(unit.indices) for unit in units)
            with progress_bar("collect", total, unit="episodes", completed=present, enabled=progress) as bar:
                tally = _Tally(dataset, config, bar)
                if units:
                    worker_factory = functools.partial(_ShardRecorder, str(dataset.path.resolve()), config, policy, scorer_factory)
                    with worker_pool(executor, worker_factory, worker_count(executor, len(units)), "collect") as workers:
                        workers.start(tally)
                        if existing is not None:  # once every worker has built its env and model
                            _record_run(dataset, config, wanted)
                        for _ in workers.run(units, tally):
                            pass
                    if executor.is_ray:
                        recover_orphans(dataset)  # leftovers of attempts killed and retried
                elif existing is not None:
                    _record_run(dataset, config, wanted)
            return CollectSummary(
                out=str(dataset.path),
                episodes_total=present + tally.episodes,
                episodes_written=tally.episodes,
                shards_written=tally.shards,
                reward_shards_written=tally.reward_shards,
                leftovers_removed=len(recovery.removed),
                steps=tally.steps,
                seconds=(tally.last_commit or time.perf_counter()) - tally.started,
                timed_steps=tally.steps - tally.steps_before_start,
                success_rate=tally.successes / tally.episodes if tally.episodes else 0.0,
                rederived=tuple(recovery.rederived),
                quarantined=tuple(recovery.quarantined),
                damaged=tuple(sorted(damaged.items())),
            )


def _record_run(dataset: Any, config: CollectConfig, wanted: dict[str, Any]) -> None:
    """Record this run and the episode count in an existing dataset's ``meta/info.json``."""
    info = dict(dataset.info)
    info["runs"] = {**info.get("runs", {}), **wanted["runs"]}
    info["collection"] = {**info["collection"], "episodes": max(config.episodes, info["collection"].get("episodes", 0))}
    update_info(dataset, info)


def _remove_leftovers(out: Path) -> None:
    """Remove what a creation that failed before its first shard left in ``out`` (never a shard,
    never the lock this process holds)."""
    for path in layout.creation_leftovers(out) or []:
        if path != layout.lock_path(out):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _undone_on_failure(out: Path, creating: bool) -> Iterator[None]:
    """When this call creates the dataset and fails before its first shard is committed, remove
    what it wrote (and the folder, if it made it), so the same command can simply run again."""
    made_folder = creating and not out.exists()
    try:
        yield
    except BaseException:
        leftovers = layout.creation_leftovers(out) if creating and out.is_dir() else None
        if leftovers is not None:
            for path in leftovers:
                if made_folder or path != layout.lock_path(out):
                    path.unlink(missing_ok=True)
            folders = sorted((path for path in out.rglob("*") if path.is_dir()), key=lambda path: -len(path.parts))
            for folder in folders + ([out] if made_folder else []):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
        raise


class _Tally:
    """Counts the workers' events, shows them on the bar and keeps the dataset's prompt record up to date.

    Steps/s are timed from the moment every worker is ready to the last commit.
    """

    def __init__(self, dataset, config: CollectConfig, bar: ProgressBar):
        self.dataset = dataset
        self.config = config
        self.bar = bar
        self.episodes = self.steps = self.successes = self.shards = self.reward_shards = 0
        self.started = time.perf_counter()
        self.prompts_recorded = False
        self.ready = 0
        self.steps_before_start = 0
        self.last_commit: float | None = None
        """When the last shard or reward shard was committed: the end of the recording, before
        the workers shut down (the teardown of a worker process is no part of the throughput)."""

    def __call__(self, event: Any) -> None:
        if isinstance(event, WorkerReady):
            self.ready += 1
            if self.ready == event.workers:
                self.started = time.perf_counter()
                self.steps_before_start = self.steps
        elif isinstance(event, EpisodeRecorded):
            self.episodes += 1
            self.steps += event.steps
            self.successes += bool(event.success)
            seconds = max(time.perf_counter() - self.started, 1e-9)
            self.bar.advance(1, status=f"{self.steps / seconds:7.1f} steps/s  success {self.successes / self.episodes:5.1%}")
        elif isinstance(event, ShardCommitted):
            self.shards += 1
            self.last_commit = time.perf_counter()
        elif isinstance(event, RewardShardCommitted):
            self.reward_shards += 1
            self.last_commit = time.perf_counter()
        elif isinstance(event, RewardSetOpened) and not self.prompts_recorded:
            self.record_prompts(event.fingerprint, list(event.prompts))

    def record_prompts(self, fingerprint: str, prompts: list[str]) -> None:
        stored = self.dataset.prompts()
        if stored is not None and stored != prompts:
            raise LampError(f"{self.dataset.path} already has a different prompt set in meta/prompts.json")
        if stored is None:
            atomic_write_json(layout.prompts_path(self.dataset.path), prompts)
        info = dict(self.dataset.info)
        info["prompt_set"] = {"name": self.config.prompts, "hash": stable_hash(prompts), "count": len(prompts)}
        info["reward_sets"] = sorted(set(info.get("reward_sets", [])) | {fingerprint})
        update_info(self.dataset, info)
        self.prompts_recorded = True


def summary_dict(summary: CollectSummary) -> dict[str, Any]:
    """JSON-able form of a summary, with steps/s."""
    return {**asdict(summary), "steps_per_second": summary.steps_per_second}
