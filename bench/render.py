"""Rendered env steps per second: our embedded env against Meta-World's stock rgb_array path.

Both run the same task at the same image size, one rendered frame per step, in this process
(one after the other, so they share the machine's load). Prints steps/s of each, their ratio,
steps per CPU-second (per core), and the peak memory of a ``mw-pretrain`` worker.

The cost of LAMP's second (wrist) camera: steps/s of our randomized env with the front camera
alone and with front + wrist, and the bytes one recorded step takes in real shards of each
(``collect`` of a few random-policy episodes into a temporary dataset, bytes of its committed
shards over its steps).

Usage::

    .venv/bin/python bench/render.py            # ~1 minute
    .venv/bin/python bench/render.py --steps 1000 --image-size 96
    .venv/bin/python bench/render.py --image-size 128   # LAMP's frames
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")


def _time_steps(step, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``steps`` calls of ``step``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_ours(task: str, steps: int, image_size: int, randomized: bool, cameras: tuple[str, ...] = ("front",)) -> tuple[float, float]:
    from lamp_data.envs import EnvConfig, RandomizationConfig
    from lamp_data.envs.metaworld_suite import make_task_env

    randomization = RandomizationConfig() if randomized else RandomizationConfig.canonical()
    config = EnvConfig(image_size=image_size, episode_length=100, randomization=randomization, cameras=cameras)
    env = make_task_env(task, config)
    state = {"seed": 0}
    env.reset(seed=0)
    action = env.action_space.sample()

    def step():
        _, _, _, truncated, _ = env.step(action)
        if truncated:
            state["seed"] += 1
            env.reset(seed=state["seed"])

    result = _time_steps(step, steps)
    env.close()
    return result


def bench_stock(task: str, steps: int, image_size: int) -> tuple[float, float]:
    import metaworld

    benchmark = metaworld.MT1(f"{task}-v3", seed=0)
    env = benchmark.train_classes[f"{task}-v3"](render_mode="rgb_array", camera_name="corner2", width=image_size, height=image_size)
    env.set_task(benchmark.train_tasks[0])
    env.reset()
    action = env.action_space.sample()
    state = {"steps": 0}

    def step():
        env.step(action)
        env.render()
        state["steps"] += 1
        if state["steps"] % 100 == 0:
            env.reset()

    result = _time_steps(step, steps)
    env.close()
    return result


def stored_bytes_per_step(task: str, image_size: int, cameras: tuple[str, ...], episodes: int, length: int) -> dict[str, float]:
    """Bytes per recorded step of random-policy episodes of ``task`` (randomized) collected into a
    temporary dataset with ``cameras``: of its committed shards (``shards``, tar padding included)
    and of each sample file, summed over episodes (``image.npy.gz``, ``image_wrist.npy.gz``, ...)."""
    import tarfile

    from lamp_data.envs import EnvConfig
    from lamp_data.pipeline.collect import CollectConfig, collect
    from lamp_data.store import open_dataset

    with tempfile.TemporaryDirectory() as folder:
        config = CollectConfig(env=f"mw-{task}", episodes=episodes, shard_episodes=episodes,
                               env_config=EnvConfig(image_size=image_size, episode_length=length, cameras=cameras))
        collect(folder, config, progress=False)
        shards = open_dataset(folder).shards()
        steps = sum(shard.nsteps for shard in shards)
        sizes = {"shards": sum(shard.bytes for shard in shards) / steps}
        for shard in shards:
            with tarfile.open(shard.tar_path) as archive:
                for member in archive:
                    field = member.name.partition(".")[2]
                    sizes[field] = sizes.get(field, 0.0) + member.size / steps
        return sizes


def pretrain_worker_memory(episodes: int, image_size: int) -> tuple[float, int]:
    """Peak RSS (MB) after ``episodes`` short episodes of ``mw-pretrain``, and tasks seen."""
    from lamp_data.envs import make_env

    env = make_env("mw-pretrain", image_size=image_size, episode_length=10)
    seen = set()
    for seed in range(episodes):
        _, info = env.reset(seed=seed)
        seen.add(info["task"])
        for _ in range(10):
            env.step(env.action_space.sample())
    env.close()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pick-place")
    parser.add_argument("--steps", default=600, type=int, help="rendered steps of our env")
    parser.add_argument("--stock-steps", default=100, type=int, help="rendered steps of the slow stock env")
    parser.add_argument("--image-size", default=64, type=int)
    parser.add_argument("--episodes", default=40, type=int, help="mw-pretrain episodes for the memory check")
    parser.add_argument("--store-episodes", default=4, type=int, help="episodes recorded per camera setting for bytes/step")
    parser.add_argument("--store-length", default=50, type=int, help="steps of each of those episodes")
    args = parser.parse_args()
    print(f"task {args.task}, {args.image_size} px, one rendered frame per step, cores available: {os.cpu_count()}")
    rows = [
        ("meta-world stock rgb_array", args.stock_steps, *bench_stock(args.task, args.stock_steps, args.image_size)),
        ("lamp canonical", args.steps, *bench_ours(args.task, args.steps, args.image_size, randomized=False)),
        ("lamp randomized", args.steps, *bench_ours(args.task, args.steps, args.image_size, randomized=True)),
        ("lamp randomized front+wrist", args.steps,
         *bench_ours(args.task, args.steps, args.image_size, randomized=True, cameras=("front", "wrist"))),
    ]
    stock_rate = rows[0][1] / rows[0][2]
    for name, steps, wall, cpu in rows:
        rate = steps / wall
        print(
            f"{name:28s} {rate:8.1f} steps/s   {steps / cpu:8.1f} steps per CPU-second (per core)"
            f"   {rate / stock_rate:5.2f}x stock"
        )
    front_rate, both_rate = (rows[2][1] / rows[2][2]), (rows[3][1] / rows[3][2])
    print(f"wrist camera: {both_rate / front_rate:.2f}x the steps/s of the front camera alone")
    stored = {
        cameras: stored_bytes_per_step(args.task, args.image_size, cameras, args.store_episodes, args.store_length)
        for cameras in (("front",), ("front", "wrist"))
    }
    for cameras, sizes in stored.items():
        frames = ", ".join(f"{field} {size:.0f}" for field, size in sizes.items() if ".npy.gz" in field)
        print(f"stored {'+'.join(cameras):12s} {sizes['shards']:10.0f} bytes per step in shards ({frames}; "
              f"{args.store_episodes} random-policy episodes x {args.store_length} steps, randomized)")
    ratio = stored[("front", "wrist")]["shards"] / stored[("front",)]["shards"]
    print(f"wrist camera: {ratio:.2f}x the bytes per stored step")
    peak, seen = pretrain_worker_memory(args.episodes, args.image_size)
    print(f"mw-pretrain worker: {args.episodes} episodes over {seen} tasks, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
