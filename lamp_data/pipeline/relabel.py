"""Re-score a stored dataset with a reward model, without touching its frames.

``relabel("data/mw", "r3m:/models/r3m.pt")`` reads every committed shard, scores each episode's
frames against the prompt set, and writes ``rewards/<fingerprint>/<shard>.tar`` beside the data
through :class:`lamp_data.store.RewardSetWriter`, one reward shard per data shard, keyed like
the data. It is built to be run again:

* **Resumable and idempotent.** A reward shard is committed atomically with its sidecar; shards
  already committed are skipped, leftovers of a killed run are removed, so a re-run after an
  interruption ends with the same files as an uninterrupted run, and a run on a finished set
  writes nothing.
* **Never mixes.** The fingerprint names the model, its weights, its preprocessing and the
  prompt set; the writer refuses a folder made with other settings.
* **Checked.** Episodes per shard, frames per episode and one column per prompt are checked
  before anything is written; nothing is written until the first shard has been scored.
* **Overlapped.** A background thread reads and decodes the next shard while the model scores
  the current one (decoding is numpy and tar parsing; the model releases the GIL in torch).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.errors import LampError
from lamp_data.pipeline.executors import ExecutorConfig, check_local_path, check_visible, import_ray, session, worker_count, worker_pool
from lamp_data.prefetch import Prefetcher
from lamp_data.progress import progress_bar
from lamp_data.provenance import portable_argv
from lamp_data.rewards.prompts import PromptSet, load_prompt_set
from lamp_data.rewards.vlm.scoring import EpisodeScorer, make_scorer
from lamp_data.store import RewardSetWriter, iter_episodes, layout, open_dataset
from lamp_data.store.reader import prompt_set_name
from lamp_data.store.verify import damaged_reward_shards
from lamp_data.store.writer import recover_orphans, set_aside, writer_lock

PREFETCH_SHARDS = 1
"""Decoded shards kept ready ahead of the model."""
MAX_BATCH_SIZE = 65_536
"""Most frames per forward pass (a batch is held in memory as pixels and features)."""


@dataclass(frozen=True)
class RelabelSummary:
    """What a relabel run did."""

    dataset: str
    """The dataset folder."""
    fingerprint: str
    """The reward set written (``rewards/<fingerprint>/``)."""
    model_spec: str
    """The reward model spec string."""
    prompt_set: str
    """Name of the prompt set."""
    prompts: int
    """Number of prompts (reward columns)."""
    shards_total: int
    """Committed data shards."""
    shards_written: int
    """Reward shards written by this run."""
    shards_skipped: int
    """Reward shards already present, left as they were."""
    episodes: int
    """Episodes scored by this run."""
    frames: int
    """Frames scored by this run."""
    seconds: float
    """Wall time of the scoring loop."""
    shards_replaced: int = 0
    """Reward shards scored again: damaged ones (moved to ``quarantine/`` first) or, forced, all."""

    @property
    def frames_per_second(self) -> float:
        """Frames scored per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with the throughput."""
        return {**asdict(self), "frames_per_second": round(self.frames_per_second, 2)}


def dataset_prompt_set(dataset: Any) -> PromptSet | None:
    """The prompt set recorded in a dataset's ``meta/prompts.json``, if any."""
    prompts = dataset.prompts()
    if not prompts:
        return None
    recorded = dataset.info.get("prompt_set") or {}
    name = str(recorded.get("name") or "dataset") if isinstance(recorded, dict) else "dataset"
    return PromptSet(name, tuple(prompts), f"recorded in {layout.prompts_path(dataset.path)}")


def _decoded_shards(dataset: Any, names: list[str]) -> Iterator[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Yield ``(shard, [(key, frames)])`` for each name, decoding one shard ahead in a thread."""
    from lamp_data.store import iter_episodes

    def decode() -> Iterator[tuple[str, list[tuple[str, np.ndarray]]]]:
        for name in names:
            yield name, [(episode["__key__"], episode[schema.IMAGE]) for episode in iter_episodes(dataset, shards=[name])]

    decoded = Prefetcher(decode(), depth=PREFETCH_SHARDS, name="relabel-decode")
    try:
        yield from decoded
    finally:
        decoded.close(timeout=None)


def _score_shard(scorer: Any, shard: Any, episodes: list[tuple[str, np.ndarray]], advance: Any) -> dict[str, np.ndarray]:
    """Rewards of one shard's episodes, checked against the shard's sidecar and the prompt count."""
    if len(episodes) != shard.nsamples:
        raise LampError(f"shard {shard.name} decoded to {len(episodes)} episodes, its sidecar lists {shard.nsamples}")
    rewards: dict[str, np.ndarray] = {}
    for key, frames in episodes:
        values = scorer.score(frames)
        if values.shape != (len(frames), len(scorer.prompts)):
            raise LampError(
                f"episode {key} of shard {shard.name}: rewards {list(values.shape)} do not match "
                f"{len(frames)} frames × {len(scorer.prompts)} prompts"
            )
        rewards[key] = values
        advance(len(frames))
    return rewards


def _score_locally(scorer: Any, dataset: Any, shards: list, advance: Any) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
    """Yield ``(shard, rewards)`` for each shard, scored in this process while the next one decodes."""
    by_name = {shard.name: shard for shard in shards}
    for name, decoded in _decoded_shards(dataset, list(by_name)):
        yield by_name[name], _score_shard(scorer, by_name[name], decoded, advance)


@dataclass(frozen=True)
class RewardSetDescribed:
    """A relabel worker built its reward model (sent by every worker as it starts)."""

    fingerprint: str
    """The reward set's fingerprint."""
    info: dict[str, Any]
    """The reward set's info (model, weights, preprocessing, prompt set, provenance)."""
    prompts: tuple[str, ...]
    """Its prompt set, in reward-column order."""


class _ShardScorer:
    """A relabel worker on another process or node: a reward model with its prompt set embedded,
    scoring whole committed data shards."""

    def __init__(self, out: str, vlm: str, prompt_set: PromptSet, device: str, batch_size: int):
        self.out, self.vlm, self.prompt_set, self.device, self.batch_size = out, vlm, prompt_set, device, batch_size
        self.scorer: Any = None

    def start(self, emit: Callable[[Any], None]) -> None:
        """Check the dataset is visible here and build the model."""
        check_visible(self.out)
        self.scorer = make_scorer(self.vlm, self.prompt_set, device=self.device, batch_size=self.batch_size)
        emit(RewardSetDescribed(self.scorer.fingerprint, self.scorer.info, tuple(self.scorer.prompts)))

    def do(self, shard: Any, emit: Callable[[Any], None]) -> dict[str, np.ndarray]:
        """Decode one committed data shard and return its episodes' rewards."""
        episodes = [(episode["__key__"], episode[schema.IMAGE]) for episode in iter_episodes(self.out, shards=[shard.name])]
        return _score_shard(self.scorer, shard, episodes, lambda count: None)

    def close(self) -> None:
        """Nothing to free but the model, which goes with the worker."""


def relabel(
    dataset: str | Path,
    vlm: str | EpisodeScorer | None = None,
    prompts: str | PromptSet | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 64,
    progress: bool = True,
    executor: ExecutorConfig | None = None,
    reward_set: str | None = None,
    force: bool = False,
) -> RelabelSummary:
    """Score every committed shard of ``dataset`` with ``vlm`` into a reward set.

    A reward shard already committed is kept, unless its bytes differ from its sidecar or it
    scores another data shard than the one of its name (copied from another dataset, or the data
    shard was recorded again): that one is moved to ``quarantine/`` and scored again.

    Args:
        dataset: The dataset folder.
        vlm: Reward model spec, e.g. ``r3m:/models/model.pt`` or ``clip:/models/clip?alpha=0.5``,
            or an already built :class:`~lamp_data.rewards.vlm.scoring.EpisodeScorer` (its own prompt
            set is used; ``prompts``, ``device`` and ``batch_size`` are then ignored); None with
            ``reward_set``: the model that reward set records.
        prompts: Prompt-set name or file; default: ``reward_set``'s prompts if given, else the
            dataset's ``meta/prompts.json`` if it has one, else :data:`lamp_data.rewards.prompts.DEFAULT_PROMPT_SET`.
        device: Torch device of the model.
        batch_size: Frames per forward pass.
        progress: Show a progress bar.
        executor: Where the model runs (default: this process); with ``ray``, one reward-model
            actor per GPU or CPU slot of the cluster (see :mod:`lamp_data.pipeline.executors`).
        reward_set: The fingerprint of a reward set of the dataset to score into; the model and
            prompts must give that fingerprint.
        force: Score every shard again, replacing the reward shards already committed.

    Returns:
        What was written and skipped, and the throughput.

    Raises:
        LampError: unknown model or prompt set, missing checkpoint, a dataset without shards,
            counts that do not match, or a reward set made with other settings.
    """
    executor = executor or ExecutorConfig()
    if vlm is None and reward_set is None:
        raise LampError("give the reward model (--vlm SPEC), or the reward set to score again (--rewards FINGERPRINT)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise LampError(f"batch size must be a whole number between 1 and {MAX_BATCH_SIZE:,}, got {batch_size!r}")
    check_local_path(dataset)
    if executor.is_ray:
        import_ray()
    data = open_dataset(dataset)
    shards = data.shards()
    if not shards:
        raise LampError(f"{data.path} has no committed shards to relabel")
    if reward_set is not None:
        recorded = data.reward_set_info(reward_set)
        if vlm is None:
            vlm = (recorded.get("provenance") or {}).get("model_spec") or recorded.get("model_spec")
            if not vlm:
                raise LampError(f"reward set {reward_set} records no model spec; give the model with --vlm")
        if prompts is None:
            prompts = PromptSet(prompt_set_name(recorded) or "prompts", tuple(data.reward_set_prompts(reward_set)),
                                f"recorded in {layout.reward_set_prompts_path(data.path, reward_set)}")
    with contextlib.ExitStack() as stack:
        workers = None
        if not isinstance(vlm, str):
            if executor.is_ray:
                raise LampError("a scorer built in this process cannot run on Ray; give the reward model spec instead")
            scorer, prompt_set = vlm, vlm.prompt_set
            described = RewardSetDescribed(scorer.fingerprint, scorer.info, tuple(scorer.prompts))
        else:
            prompt_set = load_prompt_set(prompts) if prompts is not None else (dataset_prompt_set(data) or load_prompt_set(None))
            if executor.is_ray:
                workers = _start_ray_scorers(stack, executor, data, vlm, prompt_set, device, batch_size)
                described = workers.reward_set
            else:
                scorer = make_scorer(vlm, prompt_set, device=device, batch_size=batch_size)
                described = RewardSetDescribed(scorer.fingerprint, scorer.info, tuple(scorer.prompts))
        fingerprint = described.fingerprint
        if reward_set is not None and fingerprint != reward_set:
            raise LampError(
                f"the reward model {described.info['provenance']['model_spec']} with these prompts gives reward set "
                f"{fingerprint}, not {reward_set}: its weights or settings changed since that set was made"
            )
        stack.enter_context(writer_lock(data.path))
        writer = None
        recover_orphans(data)
        shards = data.shards()
        replaced: dict[str, str] = {}
        if layout.reward_set_info_path(data.path, fingerprint).is_file():
            writer = RewardSetWriter(data, fingerprint, described.info, list(described.prompts))
            replaced = {name: "scored again (--force)" for name in data.reward_shard_sidecars(fingerprint)} if force else \
                damaged_reward_shards(data, fingerprint)
            for name in replaced:
                _uncommit(data, fingerprint, name, set_aside_old=not force)
        pending = [shard for shard in shards if writer is None or not writer.has_shard(shard.name)]
        total_frames = sum(shard.nsteps + shard.nsamples for shard in pending)
        episodes = frames = 0
        started = time.perf_counter()
        with progress_bar(f"relabel {fingerprint}", total_frames, unit="frames", enabled=progress) as bar:
            if workers is not None:
                scored = _counted(workers.pool.run(pending, _no_events), bar.advance)
            else:
                scored = _score_locally(scorer, data, pending, bar.advance)
            for shard, rewards in scored:
                if writer is None:
                    writer = RewardSetWriter(data, fingerprint, described.info, list(described.prompts))
                writer.write_shard(shard.name, rewards)
                episodes += len(rewards)
                frames += sum(len(values) for values in rewards.values())
        seconds = time.perf_counter() - started
    return RelabelSummary(
        dataset=str(data.path),
        fingerprint=fingerprint,
        model_spec=described.info["provenance"]["model_spec"],
        prompt_set=prompt_set.name,
        prompts=len(prompt_set),
        shards_total=len(shards),
        shards_written=len(pending),
        shards_skipped=len(shards) - len(pending),
        shards_replaced=len(replaced),
        episodes=episodes,
        frames=frames,
        seconds=seconds,
    )


@dataclass(frozen=True)
class _RayScorers:
    pool: Any
    """The started worker pool of :class:`_ShardScorer` actors."""
    reward_set: RewardSetDescribed
    """What the actors score into, with this process's command line in its provenance."""


def _start_ray_scorers(stack: contextlib.ExitStack, executor: ExecutorConfig, data: Any, vlm: str, prompt_set: PromptSet,
                       device: str, batch_size: int) -> _RayScorers:
    """Reward-model actors on the Ray cluster, one per GPU (``device`` cuda) or CPU slot, started."""
    stack.enter_context(session(executor))
    gpus = 1.0 if device.startswith("cuda") else 0.0
    factory = functools.partial(_ShardScorer, str(Path(data.path).resolve()), vlm, prompt_set, "cuda" if gpus else device, batch_size)
    pool = stack.enter_context(worker_pool(executor, factory, worker_count(executor, len(data.shards()), gpus), "relabel", gpus))
    described: list[RewardSetDescribed] = []
    pool.start(lambda event: described.append(event) if isinstance(event, RewardSetDescribed) else None)
    first = described[0]
    info = {**first.info, "provenance": {**first.info["provenance"], "argv": portable_argv()}}
    return _RayScorers(pool, RewardSetDescribed(first.fingerprint, info, first.prompts))


def _uncommit(dataset: Any, fingerprint: str, name: str, set_aside_old: bool) -> None:
    """Take a committed reward shard out of its set before it is written again: its sidecar goes
    first (so it no longer counts), then, for a damaged one, its tar is moved to ``quarantine/``."""
    tar_path = layout.reward_shard_path(dataset.path, fingerprint, name)
    sidecar_path = layout.sidecar_path(tar_path)
    if set_aside_old:
        set_aside(dataset, sidecar_path)
        if tar_path.exists():
            set_aside(dataset, tar_path)
    else:
        sidecar_path.unlink()


def _no_events(event: Any) -> None:
    """Relabel workers report nothing while they score."""


def _counted(scored: Iterator[tuple[Any, dict[str, np.ndarray]]], advance: Callable[[int], None]) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
    """``scored`` as it is, advancing the bar by each shard's frames."""
    for shard, rewards in scored:
        advance(sum(len(values) for values in rewards.values()))
        yield shard, rewards
