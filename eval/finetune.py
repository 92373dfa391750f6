"""Finetune agents on held-out tasks under one env-step budget, and log evaluations.

The protocol follows LAMP's finetuning: the task's own dense reward, one fixed instruction
(the task catalogue's by default; ``"auto"`` tries each of the task's paraphrases for one
episode and keeps the one with the highest return), the critic linearly probed for pretrained
agents (frozen body, fresh linear head: ``Agent.prepare_finetune()``), everything else trained.
Agents from scratch train every parameter. Training and evaluation both run in the canonical
(not randomized) env. Evaluations take ``eval_episodes`` episodes with the policy's mean action
(and with ``eval_sampled`` once more with sampled actions, which leaves training untouched) on
held-out reset seeds that are the same for every method and run seed and disjoint from every
training seed (see :mod:`lamp_eval.runs`); an episode succeeds if the task's success flag is
set at any step. Evaluations happen at step 0, every ``eval_every`` env steps, and at the end.

Instruction tuning (``"auto"``) spends real env steps, which count toward the budget, and its
episodes go into the replay like any other.

The training itself, playing episodes and paying for updates on the replay-ratio schedule, is
:class:`lamp_agent.online.OnlineTrainer`; this module queues the runs, writes their folders and
evaluates.

Resuming: a finished run (same config) is skipped; an interrupted run continues from the
checkpoint it wrote after its last evaluation (``resume/`` in its staging folder; the newest
``keep_checkpoints`` are kept and all are removed when the run finishes), and ends with the same
logs as a run never interrupted. A run without a checkpoint starts again from step 0. Each run
folder is locked while a process works on it: a second ``finetune`` into the same ``--out``
is refused with one line before it writes anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_agent import Agent
from lamp_agent.checkpoint import ACTION_REPEAT_INFO, latest_checkpoint, read_checkpoint, read_checkpoint_config
from lamp_agent.core.policy import AgentPolicy
from lamp_agent.online import (
    SCHEDULE_FIELDS,
    SCRATCH,
    OnlineTrainer,
    Schedule,
    agent_config_of,
    build_agent,
    init_action_repeat,
    remove_resume_state,
    saved_extra,
)
from lamp_data import schema
from lamp_data.atomic import atomic_path, exclusive_lock
from lamp_data.devices import check_device
from lamp_data.envs import ENVS, make_env
from lamp_data.envs.tasks import HELDOUT, TASKS, get_task
from lamp_data.errors import LampError
from lamp_data.pipeline.executors import ExecutorConfig, session, worker_count, worker_pool
from lamp_data.pipeline.rollout import EpisodeBuilder, run_episode
from lamp_data.progress import progress_bar
from lamp_data.rewards.prompts import DEFAULT_PROMPT_SET
from lamp_data.rewards.text import TextEncoder
from lamp_data.store.reader import prompt_set_name
from lamp_eval.baselines import normalised_return, task_baselines
from lamp_eval.runs import (
    RESUME_DIR,
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
    run_lock_path,
    train_episode_seed,
)

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


def check_init(init: str, image_size: int | None = None) -> None:
    """``init`` must be ``scratch`` or a readable agent checkpoint folder, trained on frames of
    ``image_size`` pixels when that is given (checked before anything is written)."""
    if init == SCRATCH:
        return
    if not Path(init).exists():
        raise LampError(f"checkpoint {init} does not exist (give a checkpoint folder or 'scratch')")
    _, meta = read_checkpoint(init)  # its files against their recorded sha256, before anything is written
    trained = meta.get("sizes", {}).get("image_size")
    if image_size is not None and trained is not None and int(trained) != image_size:
        raise LampError(f"checkpoint {init} was trained on {trained}-px frames, not {image_size}; pass --image-size {trained}")


def plan_runs(config: FinetuneConfig) -> list[RunConfig]:
    """Validate the queue and list one :class:`RunConfig` per task × init × seed."""
    for task in config.tasks:
        check_task(task, config)
        ENVS.get(config.env_name(task))
    for init in config.inits:
        check_init(init, config.env_config.image_size)
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


def evaluate(agent: Any, env: Any, lang: np.ndarray, step: int, seeds: list[int], frames: list | None = None,
             sampled: bool = False) -> Evaluation:
    """Run the policy's mean action on every evaluation seed; frames of the first episode go
    into ``frames`` when given. With ``sampled`` the seeds are played once more with actions
    drawn from the policy, each episode on a random stream of its own seeded by its env seed
    (:meth:`~lamp_agent.agent.Agent.acting_apart`), into the evaluation's ``sampled``."""
    episodes = []
    for index, seed in enumerate(seeds):
        played = run_policy_episode(agent, env, lang, seed, explore=False)
        if frames is not None and index == 0:
            frames.extend(played.frames[schema.IMAGE])
        episodes.append(episode_result(played))
    evaluation = Evaluation.from_episodes(step, episodes)
    if not sampled:
        return evaluation
    drawn = []
    for seed in seeds:
        with agent.acting_apart(seed):
            drawn.append(episode_result(run_policy_episode(agent, env, lang, seed, explore=True)))
    return dataclasses.replace(evaluation, sampled=Evaluation.from_episodes(step, drawn))


OPEN_LOOP_PNG = "open_loop.png"
"""The world model's open-loop predictions at the end of a run (see :meth:`lamp_agent.online.OnlineTrainer.open_loop_grid`)."""


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


def run_schedule(run: RunConfig) -> Schedule:
    """The run's training schedule: its agent config's, with the run's overrides."""
    return Schedule.of({name: getattr(run, name) for name in SCHEDULE_FIELDS}, agent_config_of(run.init, run.preset))


def _check_schedule(run: RunConfig) -> Schedule:
    """The run's training schedule, refused when its sequences or instruction trials do not fit."""
    schedule = run_schedule(run)
    repeat = run_env_config(run).action_repeat
    decisions = math.ceil(run.env_config.episode_length / repeat)
    if schedule.seq_len > decisions + 1:
        raise LampError(
            f"training sequences of {schedule.seq_len} steps do not fit episodes of {decisions} decisions "
            f"({run.env_config.episode_length} env steps, action repeat {repeat}); pass --seq-len {decisions + 1} or less"
        )
    candidates = len(task_instructions(run.task)) if run.instruction == AUTO_INSTRUCTION else 1
    if candidates > 1 and candidates * run.env_config.episode_length >= run.steps:
        raise LampError(
            f"--instruction auto spends {candidates} episodes of {run.env_config.episode_length} steps, "
            f"which leaves nothing of the {run.steps}-step budget; give more --steps"
        )
    return schedule


def _agent_cameras(run: RunConfig) -> tuple[str, ...]:
    """The camera views a run's agent encodes, and so the cameras its env renders: the
    checkpoint's (front alone for one saved without a record of them), or the preset's."""
    if run.init == SCRATCH:
        return agent_config_of(run.init, run.preset).cameras or schema.DEFAULT_CAMERAS
    return schema.check_cameras(read_checkpoint_config(run.init).get("cameras") or schema.DEFAULT_CAMERAS)


def run_env_config(run: RunConfig) -> Any:
    """The env a run's agent acts in: the run's env, with the cameras its agent encodes and, unless
    the run was given one, its init's action repeat (:func:`lamp_agent.online.init_action_repeat`)."""
    repeat = run.env_config.action_repeat if "action_repeat" in run.env_given else init_action_repeat(run.init, run.preset)
    return dataclasses.replace(run.env_config, action_repeat=repeat, cameras=_agent_cameras(run))


def baseline_env_config(env_config: Any) -> Any:
    """The env the random and scripted-expert baselines play: ``env_config`` without action
    repeat, with the front camera alone and no goal marker (neither policy looks), so that every
    run of a task is normalised by the same two numbers."""
    return dataclasses.replace(env_config, action_repeat=1, cameras=schema.DEFAULT_CAMERAS, goal_marker=False)


def _measure_baselines(run: RunConfig, env_config: Any, eval_seeds: list[int], cache_dir: Path | None) -> dict[str, Any]:
    """Random and scripted-expert returns on the evaluation seeds (:func:`baseline_env_config`)."""
    return task_baselines(run.env, baseline_env_config(env_config), eval_seeds, cache_dir=cache_dir)


def finetune_run(run: RunConfig, writer: RunWriter, encoders: _TextEncoders, advance: Any = None, save_agent: bool = False,
                 baselines_dir: Path | None = None, keep_checkpoints: int = 1) -> RunResult:
    """Do one run, from its last checkpoint if an interrupted attempt left one, and finish its folder.

    After every evaluation the run checkpoints, at the end of the training episode under way,
    everything it needs to go on (:meth:`lamp_agent.online.OnlineTrainer.save`, plus the
    evaluations and training records so far, the next evaluation step and the time spent) into
    ``resume/`` of its staging folder; a continued run takes the same steps and updates and
    writes the same logs as one never interrupted.

    Args:
        run: The run's config.
        writer: Its writer (the caller checked it is not finished yet).
        encoders: Shared sentence encoders.
        advance: Called with the number of env steps just taken, for progress bars.
        save_agent: Also save the finetuned agent into the run folder.
        baselines_dir: Cache folder of the tasks' random and expert returns.
        keep_checkpoints: Checkpoints kept while the run goes on (the newest ones).
    """
    import torch

    advance = advance or (lambda steps: None)
    started = time.perf_counter()
    schedule = _check_schedule(run)
    env_config = run_env_config(run)
    eval_seeds = eval_episode_seeds(run.eval_episodes)
    resume_dir = writer.staging / RESUME_DIR
    checkpoint = latest_checkpoint(resume_dir) if writer.interrupted() else None
    baselines = _measure_baselines(run, env_config, eval_seeds, baselines_dir)
    env = make_env(run.env, env_config)
    eval_env = make_env(run.env, env_config)
    tensorboard = None
    try:
        torch.manual_seed(run.seed)
        candidates = _instruction_candidates(run, env)
        embed = functools.partial(encoders.embed, run.text_encoder)
        lang_dim = embed(candidates[0]).shape[0]
        if checkpoint is None:
            agent, pretrained = build_agent(run.init, run.preset, env, lang_dim, run.device, run.seed, run.finetune_critic)
        else:
            agent, pretrained = Agent.load(checkpoint, device=run.device), run.init != SCRATCH
        trainer = OnlineTrainer(agent, env, schedule, run.seed, run.steps + run.env_config.episode_length,
                                functools.partial(train_episode_seed, run.seed), advance)
        if checkpoint is None:
            writer.begin(
                {
                    "pretrained": pretrained,
                    "agent_config": agent.config.to_dict(),
                    "precision": {"used": agent.precision, "why": agent.precision_reason},
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
            instruction, tried = trainer.choose_instruction(candidates, embed)
            trainer.instruct(embed(instruction))
            resumed = {"evaluations": [], "training": [], "wall_seconds": 0.0, "checkpoint_seconds": 0.0, "checkpoints": 0, "resumes": 0}
        else:
            resumed = _resumed_state(writer, trainer, resume_dir, checkpoint, embed)
            instruction, tried = resumed["instruction"], resumed["tried"]
            writer.restore([Evaluation.from_dict(line) for line in resumed["evaluations"]], resumed["training"])
            advance(trainer.env_steps)
        lang = embed(instruction)
        writer.info.update(instruction_used=instruction, instructions_tried=tried)
        from torch.utils.tensorboard import SummaryWriter

        tensorboard = SummaryWriter(str(writer.folder / TENSORBOARD_DIR), purge_step=trainer.env_steps if checkpoint else None)
        frames: list[np.ndarray] = []

        def evaluate_now(at_end: bool) -> None:
            evaluation = evaluate(agent, eval_env, lang, trainer.env_steps, eval_seeds, frames=frames if at_end else None,
                                  sampled=run.eval_sampled)
            writer.log(evaluation)
            tensorboard.add_scalar("eval/success_rate", evaluation.success_rate, trainer.env_steps)
            tensorboard.add_scalar("eval/return_mean", evaluation.return_mean, trainer.env_steps)
            if evaluation.sampled is not None:
                tensorboard.add_scalar("eval_sampled/success_rate", evaluation.sampled.success_rate, trainer.env_steps)
                tensorboard.add_scalar("eval_sampled/return_mean", evaluation.sampled.return_mean, trainer.env_steps)
            normalised = normalised_return(evaluation.return_mean, baselines)
            if math.isfinite(normalised):
                tensorboard.add_scalar("eval/normalised_return", normalised, trainer.env_steps)
            grid = trainer.open_loop_grid()
            if grid is not None:
                tensorboard.add_image("world_model/open_loop", grid, trainer.env_steps, dataformats="HWC")
                if at_end:
                    write_png(writer.folder / OPEN_LOOP_PNG, grid)
            period = trainer.flush_metrics()
            if period is not None:
                writer.log_training(period)
                for name, value in period.items():
                    if name != "step" and value is not None:
                        tensorboard.add_scalar(f"train/{name}", value, trainer.env_steps)
            tensorboard.flush()

        if checkpoint is None:
            evaluate_now(trainer.env_steps >= run.steps)
            next_eval = (trainer.env_steps // run.eval_every + 1) * run.eval_every
        else:
            next_eval = int(resumed["next_eval"])
        evaluated = checkpoint is None

        def between_steps() -> bool:
            nonlocal next_eval, evaluated
            at_end = trainer.env_steps >= run.steps
            if at_end or trainer.env_steps >= next_eval:
                evaluate_now(at_end)
                next_eval = (trainer.env_steps // run.eval_every + 1) * run.eval_every
                evaluated = True
            return at_end

        while trainer.env_steps < run.steps:
            trainer.play_episode(between_steps)
            if evaluated and trainer.env_steps < run.steps:
                saving = time.perf_counter()
                extra = {
                    "instruction": instruction, "tried": tried, "next_eval": next_eval,
                    "evaluations": [evaluation.to_dict() for evaluation in writer.evaluations], "training": list(writer.training),
                    "wall_seconds": resumed["wall_seconds"] + time.perf_counter() - started,
                    "checkpoint_seconds": resumed["checkpoint_seconds"], "checkpoints": resumed["checkpoints"] + 1,
                    "resumes": resumed["resumes"],
                }
                trainer.save(resume_dir, extra, keep_checkpoints)
                resumed["checkpoint_seconds"] += time.perf_counter() - saving
                resumed["checkpoints"] += 1
                evaluated = False
        tensorboard.close()
        write_rollout_gif(writer.folder / ROLLOUT_GIF, frames, run.gif_frames)
        if save_agent:
            agent.info[ACTION_REPEAT_INFO] = env_config.action_repeat
            agent.save(writer.folder / "agent")
        steps = np.array([evaluation.step for evaluation in writer.evaluations])
        rates = np.array([evaluation.success_rate for evaluation in writer.evaluations])
        from lamp_eval.stats import area_under_curve

        summary = {
            "final_success_rate": float(rates[-1]),
            "success_auc": area_under_curve(steps, rates),
            "final_return_mean": writer.evaluations[-1].return_mean,
            "env_steps": trainer.env_steps,
            "train_episodes": trainer.episodes,
            "train_seeds": trainer.seeds_used,
            "updates": trainer.updates,
            "wall_seconds": round(resumed["wall_seconds"] + time.perf_counter() - started, 1),
            "checkpoints": resumed["checkpoints"],
            "checkpoint_seconds": round(resumed["checkpoint_seconds"], 1),
            "resumes": resumed["resumes"],
        }
        folder = writer.finish(summary)
        remove_resume_state(folder / RESUME_DIR)
        return RunResult(run, folder, False, summary["final_success_rate"], instruction, summary)
    finally:
        if tensorboard is not None:
            tensorboard.close()
        env.close()
        eval_env.close()


def _resumed_state(writer: RunWriter, trainer: OnlineTrainer, resume_dir: Path, checkpoint: Path, embed: Any) -> dict[str, Any]:
    """Put ``trainer`` back where ``checkpoint`` left it; returns this module's state saved with it
    (instruction, evaluations, training records, next evaluation, time spent), one resume more."""
    writer.info = read_run_info(writer.staging / RUN_INFO)
    extra = saved_extra(checkpoint)
    trainer.instruct(embed(extra["instruction"]))
    trainer.restore(resume_dir, checkpoint)
    return {**extra, "resumes": int(extra.get("resumes", 0)) + 1}


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

    def __init__(self, out: str, device: str, save_agent: bool, keep_checkpoints: int = 1):
        self.out, self.device, self.save_agent, self.keep_checkpoints = out, device, save_agent, keep_checkpoints
        self.encoders: _TextEncoders | None = None

    def start(self, emit: Any) -> None:
        """Check the device and get the encoder cache ready."""
        check_device(self.device)
        self.encoders = _TextEncoders(self.device)

    def do(self, run: RunConfig, emit: Any) -> RunResult:
        """Do ``run`` into its folder, from its last checkpoint if it has one (a run already
        finished there is read back)."""
        writer = RunWriter(self.out, run)
        if writer.finished():  # an attempt that finished before its worker died
            return _finished_result(run, writer, skipped=False)
        emit(RunStarted(run.method, run.task, run.seed))
        return finetune_run(run, writer, self.encoders, advance=lambda steps: emit(EnvStepsTaken(steps)),
                            save_agent=self.save_agent, baselines_dir=Path(self.out) / BASELINES_DIR,
                            keep_checkpoints=self.keep_checkpoints)

    def close(self) -> None:
        """Nothing to free."""


def finetune(config: FinetuneConfig, progress: bool = True, executor: ExecutorConfig | None = None) -> list[RunResult]:
    """Run every task × init × seed of ``config`` that has not finished yet.

    Finished runs with the same config are skipped (and reported as skipped); interrupted ones
    continue from their last checkpoint, or from step 0 without one. Inputs are all checked, and
    every pending run's folder locked, before the first run starts. Each run depends only on its
    config, so where it runs does not change its result.

    Args:
        config: The queue.
        progress: Show a progress bar over env steps.
        executor: Where the runs go (default: one after the other in this process); with
            ``ray``, one run at a time per actor of a Ray cluster, each actor reserving
            ``executor.gpus_per_worker`` GPUs (see :mod:`lamp_data.pipeline.executors`).

    Returns:
        One result per queued run, in queue order.

    Raises:
        LampError: unknown task or env, missing or unfitting checkpoint, a finished run with a
            different config in the way, bad numbers, a run another process is working on.
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
    locks = contextlib.ExitStack()
    for run in pending:
        locks.enter_context(exclusive_lock(
            run_lock_path(config.out, run),
            f"another lamp-eval finetune is working on {run.method} · {run.task} · seed {run.seed} in {config.out}; "
            "wait for it to finish (rerun the same command then to continue), or give another --out",
        ))
    with locks, progress_bar("finetune", sum(run.steps for run in pending), unit="env steps", enabled=progress) as bar:

        def show(event: Any) -> None:
            if isinstance(event, RunStarted):
                bar.update(description=f"{event.method} · {event.task} · seed {event.seed}")
            elif isinstance(event, EnvStepsTaken):
                bar.advance(event.count)

        if pending:
            worker_factory = functools.partial(_RunWorker, config.out, config.device, config.save_agent, config.keep_checkpoints)
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
