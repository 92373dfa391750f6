"""The on-disk format of finetuning runs, one folder per (method, task, seed), and their configs.

:class:`RunSettings` holds what every run of a queue shares, :class:`RunConfig` one run and
:class:`FinetuneConfig` a queue of runs (:func:`lamp_eval.finetune.finetune` runs it); this
module imports no torch, so the CLI reads their defaults cheaply.

Layout under a runs folder::

    <out>/<method>/<task>/seed-<k>/
        run.json     format_version, the run's full config, method label, task, instruction,
                     training and evaluation seeds, package versions (provenance), status and,
                     once finished, a summary (final success rate, area under the curve)
        log.jsonl    one line per evaluation: {"step", "success_rate", "return_mean",
                     "episodes": [{"seed", "return", "success", "length"}]}, and with
                     ``eval_sampled`` also "sampled": the same keys but "step", for the
                     same seeds played with actions sampled from the policy
        train.jsonl  one line per evaluation period: {"step", "updates", "episodes",
                     "train_return_mean", and the mean of every training metric of the
                     period's updates (losses, actor entropy, imagined return...)}
        tb/          the same training metrics and evaluations as TensorBoard scalars, and the
                     world model's open-loop predictions at every evaluation
        open_loop.png  the last of those: true frames, predicted frames and their difference
        rollout.gif  frames of the last evaluation episode(s), small (at most ~60 frames)

A run is written in a hidden staging folder ``.seed-<k>.partial`` and renamed into place when
it finishes, so a folder without the leading dot is always a finished run. ``log.jsonl`` is
rewritten whole through an atomic rename after every evaluation, so it never holds a
half-written line, even while the run is going.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lamp_agent.config import FINETUNE_CRITICS
from lamp_data.atomic import atomic_open, atomic_write_json, fsync_dir
from lamp_data.envs.base import EnvConfig
from lamp_data.errors import DamagedDataError, LampError, check_number, check_path_text
from lamp_data.provenance import provenance, stable_hash
from lamp_data.rewards.text_names import MINILM
from lamp_data.schema import RUN_FORMAT_VERSION

RUN_INFO = "run.json"
RUN_LOG = "log.jsonl"
TRAIN_LOG = "train.jsonl"
TENSORBOARD_DIR = "tb"
ROLLOUT_GIF = "rollout.gif"
RESUME_DIR = "resume"
"""Folder in an unfinished run's staging folder holding its checkpoints and replayed episodes."""
STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
SUPPORTED_RUN_VERSIONS = (RUN_FORMAT_VERSION,)

TRAIN_SEED_STRIDE = 1_000_000
"""Training episode ``i`` of run seed ``s`` resets the env with seed ``s * stride + i``."""
EVAL_SEED_BASE = 2_000_000_000
"""Evaluation episode ``i`` resets with ``base + i``: the same held-out seeds for every method and
run seed (a paired comparison), and disjoint from every training seed."""
MAX_RUN_SEED = EVAL_SEED_BASE // TRAIN_SEED_STRIDE - 1
"""Largest run seed whose training seeds stay below the evaluation seeds."""


def train_episode_seed(run_seed: int, episode: int) -> int:
    """Env reset seed of training episode ``episode`` of run seed ``run_seed``."""
    if not 0 <= episode < TRAIN_SEED_STRIDE:
        raise LampError(f"a run may have at most {TRAIN_SEED_STRIDE} training episodes")
    return run_seed * TRAIN_SEED_STRIDE + episode


def eval_episode_seeds(episodes: int) -> list[int]:
    """Env reset seeds of the held-out evaluation episodes."""
    return [EVAL_SEED_BASE + index for index in range(episodes)]


FINETUNE_ENV_FIELDS = ("image_size", "episode_length", "goal_marker", "action_repeat")
"""The :class:`~lamp_data.envs.base.EnvConfig` fields a finetuning run sets (flat in its record,
its command line and a grid's settings)."""
INIT_ENV_FIELDS = ("action_repeat",)
"""The finetuning env fields a run takes from its init unless it is given them
(:attr:`RunSettings.env_given`): the preset's ``env:`` section, or the pretrained checkpoint's,
which is its dataset's; such a run's record holds null for them."""


def finetune_env(**fields: Any) -> EnvConfig:
    """The env config of a finetuning run with ``fields`` (of :data:`FINETUNE_ENV_FIELDS`): the
    held-out task without domain randomization, the rest at :class:`EnvConfig`'s defaults."""
    if set(fields) - set(FINETUNE_ENV_FIELDS):
        raise LampError(f"a finetuning env takes {', '.join(FINETUNE_ENV_FIELDS)}, not {', '.join(sorted(set(fields) - set(FINETUNE_ENV_FIELDS)))}")
    return EnvConfig.of(canonical=True, **fields)


def with_finetune_env(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with its flat env fields (:data:`FINETUNE_ENV_FIELDS`; None: not given)
    gathered into ``env_config``, and their names into ``env_given``."""
    flat = {name: settings[name] for name in FINETUNE_ENV_FIELDS if settings.get(name) is not None}
    rest = {name: value for name, value in settings.items() if name not in FINETUNE_ENV_FIELDS}
    if flat and "env_config" in rest:
        raise LampError(f"give the env's {', '.join(flat)} in env_config or flat, not both")
    return {**rest, "env_config": finetune_env(**flat), "env_given": frozenset(flat)} if flat else rest


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The settings of a finetuning run that every run of a queue shares (its budget, schedule
    and sizes); :class:`RunConfig` adds what tells the runs of a queue apart."""

    steps: int = 5000
    """Env steps of finetuning (the budget, the same for every method)."""
    eval_every: int = 1000
    """Env steps between evaluations (also evaluated at step 0 and at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation, on the held-out evaluation seeds."""
    eval_sampled: bool = False
    """Also play every evaluation's seeds with actions sampled from the policy (DreamerV3's
    evaluation) besides its mean action, on random streams of their own (seeded by the episode
    seeds), so the run trains exactly as without them; logged under ``sampled``."""
    instruction: str = ""
    """Instruction as given: text, ``""`` for the task's own, or ``"auto"`` to pick among its paraphrases."""
    env_config: EnvConfig = field(default_factory=lambda: finetune_env())
    """The held-out task's env: frame size, episode length, goal marker and action repeat
    (:func:`finetune_env`). It runs without domain randomization, with the agent's cameras, and
    at the init's action repeat unless the run is given one (:data:`INIT_ENV_FIELDS`)."""
    env_given: frozenset[str] = frozenset()
    """The fields of ``env_config`` the run was given (:func:`with_finetune_env` fills it; a field
    away from :class:`EnvConfig`'s default counts as given)."""
    preset: str = "cpu"
    """Agent preset for scratch runs (a pretrained run keeps its checkpoint's config)."""
    replay_ratio: float | None = None
    """Replayed steps per env step (``batch * seq_len`` per update); None keeps the agent config's."""
    prefill: int | None = None
    """Random-action env steps that open the run (in the budget); None keeps the agent config's."""
    initial_updates: int | None = None
    """Updates run once the prefill is done; None keeps the agent config's."""
    batch_size: int | None = None
    """Sequences per update; None keeps the agent config's."""
    seq_len: int | None = None
    """Steps per sequence; None keeps the agent config's."""
    finetune_critic: str | None = None
    """How a pretrained run trains its critic: ``probe`` (LAMP's linear probe) or ``full``; None
    keeps the checkpoint's config. Scratch runs train all of it either way."""
    text_encoder: str = MINILM
    """Sentence encoder of the instruction (must match the checkpoint's language width)."""
    device: str = "cpu"
    """Torch device."""
    gif_frames: int = 60
    """At most this many frames in ``rollout.gif``."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_config, EnvConfig):
            raise LampError(f"env_config must be an EnvConfig, got {type(self.env_config).__name__}")
        if self.env_config != finetune_env(**{name: getattr(self.env_config, name) for name in FINETUNE_ENV_FIELDS}):
            raise LampError("a finetuning env sets only image size, episode length, goal marker and action repeat: "
                            "it runs without domain randomization, with the agent's cameras")
        if set(self.env_given) - set(FINETUNE_ENV_FIELDS):
            raise LampError(f"env_given names the finetuning env's fields ({', '.join(FINETUNE_ENV_FIELDS)}), "
                            f"not {', '.join(sorted(set(self.env_given) - set(FINETUNE_ENV_FIELDS)))}")
        default = finetune_env()
        moved = {name for name in FINETUNE_ENV_FIELDS if getattr(self.env_config, name) != getattr(default, name)}
        object.__setattr__(self, "env_given", frozenset(self.env_given) | moved)
        for name in ("steps", "eval_every", "eval_episodes", "gif_frames"):
            if getattr(self, name) < 1:
                raise LampError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.eval_every > self.steps:
            raise LampError(
                f"eval-every {self.eval_every} is more than the {self.steps} steps of a run: it would evaluate only at the "
                f"start and the end; give --eval-every at most {self.steps}"
            )
        if self.replay_ratio is not None:
            check_number("replay ratio", self.replay_ratio)
        if self.replay_ratio is not None and not self.replay_ratio > 0:
            raise LampError(f"replay ratio must be positive (replayed steps per env step), got {self.replay_ratio}")
        if self.replay_ratio is not None and self.replay_ratio * self.steps < 1:
            raise LampError(
                f"replay ratio {self.replay_ratio} replays less than one step over the {self.steps}-step budget, "
                "so no update would ever run; give a ratio of at least 1/steps"
            )
        if self.finetune_critic is not None and self.finetune_critic not in FINETUNE_CRITICS:
            raise LampError(f"finetune-critic must be one of {', '.join(FINETUNE_CRITICS)}, got {self.finetune_critic!r}")
        for name, least, words in (("prefill", 0, "non-negative"), ("initial_updates", 0, "non-negative"),
                                   ("batch_size", 1, "at least 1"), ("seq_len", 1, "at least 1")):
            value = getattr(self, name)
            if value is not None and value < least:
                raise LampError(f"{name.replace('_', '-')} must be {words}, got {value}")

    def run_settings(self) -> dict[str, Any]:
        """The :class:`RunSettings` fields of this object, by name."""
        return {item.name: getattr(self, item.name) for item in fields(RunSettings)}


@dataclass(frozen=True, kw_only=True)
class RunConfig(RunSettings):
    """Everything that determines one finetuning run: the shared settings, plus its task, init and seed."""

    task: str
    """Held-out task name."""
    env: str
    """Registered env name the task runs in (e.g. ``mw-pick-place`` or ``dummy``)."""
    init: str
    """Path of the pretrained checkpoint, or ``"scratch"``."""
    method: str
    """Method label on the leaderboard (e.g. ``scratch``, ``p2e``, ``lamp[r3m-abc123]``)."""
    seed: int
    """Run seed: agent initialisation, exploration and training episodes."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else recorded with the run (not part of its identity)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in ``run.json``: the env's settings flat (image size, episode
        length, goal marker, action repeat: null when the init's), ``goal_marker`` and
        ``eval_sampled`` left out while off and ``finetune_critic`` while unset, so such a run's
        record and identity are what they were before those options existed."""
        value: dict[str, Any] = {}
        for name, item in asdict(self).items():
            if name == "env_config":
                value.update({field_name: getattr(self.env_config, field_name) for field_name in FINETUNE_ENV_FIELDS})
                value.update({field_name: None for field_name in INIT_ENV_FIELDS if field_name not in self.env_given})
            elif name != "env_given":
                value[name] = item
        if not self.env_config.goal_marker:
            del value["goal_marker"]
        if self.finetune_critic is None:
            del value["finetune_critic"]
        if not self.eval_sampled:
            del value["eval_sampled"]
        return value

    def identity(self) -> str:
        """Hash of the fields that decide the run's result; a resumed run must match it."""
        value = self.to_dict()
        value.pop("extra")
        value.pop("device")
        return stable_hash(value)

    def folder_name(self) -> str:
        """``seed-<k>``."""
        return f"seed-{self.seed}"


DEFAULT_ENV_PREFIX = "mw-"
"""A task ``T`` runs in env ``<prefix>T`` unless an env is named."""


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(RunSettings):
    """A queue of finetuning runs: every task × init × seed, each with the shared :class:`RunSettings`."""

    tasks: tuple[str, ...]
    """Held-out task names."""
    inits: tuple[str, ...]
    """Pretrained checkpoint folders, or ``"scratch"``."""
    out: str
    """Runs folder."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Run seeds."""
    env_prefix: str = DEFAULT_ENV_PREFIX
    """Env name prefix put before the task name."""
    env: str | None = None
    """Env name to use for every task instead of ``<prefix><task>`` (e.g. ``dummy``)."""
    method: str | None = None
    """Method label instead of the one derived from the checkpoint (only with one init)."""
    save_agent: bool = False
    """Also save each finetuned agent in its run folder."""
    keep_checkpoints: int = 1
    """Checkpoints an unfinished run keeps to continue from (the newest; all go when it finishes)."""

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
        super().__post_init__()
        if self.method is not None and len(set(self.inits)) > 1:
            raise LampError("--method names one method; give a single --init with it")
        if self.keep_checkpoints < 1:
            raise LampError(f"keep-checkpoints must be at least 1, got {self.keep_checkpoints}")
        check_path_text("--out", self.out)
        for init in self.inits:
            check_path_text("--init", init)

    def env_name(self, task: str) -> str:
        """The env a task runs in."""
        return self.env or f"{self.env_prefix}{task}"


def safe_name(text: str) -> str:
    """``text`` as a single path component (separators and odd characters become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._\-\[\],+=@]", "_", text).strip(".")
    return cleaned or "_"


def run_folder(out: str | os.PathLike, config: RunConfig) -> Path:
    """Final folder of a run: ``<out>/<method>/<task>/seed-<k>``."""
    return Path(out) / safe_name(config.method) / safe_name(config.task) / config.folder_name()


def staging_folder(final: Path) -> Path:
    """Hidden folder a run is written in before it is renamed to ``final``."""
    return final.parent / f".{final.name}.partial"


def run_lock_path(out: str | os.PathLike, config: RunConfig) -> Path:
    """The lock file a process holds while it works on a run: ``.seed-<k>.lock`` beside its folder."""
    final = run_folder(out, config)
    return final.parent / f".{final.name}.lock"


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluation episode."""

    seed: int
    """Env reset seed."""
    ret: float
    """Sum of the task's rewards."""
    success: bool
    """True if the task's success flag was set at any step of the episode."""
    length: int
    """Env steps taken."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form with the key ``return``."""
        return {"seed": self.seed, "return": self.ret, "success": self.success, "length": self.length}


@dataclass(frozen=True)
class Evaluation:
    """One line of ``log.jsonl``."""

    step: int
    """Env steps of finetuning done when it was taken."""
    success_rate: float
    """Fraction of episodes with success."""
    return_mean: float
    """Mean episode return."""
    episodes: tuple[EpisodeResult, ...]
    """Every episode, with its seed."""
    sampled: "Evaluation | None" = None
    """The same seeds played with actions sampled from the policy (runs with ``eval_sampled``)."""

    @classmethod
    def from_episodes(cls, step: int, episodes: list[EpisodeResult]) -> "Evaluation":
        """Summarise ``episodes`` taken at ``step``."""
        if not episodes:
            raise ValueError("an evaluation needs at least one episode")
        return cls(
            step=int(step),
            success_rate=sum(episode.success for episode in episodes) / len(episodes),
            return_mean=sum(episode.ret for episode in episodes) / len(episodes),
            episodes=tuple(episodes),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON line."""
        value = {
            "step": self.step,
            "success_rate": self.success_rate,
            "return_mean": self.return_mean,
            "episodes": [episode.to_dict() for episode in self.episodes],
        }
        if self.sampled is not None:
            value["sampled"] = {key: item for key, item in self.sampled.to_dict().items() if key != "step"}
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "Evaluation":
        """Inverse of :meth:`to_dict`."""
        sampled = value.get("sampled")
        return cls(
            step=int(value["step"]),
            success_rate=float(value["success_rate"]),
            return_mean=float(value["return_mean"]),
            episodes=tuple(
                EpisodeResult(int(e["seed"]), float(e["return"]), bool(e["success"]), int(e.get("length", 0)))
                for e in value["episodes"]
            ),
            sampled=None if sampled is None else cls.from_dict({**sampled, "step": value["step"]}),
        )


@dataclass(frozen=True)
class Run:
    """A finished run read back from disk."""

    path: Path
    """Its folder."""
    info: dict[str, Any]
    """``run.json``."""
    evaluations: tuple[Evaluation, ...]
    """``log.jsonl``, in step order."""

    @property
    def method(self) -> str:
        """Method label."""
        return str(self.info["method"])

    @property
    def task(self) -> str:
        """Task name."""
        return str(self.info["task"])

    @property
    def seed(self) -> int:
        """Run seed."""
        return int(self.info["seed"])

    @property
    def steps(self) -> list[int]:
        """Env steps of the evaluations."""
        return [evaluation.step for evaluation in self.evaluations]

    @property
    def success_rates(self) -> list[float]:
        """Success rate of each evaluation."""
        return [evaluation.success_rate for evaluation in self.evaluations]

    @property
    def returns(self) -> list[float]:
        """Mean return (the task's dense reward) of each evaluation."""
        return [evaluation.return_mean for evaluation in self.evaluations]

    def sampled_view(self, label: str) -> "Run | None":
        """This run as method ``label`` with its sampled-action evaluations as its curve (None
        when it has none): the report treats the two ways of evaluating one policy as two rows."""
        if not self.evaluations or any(evaluation.sampled is None for evaluation in self.evaluations):
            return None
        return Run(self.path, {**self.info, "method": label}, tuple(evaluation.sampled for evaluation in self.evaluations))

    @property
    def gif(self) -> Path | None:
        """The rollout GIF, if the run saved one."""
        path = self.path / ROLLOUT_GIF
        return path if path.is_file() else None


class RunWriter:
    """Writes one run: ``begin`` → ``log`` (per evaluation) → ``finish``.

    Everything goes into a hidden staging folder; ``finish`` writes the summary and renames
    the folder into place, and calling it twice is harmless. ``begin`` wipes the leftovers of
    an interrupted attempt, so an interrupted run restarts cleanly from step 0 (runs are
    deterministic given their seed, so the restart reproduces the run that was cut off).
    """

    def __init__(self, out: str | os.PathLike, config: RunConfig):
        self.config = config
        self.final = run_folder(out, config)
        self.staging = staging_folder(self.final)
        self.evaluations: list[Evaluation] = []
        self.training: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}

    @property
    def folder(self) -> Path:
        """Where files of the run in progress go."""
        return self.final if self.finished() else self.staging

    def finished(self) -> bool:
        """True if a finished run with this config is on disk.

        Raises:
            LampError: when a finished run is there but was made with another config.
        """
        info_path = self.final / RUN_INFO
        if not info_path.is_file():
            return False
        info = read_run_info(info_path)
        if info.get("identity") != self.config.identity():
            raise LampError(
                f"{self.final} holds a finished run made with a different config; "
                "choose another --out or remove that folder"
            )
        return info.get("status") == STATUS_FINISHED

    def interrupted(self) -> bool:
        """True when an unfinished attempt at this very run (same identity) left its staging folder."""
        info_path = self.staging / RUN_INFO
        if not info_path.is_file():
            return False
        try:
            info = read_run_info(info_path)
        except LampError:
            return False
        return info.get("identity") == self.config.identity() and info.get("status") == STATUS_RUNNING

    def restore(self, evaluations: list["Evaluation"], training: list[dict[str, Any]]) -> None:
        """Continue an interrupted attempt whose checkpoint holds ``evaluations`` and ``training``:
        ``log.jsonl`` and ``train.jsonl`` are rewritten to exactly those (what the attempt logged
        after its checkpoint is done again)."""
        self.evaluations, self.training = [], []
        for path in (self.staging / RUN_LOG, self.staging / TRAIN_LOG):
            path.unlink(missing_ok=True)
        for evaluation in evaluations:
            self.log(evaluation)
        for record in training:
            self.log_training(record)

    def begin(self, details: dict[str, Any]) -> None:
        """Start (or restart) the run and write ``run.json`` with status ``running``."""
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        self.evaluations = []
        self.training = []
        self.info = {
            "format_version": RUN_FORMAT_VERSION,
            "status": STATUS_RUNNING,
            "identity": self.config.identity(),
            "method": self.config.method,
            "task": self.config.task,
            "seed": self.config.seed,
            "config": self.config.to_dict(),
            "provenance": provenance(),
            **details,
        }
        atomic_write_json(self.staging / RUN_INFO, self.info)

    def log(self, evaluation: Evaluation) -> None:
        """Append one evaluation to ``log.jsonl`` (the file is replaced whole, atomically)."""
        self.evaluations.append(evaluation)
        with atomic_open(self.staging / RUN_LOG) as handle:
            for line in self.evaluations:
                handle.write(json.dumps(line.to_dict(), sort_keys=True) + "\n")

    def log_training(self, record: dict[str, Any]) -> None:
        """Append one period's training metrics to ``train.jsonl`` (replaced whole, atomically)."""
        self.training.append(record)
        with atomic_open(self.staging / TRAIN_LOG) as handle:
            for line in self.training:
                handle.write(json.dumps(line, sort_keys=True) + "\n")

    def finish(self, summary: dict[str, Any]) -> Path:
        """Mark the run finished with ``summary`` and move it into place; returns its folder."""
        if self.finished():
            return self.final
        if not self.evaluations:
            raise ValueError("a run needs at least one evaluation before it finishes")
        self.info = {**self.info, "status": STATUS_FINISHED, "summary": summary}
        atomic_write_json(self.staging / RUN_INFO, self.info)
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.staging, self.final)
        fsync_dir(self.final.parent)
        return self.final


def read_run_info(path: Path) -> dict[str, Any]:
    """Read and version-check a ``run.json``.

    Raises:
        DamagedDataError: it cannot be read, is not a JSON object, or a finished run's record
            lacks its method, task, seed, config or summary.
        LampError: a format version this toolkit does not read.
    """
    try:
        info = json.loads(path.read_text())
    except OSError as error:
        raise LampError(f"cannot read run info {path}: {error.strerror or error}") from None
    except ValueError as error:  # not UTF-8, or not JSON
        raise DamagedDataError(f"damaged run info {path}: not valid JSON ({error})") from None
    if not isinstance(info, dict):
        raise DamagedDataError(f"damaged run info {path}: it does not hold a JSON object")
    version = info.get("format_version")
    if version not in SUPPORTED_RUN_VERSIONS:
        raise LampError(f"{path} has run format version {version}; this toolkit reads {SUPPORTED_RUN_VERSIONS}")
    if info.get("status") == STATUS_FINISHED:
        kinds = {"method": str, "task": str, "seed": int, "config": dict, "summary": dict}
        wrong = [name for name, kind in kinds.items() if not isinstance(info.get(name), kind) or isinstance(info.get(name), bool)]
        if wrong:
            raise DamagedDataError(
                f"damaged run info {path}: a finished run records its {', '.join(kinds)}, this one lacks {', '.join(wrong)}; "
                "remove the run folder and run it again"
            )
    return info


def read_run_log(path: Path) -> list[Evaluation]:
    """Read ``log.jsonl``; a damaged line is an error that names the file and line."""
    evaluations = []
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise LampError(f"cannot read run log {path}: {error.strerror or error}") from None
    except ValueError:
        raise DamagedDataError(f"damaged run log {path}: not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            evaluations.append(Evaluation.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise DamagedDataError(f"damaged run log {path} at line {number}") from None
    return sorted(evaluations, key=lambda evaluation: evaluation.step)


def read_run(folder: Path) -> Run:
    """Read one run folder."""
    info = read_run_info(folder / RUN_INFO)
    return Run(path=folder, info=info, evaluations=tuple(read_run_log(folder / RUN_LOG)))


def find_runs(paths: list[str | os.PathLike]) -> list[Run]:
    """Every finished run in or under ``paths`` (staging folders of unfinished runs are skipped).

    Raises:
        LampError: when a path does not exist or no finished run is found.
    """
    runs = []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise LampError(f"runs folder {root} does not exist")
        candidates = [root / RUN_INFO] if (root / RUN_INFO).is_file() else sorted(root.rglob(RUN_INFO))
        for info_path in candidates:
            relative = info_path.parent.relative_to(root) if info_path.parent != root else Path()
            if any(part.startswith(".") for part in relative.parts):
                continue
            run = read_run(info_path.parent)
            if run.info.get("status") == STATUS_FINISHED and run.evaluations:
                runs.append(run)
    if not runs:
        shown = ", ".join(str(path) for path in paths) or "(none given)"
        raise LampError(f"no finished runs found in {shown}")
    return runs
