"""Finetune agents on held-out tasks under one env-step budget, and log evaluations.

The protocol follows LAMP's finetuning: the task's own dense reward, one fixed instruction
(the task registry's by default; ``"auto"`` tries each of the task's paraphrases for one
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

from lamp_data.errors import LampError, check_number
from lamp_eval.runs import (
    MAX_RUN_SEED,
    EpisodeResult,
    Evaluation,
    RunConfig,
    TRAIN_SEED_STRIDE,
    RunWriter,
    TENSORBOARD_DIR,
    eval_episode_seeds,
    train_episode_seed,
    ROLLOUT_GIF,
)

SCRATCH = "scratch"
"""``--init`` value for an agent trained from random initialisation."""
AUTO_INSTRUCTION = "auto"
"""``--instruction`` value that picks the best of the task's paraphrases."""
BASELINES_DIR = ".baselines"
"""Cache of each task's random and expert returns on the evaluation seeds, under a runs folder."""
DEFAULT_ENV_PREFIX = "mw-"
"""A task ``T`` runs in env ``<prefix>T`` unless an env is named."""


@dataclass(frozen=True)
class FinetuneConfig:
    """A queue of finetuning runs: every task × init × seed."""

    tasks: tuple[str, ...]
    """Held-out task names."""
    inits: tuple[str, ...]
    """Pretrained checkpoint folders, or ``"scratch"``."""
    out: str
    """Runs folder."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Run seeds."""
    steps: int = 5000
    """Env steps of finetuning per run."""
    eval_every: int = 1000
    """Env steps between evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    instruction: str = ""
    """Instruction text; ``""`` for the task registry's, ``"auto"`` to pick among its paraphrases."""
    env_prefix: str = DEFAULT_ENV_PREFIX
    """Env name prefix put before the task name."""
    env: str | None = None
    """Env name to use for every task instead of ``<prefix><task>`` (e.g. ``dummy``)."""
    image_size: int = 64
    """Camera image side in pixels."""
    episode_length: int = 150
    """Env steps per episode."""
    preset: str = "cpu"
    """Agent preset of scratch runs."""
    method: str | None = None
    """Method label instead of the one derived from the checkpoint (only with one init)."""
    replay_ratio: float | None = None
    """Replayed steps per env step (``batch * seq_len`` per update); None keeps the agent config's."""
    action_repeat: int | None = None
    """Env steps per agent decision; None keeps the agent config's."""
    prefill: int | None = None
    """Random-action env steps that open each run (in the budget); None keeps the agent config's."""
    initial_updates: int | None = None
    """Updates run once the prefill is done; None keeps the agent config's."""
    batch_size: int | None = None
    """Sequences per update; None keeps the agent config's."""
    seq_len: int | None = None
    """Steps per sequence; None keeps the agent config's."""
    text_encoder: str = "minilm"
    """Sentence encoder of the instruction."""
    device: str = "cpu"
    """Torch device."""
    save_agent: bool = False
    """Also save each finetuned agent in its run folder."""
    gif_frames: int = 60
    """At most this many frames in each run's rollout GIF."""

    def __post_init__(self) -> None:
        if not self.tasks:
            raise LampError("give at least one --task")
        if not self.inits:
            raise LampError("give at least one --init (a checkpoint folder or 'scratch')")
        if not self.seeds:
            raise LampError("give at least one seed")
        for seed in self.seeds:
            if not 0 <= seed <= MAX_RUN_SEED:
                raise LampError(f"seeds must be between 0 and {MAX_RUN_SEED}, got {seed}")
        if len(set(self.seeds)) != len(self.seeds):
            raise LampError("seeds must be distinct")
        for name in ("steps", "eval_every", "eval_episodes", "gif_frames"):
            if getattr(self, name) < 1:
                raise LampError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.method is not None and len(set(self.inits)) > 1:
            raise LampError("--method names one method; give a single --init with it")
        if self.replay_ratio is not None:
            check_number("replay ratio", self.replay_ratio)
        if self.replay_ratio is not None and not self.replay_ratio > 0:
            raise LampError(f"replay ratio must be positive (replayed steps per env step), got {self.replay_ratio}")
        if self.action_repeat is not None and self.action_repeat < 1:
            raise LampError(f"action repeat must be at least 1, got {self.action_repeat}")
        for name, least, words in (("prefill", 0, "non-negative"), ("initial_updates", 0, "non-negative"),
                                   ("batch_size", 1, "at least 1"), ("seq_len", 1, "at least 1")):
            value = getattr(self, name)
            if value is not None and value < least:
                raise LampError(f"{name.replace('_', '-')} must be {words}, got {value}")

    def env_name(self, task: str) -> str:
        """The env a task runs in."""
        return self.env or f"{self.env_prefix}{task}"


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

    A task run in an explicitly named env (``--env``) need not be in the task registry.
    """
    from lamp_data.tasks import HELDOUT, TASKS, get_task

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
    from lamp_agent.checkpoint import read_checkpoint_config

    read_checkpoint_config(init)


def plan_runs(config: FinetuneConfig) -> list[RunConfig]:
    """Validate the queue and list one :class:`RunConfig` per task × init × seed."""
    from lamp_data.envs import ENVS

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
                    RunConfig(
                        task=task, env=config.env_name(task), init=init, method=label, seed=seed,
                        steps=config.steps, eval_every=config.eval_every, eval_episodes=config.eval_episodes,
                        instruction=config.instruction, image_size=config.image_size,
                        episode_length=config.episode_length, preset=config.preset,
                        replay_ratio=config.replay_ratio, action_repeat=config.action_repeat, prefill=config.prefill,
                        initial_updates=config.initial_updates, batch_size=config.batch_size, seq_len=config.seq_len,
                        text_encoder=config.text_encoder, device=config.device, gif_frames=config.gif_frames,
                    )
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
    from lamp_agent.checkpoint import read_checkpoint_config
    from lamp_data.store.reader import prompt_set_name

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
    from lamp_data.prompts import DEFAULT_PROMPT_SET

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
    """The registry's instruction of ``task`` followed by its paraphrases; empty if unregistered."""
    from lamp_data.tasks import TASKS

    spec = TASKS.get(task)
    if spec is None:
        return ()
    return (spec.instruction, *spec.paraphrases)


class _EpisodeRecorder:
    """Collects one episode in the store layout (frames T+1 of every camera, actions T)."""

    def __init__(self, observation: dict[str, np.ndarray]):
        from lamp_data import schema

        self.image_keys = [key for key in schema.CAMERA_KEYS.values() if key in observation]
        self.images = {key: [observation[key]] for key in self.image_keys}
        self.states = [observation["state"]]
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.successes = [False]
        self.terminal = False

    def add(self, action: np.ndarray, observation: dict[str, np.ndarray], reward: float, info: dict, terminated: bool) -> None:
        for key in self.image_keys:
            self.images[key].append(observation[key])
        self.states.append(observation["state"])
        self.actions.append(np.asarray(action, np.float32))
        self.rewards.append(float(reward))
        self.successes.append(bool(info.get("success", False)))
        self.terminal = bool(terminated)

    def __len__(self) -> int:
        return len(self.actions)

    def episode(self) -> dict[str, np.ndarray]:
        from lamp_data import schema

        length = len(self.actions)
        is_first = np.zeros(length + 1, bool)
        is_first[0] = True
        is_last = np.zeros(length + 1, bool)
        is_last[-1] = True
        is_terminal = np.zeros(length + 1, bool)
        is_terminal[-1] = self.terminal
        return {
            **{key: np.stack(frames).astype(np.uint8) for key, frames in self.images.items()},
            schema.STATE: np.stack(self.states).astype(np.float32),
            schema.ACTION: np.stack(self.actions).astype(np.float32),
            schema.REWARD: np.asarray(self.rewards, np.float32),
            schema.SUCCESS: np.asarray(self.successes, bool),
            schema.IS_FIRST: is_first,
            schema.IS_LAST: is_last,
            schema.IS_TERMINAL: is_terminal,
        }


def run_policy_episode(agent: Any, env: Any, lang: np.ndarray, seed: int, explore: bool, frames: list | None = None) -> tuple[EpisodeResult, _EpisodeRecorder]:
    """One whole episode from ``env.reset(seed=seed)``; ``frames`` (if given) receives every image."""
    observation, _ = env.reset(seed=seed)
    recorder = _EpisodeRecorder(observation)
    carry = None
    total, success, done = 0.0, False, False
    if frames is not None:
        frames.append(observation["image"])
    while not done:
        action, carry = agent.policy_step(observation, lang, carry=carry, explore=explore)
        observation, reward, terminated, truncated, info = env.step(action)
        recorder.add(action, observation, reward, info, terminated)
        total += float(reward)
        success = success or bool(info.get("success", False))
        done = terminated or truncated
        if frames is not None:
            frames.append(observation["image"])
    return EpisodeResult(seed=seed, ret=total, success=success, length=len(recorder)), recorder


def evaluate(agent: Any, env: Any, lang: np.ndarray, step: int, seeds: list[int], frames: list | None = None) -> Evaluation:
    """Run the policy without exploration on every evaluation seed; frames of the first episode
    go into ``frames`` when given."""
    episodes = []
    for index, seed in enumerate(seeds):
        result, _ = run_policy_episode(agent, env, lang, seed, explore=False, frames=frames if index == 0 else None)
        episodes.append(result)
    return Evaluation.from_episodes(step, episodes)


OPEN_LOOP_PNG = "open_loop.png"
"""The world model's open-loop predictions at the end of a run (see :func:`open_loop_grid`)."""


def open_loop_grid(agent: Any, replay: Any, lang: np.ndarray, sequences: int = 3) -> np.ndarray | None:
    """The world model's open-loop predictions on the newest ``sequences`` training episodes
    (:func:`lamp_agent.open_loop.open_loop_image`); None while no episode is long enough."""
    from lamp_agent.open_loop import OPEN_LOOP_CONTEXT, open_loop_image

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

    from lamp_data.atomic import atomic_path

    with atomic_path(path) as temporary:
        iio.imwrite(temporary, image, extension=".png")


def write_rollout_gif(path: Path, frames: list[np.ndarray], max_frames: int) -> None:
    """Save at most ``max_frames`` evenly spaced frames as a looping GIF, atomically."""
    import imageio.v3 as iio

    from lamp_data.atomic import atomic_path

    if not frames:
        return
    index = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    with atomic_path(path) as temporary:
        iio.imwrite(temporary, np.stack([frames[i] for i in index]), extension=".gif", duration=80, loop=0)


@functools.lru_cache(maxsize=2)
def _load_text_encoder(name: str, device: str) -> Any:
    """A frozen sentence encoder, loaded once per process (loading MiniLM takes seconds)."""
    from lamp_data.text import TextEncoder

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
    from lamp_agent import load_preset
    from lamp_agent.checkpoint import read_checkpoint_config
    from lamp_agent.config import AgentConfig

    if run.init == SCRATCH:
        return load_preset(run.preset)
    return AgentConfig.from_dict(read_checkpoint_config(run.init)["config"])


def _agent_cameras(run: RunConfig) -> tuple[str, ...]:
    """The camera views a run's agent encodes, and so the cameras its env renders: the
    checkpoint's (front alone for one saved without a record of them), or the preset's."""
    from lamp_agent.checkpoint import read_checkpoint_config
    from lamp_data import schema

    if run.init == SCRATCH:
        return _agent_config(run).cameras or schema.DEFAULT_CAMERAS
    return schema.check_cameras(read_checkpoint_config(run.init).get("cameras") or schema.DEFAULT_CAMERAS)


def _build_agent(run: RunConfig, env: Any, lang_dim: int) -> tuple[Any, bool]:
    """The agent a run starts from, ready to finetune; returns ``(agent, pretrained)``."""
    from lamp_agent import Agent, load_preset

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
    """Random and scripted-expert returns on the evaluation seeds, measured without action repeat
    and with the front camera alone (neither policy looks), so that every run of a task is
    normalised by the same two numbers."""
    from lamp_data import schema
    from lamp_eval.baselines import task_baselines

    plain = dataclasses.replace(env_config, action_repeat=1, cameras=schema.DEFAULT_CAMERAS)
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

    from lamp_agent.core.replay import EpisodeReplay
    from lamp_data.envs import EnvConfig, RandomizationConfig, make_env

    advance = advance or (lambda steps: None)
    started = time.perf_counter()
    schedule = _check_schedule(run)
    env_config = EnvConfig(
        image_size=run.image_size, episode_length=run.episode_length, randomization=RandomizationConfig.canonical(),
        action_repeat=schedule.action_repeat, cameras=_agent_cameras(run),
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
        replay = EpisodeReplay(capacity_steps=run.steps + run.episode_length, seq_len=schedule.seq_len, seed=run.seed)
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
            loop.step(lang)
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
        self._recorder: _EpisodeRecorder | None = None
        self._observation: dict[str, np.ndarray] | None = None
        self._carry = None
        self._has_data = False
        self._initial_done = schedule.initial_updates == 0
        self._random = np.random.default_rng(run.seed)
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
            result, recorder = run_policy_episode(
                self.agent, self.env, lang, self._next_seed(), explore=False
            )
            self._add_episode(recorder)
            env_steps = min(len(recorder) * self.schedule.action_repeat, self.run.episode_length)
            self.env_steps += env_steps
            self.advance(env_steps)
            tried.append({"instruction": text, "return": result.ret, "success": result.success})
        best = max(tried, key=lambda entry: entry["return"])
        return str(best["instruction"]), tried

    def _add_episode(self, recorder: _EpisodeRecorder) -> None:
        self.replay.add_episode(recorder.episode())
        self.episodes += 1
        self._has_data = True
        self._period_returns.append(float(sum(recorder.rewards)))

    def _train(self, lang: np.ndarray, policy: bool = True) -> None:
        batch = _training_batch(self.replay, self.schedule.batch_size, lang)
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

    def step(self, lang: np.ndarray) -> None:
        """One agent decision (``action_repeat`` env steps), then the updates it pays for."""
        if self._observation is None:
            self._observation, _ = self.env.reset(seed=self._next_seed())
            self._recorder = _EpisodeRecorder(self._observation)
            self._carry = None
        if self.env_steps < self.schedule.prefill:
            action = self._random.uniform(-1.0, 1.0, self.env.action_space.shape).astype(np.float32)
        else:
            action, self._carry = self.agent.policy_step(self._observation, lang, carry=self._carry, explore=True)
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._recorder.add(action, observation, reward, info, terminated)
        self._observation = observation
        taken = int(info.get("env_steps", 1))
        self.env_steps += taken
        self.advance(taken)
        if terminated or truncated:
            self._add_episode(self._recorder)
            self._observation = None
        if not self._has_data or self.env_steps < self.schedule.prefill:
            return
        if not self._initial_done:
            self._initial_done = True
            for _ in range(self.schedule.initial_updates):
                self._train(lang, policy=False)
        self._owed += self.schedule.updates_per_env_step * taken
        while self._owed >= 1.0:
            self._train(lang)
            self._owed -= 1.0


def finetune(config: FinetuneConfig, progress: bool = True) -> list[RunResult]:
    """Run every task × init × seed of ``config`` that has not finished yet.

    Finished runs with the same config are skipped (and reported as skipped); unfinished ones
    restart from step 0. Inputs are all checked before the first run starts.

    Args:
        config: The queue.
        progress: Show a rich progress bar over env steps.

    Returns:
        One result per queued run, in queue order.

    Raises:
        LampError: unknown task or env, missing or unfitting checkpoint, a finished run with a
            different config in the way, bad numbers.
    """
    from lamp_data.devices import check_device

    check_device(config.device)
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise LampError(f"--out {config.out} is a file; give a folder for the runs")
    runs = plan_runs(config)
    writers = [RunWriter(config.out, run) for run in runs]
    pending = [not writer.finished() for writer in writers]
    encoders = _TextEncoders(config.device)
    results = []
    with _progress(progress, sum(run.steps for run, todo in zip(runs, pending) if todo)) as bar:
        for run, writer, todo in zip(runs, writers, pending):
            if not todo:
                info = writer.info or _finished_info(writer)
                results.append(
                    RunResult(run, writer.final, True, float(info["summary"]["final_success_rate"]),
                              str(info.get("instruction_used", "")), dict(info["summary"]))
                )
                continue
            bar.describe(f"{run.method} · {run.task} · seed {run.seed}")
            results.append(finetune_run(run, writer, encoders, advance=bar.advance, save_agent=config.save_agent,
                                        baselines_dir=Path(config.out) / BASELINES_DIR))
    return results


def _finished_info(writer: RunWriter) -> dict[str, Any]:
    from lamp_eval.runs import RUN_INFO, read_run_info

    return read_run_info(writer.final / RUN_INFO)


class _progress:
    """A rich progress bar over env steps, or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled and total > 0, total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "_progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TextColumn("env steps"),
                TimeRemainingColumn(elapsed_when_finished=True),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("finetune", total=self.total)
        return self

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def advance(self, steps: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, steps)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
