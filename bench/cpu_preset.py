"""The experiments behind the ``cpu`` preset: candidate configs on one held-out task, one report.

Usage::

    .venv/bin/python bench/cpu_preset.py --out results/cpu-preset --run     # run missing candidates, then report
    .venv/bin/python bench/cpu_preset.py --out results/cpu-preset           # report the runs already there

Every candidate is a YAML file of agent config fields in ``<out>/candidates/`` (``base: tiny``
plus the fields it changes). ``--run`` finetunes each one from scratch that has no finished run
under ``<out>/runs/<candidate>/`` (``lamp-eval finetune --preset FILE --method <candidate>``,
one torch thread, ``--workers`` at once). The report ranks candidates by expert-normalised return
per CPU-hour and writes:

* ``experiments.md``  one row per candidate: what it changes, budget, updates, wall time, final
                      and best normalised return, normalised return per CPU-hour,
* ``curves.jsonl``    every evaluation of every candidate,
* ``curves.png``      normalised return against env steps and against wall-clock minutes.

One seed per candidate: these runs choose a configuration; the claims with seeds and confidence
intervals are made by ``bench/learning.py`` on the chosen one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="Experiment folder (holds candidates/).")
    parser.add_argument("--run", action="store_true", help="Run the candidates that have no finished run.")
    parser.add_argument("--task", default="button-press-topdown", help="Held-out task.")
    parser.add_argument("--seed", default="0", help="Run seed.")
    parser.add_argument("--steps", type=int, default=20_000, help="Env steps per run.")
    parser.add_argument("--eval-every", type=int, default=2_000, help="Env steps between evaluations.")
    parser.add_argument("--eval-episodes", type=int, default=5, help="Episodes per evaluation.")
    parser.add_argument("--workers", type=int, default=2, help="Runs at once.")
    return parser.parse_args(argv)


def candidates(out: Path) -> dict[str, Path]:
    """Candidate name → its YAML file."""
    files = sorted((out / "candidates").glob("*.yaml"))
    if not files:
        sys.exit(f"no candidates in {out / 'candidates'} (YAML files of agent config fields)")
    return {path.stem: path for path in files}


def run_missing(args: argparse.Namespace, found: dict[str, Path]) -> None:
    """Finetune every candidate without a finished run, ``--workers`` at once."""
    from lamp_eval.runs import RUN_INFO

    executable = Path(sys.executable).parent / "lamp-eval"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    finished = lambda name: any(  # noqa: E731
        not info.parent.name.startswith(".") for info in (args.out / "runs" / name).rglob(RUN_INFO)
    )
    pending = [name for name in found if not finished(name)]
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < args.workers:
            name = pending.pop(0)
            command = [
                str(executable), "finetune", "--task", args.task, "--init", "scratch", "--preset", str(found[name]),
                "--method", name, "--seeds", args.seed, "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                "--eval-episodes", str(args.eval_episodes), "--out", str(args.out / "runs"), "--threads", "1", "--no-progress",
            ]
            print(f"started {name}", flush=True)
            running.append(subprocess.Popen(command, env=environment))
        time.sleep(2.0)
        for process in [process for process in running if process.poll() is not None]:
            running.remove(process)
            if process.returncode != 0:
                sys.exit(f"a candidate run failed: {' '.join(process.args)}")


def candidate_runs(folder: Path) -> list[tuple["Run", bool]]:
    """The candidate's runs under ``folder``: finished ones, and ones stopped before their budget
    (a staging folder with at least two evaluations) flagged True."""
    from lamp_eval.runs import RUN_INFO, RUN_LOG, read_run

    found = []
    for info in sorted(folder.rglob(RUN_INFO)) if folder.exists() else []:
        stopped = info.parent.name.startswith(".")
        if stopped and len((info.parent / RUN_LOG).read_text().splitlines()) < 2:
            continue
        found.append((read_run(info.parent), stopped))
    return found


def stopped_seconds(run: "Run") -> float:
    """Wall time of a stopped run: from its ``run.json`` (written when it began) to its last evaluation."""
    from lamp_eval.runs import RUN_INFO, RUN_LOG

    return (run.path / RUN_LOG).stat().st_mtime - (run.path / RUN_INFO).stat().st_mtime


def cached_baselines(runs_folder: Path, run: "Run") -> dict | None:
    """For a run made before runs stored their baselines: the cached baselines of the same env
    and evaluation seeds (``<runs>/.baselines/``, written by later runs), or None."""
    for path in sorted((runs_folder / ".baselines").glob("*.json")):
        cached = json.loads(path.read_text())
        same_env = all(
            cached.get("env_config", {}).get(key) == run.info.get("env_config", {}).get(key)
            for key in ("image_size", "episode_length", "randomization")
        )
        if same_env and cached.get("env") == run.info["config"]["env"] and cached.get("seeds") == run.info.get("eval_seeds"):
            return cached
    return None


def report(args: argparse.Namespace, found: dict[str, Path]) -> Path:
    """``experiments.md``, ``curves.jsonl`` and ``curves.png`` of every finished candidate run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from lamp_data.atomic import atomic_open, atomic_path
    from lamp_eval.baselines import normalised_return

    rows, lines = [], []
    figure, (by_steps, by_minutes) = pyplot.subplots(1, 2, figsize=(11, 4))
    for name, path in found.items():
        for run, stopped in candidate_runs(args.out / "runs" / name):
            baselines = run.info.get("baselines") or cached_baselines(args.out / "runs", run)
            normalised = [normalised_return(value, baselines) for value in run.returns]
            summary = run.info.get("summary", {})
            minutes = summary.get("wall_seconds", stopped_seconds(run) if stopped else float("nan")) / 60
            steps = run.steps
            # evaluations are spread over the run; their wall clock is read as proportional to env steps
            clock = [minutes * step / steps[-1] for step in steps]
            for step, value, success, moment in zip(steps, normalised, run.success_rates, clock):
                lines.append({"candidate": name, "task": run.task, "seed": run.info["seed"], "step": step,
                              "normalised_return": round(value, 4), "success_rate": success, "minutes": round(moment, 1)})
            changes = yaml.safe_load(path.read_text()) or {}
            rows.append({
                "candidate": name + (" (stopped early)" if stopped else ""), "stopped": stopped,
                "changes": ", ".join(f"{key}={value}" for key, value in changes.items()),
                "steps": steps[-1], "updates": summary.get("updates", "–"), "minutes": minutes,
                "final": normalised[-1], "best": max(normalised),
                "per_cpu_hour": normalised[-1] / (minutes / 60) if minutes > 0 else float("nan"),
            })
            by_steps.plot(steps, normalised, marker="o", label=name)
            by_minutes.plot(clock, normalised, marker="o", label=name)
    for axis, label in ((by_steps, "env steps"), (by_minutes, "wall-clock minutes (one core)")):
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xlabel(label)
        axis.set_ylabel("expert-normalised return")
        axis.grid(alpha=0.3)
    by_steps.legend(fontsize=8)
    figure.suptitle(f"{args.task}, one seed per candidate (0 = random policy, 1 = scripted expert)")
    figure.tight_layout()
    with atomic_path(args.out / "curves.png") as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    with atomic_open(args.out / "curves.jsonl") as handle:
        for line in lines:
            handle.write(json.dumps(line, sort_keys=True) + "\n")
    rows.sort(key=lambda row: (row["stopped"], math.isnan(row["per_cpu_hour"]), -np.nan_to_num(row["per_cpu_hour"])))
    table = "\n".join(
        f"| `{row['candidate']}` | {row['changes']} | {row['steps']} | {row['updates']} | {_number(row['minutes'], 0)} "
        f"| {row['final']:.3f} | {row['best']:.3f} | {_number(row['per_cpu_hour'], 3)} |"
        for row in rows
    )
    notes = "\n".join(
        f"- `{name}`: " + " ".join(line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#"))
        for name, path in found.items() if any(line.startswith("#") for line in path.read_text().splitlines())
    ) or "(none)"
    text = f"""# Experiments behind the `cpu` preset

Scratch runs on `{args.task}` (64 px, canonical scene, 150-step episodes), seed {args.seed}, evaluated
every {args.eval_every} env steps on {args.eval_episodes} held-out seeds. Normalised return: 0 is a
uniform random policy, 1 the scripted expert on the same seeds. Each candidate is
`candidates/<name>.yaml`; regenerate with `python bench/cpu_preset.py --out {args.out} --run`.
Ranked by final normalised return per CPU-hour (one torch thread per run, two runs sharing the
machine's two cores); runs stopped before their budget come last, their numbers taken where they stopped.

| candidate | changes (on top of its base) | env steps | updates | minutes | final normalised | best normalised | final per CPU-hour |
|---|---|---|---|---|---|---|---|
{table}

Curves: `curves.png`; every evaluation in `curves.jsonl`.

## Notes on the candidates (the comments in their YAML files)

{notes}
"""
    with atomic_open(args.out / "experiments.md") as handle:
        handle.write(text)
    return args.out / "experiments.md"


def _number(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    found = candidates(args.out)
    if args.run:
        run_missing(args, found)
    print(f"wrote {report(args, found)}")


if __name__ == "__main__":
    main()
