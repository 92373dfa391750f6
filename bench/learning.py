"""The reference learning experiment: scratch agents on held-out tasks from pixels, with a leaderboard.

Usage::

    .venv/bin/python bench/learning.py --out results/reference             # the committed experiment
    .venv/bin/python bench/learning.py --out /tmp/ref --steps 2000 --seeds 0 --tasks button-press-topdown

Each (task, seed) is one ``lamp-eval finetune`` process with one torch thread; ``--workers`` of
them run at once (one per core). When every run has finished, the script writes into ``--out``:

* ``runs/``             the run folders (logs, TensorBoard, GIFs; not meant to be committed),
* ``report/``           the leaderboard (``lamp-eval leaderboard``) of those runs,
* ``curves.jsonl``      one line per run and evaluation: task, method, seed, env step, wall
                        seconds, success rate, return, expert-normalised return,
* ``reference.md``      the leaderboard table, per-task IQMs with 95 % CIs, every run's last
                        evaluation, the command that made it, its wall time and provenance,
* ``summary.json``      the per-task numbers of ``reference.md``, for other reports to cite,
* ``commands.json``     every command whose runs the folder holds (several methods may share it),
* ``curves.png``        the normalised-return and success curves (copied from the report),
* ``normalised_per_task.png``  the normalised-return curves task by task (likewise).

Running it again skips finished runs, so an interrupted experiment resumes where it stopped
(a run cut off mid-way restarts from its step 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_TASKS = ("button-press-topdown", "door-close")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="Experiment folder.")
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="Held-out tasks.")
    parser.add_argument("--seeds", default="0,1,2", help="Run seeds, e.g. 0,1,2.")
    parser.add_argument("--init", default="scratch", help="'scratch' or a pretrained checkpoint folder.")
    parser.add_argument("--preset", default="cpu", help="Agent preset of scratch runs (a name or a YAML file).")
    parser.add_argument("--method", default=None,
                        help="Leaderboard label of these runs (default: scratch, or the checkpoint's); lets one "
                             "--out compare several presets against the 'scratch' runs.")
    parser.add_argument("--steps", type=int, default=20_000, help="Env steps per run.")
    parser.add_argument("--eval-every", type=int, default=2_000, help="Env steps between evaluations.")
    parser.add_argument("--eval-episodes", type=int, default=5, help="Episodes per evaluation.")
    parser.add_argument("--workers", type=int, default=2, help="Runs at once (one torch thread each).")
    parser.add_argument("--device", default="cpu", help="Torch device of every run.")
    parser.add_argument("--extra", default="", help="More lamp-eval finetune options, quoted as one string.")
    return parser.parse_args(argv)


def run_commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """One ``lamp-eval finetune`` command line per (task, seed)."""
    executable = Path(sys.executable).parent / "lamp-eval"
    commands = []
    for task in args.tasks:
        for seed in args.seeds.split(","):
            command = [
                str(executable), "finetune", "--task", task, "--init", args.init, "--preset", args.preset,
                "--seeds", seed.strip(), "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                "--eval-episodes", str(args.eval_episodes), "--out", str(args.out / "runs"),
                "--device", args.device, "--threads", "1", "--no-progress", *shlex.split(args.extra),
            ]
            if args.method:
                command += ["--method", args.method]
            commands.append((f"{args.method or args.init} {task} seed {seed.strip()}".replace("/", "_"), command))
    return commands


def run_all(commands: list[tuple[str, list[str]]], workers: int, logs: Path) -> None:
    """Run the commands, ``workers`` at a time; exits on the first failure."""
    logs.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    pending, running = list(commands), {}
    while pending or running:
        while pending and len(running) < workers:
            name, command = pending.pop(0)
            log = open(logs / f"{name.replace(' ', '_')}.log", "w")
            running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment), time.time(), log)
            print(f"started  {name}", flush=True)
        time.sleep(2.0)
        for name, (process, started, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            print(f"finished {name} in {(time.time() - started) / 60:.1f} min (exit {process.returncode})", flush=True)
            if process.returncode != 0:
                for other, _, other_log in running.values():
                    other.terminate()
                    other_log.close()
                sys.exit(f"{name} failed; see {logs}")


def curve_lines(runs_folder: Path) -> list[dict]:
    """Every evaluation of every finished run, with its normalised return and wall time."""
    from lamp_eval.report import run_normalised_returns
    from lamp_eval.runs import find_runs

    lines = []
    for run in sorted(find_runs([runs_folder]), key=lambda run: (run.task, run.method, run.info["seed"])):
        normalised = run_normalised_returns(run)
        for evaluation, value in zip(run.evaluations, normalised):
            lines.append({
                "task": run.task, "method": run.method, "seed": run.info["seed"], "step": evaluation.step,
                "success_rate": evaluation.success_rate, "return_mean": round(evaluation.return_mean, 3),
                "normalised_return": round(value, 4),
            })
        lines[-1]["wall_seconds"] = run.info.get("summary", {}).get("wall_seconds")
    return lines


def per_task_rows(runs_folder: Path) -> list[dict]:
    """Per task and method: runs, env steps, wall minutes, and the IQM with 95 % CI of the final
    success rate and of the final expert-normalised return."""
    from lamp_eval.report import ReportConfig, build_leaderboard, run_normalised_returns
    from lamp_eval.runs import find_runs

    runs = find_runs([runs_folder])
    rows = []
    for task in sorted({run.task for run in runs}):
        task_runs = [run for run in runs if run.task == task]
        board = build_leaderboard(task_runs, ReportConfig(score="final"))
        for row in board.rows:
            mine = [run for run in task_runs if run.method == row.method]
            curves = [run_normalised_returns(run) for run in mine]
            rows.append({
                "task": task, "method": row.method, "runs": row.runs,
                "env_steps": max(run.steps[-1] for run in mine),
                "wall_minutes": round(max(run.info["summary"].get("wall_seconds", 0.0) for run in mine) / 60, 1),
                "success_iqm": _interval(row.final_iqm), "normalised_iqm": _interval(row.norm_final_iqm),
                "best_normalised_mean": round(max(sum(values) / len(values) for values in zip(*curves)), 4),
            })
    return rows


def _interval(value) -> list[float] | None:
    return None if value is None else [round(value.value, 4), round(value.low, 4), round(value.high, 4)]


def _interval_text(value: list[float] | None) -> str:
    return "n/a" if value is None else f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def _pretraining_section(out: Path) -> str:
    """How the pretrained checkpoints were made, from ``<out>/pretraining.json`` (written by
    ``bench/pretraining.py``); empty when the folder has none."""
    path = out / "pretraining.json"
    if not path.is_file():
        return ""
    record = json.loads(path.read_text())
    lines = [f"    {command}" for stage in ("collect", "relabel") for command in record[stage]]
    arms = []
    for arm, made in sorted(record["arms"].items()):
        seconds = ", ".join(f"{stage} {value / 60:.0f} min" for stage, value in made.get("wall_seconds", {}).items())
        arms.append(f"* `{arm}` (`{made['checkpoint']}`): `{made['command']}` ({seconds}), reward set "
                    f"`{made['reward_set']}`, pretrained by\n\n      {made['pretrain']}\n")
    return (
        "## Pretrained checkpoints\n\n"
        "`bench/pretraining.py` collects and relabels the pretraining data:\n\n" + "\n".join(lines) + "\n\n"
        "and pretrains each arm:\n\n" + "\n".join(arms) + "\n" + (record["note"] + "\n\n" if record.get("note") else "")
    )


def record_command(out: Path, command: str) -> list[str]:
    """Add ``command`` to ``<out>/commands.json`` (the commands whose runs this folder holds) and
    return them all, oldest first."""
    from lamp_data.atomic import atomic_write_json

    path = out / "commands.json"
    commands = json.loads(path.read_text()) if path.is_file() else []
    if command not in commands:
        commands.append(command)
        atomic_write_json(path, commands)
    return commands


def write_reference(args: argparse.Namespace) -> Path:
    """The leaderboard, ``curves.jsonl``, ``summary.json`` and ``reference.md`` of the finished runs."""
    from lamp_data.atomic import atomic_open, atomic_write_json
    from lamp_data.provenance import provenance
    from lamp_eval.report import ReportConfig, leaderboard, markdown_table
    from lamp_eval.runs import find_runs

    result = leaderboard([args.out / "runs"], args.out / "report", ReportConfig(gifs=False))
    tasks = per_task_rows(args.out / "runs")
    methods = "; ".join(sorted({
        f"`{run.method}`: {'preset ' + Path(run.info['config']['preset']).stem if run.info['config']['init'] == 'scratch' else 'from ' + run.info['config']['init']}"
        for run in find_runs([args.out / "runs"])
    }))
    lines = curve_lines(args.out / "runs")
    with atomic_open(args.out / "curves.jsonl") as handle:
        for line in lines:
            handle.write(json.dumps(line, sort_keys=True) + "\n")
    for figure in ("curves.png", "normalised_per_task.png"):
        shutil.copyfile(args.out / "report" / figure, args.out / figure)
    finals = {}
    for line in lines:
        finals[(line["task"], line["method"], line["seed"])] = line
    per_run = "\n".join(
        f"| {task} | {method} | {seed} | {line['step']} | {line['success_rate']:.2f} | {line['return_mean']:.1f} "
        f"| {line['normalised_return']:.3f} | {(line['wall_seconds'] or float('nan')) / 60:.1f} |"
        for (task, method, seed), line in sorted(finals.items())
    )
    info = provenance()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    command = "python bench/learning.py " + " ".join(shlex.quote(part) for part in sys.argv[1:])
    commands = record_command(args.out, command)
    core_minutes = sum(run.info["summary"].get("wall_seconds", 0.0) for run in find_runs([args.out / "runs"])) / 60
    atomic_write_json(args.out / "summary.json", {
        "commands": commands, "commit": commit, "preset": args.preset, "steps": args.steps, "seeds": args.seeds,
        "eval_episodes": args.eval_episodes, "core_minutes": round(core_minutes, 1), "tasks": tasks,
        "provenance": info,
    })
    per_task = "\n".join(
        f"| {row['task']} | {row['method']} | {row['runs']} | {row['env_steps']} | {row['wall_minutes']:.0f} "
        f"| {_interval_text(row['success_iqm'])} | {_interval_text(row['normalised_iqm'])} | {row['best_normalised_mean']:.3f} |"
        for row in tasks
    )
    text = f"""# Reference learning experiment

Agents ({methods}) on held-out tasks from pixels (`lamp-eval finetune` defaults:
Meta-World, 64 px, canonical scene, 150-step episodes{f"; options `{args.extra}`" if args.extra else ""});
{args.steps} env steps per run, evaluated every {args.eval_every} env
steps on {args.eval_episodes} held-out seeds (the same for every run). Normalised return: 0 is a
uniform random policy, 1 the scripted expert, both measured on those seeds.

Regenerate (each command adds its method's runs to this folder, {args.workers} runs at once, one
torch thread each; the runs took {core_minutes:.0f} core-minutes in all on this machine):

{chr(10).join(f"    {line}" for line in commands)}

{markdown_table(result.leaderboard)}

## Per task (IQM over seeds with 95 % stratified-bootstrap CIs, at the last evaluation)

| task | method | runs | env steps | minutes per run | success | normalised return | best mean normalised return on the way |
|---|---|---|---|---|---|---|---|
{per_task}

## Last evaluation of every run

| task | method | seed | env steps | success | return | normalised return | run minutes |
|---|---|---|---|---|---|---|---|
{per_run}

{_pretraining_section(args.out)}Curves: `curves.png` (IQM with 95 % bootstrap bands) and `normalised_per_task.png`, every evaluation in `curves.jsonl`.

Provenance: report written by the code at commit `{commit or "unknown"}` (each run's `run.json` records
the versions and config that made it); {json.dumps({"versions": info["versions"], "platform": info["platform"], "created": info["created"]}, sort_keys=True)}
"""
    with atomic_open(args.out / "reference.md") as handle:
        handle.write(text)
    return args.out / "reference.md"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    run_all(run_commands(args), args.workers, args.out / "logs")
    print(f"wrote {write_reference(args)}")


if __name__ == "__main__":
    main()
