"""Pretraining: train the agent from a dataset's shards and reward set, collecting as it learns.

``pretrain(PretrainConfig(data=..., rewards=<fingerprint>, out=..., steps=N))`` streams
``[batch, time]`` sequences from the shards with the chosen reward set's VLM rewards (each
sequence paired with a prompt by :class:`~lamp_agent.core.replay.HindsightPrompts`), and runs
``steps`` agent updates with the LAMP reward ``alpha * norm(P2E) + (1 - alpha) * norm(VLM)``.

Training runs in chunks of ``collect_every`` updates. Each chunk ends with a checkpoint; then
the current policy records ``collect_every / (updates_per_env_step * episode_length)`` episodes (at
least one) into the same dataset as one new shard, under a run name unique to this
pretraining run and step (``agent-<run id>-s<step>``), with rewards scored inline by the
reward set's own VLM; the next chunk's stream includes them. The stream of a chunk is seeded
by ``(seed, its first step)`` and the acting stream by ``(seed, step)``, and a resume first
finishes a collection the interruption left out, so ``resume`` repeats the updates and the
episodes an uninterrupted run would have made.

Run folder::

    run.json                        the pretraining config and provenance
    lang/<hash>.npy                 the prompt set's text embeddings [P, 384], computed once
    checkpoints/step-<N>/           agent checkpoints (see lamp_agent.checkpoint)
    checkpoints/latest.json         which checkpoint is newest
    skipped_shards.json             with on_damage="skip": the damaged shards left out, and why
    tb/                             TensorBoard scalars, and the world model's open-loop predictions
                                    (true frames, predicted frames, error) at every checkpoint
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp_agent.agent import Agent
from lamp_agent.checkpoint import ACTION_REPEAT_INFO, CHECKPOINTS_DIR, latest_checkpoint, rotate_checkpoints
from lamp_agent.config import PretrainConfig, load_preset
from lamp_agent.core.policy import AgentPolicy
from lamp_agent.core.replay import HindsightPrompts, ShardReplay
from lamp_agent.open_loop import OPEN_LOOP_CONTEXT, open_loop_image
from lamp_data import schema
from lamp_data.atomic import atomic_write_json
from lamp_data.devices import check_device
from lamp_data.errors import DamagedDataError, LampError, check_path_text
from lamp_data.pipeline.collect import CollectSummary, collect, resolve_config
from lamp_data.prefetch import Prefetcher
from lamp_data.progress import progress_bar
from lamp_data.provenance import provenance, stable_hash
from lamp_data.rewards.prompts import PromptSet
from lamp_data.rewards.text import prompt_embeddings
from lamp_data.rewards.vlm.scoring import make_scorer
from lamp_data.schema import CHECKPOINT_FORMAT_VERSION
from lamp_data.store import iter_episodes, layout, open_dataset
from lamp_data.store.reader import prompt_set_name
from lamp_data.store.verify import damaged_shards

RUN_FILE = "run.json"
"""File of a pretraining run folder holding its config; written before the first update."""
SKIPPED_FILE = "skipped_shards.json"
"""File of a pretraining run folder listing the damaged shards it left out."""


@dataclass(frozen=True)
class PretrainSummary:
    """What one call of :func:`pretrain` did."""

    out: str
    """The run folder."""
    checkpoint: str
    """The newest checkpoint folder."""
    step: int
    """Agent updates done in total."""
    updates: int
    """Updates done by this call."""
    resumed_from: int
    """Step the run resumed from (0 for a fresh run)."""
    episodes_collected: int
    """Episodes the policy recorded into the dataset in this call."""
    shards_written: int
    """Data shards this call added to the dataset."""
    seconds: float
    """Wall time of the training loop."""
    data_wait_fraction: float
    """Share of training time spent waiting for batches."""
    metrics: dict[str, float]
    """The last update's metrics."""
    skipped_shards: dict[str, str] = field(default_factory=dict)
    """Damaged shards left out (``on_damage="skip"``): name -> why."""

    @property
    def updates_per_second(self) -> float:
        """Updates per wall-clock second (collection included)."""
        return self.updates / self.seconds if self.seconds > 0 else 0.0


def _save_checkpoint(agent: Agent, out: Path, keep: int) -> Path:
    folder = out / CHECKPOINTS_DIR / f"step-{agent.step:08d}"
    agent.save(folder)
    rotate_checkpoints(out, folder, keep, step=agent.step)
    return folder


def _dims(dataset: Any, fingerprint: str) -> tuple[int, int, int]:
    """(image size, state dim, action dim) of the dataset's first rewarded episode."""
    shard = dataset.rewarded_shards(fingerprint)[0]
    episode = next(iter_episodes(dataset, shards=[shard]))
    return int(episode[schema.IMAGE].shape[1]), int(episode[schema.STATE].shape[-1]), int(episode[schema.ACTION].shape[-1])


def _cameras(dataset: Any, agent_config: Any) -> tuple[str, ...]:
    """The views a new agent encodes: those its config names, else every camera of the dataset.

    Raises:
        LampError: the config names a camera the dataset did not record.
    """
    recorded = layout.dataset_cameras(dataset.info)
    wanted = agent_config.cameras or recorded
    missing = [name for name in wanted if name not in recorded]
    if missing:
        raise LampError(
            f"agent preset '{agent_config.preset}' encodes cameras {','.join(wanted)}, but {dataset.path} has no "
            f"{', '.join(missing)} camera; collect it with --cameras {','.join(wanted)}"
        )
    return wanted


def _check_episode_length(dataset: Any, fingerprint: str, seq_len: int) -> None:
    """LampError unless some rewarded episode has at least ``seq_len`` frames (else the stream yields nothing)."""
    longest = dataset.longest_rewarded_episode(fingerprint)
    if longest < seq_len:
        raise LampError(
            f"the longest episode in {dataset.path} has {longest} frames, fewer than the training sequence length "
            f"{seq_len}; collect longer episodes (--episode-length) or use a preset with a shorter seq_len"
        )


def _open_inputs(config: PretrainConfig) -> tuple[Any, dict[str, Any], dict[str, str], list[str]]:
    """The dataset, its reward set's info, its damaged shards and the reward set's prompts, each checked.

    Raises:
        LampError: bad paths, seed or device, or a dataset or reward set that cannot be trained on.
        DamagedDataError: damaged shards with ``on_damage="fail"``.
    """
    check_path_text("--out", config.out)
    check_path_text("--data", config.data)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed < 2**63:
        raise LampError(f"seed must be a whole number in [0, 2**63), got {config.seed!r}")
    check_device(config.device)
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise LampError(f"run folder {config.out} is a file")
    dataset = open_dataset(config.data)
    reward_info = dataset.check_reward_set(config.rewards, config.on_damage)
    damaged = damaged_shards(dataset, config.rewards)  # every shard, not only those the first updates happen to read
    if damaged and config.on_damage == "fail":
        name = sorted(damaged)[0]
        raise DamagedDataError(
            f"{len(damaged)} damaged shard(s) in {dataset.path}, {', '.join(sorted(damaged))}: {damaged[name]}; "
            f"`lamp-data verify {dataset.path} --repair` sets them aside, or pass --on-damage skip to train without them"
        )
    prompts = dataset.reward_set_prompts(config.rewards)
    return dataset, reward_info, damaged, prompts


def _start_or_resume(
    config: PretrainConfig, dataset: Any, reward_info: dict[str, Any], prompts: list[str], data_repeat: int, out: Path,
    latest: Path | None,
) -> tuple[Agent, str]:
    """The agent of the run in ``out`` (its latest checkpoint, or a new one whose run record is
    written) and the run's id, which names its collection rounds.

    Raises:
        LampError: a checkpoint made with other settings, or data the preset cannot learn from.
    """
    run_id = stable_hash({"out": str(out.resolve()), "seed": config.seed, "rewards": config.rewards}, length=8)
    run_record = {
        "data": str(Path(config.data).resolve()), "rewards": config.rewards, "preset": config.preset,
        "seed": config.seed, "collect_every": config.collect_every, "checkpoint_every": config.checkpoint_every,
        "run_id": run_id,
    }
    if latest is not None:
        agent = Agent.load(latest, device=config.device)
        recorded = agent.info.get("pretrain", {})
        for key in ("data", "rewards", "preset", "seed", "collect_every", "checkpoint_every"):
            if recorded.get(key) != run_record[key]:
                raise LampError(f"cannot resume {out}: it was run with {key}={recorded.get(key)!r}, not {run_record[key]!r}")
        if config.alpha is not None and config.alpha != agent.config.alpha:
            raise LampError(f"cannot resume {out}: it was run with alpha={agent.config.alpha}, not {config.alpha}")
        run_id = str(recorded.get("run_id", run_id))
        _check_episode_length(dataset, config.rewards, agent.config.seq_len)
    else:
        overrides = dict(config.agent_overrides)
        if config.alpha is not None:
            overrides["alpha"] = config.alpha
        agent_config = load_preset(config.preset, **overrides)
        _check_episode_length(dataset, config.rewards, agent_config.seq_len)
        image_size, state_dim, action_dim = _dims(dataset, config.rewards)
        agent = Agent(
            agent_config, image_size=image_size, state_dim=state_dim, action_dim=action_dim,
            lang_dim=_embeddings(prompts, config, out).shape[1], device=config.device, seed=config.seed,
            cameras=_cameras(dataset, agent_config),
        )
        agent.info = {
            "pretrain": run_record, "alpha": agent_config.alpha, "reward_set": config.rewards,
            "reward_model": reward_info.get("model_spec") or reward_info.get("provenance", {}).get("model_spec"),
            "prompt_set": reward_info.get("prompt_set"), "prompt_set_name": prompt_set_name(reward_info),
            "method": "p2e" if agent_config.alpha == 1.0 else "lamp" if agent_config.alpha > 0 else "vlm-only",
        }
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / RUN_FILE, {"format_version": CHECKPOINT_FORMAT_VERSION, "config": {**asdict(config), "agent_overrides": overrides}, "agent": agent_config.to_dict(), "provenance": provenance()})
    # the world model learns the dynamics of the data, so the checkpoint acts (and is finetuned) at
    # the action repeat the data was recorded with (a checkpoint from before this record has it in
    # its agent config, which no longer holds it, so it is written into the info on resuming too)
    agent.info[ACTION_REPEAT_INFO] = data_repeat
    return agent, run_id


def pretrain(
    config: PretrainConfig,
    *,
    progress: bool = True,
    scorer_factory: Callable[[], Any] | None = None,
) -> PretrainSummary:
    """Pretrain an agent on a dataset's shards and VLM rewards; see the module docstring.

    Args:
        config: What to train on and where to write.
        progress: Show a progress bar.
        scorer_factory: Builds the scorer for inline rewards of collected episodes; default:
            the reward set's own model (``make_scorer(info["model_spec"], prompts)``). Its
            fingerprint must equal ``config.rewards``.

    Raises:
        LampError: Unusable dataset, reward set, run folder or checkpoint.
    """
    from torch.utils.tensorboard import SummaryWriter

    dataset, reward_info, damaged, prompts = _open_inputs(config)
    out = Path(config.out)
    collection = resolve_config(dataset.path)
    latest = latest_checkpoint(out)
    if config.resume and latest is None and not (out / RUN_FILE).is_file():
        raise LampError(f"--resume: {out} holds no pretraining run to continue; leave out --resume to start one there")
    if latest is not None and not config.resume:
        raise LampError(f"{out} already holds a pretraining run; pass --resume to continue it or choose another --out")

    agent, run_id = _start_or_resume(config, dataset, reward_info, prompts, collection.env_config.action_repeat, out, latest)
    embeddings = _embeddings(prompts, config, out)
    lang_table = torch.as_tensor(embeddings, device=agent.device)
    resumed_from = agent.step
    episode_length = collection.env_config.episode_length

    scorer = None
    if config.collect_every:
        scorer = (scorer_factory or _default_scorer(reward_info, prompts, config.device))()
        if scorer.fingerprint != config.rewards:
            raise LampError(
                f"the reward model rebuilt from reward set {config.rewards} now has fingerprint {scorer.fingerprint}; "
                "its weights or prompts changed, so new episodes cannot join this reward set"
            )
    writer = SummaryWriter(str(out / "tb"), purge_step=agent.step)
    metrics: dict[str, float] = {}
    episodes_collected = shards_written = 0
    skipped: dict[str, str] = dict(damaged)
    if skipped:
        atomic_write_json(out / SKIPPED_FILE, {"format_version": CHECKPOINT_FORMAT_VERSION, "skipped": skipped})
    wait_seconds = 0.0
    started = time.perf_counter()
    checkpoint = latest
    try:
        with progress_bar("pretrain", config.steps, unit="updates", completed=agent.step, enabled=progress) as bar:
            while True:
                if config.collect_every and not dataset.has_run(_collection_run(run_id, agent.step)) and agent.step > 0:
                    bar.update(status="collecting")
                    agent.reseed(int(stable_hash([config.seed, "act", agent.step]), 16) % 2**31, streams=("act",))
                    policy = AgentPolicy(agent, embeddings, seed=int(stable_hash([config.seed, "prompts", agent.step]), 16) % 2**31)
                    summary = _collect(dataset, agent, policy, scorer, _collection_run(run_id, agent.step), config, episode_length)
                    episodes_collected += summary.episodes_written
                    shards_written += summary.shards_written
                    writer.add_scalar("collect/success_rate", summary.success_rate, agent.step)
                    writer.add_scalar("collect/episodes_total", summary.episodes_total, agent.step)
                if agent.step >= config.steps:
                    break
                chunk_index = agent.step // config.chunk
                chunk_end = min((chunk_index + 1) * config.chunk, config.steps)
                stream = ShardReplay(
                    dataset, seq_len=agent.config.seq_len, batch_size=agent.config.batch_size,
                    reward_set=config.rewards, prompt_chooser=HindsightPrompts(prompts, agent.config.own_prompt_fraction),
                    seed=int(stable_hash([config.seed, "data", agent.step]), 16) % 2**31, refresh_seconds=1e9,
                    shuffle_buffer=4 * agent.config.batch_size, on_damage=config.on_damage,
                )
                bar.update(status="training")
                batch = None
                with Prefetcher(stream) as batches:
                    while agent.step < chunk_end:
                        batch = next(batches)
                        batch["lang"] = lang_table[batch[schema.PROMPT_INDEX].to(agent.device)]
                        metrics = agent.train_step(batch, mode="pretrain")
                        if agent.step % config.log_every == 0 or agent.step == chunk_end:
                            for name, value in metrics.items():
                                writer.add_scalar(f"train/{name}", value, agent.step)
                            elapsed = time.perf_counter() - started
                            writer.add_scalar("perf/data_wait_fraction", (wait_seconds + batches.wait_seconds) / max(elapsed, 1e-9), agent.step)
                        bar.update(completed=agent.step, status=f"model loss {metrics.get('model_loss', 0.0):.3f}")
                    wait_seconds += batches.wait_seconds
                if stream.skipped:
                    skipped.update(stream.skipped)
                    atomic_write_json(out / SKIPPED_FILE, {"format_version": CHECKPOINT_FORMAT_VERSION, "skipped": skipped})
                if batch is not None and agent.config.seq_len > OPEN_LOOP_CONTEXT:
                    video = agent.open_loop({key: value[:3] for key, value in batch.items()}, OPEN_LOOP_CONTEXT)
                    writer.add_image("world_model/open_loop", open_loop_image(video), agent.step, dataformats="HWC")
                checkpoint = _save_checkpoint(agent, out, config.keep_checkpoints)
    finally:
        writer.close()
    seconds = time.perf_counter() - started
    return PretrainSummary(
        out=str(out), checkpoint=str(checkpoint) if checkpoint else "", step=agent.step, updates=agent.step - resumed_from,
        resumed_from=resumed_from, episodes_collected=episodes_collected, shards_written=shards_written,
        seconds=seconds, data_wait_fraction=wait_seconds / seconds if seconds > 0 else 0.0, metrics=metrics,
        skipped_shards=skipped,
    )


def _embeddings(prompts: list[str], config: PretrainConfig, out: Path) -> np.ndarray:
    return prompt_embeddings(prompts, config.text_encoder, out / "lang")


def _default_scorer(reward_info: dict[str, Any], prompts: list[str], device: str) -> Callable[[], Any]:
    def build() -> Any:
        recorded = {**reward_info.get("provenance", {}), **reward_info}
        spec = recorded.get("model_spec")
        if not spec:
            raise LampError("the reward set records no model_spec, so collected episodes cannot be scored inline")
        name = prompt_set_name(reward_info) or "prompts"
        return make_scorer(spec, PromptSet(name, tuple(prompts)), device=device)

    return build


def _collection_run(run_id: str, step: int) -> str:
    """Run name of the episodes collected right after update ``step`` of run ``run_id``."""
    return f"agent-{run_id}-s{step:08d}"


def _collect(dataset: Any, agent: Any, policy: AgentPolicy, scorer: Any, run: str, config: PretrainConfig, episode_length: int) -> CollectSummary:
    """Record one round of episodes with the current policy into the dataset, rewards inline.

    All episodes of a round go into one shard, so a round is committed whole or not at all.
    """
    env_name = dataset.info.get("env", {}).get("name")
    if not env_name:
        raise LampError(f"{dataset.path} records no env name, so the agent cannot collect into it")
    episodes = max(1, math.ceil(config.collect_every / (agent.config.updates_per_env_step * episode_length)))
    collect_config = resolve_config(
        dataset.path, episodes=dataset.episode_count() + episodes, policy="agent",
        shard_episodes=episodes, run=run, device=config.device,
    )
    return collect(dataset.path, collect_config, policy=policy, scorer_factory=lambda: scorer, progress=False,
                   on_damage=config.on_damage)
