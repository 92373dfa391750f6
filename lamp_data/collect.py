"""Record episodes into a dataset, resumably, with K worker processes.

``collect(out, CollectConfig(episodes=N, ...))`` makes ``out`` hold exactly episodes ``0..N-1``.
Episode ``i`` gets its env seed and its policy's random numbers from ``(config.seed, i)`` alone
(``numpy.random.SeedSequence(seed, spawn_key=(i,))``), so its content never depends on the
worker count, the shard size or interruptions. Episodes are grouped into shards of
``shard_episodes`` by index (episodes ``[k*M, (k+1)*M)``), each named after its run and first
episode (``collect-00000040``) and written by one worker.

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

import dataclasses
import json
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lamp_data import schema
from lamp_data.envs import DEFAULT_ENV, ENVS
from lamp_data.envs.base import MAX_EPISODE_LENGTH, MAX_IMAGE_SIZE, EnvConfig, RandomizationConfig
from lamp_data.errors import LampError, check_number
from lamp_data.executors import ExecutorConfig, check_local_path, import_ray, session
from lamp_data.provenance import provenance, stable_hash

POLICIES = ("random", "expert", "noisy-expert")
"""Built-in policies: uniform random actions, the env's scripted expert, the expert plus noise."""

LIMITS = {
    "episodes": 10_000_000,
    "workers": 1024,
    "shard_episodes": 100_000,
    "episode_length": MAX_EPISODE_LENGTH,
    "image_size": MAX_IMAGE_SIZE,
    "action_repeat": 1000,
}
"""Largest accepted value of each count. Episode keys have eight digits; an episode is held in
memory while it is recorded, so its length and image size bound the memory a worker needs."""
MAX_EPISODE_FRAME_BYTES = 4 << 30
"""Largest frame memory of one episode, ``(steps + 1) * image_size ** 2 * 3`` bytes per camera."""


class Policy(Protocol):
    """An in-process policy: ``reset(info)`` at each episode start, then ``policy(obs) -> action``."""

    def reset(self, info: dict[str, Any]) -> None: ...

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class EpisodeScorer(Protocol):
    """Scores an episode's frames against a prompt set (see ``lamp_data.vlm.scoring``)."""

    fingerprint: str
    info: dict[str, Any]
    prompts: list[str]

    def score(self, frames: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class CollectConfig:
    """What to record and how."""

    env: str = DEFAULT_ENV
    """Registered env name."""
    episodes: int = 10
    """Total episodes the dataset should hold (episode indices 0..episodes-1)."""
    workers: int = 1
    """Worker processes, each writing its own shards."""
    policy: str = "random"
    """random | expert | noisy-expert (a label for the record when a policy object is given)."""
    seed: int = 0
    """Dataset seed; episode i's content depends only on (seed, i)."""
    image_size: int = 64
    """Camera image side in pixels."""
    cameras: tuple[str, ...] = schema.DEFAULT_CAMERAS
    """Cameras recorded at every step: ``front`` (stored as ``image``) and optionally ``wrist``
    (``image_wrist``); also accepts a comma-separated string such as ``"front,wrist"``."""
    episode_length: int = 150
    """Env steps per episode."""
    action_repeat: int = 1
    """Env steps per recorded step, repeating the action (frames are kept at decisions only)."""
    shard_episodes: int = 10
    """Episodes per shard."""
    canonical: bool = False
    """Turn domain randomization off."""
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
        object.__setattr__(self, "cameras", schema.check_cameras(self.cameras))
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LampError(f"{name.replace('_', ' ')} must be a whole number, got {value!r}")
            if value < 1:
                raise LampError(f"{name.replace('_', ' ')} must be at least 1, got {value}")
            if value > limit:
                raise LampError(f"{name.replace('_', ' ')} must be at most {limit:,}, got {value:,}")
        frame_bytes = (self.episode_length // self.action_repeat + 1) * self.image_size**2 * 3 * len(self.cameras)
        if frame_bytes > MAX_EPISODE_FRAME_BYTES:
            raise LampError(
                f"an episode of {self.episode_length} steps at {self.image_size} px from {len(self.cameras)} camera(s) holds {frame_bytes / 2**30:.1f} GiB "
                f"of frames in memory (at most {MAX_EPISODE_FRAME_BYTES >> 30} GiB); shorten --episode-length or --image-size"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise LampError(f"seed must be a whole number in [0, 2**63), got {self.seed!r}")
        check_number("noise", self.noise, low=0.0)
        self.env_config()  # image size within the renderer's bounds

    def env_config(self) -> EnvConfig:
        """The env config this collection builds its envs with."""
        randomization = RandomizationConfig.canonical() if self.canonical else RandomizationConfig()
        return EnvConfig(
            image_size=self.image_size, episode_length=self.episode_length, randomization=randomization,
            action_repeat=self.action_repeat, cameras=self.cameras,
        )

    def run_record(self) -> dict[str, Any]:
        """What a run name is bound to in ``meta/info.json``."""
        record: dict[str, Any] = {"policy": self.policy}
        if self.policy == "noisy-expert":
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
    """Wall time from every worker having built its env to the end."""
    timed_steps: int
    """Env steps recorded within ``seconds`` (what steps/s is measured on)."""
    success_rate: float
    """Fraction of this call's episodes that reached success at least once."""
    rederived: tuple[str, ...] = ()
    """Tars found without a sidecar that decoded completely; their sidecar was written again."""
    quarantined: tuple[tuple[str, str, str], ...] = ()
    """(tar, its place under ``quarantine/``, why) for tars without a sidecar that did not decode."""

    @property
    def steps_per_second(self) -> float:
        """Recorded env steps per wall-clock second."""
        return self.timed_steps / self.seconds if self.seconds > 0 else 0.0


def episode_seeds(dataset_seed: int, index: int) -> tuple[int, np.random.Generator]:
    """Env reset seed and policy generator of episode ``index``, from ``(dataset_seed, index)`` only."""
    sequence = np.random.SeedSequence(entropy=dataset_seed, spawn_key=(index,))
    env_sequence, policy_sequence = sequence.spawn(2)
    return int(env_sequence.generate_state(1, np.uint32)[0]), np.random.default_rng(policy_sequence)


def run_episode(env: Any, config: CollectConfig, index: int, policy: Policy | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Play episode ``index`` and return its arrays (``schema`` keys) and metadata."""
    env_seed, rng = episode_seeds(config.seed, index)
    observation, info = env.reset(seed=env_seed)
    if policy is not None:
        policy.reset(info)
    expert = getattr(env, "expert_action", None) or getattr(env.unwrapped, "expert_action", None)
    image_keys = schema.image_keys(config.cameras)
    frames = {key: [observation[key]] for key in image_keys}
    states = [observation["state"]]
    actions, rewards, successes = [], [], [False]
    terminated = False
    for _ in range(config.episode_length):
        if policy is not None:
            action = np.asarray(policy(observation), np.float32)
        elif config.policy == "random":
            action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
        elif config.policy == "expert":
            action = expert(noise=0.0)
        else:
            action = expert(noise=config.noise, rng=rng)
        observation, reward, terminated, truncated, step_info = env.step(action)
        for key in image_keys:
            frames[key].append(observation[key])
        states.append(observation["state"])
        actions.append(action)
        rewards.append(reward)
        successes.append(bool(step_info.get("success", False)))
        if terminated or truncated:
            break
    length = len(actions)
    is_first = np.zeros(length + 1, bool)
    is_first[0] = True
    is_last = np.zeros(length + 1, bool)
    is_last[-1] = True
    is_terminal = np.zeros(length + 1, bool)
    is_terminal[-1] = bool(terminated)
    episode = {
        **{key: np.stack(frames[key]).astype(np.uint8) for key in image_keys},
        schema.STATE: np.stack(states).astype(np.float32),
        schema.ACTION: np.stack(actions).astype(np.float32),
        schema.REWARD: np.asarray(rewards, np.float32),
        schema.SUCCESS: np.asarray(successes, bool),
        schema.IS_FIRST: is_first,
        schema.IS_LAST: is_last,
        schema.IS_TERMINAL: is_terminal,
    }
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
        "steps": length,
        "success": bool(any(successes)),
    }
    if config.policy == "noisy-expert" and policy is None:
        meta["noise"] = config.noise
    return episode, meta


@dataclass
class _Unit:
    kind: str
    """"collect" (record episodes into a new shard) or "score" (add missing inline rewards)."""
    name: str
    indices: list[int] = field(default_factory=list)


class _Recorder:
    """One worker's env, policy and scorer; turns work units into committed shards."""

    def __init__(self, out: str, config: CollectConfig, policy: Policy | None, scorer_factory: Callable[[], EpisodeScorer] | None):
        import webdataset  # noqa: F401  (imports torch: pay for it before the clock starts)

        from lamp_data.envs import make_env

        self.out = Path(out)
        self.config = config
        self.policy = policy
        self.env = make_env(config.env, config.env_config())
        self.scorer = None
        self.reward_writer = None
        if scorer_factory is not None:
            self.scorer = scorer_factory()
        elif config.vlm:
            from lamp_data.vlm.scoring import make_scorer

            self.scorer = make_scorer(config.vlm, config.prompts, device=config.device)

    def open_reward_set(self, emit: Callable[[tuple], None]) -> None:
        if self.scorer is None:
            return
        from lamp_data.store.writer import RewardSetWriter

        scorer = self.scorer
        self.reward_writer = RewardSetWriter(self.out, scorer.fingerprint, scorer.info, scorer.prompts)
        emit(("scorer", scorer.fingerprint, list(scorer.prompts)))

    def close(self) -> None:
        self.env.close()

    def do(self, unit: _Unit, emit: Callable[[tuple], None], alive: Callable[[], bool]) -> None:
        from lamp_data.store import layout
        from lamp_data.store.writer import ShardWriter, encode_episode

        if unit.kind == "score":
            self.score_stored(unit.name, emit)
            return
        rewards: dict[str, np.ndarray] = {}
        with ShardWriter(layout.shard_path(self.out, unit.name), run=self.config.run) as shard:
            for index in unit.indices:
                if not alive():
                    raise SystemExit(1)
                episode, meta = run_episode(self.env, self.config, index, self.policy)
                key = layout.episode_key(index)
                summary = {"key": key, "episode": index, "steps": meta["steps"], "task": meta["task"], "success": meta["success"]}
                shard.add(encode_episode(key, episode, meta), summary)
                if self.scorer is not None:
                    rewards[key] = self.scorer.score(episode[schema.IMAGE])
                emit(("episode", meta["steps"], meta["success"]))
            if not alive():
                raise SystemExit(1)
        emit(("shard", unit.name))
        if self.reward_writer is not None:
            self.reward_writer.write_shard(unit.name, rewards)
            emit(("reward_shard", unit.name))

    def score_stored(self, name: str, emit: Callable[[tuple], None]) -> None:
        from lamp_data.store.reader import iter_episodes

        if self.reward_writer is None or self.reward_writer.has_shard(name):
            return
        rewards = {
            episode["__key__"]: self.scorer.score(episode[schema.IMAGE])
            for episode in iter_episodes(self.out, shards=[name])
        }
        self.reward_writer.write_shard(name, rewards)
        emit(("reward_shard", name))


def _worker_main(out: str, config: CollectConfig, scorer_factory, units, events, parent_pid: int) -> None:
    """Entry point of a worker process: take units until a ``None``, report events."""
    def alive() -> bool:
        return os.getppid() == parent_pid

    try:
        recorder = _Recorder(out, config, None, scorer_factory)
        try:
            recorder.open_reward_set(events.put)
            events.put(("ready",))
            while alive():
                unit = units.get()
                if unit is None:
                    break
                recorder.do(unit, events.put, alive)
        finally:
            recorder.close()
    except LampError as error:
        events.put(("error", str(error), True))
        return
    except BaseException as error:  # report anything else to the parent, then die
        events.put(("error", f"{type(error).__name__}: {error}", False))
        raise
    events.put(("done",))


def recorded_options(out: str | Path, run: str = CollectConfig.run) -> dict[str, Any]:
    """The :class:`CollectConfig` fields the dataset at ``out`` was collected with, ``{}`` if
    ``out`` holds no dataset: env, image size, cameras, episode length, action repeat, randomization
    (``canonical``), seed and shard size, plus the policy (and noise) recorded for ``run``."""
    from lamp_data.store import layout
    from lamp_data.store.reader import open_dataset

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
    :class:`CollectConfig` default. A given option that differs from the dataset is kept, so
    :func:`collect` refuses it.

    Args:
        out: Dataset folder, existing or not.
        **options: :class:`CollectConfig` fields; None means "not given".
    """
    given = {name: value for name, value in options.items() if value is not None}
    recorded = recorded_options(out, given.get("run", CollectConfig.run))
    if "policy" in given and given["policy"] != recorded.get("policy"):
        recorded.pop("noise", None)  # noise belongs to the recorded policy
    return CollectConfig(**{**recorded, **given})


def _check_output(out: Path) -> None:
    """Refuse output paths that are files or non-dataset folders, before writing anything."""
    from lamp_data.store import layout

    if out.exists() and not out.is_dir():
        raise LampError(f"output path {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not layout.is_dataset(out):
        raise LampError(f"{out} is a non-empty folder that is not a dataset; choose an empty or new folder")
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise LampError(f"cannot create {out}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise LampError(f"cannot write to {ancestor}: permission denied")


def _check_compatible(info: dict[str, Any], wanted: dict[str, Any], out: Path) -> None:
    """LampError naming the first setting in which an existing dataset differs from this run."""
    env = _with_action_repeat(info.get("env", {}))
    checks = [
        ("env", env.get("name"), wanted["env"]["name"]),
        ("env config (image size, episode length, randomization, action repeat, cameras)", env.get("config"), wanted["env"]["config"]),
        ("env spec", env.get("spec"), wanted["env"]["spec"]),
        ("seed", info.get("collection", {}).get("seed"), wanted["collection"]["seed"]),
    ]
    for what, existing, new in checks:
        if existing != new:
            raise LampError(f"{out} was collected with a different {what} ({existing} vs {new}); use a new folder")
    runs = info.get("runs", {})
    for run, record in wanted["runs"].items():
        if run in runs and runs[run] != record:
            raise LampError(
                f"run '{run}' in {out} was recorded with {runs[run]}, not {record}; give this collection another run name"
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
    from lamp_data import tasks as task_registry

    split = {"collected": list(spec.get("tasks", []))}
    if spec.get("backend") in task_registry.BACKENDS:
        for name in task_registry.SPLITS:
            split[name] = [task.name for task in task_registry.list_tasks(name, spec["backend"])]
    return split


def _dataset_info(config: CollectConfig, env: Any, custom_policy: bool) -> dict[str, Any]:
    spec = env.spec_dict() if hasattr(env, "spec_dict") else env.unwrapped.spec_dict()
    from lamp_data.store import layout

    run_record = config.run_record()
    if custom_policy:
        run_record["custom_policy"] = True
    return {
        "env": {"name": config.env, "spec": spec, "config": config.env_config().to_dict()},
        "collection": {"seed": config.seed, "episodes": config.episodes, "shard_episodes": config.shard_episodes,
                       "image_size": config.image_size, "episode_length": config.episode_length,
                       "action_repeat": config.action_repeat, "canonical": config.canonical},
        "runs": {config.run: run_record},
        "task_split": _task_split(spec),
        "cameras": list(config.cameras),
        "sample_fields": layout.sample_fields(config.cameras),
        "provenance": provenance(),
    }


def _plan(dataset, config: CollectConfig) -> tuple[list[_Unit], int]:
    """Units for the missing episodes below ``config.episodes``, and the count already present."""
    from lamp_data.store import layout

    present: set[int] = set()
    for sidecar in dataset.shard_sidecars().values():
        present.update(layout.episode_index(entry["key"]) for entry in sidecar["samples"])
    blocks: dict[int, list[int]] = {}
    for index in range(config.episodes):
        if index not in present:
            blocks.setdefault(index // config.shard_episodes, []).append(index)
    units = [_Unit("collect", layout.shard_name(config.run, indices[0]), indices) for _, indices in sorted(blocks.items())]
    return units, len(present)


def collect(
    out: str | Path,
    config: CollectConfig,
    *,
    policy: Policy | None = None,
    scorer_factory: Callable[[], EpisodeScorer] | None = None,
    progress: bool = True,
    executor: ExecutorConfig | None = None,
) -> CollectSummary:
    """Make the dataset at ``out`` hold episodes ``0..config.episodes-1``, resuming if it exists.

    Args:
        out: Dataset folder (created if missing).
        config: What to record; see :class:`CollectConfig`.
        policy: An in-process policy object; then collection runs in this process
            (``workers`` must be 1) and writes under ``config.run``.
        scorer_factory: A picklable zero-arg callable building an :class:`EpisodeScorer` for
            inline rewards (default: ``make_scorer(config.vlm, config.prompts)`` if ``config.vlm``).
        progress: Show a live progress bar.
        executor: Where the workers run (default: local processes, ``config.workers`` of
            them); see :mod:`lamp_data.executors`.

    Raises:
        LampError: bad settings, an unusable ``out``, or a dataset made with another env, env
            config or seed (nothing is written or removed then).
    """
    from lamp_data.store import layout
    from lamp_data.store.reader import open_dataset
    from lamp_data.store.writer import create_dataset, recover_orphans, update_info, writer_lock

    executor = executor or ExecutorConfig()
    check_local_path(out)
    out = Path(out)
    layout.check_run_name(config.run)
    if executor.is_ray:
        import_ray()
        if policy is not None:
            raise LampError("an in-process policy collects in this process; use the local executor")
    if policy is None and config.policy not in POLICIES:
        raise LampError(f"unknown policy '{config.policy}' (known: {', '.join(POLICIES)})")
    if policy is not None and config.workers != 1:
        raise LampError("an in-process policy collects with workers=1")
    if config.vlm is not None and config.prompts is None and scorer_factory is None:
        raise LampError("inline rewards need a prompt set: give --prompts with --vlm")
    ENVS.get(config.env)  # unknown env -> LampError naming the known ones
    if config.vlm is not None and not executor.is_ray:
        from lamp_data.devices import check_device

        check_device(config.device)
    _check_output(out)
    existing = open_dataset(out) if layout.is_dataset(out) else None

    from lamp_data.envs import make_env

    env = make_env(config.env, config.env_config())
    try:
        if policy is None and config.policy != "random":
            expert = getattr(env, "expert_action", None) or getattr(env.unwrapped, "expert_action", None)
            if expert is None:
                raise LampError(f"env '{config.env}' has no scripted expert; use --policy random")
            env.reset(seed=0)
            expert(noise=0.0)
        wanted = _dataset_info(config, env, policy is not None)
    finally:
        env.close()
    if existing is not None:
        _check_compatible(existing.info, wanted, out)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LampError(f"cannot create {out}: {error.strerror}") from error
    with session(executor), writer_lock(out):
        if existing is None:
            dataset = create_dataset(out, wanted)
        else:
            dataset = open_dataset(out)
            _check_compatible(dataset.info, wanted, out)
        recovery = recover_orphans(dataset)
        units, present = _plan(dataset, config)
        if existing is not None:
            info = dict(dataset.info)
            info["runs"] = {**info.get("runs", {}), **wanted["runs"]}
            info["collection"] = {**info["collection"], "episodes": max(config.episodes, info["collection"].get("episodes", 0))}
            update_info(dataset, info)
        if config.vlm is not None or scorer_factory is not None:
            units += [_Unit("score", name) for name in dataset.shard_sidecars()]
        summary = _run(dataset, config, units, present, len(recovery.removed), policy, scorer_factory, progress, executor)
        return dataclasses.replace(
            summary, rederived=tuple(recovery.rederived), quarantined=tuple(recovery.quarantined)
        )


class _Tally:
    """Counts events and keeps the dataset's prompt record up to date."""

    def __init__(self, dataset, config: CollectConfig, bar):
        self.dataset = dataset
        self.config = config
        self.bar = bar
        self.episodes = self.steps = self.successes = self.shards = self.reward_shards = 0
        self.started = time.perf_counter()
        self.prompts_recorded = False
        self.waiting = 1
        self.steps_before_start = 0

    def __call__(self, event: tuple) -> None:
        kind = event[0]
        if kind == "ready":
            self.waiting -= 1
            if self.waiting == 0:
                self.started = time.perf_counter()
                self.steps_before_start = self.steps
        elif kind == "episode":
            self.episodes += 1
            self.steps += event[1]
            self.successes += bool(event[2])
            self.bar.advance(self.episodes, self.steps, self.successes, time.perf_counter() - self.started)
        elif kind == "shard":
            self.shards += 1
        elif kind == "reward_shard":
            self.reward_shards += 1
        elif kind == "scorer" and not self.prompts_recorded:
            self.record_prompts(event[1], event[2])

    def record_prompts(self, fingerprint: str, prompts: list[str]) -> None:
        from lamp_data.atomic import atomic_write_json
        from lamp_data.store import layout
        from lamp_data.store.writer import update_info

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


class _Bar:
    """A rich progress bar of episodes, env steps/s and success rate (or nothing)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("episodes"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7.1f} steps/s"), TextColumn("success {task.fields[success]:>5.1%}"),
                TimeElapsedColumn(),
            )
            self.task = self.progress.add_task("collect", total=total, completed=done, rate=0.0, success=0.0)
            self.done = done

    def __enter__(self) -> "_Bar":
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self, episodes: int, steps: int, successes: int, seconds: float) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, completed=self.done + episodes, rate=steps / max(seconds, 1e-9), success=successes / max(episodes, 1)
            )


def _run(dataset, config, units, present, removed, policy, scorer_factory, progress, executor) -> CollectSummary:
    total = present + sum(len(unit.indices) for unit in units)
    with _Bar(total, present, progress) as bar:
        tally = _Tally(dataset, config, bar)
        if units and executor.is_ray:
            from lamp_data import executors

            executors.run_collect(dataset, config, units, scorer_factory, tally, executor)
        elif units and (config.workers == 1 or policy is not None):
            recorder = _Recorder(str(dataset.path), config, policy, scorer_factory)
            try:
                recorder.open_reward_set(tally)
                tally(("ready",))
                for unit in units:
                    recorder.do(unit, tally, lambda: True)
            finally:
                recorder.close()
        elif units:
            _run_workers(dataset, config, units, scorer_factory, tally)
    return CollectSummary(
        out=str(dataset.path),
        episodes_total=present + tally.episodes,
        episodes_written=tally.episodes,
        shards_written=tally.shards,
        reward_shards_written=tally.reward_shards,
        leftovers_removed=removed,
        steps=tally.steps,
        seconds=time.perf_counter() - tally.started,
        timed_steps=tally.steps - tally.steps_before_start,
        success_rate=tally.successes / tally.episodes if tally.episodes else 0.0,
    )


def _run_workers(dataset, config: CollectConfig, units: list[_Unit], scorer_factory, tally: _Tally) -> None:
    context = multiprocessing.get_context("spawn")
    unit_queue = context.Queue()
    events = context.Queue()
    for unit in units:
        unit_queue.put(unit)
    count = min(config.workers, len(units))
    for _ in range(count):
        unit_queue.put(None)
    workers = [
        context.Process(
            target=_worker_main,
            args=(str(dataset.path), config, scorer_factory, unit_queue, events, os.getpid()),
            daemon=True,
        )
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    finished = 0
    tally.waiting = count
    try:
        while finished < count:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a collect worker died with exit code {dead[0].exitcode}")
                continue
            if event[0] == "done":
                finished += 1
            elif event[0] == "error":
                raise (LampError if event[2] else RuntimeError)(f"collect worker failed: {event[1]}")
            else:
                tally(event)
    finally:
        for worker in workers:
            if worker.is_alive() and finished < count:
                worker.terminate()
        for worker in workers:
            worker.join(timeout=10)


def summary_dict(summary: CollectSummary) -> dict[str, Any]:
    """JSON-able form of a summary, with steps/s."""
    return {**asdict(summary), "steps_per_second": summary.steps_per_second}
