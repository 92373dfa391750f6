"""The main job end to end on the embedded simulator, at a scale a laptop CPU finishes.

``run_demo`` chains the library functions behind every command:

1. ``render_showcase``: a contact sheet and GIF of randomized expert rollouts;
2. ``collect``: domain-randomized noisy-expert episodes of the pretraining tasks;
3. ``relabel``: rewards for every prompt from the in-domain reward model shipped with the package,
   ``lamp-r3m-metaworld`` (trained offline by ``lamp-data train-reward-model``; see its model card);
4. ``pretrain``: the LAMP agent (α = 0.9) and the Plan2Explore-only baseline (α = 1);
5. ``finetune``: both checkpoints and ``scratch`` on one held-out task, several seeds;
6. ``leaderboard``: IQM / mean with bootstrap CIs, curves, GIFs, CSV / Markdown / HTML.

The numbers it produces come from tiny networks and a few minutes of CPU: they show the
pipeline works, not what LAMP achieves at the paper's scale.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lamp_data.atomic import atomic_write_bytes, atomic_write_json
from lamp_data.display.showcase import render_showcase
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.pipeline.executors import ExecutorConfig
from lamp_data.pipeline.relabel import relabel
from lamp_data.provenance import provenance
from lamp_data.rewards.vlm.shipped import shipped_model_path
from lamp_eval.runs import finetune_env

DEFAULT_REWARD_MODEL = "lamp-r3m-metaworld"
"""Spec of the in-domain reward model shipped with the package (see ``lamp_data.rewards.vlm.shipped``)."""


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of every stage of the demo."""

    env: str = "mw-pretrain"
    """Pretraining env."""
    task: str = "button-press-topdown"
    """Held-out task to finetune on."""
    reward_model: str = ""
    """Reward model spec; empty for the shipped in-domain model, ``DEFAULT_REWARD_MODEL``."""
    prompts: str = "lamp-metaworld"
    """Prompt set scored by the reward model."""
    env_config: EnvConfig = field(default_factory=functools.partial(EnvConfig, episode_length=60))
    """The pretraining env's settings (frame size, episode length, randomization...); its action
    repeat is the agent preset's, so that the agent's decisions are the recorded steps."""
    showcase_steps: int = 60
    """Expert steps per showcase rollout (0 skips the showcase)."""
    episodes: int = 24
    """Pretraining episodes to collect."""
    workers: int = 2
    """Collection worker processes."""
    pretrain_steps: int = 300
    """Agent updates per pretraining run."""
    alphas: tuple[float, ...] = (0.9, 1.0)
    """Pretraining runs by their P2E share: 0.9 is LAMP, 1.0 is Plan2Explore alone."""
    finetune_steps: int = 800
    """Env steps of finetuning per run."""
    finetune_replay_ratio: float = 32.0
    """Replayed steps per finetuning env step (one 4 x 16-step update every 2 env steps)."""
    finetune_prefill: int = 200
    """Random-action env steps that open each finetuning run (the preset's would take the whole budget)."""
    finetune_initial_updates: int = 50
    """World-model updates once the prefill is done."""
    finetune_env_config: EnvConfig = field(default_factory=functools.partial(finetune_env, episode_length=100))
    """The held-out task's env (:func:`finetune_env`: frame size, episode length, goal marker); its
    frames are the pretraining env's size, the size the pretrained agents see."""
    eval_every: int = 200
    """Env steps between evaluations."""
    eval_episodes: int = 2
    """Episodes per evaluation."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Finetuning seeds per method."""
    seed: int = 0
    """Seed of collection and pretraining."""
    preset: str = "cpu"
    """Agent preset."""
    agent_overrides: dict[str, Any] = field(default_factory=dict)
    """Agent config fields changed on top of the preset."""
    torch_threads: int = 1
    """Torch threads: the tiny networks gain nothing from more, and more threads than idle cores
    slow every update many times over."""

    def __post_init__(self) -> None:
        if self.finetune_env_config.image_size != self.env_config.image_size:
            raise LampError(
                f"the finetuning env's frames ({self.finetune_env_config.image_size} px) must be the pretraining env's "
                f"({self.env_config.image_size} px): the pretrained agents see frames of one size"
            )


SCALE_NOTE = (
    "This shows that every stage works end to end; it is far too small to show what LAMP pretraining buys "
    "(the paper: ~1M env steps, GPU-sized models)."
)
"""What the demo's numbers can and cannot tell, said in the terminal and on the report page."""


PRETRAIN_NOTE = (
    "Both arms train the world model on the same data with the same seed, so their model losses match step for "
    "step; α changes only the reward the actor learns from in imagination: α × Plan2Explore's novelty + (1 − α) × "
    "the language reward of the sampled prompt."
)
"""Why the pretraining arms' progress lines show the same model loss."""


def arm_name(alpha: float) -> str:
    """What a pretraining run with P2E share ``alpha`` is: LAMP, or Plan2Explore alone."""
    return "Plan2Explore only (novelty reward)" if alpha >= 1.0 else f"LAMP ({alpha:g} × novelty + {1 - alpha:g} × language reward)"


def _scratch_preset(out: Path, config: DemoConfig) -> str:
    """The preset of the scratch arm: the demo's, or, with agent overrides, a preset file in ``out``
    that adds them to it, so scratch and pretrained agents train with one agent config."""
    if not config.agent_overrides:
        return config.preset
    base = str(Path(config.preset).resolve()) if config.preset.endswith((".yaml", ".yml")) else config.preset
    path = out / "scratch-preset.yaml"
    atomic_write_bytes(path, yaml.safe_dump({"base": base, **dict(config.agent_overrides)}, sort_keys=True).encode())
    return str(path)


def demo_about(config: DemoConfig, reward_model: str, reward_set: str) -> dict[str, str]:
    """The "about this report" block of the demo's leaderboard page: budget, preset, seeds, scale.

    Args:
        config: The demo's sizes.
        reward_model: Spec of the reward model that relabelled the data.
        reward_set: Fingerprint of the reward set it wrote.
    """
    overrides = ", ".join(f"{name}={value}" for name, value in sorted(config.agent_overrides.items()))
    return {
        "budget": (
            f"{config.finetune_steps} env steps of finetuning per run ({config.finetune_env_config.episode_length}-step "
            f"episodes), evaluated every {config.eval_every} env steps on {config.eval_episodes} evaluation episodes"
        ),
        "preset": f"'{config.preset}' agent networks" + (f" with {overrides}" if overrides else ""),
        "seeds": (
            f"finetuning seeds {', '.join(str(seed) for seed in config.seeds)}; "
            f"collection and pretraining seed {config.seed}"
        ),
        "task": f"held-out task '{config.task}'",
        "pretraining": (
            f"{config.episodes} randomized {config.env_config.episode_length}-step episodes of {config.env}, "
            f"{config.pretrain_steps} updates per run, α = {', '.join(f'{alpha:g}' for alpha in config.alphas)}"
        ),
        "reward model": f"{reward_model} (reward set {reward_set}, prompts '{config.prompts}')",
        "scale": SCALE_NOTE,
        "reference": reference_summary(),
    }


REFERENCE_SUMMARY = Path(__file__).resolve().parents[1] / "results" / "reference" / "summary.json"
"""The committed reference experiment's numbers (``lamp-eval grid``), in a source checkout."""


def reference_summary(path: Path = REFERENCE_SUMMARY) -> str:
    """One paragraph on the reference experiment, to read the demo's tiny numbers against."""
    where = "results/reference/grid.md in the repository"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"the reference experiment (LAMP and Plan2Explore pretraining against scratch, held-out tasks) is {where}"
    cells = "; ".join(
        f"{cell['task']} {cell['method']} ({cell['runs']} runs): final normalised return {cell['statistic']} "
        f"{cell['norm-final']['value']:.2f} [{cell['norm-final']['low']:.2f}, {cell['norm-final']['high']:.2f}]"
        for cell in summary.get("cells", []) if cell.get("norm-final")
    )
    partial = f" (partial: {summary.get('finished')} of {summary.get('planned')} runs)" if summary.get("partial") else ""
    return f"{where}{partial}: {summary.get('settings', {}).get('steps')} env steps per run — {cells}"


def _stage(console: Any, number: int, title: str) -> float:
    console.rule(f"[bold]{number}. {title}")
    return time.perf_counter()


def run_demo(out: str | Path, config: DemoConfig = DemoConfig()) -> dict[str, Any]:
    """Run every stage into ``out`` (resumable: finished stages are reused) and return a summary.

    Raises:
        LampError: the reward model is missing or a stage is given bad sizes.
    """
    from rich.console import Console

    from lamp_agent import PretrainConfig, load_preset
    from lamp_agent.online import SCRATCH, init_action_repeat
    from lamp_agent.pretrain import RUN_FILE, pretrain
    from lamp_eval.board_table import leaderboard_lines
    from lamp_eval.finetune import FinetuneConfig, finetune
    from lamp_eval.report import leaderboard

    import torch

    torch.set_num_threads(config.torch_threads)
    console = Console()
    out = Path(out)
    reward_model = config.reward_model or DEFAULT_REWARD_MODEL
    if not config.reward_model:
        shipped_model_path(DEFAULT_REWARD_MODEL)  # a missing file fails here, before any stage writes
    load_preset(config.preset, **config.agent_overrides)  # and so do a bad preset and bad overrides
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"config": asdict(config), "reward_model": reward_model}

    if config.showcase_steps:
        started = _stage(console, 1, "Showcase: randomized expert rollouts")
        shown = render_showcase(out / "showcase", steps=config.showcase_steps, image_size=config.env_config.image_size, seed=config.seed)
        summary["showcase"] = {key: str(value) for key, value in shown.items() if str(value).endswith((".png", ".gif"))}
        for path in summary["showcase"].values():
            console.print(f"wrote {path}")
        timings["showcase"] = time.perf_counter() - started

    started = _stage(console, 2, f"Collect {config.episodes} randomized episodes ({config.env})")
    data = out / "data"
    collect(
        data,
        CollectConfig(
            env=config.env, episodes=config.episodes, policy="noisy-expert", seed=config.seed,
            shard_episodes=max(1, config.episodes // (2 * config.workers)),
            # recorded at the action repeat the scratch arm acts at, which the pretrained arms then take
            env_config=dataclasses.replace(config.env_config, action_repeat=init_action_repeat(SCRATCH, config.preset)),
        ),
        executor=ExecutorConfig(workers=config.workers),
    )
    timings["collect"] = time.perf_counter() - started

    started = _stage(console, 3, f"Relabel with {reward_model}")
    relabelled = relabel(data, reward_model, config.prompts)
    fingerprint = relabelled.fingerprint
    summary["reward_set"] = fingerprint
    timings["relabel"] = time.perf_counter() - started

    started = _stage(console, 4, "Pretrain (" + ", ".join(f"α = {alpha}" for alpha in config.alphas) + ")")
    console.print(PRETRAIN_NOTE, highlight=False, soft_wrap=True)
    checkpoints = []
    for alpha in config.alphas:
        run = out / "pretrain" / f"alpha-{alpha:g}"
        console.print(f"α = {alpha:g}: {arm_name(alpha)} -> {run}", highlight=False, soft_wrap=True)
        result = pretrain(
            PretrainConfig(
                data=str(data), rewards=fingerprint, out=str(run), steps=config.pretrain_steps,
                preset=config.preset, alpha=alpha, seed=config.seed, resume=(run / RUN_FILE).is_file(),
                agent_overrides=dict(config.agent_overrides),
            )
        )
        checkpoints.append(result.checkpoint)
        metrics = result.metrics
        if "model_loss" in metrics:
            console.print(
                f"α = {alpha:g}: model loss {metrics['model_loss']:.3f} (the same world-model updates in every arm), "
                f"actor loss {metrics.get('actor_loss', float('nan')):.3f} and imagined reward "
                f"{metrics.get('imagined_reward', float('nan')):.3f} (these follow α)", highlight=False, soft_wrap=True,
            )
        else:
            console.print(f"α = {alpha:g}: pretrained already (step {result.step})", highlight=False, soft_wrap=True)
    timings["pretrain"] = time.perf_counter() - started

    started = _stage(console, 5, f"Finetune on held-out task '{config.task}'")
    runs = out / "runs"
    finetune(
        FinetuneConfig(
            tasks=(config.task,), inits=("scratch", *checkpoints), out=str(runs), seeds=config.seeds,
            steps=config.finetune_steps, eval_every=config.eval_every, eval_episodes=config.eval_episodes,
            env_config=config.finetune_env_config,
            preset=_scratch_preset(out, config),
            replay_ratio=config.finetune_replay_ratio, prefill=config.finetune_prefill,
            initial_updates=config.finetune_initial_updates,
        )
    )
    timings["finetune"] = time.perf_counter() - started

    started = _stage(console, 6, "Leaderboard")
    report = leaderboard([runs], out / "report", about=demo_about(config, reward_model, fingerprint))
    timings["leaderboard"] = time.perf_counter() - started
    summary["report"] = str(report.out / "leaderboard.html")
    summary["timings_seconds"] = {key: round(value, 1) for key, value in timings.items()}
    summary["provenance"] = provenance()
    atomic_write_json(out / "demo.json", summary)
    lines = leaderboard_lines(report.leaderboard, report.out / "leaderboard.md")
    lines.append(
        f"Scale: '{config.preset}' networks, {config.episodes} collected episodes, {config.pretrain_steps} pretraining "
        f"updates, {config.finetune_steps} finetuning env steps per run. {SCALE_NOTE}"
    )
    lines.append(f"Report: {summary['report']}")
    lines.append("Stage times (s): " + ", ".join(f"{key} {value:g}" for key, value in summary["timings_seconds"].items()))
    print("\n".join(lines), flush=True)
    return summary
