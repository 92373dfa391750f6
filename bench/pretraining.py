"""The reference experiment's pretrained agents: a regenerable dataset, LAMP and Plan2Explore pretraining.

Usage::

    .venv/bin/python bench/pretraining.py --out results/reference/pretraining
    .venv/bin/python bench/learning.py --out results/reference --init results/reference/pretraining/lamp --method lamp
    .venv/bin/python bench/learning.py --out results/reference --init results/reference/pretraining/p2e --method plan2explore

Runs, as ``lamp-data`` / ``lamp-agent`` commands (so each one can be rerun by hand):

1. ``collect``: ``--random`` uniformly random and ``--noisy`` noisy-expert episodes of the
   randomized pretraining tasks (``mw-pretrain``), with the action repeat of ``--preset``;
2. ``relabel``: rewards of every frame for every prompt of ``--prompts`` from ``--vlm``;
3. ``pretrain``: α = 0.9 (LAMP, into ``OUT/lamp``) and α = 1 (Plan2Explore alone, into
   ``OUT/p2e``), ``--steps`` updates each, both at once, one torch thread each; ``--arms lamp``
   (re)makes one of them, e.g. after the reward model changed (move the old folder away first).

Every stage resumes, so running it again finishes an interrupted run and otherwise changes
nothing. ``OUT`` holds the data and checkpoints (large; not meant to be committed); the
commands, reward-set fingerprint and wall times (summed over every call) go to ``OUT.json``
beside it, where ``bench/learning.py`` finds them for its report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: pretraining arm -> (alpha, folder under --out)
ARMS = {"lamp": ("0.9", "lamp"), "plan2explore": ("1.0", "p2e")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="Folder of the dataset and both pretraining runs.")
    parser.add_argument("--random", type=int, default=60, help="Random-policy episodes.")
    parser.add_argument("--noisy", type=int, default=60, help="Noisy-expert episodes.")
    parser.add_argument("--noise", type=float, default=0.3, help="Action noise of the noisy expert.")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the dataset and of pretraining.")
    parser.add_argument("--vlm", default="lamp-r3m-metaworld", help="Reward model spec.")
    parser.add_argument("--prompts", default="lamp-metaworld", help="Prompt set.")
    parser.add_argument("--preset", default="cpu", help="Agent preset (its action repeat is the dataset's).")
    parser.add_argument("--steps", type=int, default=6000, help="Pretraining updates per run.")
    parser.add_argument("--workers", type=int, default=2, help="Collection workers.")
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(ARMS), help="Which pretraining runs to make.")
    return parser.parse_args(argv)


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def commands(args: argparse.Namespace) -> dict[str, list[list[str]]]:
    """The commands of every stage; the pretraining stage's run at once."""
    from lamp_agent import load_preset

    data = args.out / "data"
    repeat = load_preset(args.preset).action_repeat
    collect = [_tool("lamp-data"), "collect", "--out", str(data), "--workers", str(args.workers)]
    pretrain = [_tool("lamp-agent"), "pretrain", "--data", str(data), "--rewards", "FINGERPRINT", "--steps", str(args.steps),
                "--preset", args.preset, "--seed", "0", "--threads", "1", "--quiet", "--checkpoint-every", "500"]
    return {
        "collect": [
            [*collect, "--env", "mw-pretrain", "--episodes", str(args.random), "--policy", "random", "--action-repeat", str(repeat),
             "--episode-length", "150", "--image-size", "64", "--seed", str(args.seed), "--shard-episodes", "10", "--run", "random"],
            [*collect, "--episodes", str(args.random + args.noisy), "--policy", "noisy-expert", "--noise", str(args.noise), "--run", "noisy"],
        ],
        "relabel": [[_tool("lamp-data"), "relabel", str(data), "--vlm", args.vlm, "--prompts", args.prompts, "--json"]],
        "pretrain": [[*pretrain, "--alpha", ARMS[arm][0], "--out", str(args.out / ARMS[arm][1])] for arm in args.arms],
    }


def _resumable(command: list[str]) -> list[str]:
    """A pretraining command continues its run when the folder already holds one."""
    out = Path(command[command.index("--out") + 1])
    return command + ["--resume"] if (out / "checkpoints" / "latest.json").is_file() else command


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    stages = commands(args)
    seconds: dict[str, float] = {}
    started = time.time()
    for command in stages["collect"]:
        subprocess.run(command, check=True, env=environment)
    seconds["collect"] = time.time() - started
    started = time.time()
    relabelled = subprocess.run(stages["relabel"][0], check=True, env=environment, capture_output=True, text=True)
    fingerprint = json.loads(relabelled.stdout)["fingerprint"]
    seconds["relabel"] = time.time() - started
    started = time.time()
    runs = [[part.replace("FINGERPRINT", fingerprint) for part in _resumable(command)] for command in stages["pretrain"]]
    processes = [subprocess.Popen(command, env=environment) for command in runs]
    if any(process.wait() != 0 for process in processes):
        sys.exit("a pretraining run failed")
    seconds["pretrain"] = time.time() - started

    from lamp_data.atomic import atomic_write_json
    from lamp_data.provenance import provenance

    shown = {stage: [" ".join([Path(command[0]).name, *command[1:]]).replace("FINGERPRINT", fingerprint) for command in group]
             for stage, group in stages.items()}
    record_path = args.out.with_suffix(".json")
    previous = json.loads(record_path.read_text()) if record_path.is_file() else {}
    arms = previous.get("arms", {})
    for arm, command in zip(args.arms, shown["pretrain"]):
        same = arms.get(arm, {}).get("reward_set") == fingerprint
        earlier = arms[arm].get("wall_seconds", {}) if same else {}
        arms[arm] = {
            "checkpoint": str(args.out / ARMS[arm][1]), "reward_set": fingerprint, "pretrain": command,
            "wall_seconds": {key: round(value + earlier.get(key, 0.0), 1) for key, value in seconds.items()},
            "command": "python bench/pretraining.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "provenance": provenance(),
        }
    atomic_write_json(record_path, {"collect": shown["collect"], "relabel": shown["relabel"], "arms": arms,
                                    **({"note": previous["note"]} if "note" in previous else {})})
    print(f"wrote {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
