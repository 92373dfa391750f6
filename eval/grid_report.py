"""The report of a grid (:mod:`lamp_eval.grid`), rewritten from whatever runs have finished.

Into the grid's ``--out`` it writes:

* ``grid.md``       what is finished and what is missing, per task and pooled over tasks the
                    normalised-return AUC (primary), final normalised return and final success
                    with 95 % stratified-bootstrap CIs, how many seeds reached 0.8 success and
                    how many of those fell below 0.6 later, cost per run, training metrics
                    (actor entropy, imagined return, critic and image loss) at the first and
                    last evaluation period, the comparisons P(A > B) with CIs, and the command
                    that continues or regenerates it;
* ``summary.json``  the same numbers, for other reports to cite (runs evaluated with
                    ``eval_sampled`` add rows ``<method>, sampled actions`` and their comparison
                    with the mean action);
* ``curves.jsonl``  every evaluation of every finished run;
* ``curves.png``, ``normalised_per_task.png``  curves with CI bands (from the leaderboard in ``report/``).

The aggregate over seeds is the interquartile mean when a cell has at least
:data:`lamp_eval.stats.MIN_IQM_RUNS` runs and the plain mean below that (an IQM of fewer runs
trims nothing), and the tables say which. Comparisons whose interval contains 0.5 are stated as
ties. Provenance records the commit, package versions, the CPU model and the ISA flags that
change float results, and the torch threads per run; paths are relative to the working folder.
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data.atomic import atomic_open, atomic_write_json
from lamp_data.provenance import provenance
from lamp_eval import stats
from lamp_eval.runs import TRAIN_LOG, Run, find_runs

SCORE_NAMES = {"norm-auc": "normalised-return AUC", "norm-final": "final normalised return", "final": "final success"}
"""The measures of the tables, the primary one first."""
REACHED, FELL_BELOW = 0.8, 0.6
"""A seed 'reached' when an evaluation had at least this success rate, and 'fell back' when a later one had less than FELL_BELOW."""
SAMPLED_SUFFIX = ", sampled actions"
"""A method's runs evaluated with actions sampled from the policy (``eval_sampled``) are also the
rows of method ``<method>, sampled actions``, compared with the same runs' mean actions."""


def _scores(runs: list[Run], score: str) -> np.ndarray:
    from lamp_eval.report.scores import run_score

    return np.array([run_score(run, score) for run in runs], dtype=np.float64)


def _interval(values: dict[str, np.ndarray], statistic: str, seed: int = 0) -> dict[str, float] | None:
    values = {task: array[np.isfinite(array)] for task, array in values.items()}
    values = {task: array for task, array in values.items() if array.size}
    if not values:
        return None
    interval = stats.stratified_bootstrap_ci(values, statistic, seed=seed)
    return {"value": round(interval.value, 4), "low": round(interval.low, 4), "high": round(interval.high, 4)}


def _text(interval: dict[str, float] | None) -> str:
    return "n/a" if interval is None else f"{interval['value']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def _stability(runs: list[Run]) -> dict[str, int]:
    reached = [run for run in runs if max(run.success_rates) >= REACHED]
    fell = 0
    for run in reached:
        first = next(index for index, rate in enumerate(run.success_rates) if rate >= REACHED)
        fell += any(rate < FELL_BELOW for rate in run.success_rates[first + 1 :])
    return {"reached": len(reached), "fell_back": fell}


def _cost(runs: list[Run]) -> dict[str, float]:
    minutes = [run.info.get("summary", {}).get("wall_seconds", math.nan) / 60 for run in runs]
    updates = [run.info.get("summary", {}).get("updates", 0) for run in runs]
    config = runs[0].info.get("agent_config", {})
    replayed = int(config.get("batch_size", 0)) * int(config.get("seq_len", 0))
    seconds = sum(run.info.get("summary", {}).get("wall_seconds", 0.0) for run in runs)
    return {
        "minutes_per_run": round(float(np.nanmean(minutes)), 1),
        "updates_per_run": round(float(np.mean(updates)), 0),
        "replayed_steps_per_run_second": round(sum(updates) * replayed / seconds, 0) if seconds else math.nan,
    }


TRAINING_METRICS = {
    "actor_entropy": "actor entropy", "imagined_return": "imagined return", "critic_loss": "critic loss",
    "image_loss": "image loss", "train_return_mean": "training-episode return",
}
"""Training metrics the report gives per cell (from ``train.jsonl``): what the policy and the world
model had become by the run's last evaluation period, to tell a policy that did not learn from a
world model that did not."""


def _training(runs: list[Run]) -> dict[str, dict[str, float]]:
    """``{"first" | "last": {metric: mean over runs}}`` of the first and last evaluation period
    of each run's ``train.jsonl`` (runs without one are left out)."""
    periods: dict[str, list[dict[str, Any]]] = {"first": [], "last": []}
    for run in runs:
        path = run.path / TRAIN_LOG
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
        if lines:
            periods["first"].append(lines[0])
            periods["last"].append(lines[-1])
    return {
        when: {name: round(float(np.mean([entry[name] for entry in entries if entry.get(name) is not None])), 3)
               for name in TRAINING_METRICS if any(entry.get(name) is not None for entry in entries)}
        for when, entries in periods.items() if entries
    }


def grid_summary(grid: Any, runs: list[Run], planned: list[Any], seed: int = 0) -> dict[str, Any]:
    """The numbers of the report: per task and method, pooled per method, and the comparisons."""
    by_cell: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_cell.setdefault((run.method, run.task), []).append(run)
    methods = [method.name for method in grid.methods]
    sampled = [f"{method}{SAMPLED_SUFFIX}" for method in methods if any(run.method == f"{method}{SAMPLED_SUFFIX}" for run in runs)]
    methods += sampled
    cells = []
    for task in grid.tasks:
        for method in methods:
            mine = sorted(by_cell.get((method, task), []), key=lambda run: run.seed)
            expected = sum(1 for item in planned if item.method.name == method.removesuffix(SAMPLED_SUFFIX) and item.config.task == task)
            row: dict[str, Any] = {"task": task, "method": method, "runs": len(mine), "planned": expected}
            if mine:
                statistic = stats.aggregate_for(len(mine))
                row["statistic"] = statistic
                for score in SCORE_NAMES:
                    row[score] = _interval({task: _scores(mine, score)}, statistic, seed)
                row.update({**_stability(mine), **_cost(mine), "training": _training(mine)})
            cells.append(row)
    pooled = []
    for method in methods:
        mine = [run for run in runs if run.method == method]
        row = {"method": method, "runs": len(mine), "tasks": sorted({run.task for run in mine})}
        if mine:
            statistic = stats.aggregate_for(min(len([run for run in mine if run.task == task]) for task in row["tasks"]))
            row["statistic"] = statistic
            for score in SCORE_NAMES:
                row[score] = _interval(_per_task(mine, score), statistic, seed)
        pooled.append(row)
    comparisons = []
    for first, second in [*grid_comparisons(grid), *((label, label.removesuffix(SAMPLED_SUFFIX)) for label in sampled)]:
        mine, theirs = [run for run in runs if run.method == first], [run for run in runs if run.method == second]
        common = sorted({run.task for run in mine} & {run.task for run in theirs})
        if not common:
            continue
        entry: dict[str, Any] = {"a": first, "b": second, "tasks": common}
        for score in SCORE_NAMES:
            a, b = _per_task(mine, score, common), _per_task(theirs, score, common)
            if all(np.isfinite(v).all() for v in (*a.values(), *b.values())):
                interval = stats.probability_of_improvement_ci(a, b, seed=seed)
                entry[score] = {"value": round(interval.value, 4), "low": round(interval.low, 4), "high": round(interval.high, 4)}
        comparisons.append(entry)
    return {"cells": cells, "pooled": pooled, "comparisons": comparisons}


def _per_task(runs: list[Run], score: str, tasks: list[str] | None = None) -> dict[str, np.ndarray]:
    tasks = tasks or sorted({run.task for run in runs})
    return {task: _scores([run for run in runs if run.task == task], score) for task in tasks}


def grid_comparisons(grid: Any) -> list[tuple[str, str]]:
    """The pairs ``(a, b)`` the report gives P(a > b) for: the grid file's ``compare``, else
    every method against the first."""
    if grid.compare:
        return [tuple(pair) for pair in grid.compare]
    first = grid.methods[0].name
    return [(method.name, first) for method in grid.methods[1:]]


def _verdict(interval: dict[str, float] | None) -> str:
    if interval is None:
        return ""
    if interval["low"] > 0.5:
        return "better"
    if interval["high"] < 0.5:
        return "worse"
    return "tie (interval holds 0.5)"


def curve_lines(runs: list[Run]) -> list[dict[str, Any]]:
    """Every evaluation of every run: task, method, seed, env step, success, return, normalised return."""
    from lamp_eval.report.scores import run_normalised_returns

    lines = []
    for run in sorted(runs, key=lambda run: (run.task, run.method, run.seed)):
        for evaluation, value in zip(run.evaluations, run_normalised_returns(run)):
            lines.append({
                "task": run.task, "method": run.method, "seed": run.seed, "step": evaluation.step,
                "success_rate": evaluation.success_rate, "return_mean": round(evaluation.return_mean, 3),
                "normalised_return": None if not math.isfinite(value) else round(value, 4),
            })
        lines[-1]["wall_seconds"] = run.info.get("summary", {}).get("wall_seconds")
    return lines


def write_grid_report(grid: Any, out: str | Path, seed: int = 0) -> Path:
    """Rewrite the grid's report in ``out`` from its finished runs (see the module docstring).

    Returns:
        The path of ``grid.md``.
    """
    from lamp_eval.grid import plan_grid

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    planned = plan_grid(grid, out)
    finished_folders = [item.folder for item in planned if item.status == "finished"]
    runs = find_runs(finished_folders) if finished_folders else []
    runs += [view for run in runs if (view := run.sampled_view(f"{run.method}{SAMPLED_SUFFIX}")) is not None]
    summary = grid_summary(grid, runs, planned, seed)
    missing = [item for item in planned if item.status != "finished"]
    command = f"lamp-eval grid {shlex.quote(str(grid.path))} --out {shlex.quote(str(out))}"
    record = {
        "grid": str(grid.path), "command": command, "partial": bool(missing),
        "finished": len(planned) - len(missing), "planned": len(planned),
        "missing": [{"method": item.method.name, "task": item.config.task, "seed": item.config.seed, "status": item.status} for item in missing],
        "settings": grid.settings, "methods": {method.name: {"init": method.init, "preset": method.preset, **({"settings": method.settings} if method.settings else {})}
                    for method in grid.methods},
        **summary, "provenance": provenance(),
    }
    atomic_write_json(out / "summary.json", record)
    with atomic_open(out / "curves.jsonl") as handle:
        for line in curve_lines(runs):
            handle.write(json.dumps(line, sort_keys=True) + "\n")
    if runs:
        _write_figures(finished_folders, out, grid.methods[0].name)
    path = out / "grid.md"
    with atomic_open(path) as handle:
        handle.write(_markdown(grid, record, planned))
    return path


def _write_figures(folders: list[Path], out: Path, baseline: str) -> None:
    from lamp_eval.report import ReportConfig, leaderboard

    result = leaderboard(folders, out / "report", ReportConfig(gifs=False, score="norm-auc", baseline=baseline))
    for figure in ("curves.png", "normalised_per_task.png"):
        if (result.out / figure).is_file():
            shutil.copyfile(result.out / figure, out / figure)


def _markdown(grid: Any, record: dict[str, Any], planned: list[Any]) -> str:
    title = grid.description or f"Grid {grid.path.stem}"
    state = (f"**Partial: {record['finished']} of {record['planned']} runs finished.** The numbers below use the finished runs only."
             if record["partial"] else f"All {record['planned']} runs finished.")
    status_rows = []
    for method in grid.methods:
        for task in grid.tasks:
            items = [item for item in planned if item.method.name == method.name and item.config.task == task]
            counts = {status: [str(item.config.seed) for item in items if item.status == status] for status in ("finished", "partial", "missing")}
            status_rows.append(f"| {method.name} | {task} | {len(counts['finished'])}/{len(items)} | "
                               f"{', '.join(counts['partial']) or '–'} | {', '.join(counts['missing']) or '–'} |")
    settings = ", ".join(f"{name.replace('_', '-')} {value}" for name, value in sorted(grid.settings.items()))
    methods = "\n".join(f"- `{method.name}`: " + (f"from scratch, preset `{method.preset}`" if method.init == "scratch" else f"from `{method.init}`")
                        + "".join(f", {name.replace('_', '-')} {value}" for name, value in sorted(method.settings.items()))
                        for method in grid.methods)
    cell_rows = []
    for cell in record["cells"]:
        if not cell["runs"]:
            cell_rows.append(f"| {cell['task']} | {cell['method']} | 0/{cell['planned']} | | | | | | |")
            continue
        cell_rows.append(
            f"| {cell['task']} | {cell['method']} | {cell['runs']}/{cell['planned']} ({cell['statistic']}) | {_text(cell['norm-auc'])} "
            f"| {_text(cell['norm-final'])} | {_text(cell['final'])} | {cell['reached']} / {cell['fell_back']} "
            f"| {cell['minutes_per_run']:.0f} | {cell['updates_per_run']:.0f} |"
        )
    training_rows = [
        f"| {cell['task']} | {cell['method']} | {cell['runs']} | "
        + " | ".join(f"{cell['training'].get('first', {}).get(name, math.nan):.2f} → {cell['training'].get('last', {}).get(name, math.nan):.2f}"
                     for name in TRAINING_METRICS) + " |"
        for cell in record["cells"] if cell["runs"] and cell.get("training") and not cell["method"].endswith(SAMPLED_SUFFIX)
    ]
    sampled_note = (f"\nRows `<method>{SAMPLED_SUFFIX}` are the same runs evaluated on the same seeds with actions sampled from the "
                    "policy (DreamerV3's evaluation; `eval_sampled`), beside the mean action of the other rows; the sampled "
                    "episodes run on random streams of their own, so the runs trained exactly as without them.\n"
                    if any(cell["method"].endswith(SAMPLED_SUFFIX) for cell in record["cells"]) else "")
    pooled_rows = [
        f"| {row['method']} | {row['runs']} ({row['statistic']}) | {_text(row['norm-auc'])} | {_text(row['norm-final'])} | {_text(row['final'])} |"
        for row in record["pooled"] if row["runs"]
    ]
    comparison_rows = [
        f"| P({entry['a']} > {entry['b']}) | {', '.join(entry['tasks'])} | "
        + " | ".join(f"{_text(entry.get(score))} {_verdict(entry.get(score))}".strip() for score in SCORE_NAMES) + " |"
        for entry in record["comparisons"]
    ]
    info = record["provenance"]
    cpu = info.get("cpu", {})
    return f"""# {title}

{state}

Continue or regenerate (runs missing ones two at a time, continues interrupted ones from their last
checkpoint, skips finished ones, then rewrites this report):

    {record['command']}

Grid file `{grid.path}`; tasks {', '.join(f'`{task}`' for task in grid.tasks)}; seeds {', '.join(map(str, grid.seeds))};
settings: {settings or 'the lamp-eval finetune defaults'}. Methods:

{methods}

Normalised return: 0 is a uniform random policy, 1 the scripted expert, both measured on the
evaluation seeds every run shares. AUC: the normalised area under a run's curve over its
evaluations. Aggregates over seeds: IQM with at least {stats.MIN_IQM_RUNS} runs, the mean below (the
column says which); 95 % stratified-bootstrap CIs.
{sampled_note}
## Runs

| method | task | finished | partial (seeds) | missing (seeds) |
|---|---|---|---|---|
{chr(10).join(status_rows)}

## Per task

| task | method | runs | normalised-return AUC | final normalised return | final success | reached ≥ {REACHED} / of those fell < {FELL_BELOW} later | minutes per run | updates per run |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(cell_rows)}

## Training, first → last evaluation period (mean over runs, from `train.jsonl`)

| task | method | runs | {' | '.join(TRAINING_METRICS.values())} |
|---|---|---|{'---|' * len(TRAINING_METRICS)}
{chr(10).join(training_rows) or '| (no finished runs yet) | | |' + ' |' * len(TRAINING_METRICS)}

## Pooled over tasks

| method | runs | normalised-return AUC | final normalised return | final success |
|---|---|---|---|---|
{chr(10).join(pooled_rows) or '| (no finished runs yet) | | | | |'}

## Comparisons (probability that a run of A beats a run of B on a random common task, 95 % CI)

| comparison | tasks | normalised-return AUC | final normalised return | final success |
|---|---|---|---|---|
{chr(10).join(comparison_rows) or '| (none yet) | | | | |'}

Curves: `curves.png` (IQM with 95 % bootstrap bands) and `normalised_per_task.png`; every evaluation in `curves.jsonl`,
these numbers in `summary.json`.

Provenance: commit `{info.get('commit') or 'unknown'}`; CPU {cpu.get('model', 'unknown')} ({', '.join(cpu.get('numerics_flags', [])) or 'no AVX-512/AMX'});
{json.dumps(info.get('versions', {}), sort_keys=True)}; each run's `run.json` records the machine and config that made it.
"""
