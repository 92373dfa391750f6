"""Collection throughput against the bare env loop, worker scaling, and bytes per env step.

Usage::

    .venv/bin/python bench/collect.py                      # mw-pretrain, 64 px, 150-step episodes
    .venv/bin/python bench/collect.py --env dummy --episode-length 200
    .venv/bin/python bench/collect.py --report results/collect-throughput   # also REPORT.md and .json

Prints, all measured in this run:
  * bare env loop (reset + step with rendering, random actions, no writing) steps/s,
  * ``collect`` with 1 and 2 workers steps/s (from every worker ready to the last shard
    committed, as ``collect`` reports them) in ``--repeats`` alternating pairs, the wall time of
    each call with start-up and shut-down of the workers, and the medians: 1 worker against the
    bare loop, and the 2-worker scaling (the median of the paired ratios),
  * the driver's (this process's) and the workers' CPU seconds per episode of the 2-worker run:
    the driver only counts progress (no arrays cross the queues; workers encode and write shards),
  * two bare env loops run at once (timed from a common start, once both have warmed up) against
    one: the machine's own ceiling for two workers; and 2 workers against that ceiling. A worker
    is ready once its env has reset once (the first reset sets up the renderer, about a second),
    as the bare loop's untimed warm-up episode does,
  * bytes per env step of our shards against LAMP's format (one ``np.savez_compressed``
    file per episode), and the cost / size of other frame encodings on the same frames.
"""

from __future__ import annotations

import argparse
import gzip
import io
import multiprocessing
import os
import queue
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.envs import EnvConfig, make_env
from lamp_data.pipeline.collect import CollectConfig, collect, record_episode
from lamp_data.pipeline.executors import ExecutorConfig
from lamp_data.store import iter_episodes, open_dataset


def bare_loop(config: CollectConfig, start_together: Any = None) -> float:
    """Steps/s of reset + step (which renders) with the same policy, writing nothing; with a
    barrier, the timed loop starts when every process holding it has warmed up."""
    env = make_env(config.env, config.env_config)
    try:
        record_episode(env, config, 10_000)  # warm-up, not counted
        if start_together is not None:
            start_together.wait()
        start = time.perf_counter()
        steps = 0
        for index in range(config.episodes):
            episode, _ = record_episode(env, config, index)
            steps += len(episode[schema.ACTION])
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def _bare_loop_process(config: CollectConfig, start_together: Any, results: Any) -> None:
    results.put(bare_loop(config, start_together))


def parallel_bare_loops(config: CollectConfig, count: int) -> float:
    """Summed steps/s of ``count`` bare env loops run at once in spawned processes, timed from a
    common start once all have warmed up: what the machine itself gives ``count`` busy
    processes, the ceiling of ``count`` collect workers."""
    context = multiprocessing.get_context("spawn")
    start_together, results = context.Barrier(count), context.Queue()
    processes = [context.Process(target=_bare_loop_process, args=(config, start_together, results), daemon=True)
                 for _ in range(count)]
    for process in processes:
        process.start()
    rates: list[float] = []
    while len(rates) < count:
        try:
            rates.append(results.get(timeout=1.0))
        except queue.Empty:
            if any(process.exitcode not in (None, 0) for process in processes):
                raise RuntimeError("a bare env loop process died; its traceback is above") from None
    for process in processes:
        process.join()
    return float(sum(rates))


def frame_encodings(frames: list[np.ndarray]) -> list[tuple[str, float, float]]:
    """(encoding, bytes per frame, ms per 100 frames) of each frame encoding on the same episodes."""
    from PIL import Image

    def npy(array: np.ndarray) -> bytes:
        stream = io.BytesIO()
        np.save(stream, array, allow_pickle=False)
        return stream.getvalue()

    def png_strip(array: np.ndarray, level: int) -> bytes:
        stream = io.BytesIO()
        Image.fromarray(array.reshape(-1, *array.shape[2:])).save(stream, format="PNG", compress_level=level)
        return stream.getvalue()

    encoders = {
        "npy (raw)": npy,
        "npy.gz level 1": lambda a: gzip.compress(npy(a), compresslevel=1, mtime=0),
        "npy.gz level 6 (ours)": lambda a: gzip.compress(npy(a), compresslevel=6, mtime=0),
        "npy.gz level 9": lambda a: gzip.compress(npy(a), compresslevel=9, mtime=0),
        "png strip level 1": lambda a: png_strip(a, 1),
        "png strip level 6": lambda a: png_strip(a, 6),
    }
    count = sum(len(f) for f in frames)
    rows = []
    for name, encode in encoders.items():
        start = time.perf_counter()
        size = sum(len(encode(f)) for f in frames)
        rows.append((name, size / count, (time.perf_counter() - start) * 1000 * 100 / count))
    return rows


def lamp_bytes_per_step(out: Path) -> tuple[float, float]:
    """Bytes per env step of our shards, and of one ``np.savez_compressed`` file per episode."""
    dataset = open_dataset(out)
    ours = sum(shard.bytes for shard in dataset.shards())
    steps = sum(shard.nsteps for shard in dataset.shards())
    theirs = 0
    with tempfile.TemporaryDirectory() as folder:
        for episode in iter_episodes(out):
            path = Path(folder) / f"{episode['__key__']}.npz"
            np.savez_compressed(path, **{key: episode[key] for key in schema.STEP_KEYS})
            theirs += path.stat().st_size
    return ours / steps, theirs / steps


def cpu_seconds(who: int) -> float:
    """User plus system CPU seconds of this process (``RUSAGE_SELF``) or its finished children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="mw-pretrain")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per measurement (per worker for 2 workers)")
    parser.add_argument("--episode-length", type=int, default=150)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--policy", default="random")
    parser.add_argument("--repeats", type=int, default=3, help="paired 1- and 2-worker runs; the medians are reported")
    parser.add_argument("--report", type=Path, help="Also write REPORT.md (these lines) and REPORT.json (the figures, provenance).")
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        print(line)
        lines.append(line)

    config = CollectConfig(env=args.env, episodes=args.episodes, policy=args.policy, shard_episodes=2, seed=0,
                           env_config=EnvConfig(episode_length=args.episode_length, image_size=args.image_size))
    say(f"env {args.env}, {args.image_size} px, {args.episode_length}-step episodes, policy {args.policy}, "
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} at the start (run it on an idle machine)")
    with tempfile.TemporaryDirectory() as folder:
        before = bare_loop(config)
        two_config = CollectConfig(**{**config.__dict__, "episodes": 2 * args.episodes})
        ones, twos, ratios = [], [], []
        for repeat in range(args.repeats):
            # 1 and 2 workers alternate, so a slower or faster stretch of the machine touches both
            started = time.perf_counter()
            one = collect(Path(folder) / f"w1-{repeat}", config, progress=False)
            one_wall = time.perf_counter() - started
            driver, workers, started = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
            two = collect(Path(folder) / f"w2-{repeat}", two_config, progress=False, executor=ExecutorConfig(workers=2))
            two_wall = time.perf_counter() - started
            driver = (cpu_seconds(resource.RUSAGE_SELF) - driver) / two_config.episodes
            workers = (cpu_seconds(resource.RUSAGE_CHILDREN) - workers) / two_config.episodes
            ones.append(one.steps_per_second)
            twos.append(two.steps_per_second)
            ratios.append(two.steps_per_second / one.steps_per_second)
            say(f"repeat {repeat}: 1 worker {one.steps_per_second:6.1f} steps/s ({one_wall:.1f} s wall), "
                f"2 workers {two.steps_per_second:6.1f} steps/s ({two_wall:.1f} s wall) = {ratios[-1]:.2f} x; "
                f"CPU s per episode: driver {driver:.3f}, workers {workers:.3f} (start-up included)")
        after = bare_loop(config)
        bare = (before + after) / 2
        ceiling = parallel_bare_loops(config, 2) / bare
        one_median, two_median = float(np.median(ones)), float(np.median(twos))
        say(f"bare env loop (1 process)     {bare:8.1f} steps/s  (before {before:.1f}, after {after:.1f} the collect runs)")
        say(f"collect, 1 worker             {one_median:8.1f} steps/s  = {one_median / bare:.2f} x bare (goal >= 0.9); median of {args.repeats}")
        say(f"collect, 2 workers            {two_median:8.1f} steps/s  = {float(np.median(ratios)):.2f} x 1 worker (goal >= 1.8); "
            f"median of the {args.repeats} paired ratios {', '.join(f'{r:.2f}' for r in ratios)}")
        say(f"2 bare env loops at once      {ceiling:8.2f} x 1 bare loop: what this machine gives two busy processes")
        say(f"collect, 2 workers            {two_median / (ceiling * bare):8.2f} x 2 bare env loops at once (goal >= 0.9)")
        folder = Path(folder)
        one_folder = folder / "w1-0"
        ours, theirs = lamp_bytes_per_step(one_folder)
        say(f"bytes per env step: ours {ours:8.0f}   LAMP npz per episode {theirs:8.0f}   ({ours / theirs:.2f} x)")
        frames = [episode[schema.IMAGE] for episode in iter_episodes(one_folder)]
    say("frame encodings on the same frames:")
    for name, size, milliseconds in frame_encodings(frames):
        say(f"  {name:24s} {size:8.0f} bytes/frame   {milliseconds:7.1f} ms per 100 frames")
    if args.report:
        from report import command_line, write_report

        figures = {"bare_steps_per_second": bare, "one_worker_steps_per_second": one_median,
                   "two_workers_steps_per_second": two_median, "paired_ratios": ratios,
                   "two_bare_loops_over_one": ceiling, "two_workers_over_two_bare_loops": two_median / (ceiling * bare),
                   "bytes_per_step": ours, "lamp_npz_bytes_per_step": theirs}
        write_report(args.report, "Collection throughput", command_line("collect.py", None),
                     "All measured in one run:\n\n```\n" + "\n".join(lines) + "\n```\n", figures)


if __name__ == "__main__":
    main()
