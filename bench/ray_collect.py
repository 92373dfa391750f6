"""Collection throughput on the Ray executor against the local executor, on this machine.

Usage::

    .venv/bin/python bench/ray_collect.py                          # mw-pretrain, 64 px, 150-step episodes, 2 workers
    .venv/bin/python bench/ray_collect.py --env dummy --episode-length 200 --workers 2

Prints, all measured in this run with the same config and worker count:
  * the local executor (worker processes) steps/s, before and after the Ray run,
  * the Ray executor (one actor per worker on a local Ray instance) steps/s and its ratio to
    the local executor (goal >= 0.9: what Ray itself costs),
  * steps/s per worker, the figure to multiply by a node's cores when sizing a cluster,
  * wall time including start-up (spawning processes / actors, building envs, Ray's own start).

Steps/s are timed from every worker having built its env to the end, as ``collect`` reports them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from lamp_data.envs import EnvConfig

from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.pipeline.executors import ExecutorConfig


def timed_collect(out: Path, config: CollectConfig, executor: ExecutorConfig) -> tuple[float, float]:
    """(steps/s from workers ready, wall seconds including start-up) of one collect."""
    started = time.perf_counter()
    summary = collect(out, config, executor=executor, progress=False)
    return summary.steps_per_second, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="mw-pretrain")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=3, help="episodes per worker per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="Ray runs, each between two local runs")
    parser.add_argument("--episode-length", type=int, default=150)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--policy", default="random")
    args = parser.parse_args()
    config = CollectConfig(env=args.env, episodes=args.episodes * args.workers, policy=args.policy, shard_episodes=2, seed=0,
                           env_config=EnvConfig(episode_length=args.episode_length, image_size=args.image_size))
    print(f"env {args.env}, {args.image_size} px, {args.episode_length}-step episodes, policy {args.policy}, "
          f"{args.workers} workers x {args.episodes} episodes, {os.cpu_count()} cpus")

    import ray

    local = ExecutorConfig(workers=args.workers)
    on_ray = ExecutorConfig(kind="ray", workers=args.workers)
    locals_, rays = [], []
    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="warning")
    ray_start = time.perf_counter() - started
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            locals_.append(timed_collect(root / "local-0", config, local))
            for round_ in range(args.rounds):
                rays.append(timed_collect(root / f"ray-{round_}", config, on_ray))
                locals_.append(timed_collect(root / f"local-{round_ + 1}", config, local))
    finally:
        ray.shutdown()
    baseline = sum(rate for rate, _ in locals_) / len(locals_)
    rate = sum(rate for rate, _ in rays) / len(rays)

    def listed(runs: list[tuple[float, float]]) -> str:
        return ", ".join(f"{steps:.1f} ({wall:.1f} s wall)" for steps, wall in runs)

    print(f"local executor  {baseline:8.1f} steps/s  runs: {listed(locals_)}")
    print(f"ray executor    {rate:8.1f} steps/s  runs: {listed(rays)}; {ray_start:.1f} s to start Ray")
    print(f"ray / local     {rate / baseline:8.2f}  (goal >= 0.9; the Ray instance stays up during the local runs)")
    print(f"per worker      local {baseline / args.workers:6.1f}   ray {rate / args.workers:6.1f} steps/s")


if __name__ == "__main__":
    main()
