"""Online training: an agent that learns from the episodes it plays, on a replay-ratio schedule.

Finetuning on a held-out task (:mod:`lamp_eval.finetune`) is this loop with the task's own
reward: :class:`OnlineTrainer` plays episodes through the one episode loop
(:func:`lamp_data.pipeline.rollout.run_episode`), adds each finished episode to an in-memory replay
(:class:`~lamp_agent.core.replay.EpisodeReplay`) and, between env steps, runs the updates the
:class:`Schedule` says those steps paid for. The first ``prefill`` env steps take uniformly random
actions; once they are done and an episode is in the replay, ``initial_updates`` world-model
updates run at once, then every env step pays for ``replay_ratio / (batch_size * seq_len)``
updates of the whole agent.

Resuming: :meth:`OnlineTrainer.save` writes everything the loop needs to go on between two
episodes (the agent with its optimizers and random streams, the replay's episodes and sampler
state, the prefill policy's generator, counters, the metrics of the current period) into a
checkpoint folder, and :meth:`OnlineTrainer.restore` reads it back, so a run continued from a
checkpoint takes exactly the steps and updates the uninterrupted run took. Replayed episodes are
written once each, into a folder every checkpoint of the run shares.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp_agent.agent import Agent
from lamp_agent.checkpoint import ACTION_REPEAT_INFO, read_checkpoint_config, rotate_checkpoints
from lamp_agent.config import AgentConfig, load_preset, preset_env
from lamp_agent.core.policy import AgentPolicy
from lamp_agent.core.replay import EpisodeReplay
from lamp_agent.open_loop import OPEN_LOOP_CONTEXT, open_loop_image
from lamp_data.atomic import atomic_write_json
from lamp_data.errors import DamagedDataError, LampError
from lamp_data.pipeline.rollout import EpisodeBuilder, RandomPolicy, env_steps_taken, run_episode

SCRATCH = "scratch"
"""An init that starts from random weights rather than a checkpoint."""
TRAINER_FILE = "trainer.json"
"""The loop's own state inside a checkpoint folder, beside the agent's files."""
REPLAY_DIR = "replay"
"""Folder of the replayed episodes, shared by every checkpoint of a run."""
SCHEDULE_FIELDS = ("replay_ratio", "prefill", "initial_updates", "batch_size", "seq_len")
"""Agent config fields that decide how env steps are spent on updates; a run may override each.
(How many env steps an agent decision takes is the env's ``action_repeat``.)"""


@dataclass(frozen=True)
class Schedule:
    """How a run spends its env steps on updates (the agent config's, or the run's overrides)."""

    replay_ratio: float
    """Replayed steps per env step."""
    prefill: int
    """Random-action env steps that open the run."""
    initial_updates: int
    """World-model updates run once the prefill is done."""
    batch_size: int
    """Sequences per update."""
    seq_len: int
    """Steps per sequence."""

    @classmethod
    def of(cls, overrides: Mapping[str, Any], agent_config: AgentConfig) -> "Schedule":
        """The agent config's schedule with ``overrides`` (a value of None keeps the config's)."""
        def pick(name: str) -> Any:
            value = overrides.get(name)
            return getattr(agent_config, name) if value is None else value

        return cls(**{name: pick(name) for name in SCHEDULE_FIELDS})

    @property
    def updates_per_env_step(self) -> float:
        """Updates one env step pays for."""
        return self.replay_ratio / (self.batch_size * self.seq_len)


def agent_config_of(init: str, preset: str) -> AgentConfig:
    """The agent config a run trains with: its preset's (``scratch``) or its checkpoint's."""
    if init == SCRATCH:
        return load_preset(preset)
    return AgentConfig.from_dict(read_checkpoint_config(init)["config"])


def init_action_repeat(init: str, preset: str) -> int:
    """The action repeat an agent acts at unless its run sets one: its preset's ``env:`` section
    (``scratch``; 1 without one), or its checkpoint's, the action repeat of the data it learnt from
    (:data:`ACTION_REPEAT_INFO` in its info; a checkpoint written when the agent config held the
    action repeat has it there)."""
    if init == SCRATCH:
        return int(preset_env(preset).get("action_repeat", 1))
    meta = read_checkpoint_config(init)
    recorded = (meta.get("info") or {}).get(ACTION_REPEAT_INFO, meta["config"].get("action_repeat", 1))
    return int(recorded)


def build_agent(init: str, preset: str, env: Any, lang_dim: int, device: str, seed: int,
                finetune_critic: str | None = None) -> tuple[Agent, bool]:
    """The agent a run starts from, ready to learn online; returns ``(agent, pretrained)``.

    A scratch agent is built from ``preset`` with ``seed``; a pretrained one is loaded from the
    checkpoint ``init``, reseeded and switched to finetuning (``Agent.prepare_finetune``), its
    critic as ``finetune_critic`` says (None: as the checkpoint's config says).

    Raises:
        LampError: the checkpoint does not fit the env or the text encoder.
    """
    image_size = int(env.observation_space["image"].shape[0])
    state_dim = int(env.observation_space["state"].shape[0])
    action_dim = int(env.action_space.shape[0])
    if init == SCRATCH:
        agent = Agent(load_preset(preset), image_size=image_size, state_dim=state_dim, action_dim=action_dim,
                      lang_dim=lang_dim, device=device, seed=seed)
        return agent, False
    agent = Agent.load(init, device=device)
    wanted = {"image_size": image_size, "state_dim": state_dim, "action_dim": action_dim, "lang_dim": lang_dim}
    mismatched = [f"{key} {agent.sizes[key]} (env/encoder: {value})" for key, value in wanted.items() if agent.sizes[key] != value]
    if mismatched:
        raise LampError(f"checkpoint {init} does not fit this env: {', '.join(mismatched)}")
    agent.reseed(seed)
    if finetune_critic is not None:
        agent.config = dataclasses.replace(agent.config, finetune_critic=finetune_critic)
    agent.prepare_finetune()
    return agent, True


def with_lang(batch: dict[str, Any], lang: np.ndarray) -> dict[str, Any]:
    """A replay batch with the instruction's embedding as ``lang`` ``[B, L]``."""
    batch = {key: torch.as_tensor(value) for key, value in batch.items()}
    count = next(iter(batch.values())).shape[0]
    batch["lang"] = torch.as_tensor(lang, dtype=torch.float32).unsqueeze(0).expand(count, -1).contiguous()
    return batch


class _PrefillThenAgent:
    """The acting policy: uniformly random while the run is in its prefill, the agent after."""

    def __init__(self, trainer: "OnlineTrainer"):
        self.trainer = trainer

    def reset(self, info: dict[str, Any]) -> None:
        self.trainer.prefill_policy.reset(info)
        self.trainer.policy.reset(info)

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        trainer = self.trainer
        acting = trainer.prefill_policy if trainer.env_steps < trainer.schedule.prefill else trainer.policy
        return acting(observation)


class OnlineTrainer:
    """Plays training episodes in one env, fills the replay with whole episodes and trains on a schedule.

    Args:
        agent: The agent that acts and learns.
        env: The training env.
        schedule: How env steps pay for updates.
        seed: Seed of the prefill policy's actions and of the replay's sampling.
        capacity_steps: Steps the replay of finished episodes holds.
        episode_seed: Env reset seed of training episode ``i`` (called with ``i``).
        advance: Called with the env steps of every step taken (progress bars).
    """

    def __init__(self, agent: Agent, env: Any, schedule: Schedule, seed: int, capacity_steps: int,
                 episode_seed: Callable[[int], int], advance: Callable[[int], None] | None = None):
        self.agent, self.env, self.schedule = agent, env, schedule
        self.replay = EpisodeReplay(capacity_steps=capacity_steps, seq_len=schedule.seq_len, seed=seed,
                                    prioritize_ends=agent.config.prioritize_ends)
        """Finished training episodes, sampled for updates."""
        self.episode_seed = episode_seed
        self.advance = advance or (lambda steps: None)
        self.env_steps = 0
        """Env steps taken so far (the budget's currency)."""
        self.episodes = 0
        """Training episodes added to the replay."""
        self.updates = 0
        """Updates run."""
        self.seeds_used: list[int] = []
        """Reset seed of every training episode begun."""
        self.prefill_policy = RandomPolicy(env, np.random.default_rng(seed))
        self.policy: AgentPolicy | None = None
        self.lang: np.ndarray | None = None
        self._owed = 0.0
        self._has_data = False
        self._initial_done = schedule.initial_updates == 0
        self._metric_sums: dict[str, tuple[float, int]] = {}
        self._period_updates = 0
        self._period_returns: list[float] = []

    # ----------------------------------------------------------------- instructions
    def choose_instruction(self, candidates: tuple[str, ...], embed: Callable[[str], np.ndarray]) -> tuple[str, list[dict[str, Any]]]:
        """With one candidate, return it; else run one greedy episode per candidate (counted in
        the budget, added to the replay) and keep the one with the highest return."""
        if len(candidates) == 1:
            return candidates[0], []
        tried = []
        for text in candidates:
            lang = embed(text)
            played = run_episode(self.env, AgentPolicy(self.agent, lang[None], explore=False), self._next_seed())
            self._add_episode(played)
            self.env_steps += played.env_steps
            self.advance(played.env_steps)
            tried.append({"instruction": text, "return": played.total_reward, "success": played.success})
        best = max(tried, key=lambda entry: entry["return"])
        return str(best["instruction"]), tried

    def instruct(self, lang: np.ndarray) -> None:
        """Train and act on the instruction embedded as ``lang`` from now on."""
        self.lang = lang
        self.policy = AgentPolicy(self.agent, lang[None], explore=True)

    # ----------------------------------------------------------------- playing and learning
    def play_episode(self, between_steps: Callable[[], bool]) -> EpisodeBuilder:
        """Play one training episode, running the updates each step pays for.

        Args:
            between_steps: Called after each step and its updates (an evaluation may run there);
                returning True stops the episode at that step, unfinished and not replayed.

        Returns:
            The episode played.
        """
        def on_step(builder: EpisodeBuilder, info: dict[str, Any], done: bool) -> bool:
            taken = env_steps_taken(info)
            self.env_steps += taken
            self.advance(taken)
            if done:
                self._add_episode(builder)
            self._pay_updates(taken)
            return bool(between_steps())

        return run_episode(self.env, _PrefillThenAgent(self), self._next_seed(), on_step=on_step)

    def _next_seed(self) -> int:
        seed = self.episode_seed(len(self.seeds_used))
        self.seeds_used.append(seed)
        return seed

    def _add_episode(self, played: EpisodeBuilder) -> None:
        self.replay.add_episode(played.episode())
        self.episodes += 1
        self._has_data = True
        self._period_returns.append(played.total_reward)

    def _pay_updates(self, taken: int) -> None:
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

    def _train(self, policy: bool = True) -> None:
        batch = with_lang(self.replay.sample(self.schedule.batch_size), self.lang)
        metrics = self.agent.train_step(batch, mode="finetune", policy=policy)
        for name, value in metrics.items():
            total, count = self._metric_sums.get(name, (0.0, 0))
            self._metric_sums[name] = (total + float(value), count + 1)
        self._period_updates += 1
        self.updates += 1

    def open_loop_grid(self, sequences: int = 3) -> np.ndarray | None:
        """The world model's open-loop predictions, under the current instruction, on the newest
        ``sequences`` training episodes (:func:`lamp_agent.open_loop.open_loop_image`); None while
        no episode is long enough."""
        if self.replay.seq_len <= OPEN_LOOP_CONTEXT:
            return None
        try:
            batch = with_lang(self.replay.newest(sequences), self.lang)
        except LampError:
            return None
        return open_loop_image(self.agent.open_loop(batch, OPEN_LOOP_CONTEXT))

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

    # ----------------------------------------------------------------- resuming
    def save(self, resume_dir: Path, extra: dict[str, Any], keep: int = 1) -> Path:
        """Checkpoint the loop between two episodes into ``resume_dir`` and return the checkpoint.

        The agent is saved as a checkpoint folder ``resume_dir/checkpoints/step-<env steps>``,
        the loop's state (with ``extra``, the caller's own JSON-able state) in its ``trainer.json``,
        the replay's new episodes in ``resume_dir/replay/``; ``latest.json`` then points at it and
        all but the newest ``keep`` checkpoints are removed.
        """
        self.replay.save(resume_dir / REPLAY_DIR)
        folder = resume_dir / "checkpoints" / f"step-{self.env_steps:09d}"
        self.agent.save(folder)
        atomic_write_json(folder / TRAINER_FILE, {"trainer": self._state(), "extra": extra})
        rotate_checkpoints(resume_dir, folder, keep, step=self.env_steps)
        return folder

    def _state(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps, "episodes": self.episodes, "updates": self.updates,
            "seeds_used": list(self.seeds_used), "owed": self._owed, "has_data": self._has_data,
            "initial_done": self._initial_done, "metric_sums": {name: list(value) for name, value in self._metric_sums.items()},
            "period_updates": self._period_updates, "period_returns": list(self._period_returns),
            "prefill_rng": self.prefill_policy.rng.bit_generator.state,
            "policy_rng": self.policy.rng.bit_generator.state if self.policy is not None else None,
            "replay": self.replay.state(),
            "torch_rng": torch.get_rng_state().tolist(),
            "schedule": dataclasses.asdict(self.schedule),
        }

    def restore(self, resume_dir: Path, checkpoint: Path) -> None:
        """Continue from ``checkpoint`` (a folder :meth:`save` wrote): the replay and the loop's
        counters and generators. The trainer's agent must be the one saved there
        (``Agent.load(checkpoint)``), and :meth:`instruct` must have been called.

        Raises:
            DamagedDataError: the checkpoint or the replayed episodes are damaged or missing, or
                it was made with another schedule.
        """
        state = _trainer_record(checkpoint)["trainer"]
        # checkpoints written while the schedule held the action repeat also record it
        recorded = {name: value for name, value in (state.get("schedule") or {}).items() if name in SCHEDULE_FIELDS}
        if recorded != dataclasses.asdict(self.schedule):
            raise DamagedDataError(f"finetuning checkpoint {checkpoint} was made with another schedule; remove it to start over")
        self.replay.restore(resume_dir / REPLAY_DIR, state["replay"])
        self.env_steps, self.episodes, self.updates = int(state["env_steps"]), int(state["episodes"]), int(state["updates"])
        self.seeds_used = [int(seed) for seed in state["seeds_used"]]
        self._owed, self._has_data, self._initial_done = float(state["owed"]), bool(state["has_data"]), bool(state["initial_done"])
        self._metric_sums = {name: (float(total), int(count)) for name, (total, count) in state["metric_sums"].items()}
        self._period_updates, self._period_returns = int(state["period_updates"]), [float(value) for value in state["period_returns"]]
        self.prefill_policy.rng.bit_generator.state = state["prefill_rng"]
        if self.policy is not None and state["policy_rng"] is not None:
            self.policy.rng.bit_generator.state = state["policy_rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))


def _trainer_record(checkpoint: Path) -> dict[str, Any]:
    try:
        record = json.loads((checkpoint / TRAINER_FILE).read_text())
        if not isinstance(record.get("trainer"), dict) or not isinstance(record.get("extra"), dict):
            raise ValueError("no trainer or extra state")
    except (OSError, ValueError, AttributeError) as error:
        raise DamagedDataError(f"damaged finetuning checkpoint {checkpoint}: {TRAINER_FILE} ({error}); remove it to start over") from None
    return record


def saved_extra(checkpoint: Path) -> dict[str, Any]:
    """The caller's own state saved with a checkpoint (the ``extra`` of :meth:`OnlineTrainer.save`).

    Raises:
        DamagedDataError: the checkpoint's ``trainer.json`` is missing or damaged.
    """
    return dict(_trainer_record(checkpoint)["extra"])


def remove_resume_state(resume_dir: Path) -> None:
    """Delete a finished run's checkpoints and replayed episodes (nothing reads them any more)."""
    shutil.rmtree(resume_dir, ignore_errors=True)
