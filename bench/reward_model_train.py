"""Reward-model training speed: torch's default thread count against the one-thread default.

Usage::

    .venv/bin/python bench/reward_model_train.py               # 64 px, batch 16, 20 steps each
    .venv/bin/python bench/reward_model_train.py --steps 50 --batch-size 32

Collects a few dummy-env episodes at 64 px, then times training steps of the default
architecture (conv-small trunk, MiniLM text side) with ``threads=1`` (the default) and with
torch's default thread count, on the same batches, and prints steps/s and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lamp_data.envs import EnvConfig

from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.rewards.training import train as training
from lamp_data.rewards.training.data import load_training_episodes


def _steps_per_second(episodes, config: training.RewardModelTrainConfig, steps: int, threads: int) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run = training.build_training_run(Path(tempfile.mkdtemp()), config, episodes)
        table = run.model.lang_enc.table
        training.train_step(run, table)
        started = time.perf_counter()
        for _ in range(steps):
            training.train_step(run, table)
        return steps / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp()) / "data"
    collect(folder, CollectConfig(env="dummy", episodes=16, policy="expert", env_config=EnvConfig(image_size=arguments.image_size, episode_length=20)), progress=False)
    episodes = load_training_episodes([folder])
    config = training.RewardModelTrainConfig(batch_size=arguments.batch_size, image_size=arguments.image_size)
    default_threads = torch.get_num_threads()
    one = _steps_per_second(episodes, config, arguments.steps, 1)
    many = _steps_per_second(episodes, config, arguments.steps, default_threads)
    print(f"batch {arguments.batch_size} x 4 frames at {arguments.image_size} px, {arguments.steps} steps each")
    print(f"threads=1 (default):           {one:6.2f} steps/s")
    print(f"threads={default_threads} (torch default):     {many:6.2f} steps/s")
    print(f"ratio one thread / torch default: {one / many:.2f}x")


if __name__ == "__main__":
    main()
