"""Finetune agents on held-out tasks under one env-step budget, and log evaluations.

The protocol follows LAMP's finetuning: the task's own dense reward, one fixed instruction
(the task catalogue's by default; ``"auto"`` tries each of the task's paraphrases for one
episode and keeps the one with the highest return), the critic linearly probed for pretrained
agents (frozen body, fresh linear head: ``Agent.prepare_finetune()``), everything else trained.
Agents from scratch train every parameter. Training and evaluation both run in the canonical
(not randomized) env. Evaluations take ``eval_episodes`` episodes without exploration noise on
held-out reset seeds that are the same for every method and run seed and disjoint from every
training seed (see :mod:`lamp_eval.runs`); an episode succeeds if the task's success flag is
set at any step. Evaluations happen at step 0, every ``eval_every`` env steps, and at the end.

Instruction tuning (``"auto"``) spends real env steps, which count toward the budget, and its
episodes go into the replay like any other.

Resuming: a finished run (same config) is skipped; an interrupted run restarts from step 0 in a
fresh staging folder. Runs are deterministic given their seed, so the restart reproduces the
run that was cut off, and no result ever mixes two attempts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_agent import Agent, load_preset
from lamp_agent.checkpoint import read_checkpoint_config
from lamp_agent.config import AgentConfig
from lamp_agent.core.policy import AgentPolicy
from lamp_agent.core.replay import EpisodeReplay
from lamp_agent.open_loop import OPEN_LOOP_CONTEXT, open_loop_image
from lamp_data import schema
from lamp_data.atomic import atomic_path
from lamp_data.devices import check_device
from lamp_data.envs import ENVS, EnvConfig, RandomizationConfig, make_env
from lamp_data.errors import LampError
from lamp_data.executors import ExecutorConfig, session, worker_count, worker_pool
from lamp_data.progress import progress_bar
from lamp_data.prompts import DEFAULT_PROMPT_SET
from lamp_data.rollout import EpisodeBuilder, RandomPolicy, env_steps_taken, run_episode
from lamp_data.store.reader import prompt_set_name
from lamp_data.tasks import HELDOUT, TASKS, get_task
from lamp_data.text import TextEncoder
from lamp_eval.baselines import task_baselines
from lamp_eval.runs import (
    ROLLOUT_GIF,
    RUN_INFO,
    TENSORBOARD_DIR,
    TRAIN_SEED_STRIDE,
    EpisodeResult,
    Evaluation,
    FinetuneConfig,
    RunConfig,
    RunWriter,
    eval_episode_seeds,
    read_run_info,
    train_episode_seed,
)

SCRATCH = "scratch"
"""``--init`` value for an agent trained from random initialisation."""
AUTO_INSTRUCTION = "auto"
"""``--instruction`` value that picks the best of the task's paraphrases."""
BASELINES_DIR = ".baselines"
"""Cache of each task's random and expert returns on the evaluation seeds, under a runs folder."""


@dataclass(frozen=True)
class RunResult:
    """What became of one queued run."""

    config: RunConfig
    """The run's config."""
    folder: Path
    """Its finished folder."""
    skipped: bool
    """True when it had already finished before this call."""
    final_success_rate: float
    """Success rate of its last evaluation."""
    instruction: str = ""
    """The instruction it was trained and evaluated with."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The summary stored in ``run.json``."""


def check_task(task: str, config: FinetuneConfig) -> None:
    """Refuse unknown tasks and pretraining tasks (finetuning is for held-out tasks).

    A task run in an explicitly named env (``--env``) need not be in the task catalogue.
    """
    if config.env is not None and task not in TASKS:
        return
    spec = get_task(task)
    if spec.split != HELDOUT:
        raise LampError(
            f"task '{task}' is in the pretraining split; finetune on a held-out task "
            "('lamp-data tasks --split heldout' lists them)"
        )


def check_init(init: str) -> None:
    """``init`` must be ``scratch`` or a readable agent checkpoint folder."""
    if init == SCRATCH:
        return
    if not Path(init).exists():
        raise LampError(f"checkpoint {init} does not exist (give a checkpoint folder or 'scratch')")
    read_checkpoint_config(init)


def plan_runs(config: FinetuneConfig) -> list[RunConfig]:
    """Validate the queue and list one :class:`RunConfig` per task × init × seed."""
    for task in config.tasks:
        check_task(task, config)
        ENVS.get(config.env_name(task))
    for init in config.inits:
        check_init(init)
    labels = {init: config.method or method_label(init) for init in dict.fromkeys(config.inits)}
    by_label: dict[str, str] = {}
    for init, label in labels.items():
        if label in by_label:
            raise LampError(
                f"checkpoints {by_label[label]} and {init} both get the method label '{label}'; "
                "finetune them in separate calls, each with its own --method"
            )
        by_label[label] = init
    runs = []
    for task in dict.fromkeys(config.tasks):
        for init, label in labels.items():
            for seed in config.seeds:
                runs.append(
                    RunConfig(task=task, env=config.env_name(task), init=init, method=label, seed=seed, **config.run_settings())
                )
    for run in runs:
        _check_schedule(run)
    return runs


def method_label(init: str) -> str:
    """Leaderboard label of an init: ``scratch``, ``p2e`` (alpha = 1) or ``lamp[<reward set>]``.

    Read from the checkpoint's ``config.json``: alpha from the agent config, the reward set's
    fingerprint (which already hashes the prompts) from the info pretraining records. The
    prompt set's name is added when it is known and not the default one (prompt-style
    ablations), and alpha when it is not the paper's 0.9: ``lamp[r3m-abc123]``,
    ``lamp[r3m-abc123,random-verbs]``, ``lamp[r3m-abc123,alpha=0.5]``.
    """
    if init == SCRATCH:
        return SCRATCH
    meta = read_checkpoint_config(init)
    alpha = float(meta.get("config", {}).get("alpha", 0.9))
    if alpha >= 1.0:
        return "p2e"
    info = meta.get("info", {}) or {}
    parts = [_first_text(info, ("reward_set", "reward_fingerprint")) or "unknown-rewards"]
    prompt_set = prompt_set_name(info)
    if prompt_set and prompt_set not in _default_prompt_sets():
        parts.append(prompt_set)
    if not math.isclose(alpha, 0.9):
        parts.append(f"alpha={alpha:g}")
    return f"lamp[{','.join(parts)}]"


def _default_prompt_sets() -> tuple[str, ...]:
    return (DEFAULT_PROMPT_SET, "default")


def _first_text(info: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = info.get(key)
        if isinstance(value, dict):
            value = value.get("name")
        if value:
            return str(value)
    return ""


def task_instructions(task: str) -> tuple[str, ...]:
    """The catalogue's instruction of ``task`` followed by its paraphrases; empty for a task it does not list."""
    spec = TASKS.get(task)
    if spec is None:
        return ()
    return (spec.instruction, *spec.paraphrases)


def run_policy_episode(agent: Any, env: Any, lang: np.ndarray, seed: int, explore: bool) -> EpisodeBuilder:
    """One whole episode of the agent acting on instruction ``lang`` from ``env.reset(seed=seed)``.

    Returns:
        The builder holding the episode (``.episode()`` is the stored dict, ``.frames`` every image).
    """
    return run_episode(env, AgentPolicy(agent, lang[None], explore=explore), seed)


def episode_result(played: EpisodeBuilder) -> EpisodeResult:
    """The evaluation record of a finished episode."""
    return EpisodeResult(seed=played.seed, ret=played.total_reward, success=played.success, length=len(played))


def evaluate(agent: Any, env: Any, lang: np.ndarray, step: int, seeds: list[int], frames: list | None = None) -> Evaluation:
    """Run the policy without exploration on every evaluation seed; frames of the first episode
    go into ``frames`` when given."""
    episodes = []
    for index, seed in enumerate(seeds):
        played = run_policy_episode(agent, env, lang, seed, explore=False)
        if frames is not None and index == 0:
            frames.extend(played.frames[schema.IMAGE])
        episodes.append(episode_result(played))
    return Evaluation.from_episodes(step, episodes)


OPEN_LOOP_PNG = "open_loop.png"
"""The world model's open-loop predictions at the end of a run (see :func:`open_loop_grid`)."""


def open_loop_grid(agent: Any, replay: Any, lang: np.ndarray, sequences: int = 3) -> np.ndarray | None:
    """The world model's open-loop predictions on the newest ``sequences`` training episodes
    (:func:`lamp_agent.open_loop.open_loop_image`); None while no episode is long enough."""
    if replay.seq_len <= OPEN_LOOP_CONTEXT:
        return None
    try:
        batch = _with_lang(replay.newest(sequences), lang)
    except LampError:
        return None
    return open_loop_image(agent.open_loop(batch, OPEN_LOOP_CONTEXT))


def write_png(path: Path, image: np.ndarray) -> None:
    """Save a uint8 ``[H, W, 3]`` image as PNG, atomically."""
    import imageio.v3 as iio

    with atomic_path(path) as temporary:
        iio.imwrite(temporary, image, extension=".png")


def write_rollout_gif(path: Path, frames: list[np.ndarray], max_frames: int) -> None:
    """Save at most ``max_frames`` evenly spaced frames as a looping GIF, atomically."""
    import imageio.v3 as iio

    if not frames:
        return
    index = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    with atomic_path(path) as temporary:
        iio.imwrite(temporary, np.stack([frames[i] for i in index]), extension=".gif", duration=80, loop=0)


@functools.lru_cache(maxsize=2)
def _load_text_encoder(name: str, device: str) -> Any:
    """A frozen sentence encoder, loaded once per process (loading MiniLM takes seconds)."""
    return TextEncoder(name, device=device)


class _TextEncoders:
    """Instruction embeddings, computed once per :func:`finetune` call."""

    def __init__(self, device: str):
        self.device = device
        self._embeddings: dict[tuple[str, str], np.ndarray] = {}

    def embed(self, encoder_name: str, text: str) -> np.ndarray:
        key = (encoder_name, text)
        if key not in self._embeddings:
            self._embeddings[key] = _load_text_encoder(encoder_name, self.device).encode([text])[0]
        return self._embeddings[key]


def _check_schedule(run: RunConfig) -> "_Schedule":
    """The run's training schedule, refused when its sequences or instruction trials do not fit."""
    schedule = _Schedule.of(run, _agent_config(run))
    decisions = math.ceil(run.episode_length / schedule.action_repeat)
    if schedule.seq_len > decisions + 1:
        raise LampError(
            f"training sequences of {schedule.seq_len} steps do not fit episodes of {decisions} decisions "
            f"({run.episode_length} env steps, action repeat {schedule.action_repeat}); pass --seq-len {decisions + 1} or less"
        )
    candidates = len(task_instructions(run.task)) if run.instruction == AUTO_INSTRUCTION else 1
    if candidates > 1 and candidates * run.episode_length >= run.steps:
        raise LampError(
            f"--instruction auto spends {candidates} episodes of {run.episode_length} steps, "
            f"which leaves nothing of the {run.steps}-step budget; give more --steps"
        )
    return schedule


def _agent_config(run: RunConfig) -> Any:
    """The agent config a run will train with: its preset's (scratch) or its checkpoint's."""
    if run.init == SCRATCH:
        return load_preset(run.preset)
    return AgentConfig.from_dict(read_checkpoint_config(run.init)["config"])


def _agent_cameras(run: RunConfig) -> tuple[str, ...]:
    """The camera views a run's agent encodes, and so the cameras its env renders: the
    checkpoint's (front alone for one saved without a record of them), or the preset's."""
    if run.init == SCRATCH:
        return _agent_config(run).cameras or schema.DEFAULT_CAMERAS
    return schema.check_cameras(read_checkpoint_config(run.init).get("cameras") or schema.DEFAULT_CAMERAS)


def _build_agent(run: RunConfig, env: Any, lang_dim: int) -> tuple[Any, bool]:
    """The agent a run starts from, ready to finetune; returns ``(agent, pretrained)``."""
    image_size = int(env.observation_space["image"].shape[0])
    state_dim = int(env.observation_space["state"].shape[0])
    action_dim = int(env.action_space.shape[0])
    if run.init == SCRATCH:
        agent = Agent(
            load_preset(run.preset), image_size=image_size, state_dim=state_dim, action_dim=action_dim,
            lang_dim=lang_dim, device=run.device, seed=run.seed,
        )
        return agent, False
    agent = Agent.load(run.init, device=run.device)
    wanted = {"image_size": image_size, "state_dim": state_dim, "action_dim": action_dim, "lang_dim": lang_dim}
    mismatched = [f"{key} {agent.sizes[key]} (env/encoder: {value})" for key, value in wanted.items() if agent.sizes[key] != value]
    if mismatched:
        raise LampError(f"checkpoint {run.init} does not fit task '{run.task}': {', '.join(mismatched)}")
    agent.reseed(run.seed)
    agent.prepare_finetune()
    return agent, True


def _training_batch(replay: Any, batch_size: int, lang: np.ndarray) -> dict[str, Any]:
    return _with_lang(replay.sample(batch_size), lang)


def _with_lang(batch: dict[str, Any], lang: np.ndarray) -> dict[str, Any]:
    """A replay batch with the instruction's embedding as ``lang`` ``[B, L]``."""
    import torch

    batch = {key: torch.as_tensor(value) for key, value in batch.items()}
    count = next(iter(batch.values())).shape[0]
    batch["lang"] = torch.as_tensor(lang, dtype=torch.float32).unsqueeze(0).expand(count, -1).contiguous()
    return batch


@dataclass(frozen=True)
class _Schedule:
    """How a run spends its env steps on updates (the agent config's, or the run's overrides)."""

    replay_ratio: float
    action_repeat: int
    prefill: int
    initial_updates: int
    batch_size: int
    seq_len: int

    @classmethod
    def of(cls, run: RunConfig, agent_config: Any) -> "_Schedule":
        def pick(name: str) -> Any:
            value = getattr(run, name)
            return getattr(agent_config, name) if value is None else value

        return cls(**{name: pick(name) for name in ("replay_ratio", "action_repeat", "prefill", "initial_updates", "batch_size", "seq_len")})

    @property
    def updates_per_env_step(self) -> float:
        return self.replay_ratio / (self.batch_size * self.seq_len)


def _measure_baselines(run: RunConfig, env_config: Any, eval_seeds: list[int], cache_dir: Path | None) -> dict[str, Any]:
    """Random and scripted-expert returns on the evaluation seeds, measured without action repeat,
    with the front camera alone and no goal marker (neither policy looks), so that every run of a
    task is normalised by the same two numbers."""
    plain = dataclasses.replace(env_config, action_repeat=1, cameras=schema.DEFAULT_CAMERAS, goal_marker=False)
    return task_baselines(run.env, plain, eval_seeds, cache_dir=cache_dir)


def finetune_run(run: RunConfig, writer: RunWriter, encoders: _TextEncoders, advance: Any = None, save_agent: bool = False,
                 baselines_dir: Path | None = None) -> RunResult:
    """Do one run from step 0 and finish its folder.

    Args:
        run: The run's config.
        writer: Its writer (the caller checked it is not finished yet).
        encoders: Shared sentence encoders.
        advance: Called with the number of env steps just taken, for progress bars.
        save_agent: Also save the finetuned agent into the run folder.
        baselines_dir: Cache folder of the tasks' random and expert returns.
    """
    import torch

    advance = advance or (lambda steps: None)
    started = time.perf_counter()
    schedule = _check_schedule(run)
    env_config = EnvConfig(
        image_size=run.image_size, episode_length=run.episode_length, randomization=RandomizationConfig.canonical(),
        action_repeat=schedule.action_repeat, cameras=_agent_cameras(run), goal_marker=run.goal_marker,
    )
    eval_seeds = eval_episode_seeds(run.eval_episodes)
    baselines = _measure_baselines(run, env_config, eval_seeds, baselines_dir)
    env = make_env(run.env, env_config)
    eval_env = make_env(run.env, env_config)
    tensorboard = None
    try:
        torch.manual_seed(run.seed)
        candidates = _instruction_candidates(run, env)
        lang_dim = encoders.embed(run.text_encoder, candidates[0]).shape[0]
        agent, pretrained = _build_agent(run, env, lang_dim)
        replay = EpisodeReplay(capacity_steps=run.steps + run.episode_length, seq_len=schedule.seq_len, seed=run.seed,
                               prioritize_ends=agent.config.prioritize_ends)
        writer.begin(
            {
                "pretrained": pretrained,
                "agent_config": agent.config.to_dict(),
                "schedule": dataclasses.asdict(schedule),
                "updates_per_env_step": schedule.updates_per_env_step,
                "eval_seeds": eval_seeds,
                "train_seed_rule": TRAIN_SEED_RULE,
                "env_config": env_config.to_dict(),
                "env_spec": env.spec_dict() if hasattr(env, "spec_dict") else {"name": run.env},
                "baselines": baselines,
                "trainable_parameters": sum(p.numel() for p in agent.nets.parameters() if p.requires_grad),
            }
        )
        from torch.utils.tensorboard import SummaryWriter

        tensorboard = SummaryWriter(str(writer.folder / TENSORBOARD_DIR))
        loop = _TrainingLoop(run, agent, env, replay, schedule, advance)
        instruction, tried = loop.choose_instruction(candidates, encoders)
        lang = encoders.embed(run.text_encoder, instruction)
        loop.instruct(lang)
        writer.info.update(instruction_used=instruction, instructions_tried=tried)
        frames: list[np.ndarray] = []

        def evaluate_now(at_end: bool) -> None:
            evaluation = evaluate(agent, eval_env, lang, loop.env_steps, eval_seeds, frames=frames if at_end else None)
            writer.log(evaluation)
            tensorboard.add_scalar("eval/success_rate", evaluation.success_rate, loop.env_steps)
            tensorboard.add_scalar("eval/return_mean", evaluation.return_mean, loop.env_steps)
            grid = open_loop_grid(agent, replay, lang)
            if grid is not None:
                tensorboard.add_image("world_model/open_loop", grid, loop.env_steps, dataformats="HWC")
                if at_end:
                    write_png(writer.folder / OPEN_LOOP_PNG, grid)
            period = loop.flush_metrics()
            if period is not None:
                writer.log_training(period)
                for name, value in period.items():
                    if name != "step" and value is not None:
                        tensorboard.add_scalar(f"train/{name}", value, loop.env_steps)
            tensorboard.flush()

        evaluate_now(loop.env_steps >= run.steps)
        next_eval = (loop.env_steps // run.eval_every + 1) * run.eval_every
        while loop.env_steps < run.steps:
            loop.step()
            at_end = loop.env_steps >= run.steps
            if at_end or loop.env_steps >= next_eval:
                evaluate_now(at_end)
                next_eval = (loop.env_steps // run.eval_every + 1) * run.eval_every
        tensorboard.close()
        write_rollout_gif(writer.folder / ROLLOUT_GIF, frames, run.gif_frames)
        if save_agent:
            agent.save(writer.folder / "agent")
        steps = np.array([evaluation.step for evaluation in writer.evaluations])
        rates = np.array([evaluation.success_rate for evaluation in writer.evaluations])
        from lamp_eval.stats import area_under_curve

        summary = {
            "final_success_rate": float(rates[-1]),
            "success_auc": area_under_curve(steps, rates),
            "final_return_mean": writer.evaluations[-1].return_mean,
            "env_steps": loop.env_steps,
            "train_episodes": loop.episodes,
            "train_seeds": loop.seeds_used,
            "updates": loop.updates,
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        folder = writer.finish(summary)
        return RunResult(run, folder, False, summary["final_success_rate"], instruction, summary)
    finally:
        if tensorboard is not None:
            tensorboard.close()
        env.close()
        eval_env.close()


TRAIN_SEED_RULE = f"run seed * {TRAIN_SEED_STRIDE} + training episode index"
"""How training reset seeds follow from the run seed (recorded in ``run.json``)."""


def _instruction_candidates(run: RunConfig, env: Any) -> tuple[str, ...]:
    """The instructions a run may use, the default first."""
    if run.instruction and run.instruction != AUTO_INSTRUCTION:
        return (run.instruction,)
    registered = task_instructions(run.task)
    if not registered:
        _, info = env.reset(seed=train_episode_seed(run.seed, 0))
        registered = (str(info["instruction"]),)
    return registered if run.instruction == AUTO_INSTRUCTION else registered[:1]


class _TrainingLoop:
    """Steps one training env, fills the replay with whole episodes and trains on a schedule.

    The first ``prefill`` env steps take uniformly random actions; once they are done and an
    episode is in the replay, ``initial_updates`` world-model updates run at once, then every env
    step pays for ``replay_ratio / (batch_size * seq_len)`` updates of the whole agent.
    """

    def __init__(self, run: RunConfig, agent: Any, env: Any, replay: Any, schedule: _Schedule, advance: Any):
        self.run, self.agent, self.env, self.replay = run, agent, env, replay
        self.schedule, self.advance = schedule, advance
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0
        self._owed = 0.0
        self._episode: EpisodeBuilder | None = None
        self._observation: dict[str, np.ndarray] | None = None
        self._prefill_policy = RandomPolicy(env, np.random.default_rng(run.seed))
        self._policy: Any = None
        self._lang: np.ndarray | None = None
        self._has_data = False
        self._initial_done = schedule.initial_updates == 0
        self._metric_sums: dict[str, tuple[float, int]] = {}
        self._period_updates = 0
        self._period_returns: list[float] = []
        self.seeds_used: list[int] = []
        """Reset seed of every training episode begun."""

    def _next_seed(self) -> int:
        seed = train_episode_seed(self.run.seed, len(self.seeds_used))
        self.seeds_used.append(seed)
        return seed

    def choose_instruction(self, candidates: tuple[str, ...], encoders: _TextEncoders) -> tuple[str, list[dict[str, Any]]]:
        """With one candidate, return it; else run one greedy episode per candidate (counted in
        the budget, added to the replay) and keep the one with the highest return."""
        if len(candidates) == 1:
            return candidates[0], []
        tried = []
        for text in candidates:
            lang = encoders.embed(self.run.text_encoder, text)
            played = run_policy_episode(self.agent, self.env, lang, self._next_seed(), explore=False)
            self._add_episode(played)
            self.env_steps += played.env_steps
            self.advance(played.env_steps)
            tried.append({"instruction": text, "return": played.total_reward, "success": played.success})
        best = max(tried, key=lambda entry: entry["return"])
        return str(best["instruction"]), tried

    def instruct(self, lang: np.ndarray) -> None:
        """Train and act on the instruction embedded as ``lang`` from now on."""
        self._lang = lang
        self._policy = AgentPolicy(self.agent, lang[None], explore=True)

    def _add_episode(self, played: EpisodeBuilder) -> None:
        self.replay.add_episode(played.episode())
        self.episodes += 1
        self._has_data = True
        self._period_returns.append(played.total_reward)

    def _train(self, policy: bool = True) -> None:
        batch = _training_batch(self.replay, self.schedule.batch_size, self._lang)
        metrics = self.agent.train_step(batch, mode="finetune", policy=policy)
        for name, value in metrics.items():
            total, count = self._metric_sums.get(name, (0.0, 0))
            self._metric_sums[name] = (total + float(value), count + 1)
        self._period_updates += 1
        self.updates += 1

    def flush_metrics(self) -> dict[str, Any] | None:
        """Means of the training metrics since the last call, or None before anything happened."""
        if not self._period_updates and not self._period_returns:
            return None
        record: dict[str, Any] = {
            "step": self.env_steps, "updates": self.updates, "episodes": self.episodes,
            "train_return_mean": float(np.mean(self._period_returns)) if self._period_returns else None,
        }
        if self._period_updates:
            record.update({name: total / count for name, (total, count) in sorted(self._metric_sums.items())})
        self._metric_sums, self._period_updates, self._period_returns = {}, 0, []
        return record

    def step(self) -> None:
        """One decision (``action_repeat`` env steps) on the instruction, then the updates it pays for."""
        if self._episode is None:
            seed = self._next_seed()
            self._observation, info = self.env.reset(seed=seed)
            self._episode = EpisodeBuilder(self._observation, info, seed)
            self._prefill_policy.reset(info)
            self._policy.reset(info)
        acting = self._prefill_policy if self.env_steps < self.schedule.prefill else self._policy
        action = acting(self._observation)
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._episode.add(action, observation, reward, terminated, info)
        self._observation = observation
        taken = env_steps_taken(info)
        self.env_steps += taken
        self.advance(taken)
        if terminated or truncated:
            self._add_episode(self._episode)
            self._episode = None
        if not self._has_data or self.env_steps < self.schedule.prefill:
            return
        if not self._initial_done:
            self._initial_done = True
            for _ in range(self.schedule.initial_updates):
                self._train(policy=False)
        self._owed += self.schedule.updates_per_env_step * taken
        while self._owed >= 1.0:
            self._train()
            self._owed -= 1.0


@dataclass(frozen=True)
class RunStarted:
    """A finetune worker began a run (from step 0)."""

    method: str
    """The run's method label."""
    task: str
    """Its task."""
    seed: int
    """Its run seed."""


@dataclass(frozen=True)
class EnvStepsTaken:
    """A run took env steps (counted in its budget)."""

    count: int
    """How many."""


class _RunWorker:
    """A finetune worker: sentence encoders shared by its runs; does one run per unit."""

    def __init__(self, out: str, device: str, save_agent: bool):
        self.out, self.device, self.save_agent = out, device, save_agent
        self.encoders: _TextEncoders | None = None

    def start(self, emit: Any) -> None:
        """Check the device and get the encoder cache ready."""
        check_device(self.device)
        self.encoders = _TextEncoders(self.device)

    def do(self, run: RunConfig, emit: Any) -> RunResult:
        """Do ``run`` from step 0 into its folder (a run already finished there is read back)."""
        writer = RunWriter(self.out, run)
        if writer.finished():  # an attempt that finished before its worker died
            return _finished_result(run, writer, skipped=False)
        emit(RunStarted(run.method, run.task, run.seed))
        return finetune_run(run, writer, self.encoders, advance=lambda steps: emit(EnvStepsTaken(steps)),
                            save_agent=self.save_agent, baselines_dir=Path(self.out) / BASELINES_DIR)

    def close(self) -> None:
        """Nothing to free."""


def finetune(config: FinetuneConfig, progress: bool = True, executor: ExecutorConfig | None = None) -> list[RunResult]:
    """Run every task × init × seed of ``config`` that has not finished yet.

    Finished runs with the same config are skipped (and reported as skipped); unfinished ones
    restart from step 0. Inputs are all checked before the first run starts. Each run depends
    only on its config, so where it runs does not change its result.

    Args:
        config: The queue.
        progress: Show a progress bar over env steps.
        executor: Where the runs go (default: one after the other in this process); with
            ``ray``, one run at a time per actor of a Ray cluster, each actor reserving
            ``executor.gpus_per_worker`` GPUs (see :mod:`lamp_data.executors`).

    Returns:
        One result per queued run, in queue order.

    Raises:
        LampError: unknown task or env, missing or unfitting checkpoint, a finished run with a
            different config in the way, bad numbers.
    """
    executor = executor or ExecutorConfig()
    if not executor.is_ray:  # on Ray each worker checks the device of its own node
        check_device(config.device)
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise LampError(f"--out {config.out} is a file; give a folder for the runs")
    runs = plan_runs(config)
    writers = [RunWriter(config.out, run) for run in runs]
    results: dict[int, RunResult] = {}
    pending: list[RunConfig] = []
    for index, (run, writer) in enumerate(zip(runs, writers)):
        if writer.finished():
            results[index] = _finished_result(run, writer, skipped=True)
        else:
            pending.append(run)
    position = {id(run): index for index, run in enumerate(runs)}
    with progress_bar("finetune", sum(run.steps for run in pending), unit="env steps", enabled=progress) as bar:

        def show(event: Any) -> None:
            if isinstance(event, RunStarted):
                bar.update(description=f"{event.method} · {event.task} · seed {event.seed}")
            elif isinstance(event, EnvStepsTaken):
                bar.advance(event.count)

        if pending:
            worker_factory = functools.partial(_RunWorker, config.out, config.device, config.save_agent)
            with session(executor):
                count = worker_count(executor, len(pending), executor.gpus_per_worker)
                with worker_pool(executor, worker_factory, count, "finetune", executor.gpus_per_worker) as workers:
                    workers.start(show)
                    for run, result in workers.run(pending, show):
                        results[position[id(run)]] = result
    return [results[index] for index in range(len(runs))]


def _finished_result(run: RunConfig, writer: RunWriter, skipped: bool) -> RunResult:
    """The result of a run whose finished folder is on disk."""
    info = writer.info or read_run_info(writer.final / RUN_INFO)
    return RunResult(run, writer.final, skipped, float(info["summary"]["final_success_rate"]),
                     str(info.get("instruction_used", "")), dict(info["summary"]))
