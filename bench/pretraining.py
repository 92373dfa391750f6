"""LAMP's pretraining as LAMP does it: agents that explore the randomized pretraining tasks themselves.

Usage::

    .venv/bin/python bench/pretraining.py --out results/reference/pretraining      # make (or finish) both arms
    .venv/bin/python bench/pretraining.py --out results/reference/pretraining --report-only

Runs, as ``lamp-data`` / ``lamp-agent`` commands (so each one can be rerun by hand):

1. ``collect``: a seed dataset of ``--random`` uniformly random episodes of the domain-randomized
   pretraining tasks (``mw-pretrain``), at the action repeat of ``--preset``; no expert episodes;
2. ``relabel``: rewards of every frame for every prompt of ``--prompts`` from ``--vlm``;
3. each arm gets its own copy of the seed dataset (each collects into its own) and
   ``pretrain --collect-every K``: α = 0.9 (LAMP, ``OUT/lamp``) and α = 1 (Plan2Explore alone,
   ``OUT/p2e``), the same updates (``--steps``) and so the same env steps, both at once, one torch
   thread each. Every ``K`` updates the current policy, conditioned on a prompt drawn from the set
   per episode, records new episodes into the arm's dataset (rewards scored inline by the same
   model), and training goes on with them.

Every stage resumes, so running it again finishes an interrupted run and otherwise changes
nothing. ``OUT`` holds the data and checkpoints (large; not committed). ``OUT.json`` and
``OUT.md`` beside it record the commands (paths relative to the working folder), the reward set,
the time each stage took, and what each arm collected: episodes, the success rate of its
episodes on their pretraining tasks, and the mean VLM reward of its episodes for their task's
instruction and for the prompt the agent acted on, beside the same for the random seed episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: pretraining arm -> (alpha, folder under --out)
ARMS = {"lamp": ("0.9", "lamp"), "plan2explore": ("1.0", "p2e")}
SEED_RUN = "random"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="Folder of the seed dataset and both pretraining runs.")
    parser.add_argument("--random", type=int, default=78, help="Random-policy episodes of the seed dataset (2 per pretraining task on average).")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the seed dataset.")
    parser.add_argument("--vlm", default="lamp-r3m-metaworld", help="Reward model spec.")
    parser.add_argument("--prompts", default="lamp-metaworld", help="Prompt set.")
    parser.add_argument("--preset", default="cpu", help="Agent preset (a name or a YAML file; the action repeat of its env section is the dataset's).")
    parser.add_argument("--steps", type=int, default=8000, help="Pretraining updates per arm.")
    parser.add_argument("--collect-every", type=int, default=1000, help="Updates between the agent's collection rounds.")
    parser.add_argument("--workers", type=int, default=2, help="Collection workers of the seed dataset.")
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(ARMS), help="Which pretraining runs to make.")
    parser.add_argument("--report-only", action="store_true", help="Rewrite OUT.json and OUT.md from what is there; run nothing.")
    return parser.parse_args(argv)


def commands(args: argparse.Namespace) -> dict[str, list[list[str]]]:
    """The commands of every stage (``lamp-data``/``lamp-agent`` first); the arms' run at once."""
    from lamp_agent.config import preset_env

    seed = args.out / "seed"
    repeat = preset_env(args.preset).get("action_repeat", 1)
    pretrain = ["lamp-agent", "pretrain", "--rewards", "FINGERPRINT", "--steps", str(args.steps), "--collect-every", str(args.collect_every),
                "--preset", args.preset, "--seed", "0", "--threads", "1", "--quiet"]
    return {
        "collect": [["lamp-data", "collect", "--out", str(seed), "--workers", str(args.workers), "--env", "mw-pretrain",
                     "--episodes", str(args.random), "--policy", "random", "--action-repeat", str(repeat), "--episode-length", "150",
                     "--image-size", "64", "--seed", str(args.seed), "--shard-episodes", "6", "--run", SEED_RUN]],
        "relabel": [["lamp-data", "relabel", str(seed), "--vlm", args.vlm, "--prompts", args.prompts, "--json"]],
        "pretrain": [[*pretrain, "--data", str(args.out / ARMS[arm][1] / "data"), "--alpha", ARMS[arm][0],
                      "--out", str(args.out / ARMS[arm][1] / "run")] for arm in args.arms],
    }


def _executable(command: list[str]) -> list[str]:
    return [str(Path(sys.executable).parent / command[0]), *command[1:]]


def _resumable(command: list[str]) -> list[str]:
    """A pretraining command continues its run when the folder already holds one."""
    out = Path(command[command.index("--out") + 1])
    return command + ["--resume"] if (out / "checkpoints" / "latest.json").is_file() else command


def _copy_dataset(source: Path, target: Path) -> None:
    """The seed dataset copied whole to ``target`` (through a temporary name, so a copy cut off
    half-way is never taken for one)."""
    if target.exists():
        return
    partial = target.with_name(target.name + ".copying")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns(".lock"))
    os.replace(partial, target)


def collected(data: Path, fingerprint: str, run_prefix: str) -> dict[str, float]:
    """What the episodes of runs starting with ``run_prefix`` hold: their count, env steps, success
    rate, and mean VLM reward for their task's instruction and for the prompt the agent acted on."""
    from lamp_data.store import iter_episodes, open_dataset

    dataset = open_dataset(data)
    prompts = dataset.reward_set_prompts(fingerprint)
    column = {prompt: index for index, prompt in enumerate(prompts)}
    shards = [name for name in dataset.shard_sidecars() if name.startswith(run_prefix)]
    episodes = steps = successes = 0
    own, acted = [], []
    for episode in iter_episodes(data, reward_set=fingerprint, shards=shards):
        meta = episode["meta"]
        rewards = np.asarray(episode["vlm_reward"], np.float32)
        episodes += 1
        steps += int(meta["steps"])
        successes += bool(meta["success"])
        if meta.get("instruction") in column:
            own.append(float(rewards[:, column[meta["instruction"]]].mean()))
        if "prompt_index" in meta:
            acted.append(float(rewards[:, int(meta["prompt_index"])].mean()))
    return {
        "episodes": episodes, "recorded_steps": steps, "success_rate": round(successes / episodes, 4) if episodes else None,
        "vlm_reward_own_instruction": round(float(np.mean(own)), 5) if own else None,
        "vlm_reward_prompt_acted_on": round(float(np.mean(acted)), 5) if acted else None,
    }


def regenerate_command(args: argparse.Namespace) -> str:
    """The command that makes (or finishes) both arms with these settings: every option that is not
    its default, without ``--arms`` or ``--report-only``."""
    defaults = vars(parse_args(["--out", str(args.out)]))
    words = ["python", "bench/pretraining.py", "--out", str(args.out)]
    for name, value in vars(args).items():
        if name not in ("out", "arms", "report_only") and value != defaults[name]:
            words += [f"--{name.replace('_', '-')}", str(value)]
    return " ".join(words)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def run_minutes(run: Path) -> float:
    """Wall minutes a pretraining run has taken, from its own TensorBoard log: first to last event of
    each event file (one per call), summed, so time between interrupted calls does not count."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    total = 0.0
    for path in sorted((run / "tb").glob("events.out.tfevents.*")):
        times = [event.wall_time for event in EventFileLoader(str(path)).Load()]
        total += max(times) - min(times) if times else 0.0
    return round(total / 60, 1)


def write_record(args: argparse.Namespace, fingerprint: str, seconds: dict[str, float]) -> Path:
    """``OUT.json`` and ``OUT.md``: commands, reward set, wall times (summed over calls), what each arm collected."""
    from lamp_agent.checkpoint import latest_checkpoint, read_checkpoint_config
    from lamp_data.atomic import atomic_open, atomic_write_json
    from lamp_data.provenance import provenance

    record_path = args.out.with_suffix(".json")
    previous = json.loads(record_path.read_text()) if record_path.is_file() else {}
    shown = {stage: [" ".join(command).replace("FINGERPRINT", fingerprint) for command in group] for stage, group in commands(args).items()}
    times = previous.get("wall_seconds", {})
    times = {stage: round(times.get(stage, 0.0) + seconds.get(stage, 0.0), 1) for stage in ("collect", "relabel", "pretrain")}
    arms = {arm: made for arm, made in previous.get("arms", {}).items() if arm in ARMS and {"alpha", "updates", "steps"} <= set(made)}
    for arm, command in zip(args.arms, shown["pretrain"]):
        folder = args.out / ARMS[arm][1]
        if not (folder / "run").is_dir():
            continue
        latest = latest_checkpoint(folder / "run")
        meta = read_checkpoint_config(latest) if latest else {}
        run_id = meta.get("info", {}).get("pretrain", {}).get("run_id")
        arms[arm] = {
            "alpha": float(ARMS[arm][0]), "checkpoint": str(folder / "run"), "reward_set": fingerprint, "pretrain": command,
            "updates": meta.get("step", 0), "steps": args.steps, "collect_every": args.collect_every, "preset": args.preset,
            "minutes": run_minutes(folder / "run"),
            "collected": collected(folder / "data", fingerprint, f"agent-{run_id}-") if run_id else None,
        }
    seed = collected(args.out / "seed", fingerprint, SEED_RUN)
    value = {
        "format_version": 1, "command": regenerate_command(args),
        "collect": shown["collect"], "relabel": shown["relabel"], "reward_set": fingerprint, "seed_episodes": seed,
        "arms": arms, "wall_seconds": times, "provenance": provenance(),
    }
    atomic_write_json(record_path, value)
    rows = [f"| random seed episodes | – | – | {seed['episodes']} | {seed['success_rate']} | {seed['vlm_reward_own_instruction']} | – |"]
    for arm, made in sorted(arms.items()):
        got = made.get("collected") or {}
        rows.append(f"| {arm} (α = {made['alpha']:g}) | {made['updates']} / {made['steps']} | {made.get('minutes', '–')} | "
                    f"{got.get('episodes', 0)} | {got.get('success_rate')} | {got.get('vlm_reward_own_instruction')} | "
                    f"{got.get('vlm_reward_prompt_acted_on')} |")
    for arm in sorted(set(ARMS) - set(arms)):
        rows.append(f"| {arm} (α = {float(ARMS[arm][0]):g}) | not started | – | – | – | – | – |")
    partial = set(arms) != set(ARMS) or any(made["updates"] < made["steps"] for made in arms.values())
    text = f"""# Online pretraining{' (partial: not every arm has finished)' if partial else ''}

Both arms start from the same seed dataset of {args.random} random-policy episodes of the domain-randomized
pretraining tasks, relabelled by `{args.vlm}` for every prompt of `{args.prompts}` (reward set `{fingerprint}`),
and collect their own episodes every {args.collect_every} updates with the policy they are learning (a prompt
drawn per episode), so LAMP's language reward shapes what LAMP collects. Preset `{args.preset}`, {args.steps}
updates per arm. Regenerate or finish: `{value['command']}`.

| episodes of | updates | minutes | episodes | success on their task | VLM reward for the task's instruction | VLM reward for the prompt acted on |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Minutes: each arm's own wall time (one torch thread, from its TensorBoard log, interrupted calls
summed). The seed dataset's stages in the calls this record has seen (a stage found done costs
seconds): collect {_minutes(times['collect'])}, relabel {_minutes(times['relabel'])}.

Commands:

{chr(10).join('    ' + line for group in shown.values() for line in group)}
"""
    with atomic_open(args.out.with_suffix(".md")) as handle:
        handle.write(text)
    return record_path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    stages = commands(args)
    seconds: dict[str, float] = {}
    if args.report_only:
        previous = json.loads(args.out.with_suffix(".json").read_text())
        print(f"wrote {write_record(args, previous['reward_set'], seconds)}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for command in stages["collect"]:
        subprocess.run(_executable(command), check=True, env=environment)
    seconds["collect"] = time.time() - started
    started = time.time()
    relabelled = subprocess.run(_executable(stages["relabel"][0]), check=True, env=environment, capture_output=True, text=True)
    fingerprint = json.loads(relabelled.stdout)["fingerprint"]
    seconds["relabel"] = time.time() - started
    for arm in args.arms:
        _copy_dataset(args.out / "seed", args.out / ARMS[arm][1] / "data")
    started = time.time()
    runs = [_executable([part.replace("FINGERPRINT", fingerprint) for part in _resumable(command)]) for command in stages["pretrain"]]
    processes = [subprocess.Popen(command, env=environment, preexec_fn=lambda: os.nice(10)) for command in runs]
    failed = [process.wait() != 0 for process in processes]
    seconds["pretrain"] = time.time() - started
    print(f"wrote {write_record(args, fingerprint, seconds)}")
    if any(failed):
        sys.exit("a pretraining run failed")


if __name__ == "__main__":
    main()
