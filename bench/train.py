"""Agent update speed on CPU, and how much of it is spent waiting for data.

Usage::

    .venv/bin/python bench/train.py                       # tiny and small presets
    .venv/bin/python bench/train.py --presets small --updates 10

For each preset, all measured in this run on the same dummy-env dataset (64 px frames):
  * updates/s on one batch held in memory (the baseline: no data loading at all),
  * updates/s streaming batches from the shards (SequenceDataset behind the background
    prefetcher, as ``pretrain`` does), and its ratio to the baseline,
  * the share of step time spent waiting for a batch (goal: under 5 %).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lamp_agent import Agent, load_preset
from lamp_agent.core.stream import HindsightPrompts, Prefetcher
from lamp_data.collect import CollectConfig, collect
from lamp_data.store import SequenceDataset

PROMPTS = ["reach the red block", "push the red block", "paint it blue"]


class ColourScorer:
    """Stand-in reward model so the bench needs no VLM weights: one colour channel per prompt."""

    prompts = PROMPTS
    fingerprint = "colour-bench"
    info = {"model_spec": "colour:channels", "model": {"family": "colour"}}

    def score(self, frames: np.ndarray) -> np.ndarray:
        return (frames.astype(np.float32) / 255).mean((1, 2)).astype(np.float16)


def make_dataset(folder: Path, episodes: int) -> Path:
    out = folder / "data"
    config = CollectConfig(env="dummy", episodes=episodes, shard_episodes=4, image_size=64, episode_length=64, seed=0)
    collect(out, config, scorer_factory=ColourScorer, progress=False)
    return out


def bench_preset(name: str, data: Path, updates: int, warmup: int) -> dict[str, float]:
    config = load_preset(name)
    lang_table = torch.as_tensor(np.random.default_rng(0).normal(size=(len(PROMPTS), 384)).astype(np.float32))
    agent = Agent(config, image_size=64, state_dim=4, action_dim=4, lang_dim=384, seed=0)
    stream = SequenceDataset(
        data, seq_len=config.seq_len, batch_size=config.batch_size, reward_set=ColourScorer.fingerprint,
        prompt_chooser=HindsightPrompts(PROMPTS, config.own_prompt_fraction), seed=0, refresh_seconds=1e9,
    )

    def with_lang(batch):
        batch["lang"] = lang_table[batch["prompt_index"]]
        return batch

    with Prefetcher(stream) as batches:
        held = with_lang(next(batches))
        for _ in range(warmup):
            agent.train_step(held)
        started = time.perf_counter()
        for _ in range(updates):
            agent.train_step(held)
        in_memory = updates / (time.perf_counter() - started)

        batches.wait_seconds = 0.0
        started = time.perf_counter()
        for _ in range(updates):
            agent.train_step(with_lang(next(batches)))
        elapsed = time.perf_counter() - started
    return {
        "in_memory": in_memory, "streamed": updates / elapsed, "wait_share": batches.wait_seconds / elapsed,
        "batch": f"{config.batch_size}x{config.seq_len}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--updates", type=int, default=0, help="updates per measurement (default: 30 tiny, 4 small)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (more stall on a shared CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    with tempfile.TemporaryDirectory() as folder:
        data = make_dataset(Path(folder), args.episodes)
        for name in args.presets:
            updates = args.updates or (30 if name == "tiny" else 4)
            result = bench_preset(name, data, updates, warmup=2 if name == "tiny" else 1)
            print(
                f"{name:6s} batch {result['batch']:>6s}: in memory {result['in_memory']:7.2f} updates/s | "
                f"streamed from shards {result['streamed']:7.2f} updates/s "
                f"(ratio {result['streamed'] / result['in_memory']:.2f}) | waiting for data {100 * result['wait_share']:.1f}% of step time"
            )


if __name__ == "__main__":
    main()
