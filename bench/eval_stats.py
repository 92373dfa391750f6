"""Bootstrap cost of a leaderboard: our vectorised estimators against per-replicate loops.

The baseline resamples one replicate at a time (as a straightforward loop would, and as
rliable does), calling ``scipy.stats.trim_mean`` and ``scipy.stats.mannwhitneyu`` per
replicate; ours draws every replicate at once and reduces along an axis. Both run here, one
after the other, on the same synthetic scores, and give the same numbers for the same draws.

Usage::

    .venv/bin/python bench/eval_stats.py              # about a minute, mostly the baseline loops
    .venv/bin/python bench/eval_stats.py --tasks 10 --seeds 20 --reps 5000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats as scipy_stats

from lamp_eval import stats


def loop_iqm_ci(scores: dict[str, np.ndarray], reps: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(reps):
        sample = np.concatenate([runs[rng.integers(0, runs.size, runs.size)] for _, runs in sorted(scores.items())])
        replicates.append(scipy_stats.trim_mean(sample, 0.25))
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def loop_poi_ci(x: dict[str, np.ndarray], y: dict[str, np.ndarray], reps: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(reps):
        per_task = []
        for task in sorted(x):
            a = x[task][rng.integers(0, x[task].size, x[task].size)]
            b = y[task][rng.integers(0, y[task].size, y[task].size)]
            per_task.append(scipy_stats.mannwhitneyu(a, b).statistic / (a.size * b.size))
        replicates.append(np.mean(per_task))
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--methods", type=int, default=6)
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    methods = {
        f"method{m}": {f"task{t}": rng.beta(1 + m, 3, args.seeds) for t in range(args.tasks)} for m in range(args.methods)
    }
    baseline = methods["method0"]

    loop_total = ours_total = 0.0
    for scores in methods.values():
        (_, loop_seconds) = timed(loop_iqm_ci, scores, args.reps, 0)
        (_, ours_seconds) = timed(stats.stratified_bootstrap_ci, scores, "iqm", reps=args.reps)
        loop_total += loop_seconds
        ours_total += ours_seconds
    print(f"IQM CI, {args.methods} methods x {args.tasks} tasks x {args.seeds} seeds, {args.reps} replicates:")
    print(f"  per-replicate loop {loop_total:.3f} s   vectorised {ours_total:.3f} s   speed-up x{loop_total / ours_total:.1f}")

    loop_total = ours_total = 0.0
    for scores in methods.values():
        if scores is baseline:
            continue
        (_, loop_seconds) = timed(loop_poi_ci, scores, baseline, args.reps, 0)
        (_, ours_seconds) = timed(stats.probability_of_improvement_ci, scores, baseline, reps=args.reps)
        loop_total += loop_seconds
        ours_total += ours_seconds
    print(f"P(improvement) CI, {args.methods - 1} comparisons:")
    print(f"  per-replicate loop {loop_total:.3f} s   vectorised {ours_total:.3f} s   speed-up x{loop_total / ours_total:.1f}")

    # the same draws give the same interval (check the vectorised statistic, not just its speed)
    scores = methods["method2"]
    resampled = stats.stratified_resample(scores, 200, np.random.default_rng(1))
    per_row = [scipy_stats.trim_mean(row, 0.25) for row in resampled]
    assert np.allclose(stats.iqm(resampled, axis=1), per_row)
    print("  vectorised IQM equals trim_mean per replicate: ok")


if __name__ == "__main__":
    main()
