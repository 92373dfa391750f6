"""Agent update speed per precision, how much of it is spent waiting for data, and whether bf16 learns.

Usage::

    .venv/bin/python bench/train.py                       # tiny and small presets, on CPU
    .venv/bin/python bench/train.py --presets small paper --updates 5
    .venv/bin/python bench/train.py --device cuda --presets paper
    .venv/bin/python bench/train.py --learning-check      # tiny, 300 updates, fp32 vs bf16

For each preset, all measured in this run on the same dummy-env dataset (64 px frames):
  * updates/s in float32 on one batch held in memory (the baseline: no data loading at all),
  * updates/s in float32 streaming batches from the shards (ShardReplay behind the
    background prefetcher, as ``pretrain`` does), its ratio to the baseline, and the share of
    step time spent waiting for a batch (goal: under 5 %),
  * updates/s with bf16 autocast, and with bf16 plus channels-last convs, on the held batch,
    as ratios to the float32 baseline.

``--learning-check`` trains seed 0 in fp32 and in bf16, and seed 1 (up to ``--check-seeds`` - 1) in
fp32, on the same fixed batches, and compares the losses at the end: bf16 passes where its distance
from fp32 is within the seed-to-seed spread of fp32. bf16 rounding changes the sampled latents and
actions, so same-seed runs drift apart like different seeds, and one seed pair is a noisy spread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lamp_agent import Agent, load_preset
from lamp_agent.config import AgentConfig
from lamp_agent.core.replay import HindsightPrompts, ShardReplay
from lamp_data.envs import EnvConfig
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.prefetch import Prefetcher

PROMPTS = ["reach the red block", "push the red block", "paint it blue"]
VARIANTS = {"fp32": {}, "bf16": {"precision": "bf16"}, "bf16+cl": {"precision": "bf16", "channels_last": True}}
"""Config overrides of each measured variant; ``fp32`` is the baseline."""
CHECKED_LOSSES = ("model_loss", "reward_loss", "actor_loss", "critic_loss")


class ColourScorer:
    """Stand-in reward model so the bench needs no VLM weights: one colour channel per prompt."""

    prompts = PROMPTS
    fingerprint = "colour-bench"
    info = {"model_spec": "colour:channels", "model": {"family": "colour"}}

    def score(self, frames: np.ndarray) -> np.ndarray:
        return (frames.astype(np.float32) / 255).mean((1, 2)).astype(np.float16)


def make_dataset(folder: Path, episodes: int) -> Path:
    out = folder / "data"
    config = CollectConfig(env="dummy", episodes=episodes, shard_episodes=4, seed=0, env_config=EnvConfig(image_size=64, episode_length=64))
    collect(out, config, scorer_factory=ColourScorer, progress=False)
    return out


def batch_stream(data: Path, config: AgentConfig) -> Prefetcher:
    """Training batches of ``data`` with prompt embeddings, prefetched on a background thread."""
    lang_table = torch.as_tensor(np.random.default_rng(0).normal(size=(len(PROMPTS), 384)).astype(np.float32))
    stream = ShardReplay(
        data, seq_len=config.seq_len, batch_size=config.batch_size, reward_set=ColourScorer.fingerprint,
        prompt_chooser=HindsightPrompts(PROMPTS, config.own_prompt_fraction), seed=0, refresh_seconds=1e9,
    )

    def with_lang(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch["lang"] = lang_table[batch["prompt_index"]]
        return batch

    return Prefetcher(with_lang(batch) for batch in stream)


def on_device(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def make_agent(config: AgentConfig, device: str, seed: int = 0) -> Agent:
    return Agent(config, image_size=64, state_dim=4, action_dim=4, lang_dim=384, device=device, seed=seed)


def updates_per_second(agent: Agent, next_batch: Callable[[], dict], updates: int, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(updates):
        agent.train_step(next_batch())
    if device == "cuda":
        torch.cuda.synchronize()
    return updates / (time.perf_counter() - started)


def bench_preset(name: str, data: Path, updates: int, warmup: int, device: str) -> dict[str, float | str]:
    """Updates/s of every variant on a held batch, and of fp32 streaming from the shards."""
    config = load_preset(name)
    result: dict[str, float | str] = {"batch": f"{config.batch_size}x{config.seq_len}"}
    with batch_stream(data, config) as batches:
        held = on_device(next(batches), device)
        for variant, overrides in VARIANTS.items():
            agent = make_agent(config.replace(**overrides), device)
            for _ in range(warmup):
                agent.train_step(held)
            result[variant] = updates_per_second(agent, lambda: held, updates, device)
            if variant == "fp32":
                batches.wait_seconds = 0.0
                started = time.perf_counter()
                result["streamed"] = updates_per_second(agent, lambda: next(batches), updates, device)
                result["wait_share"] = batches.wait_seconds / (time.perf_counter() - started)
    return result


def print_speed_table(results: dict[str, dict[str, float | str]]) -> None:
    print(f"{'preset':7s} {'batch':>6s} | {'fp32 upd/s':>10s} | {'streamed':>16s} {'wait':>6s} | {'bf16':>16s} | {'bf16+channels-last':>18s}")
    for name, result in results.items():
        base = result["fp32"]
        cells = {key: f"{result[key]:7.2f} ({result[key] / base:.2f}x)" for key in ("streamed", "bf16", "bf16+cl")}
        print(
            f"{name:7s} {result['batch']:>6s} | {base:10.2f} | {cells['streamed']:>16s} {100 * result['wait_share']:5.1f}% | "
            f"{cells['bf16']:>16s} | {cells['bf16+cl']:>18s}"
        )


def learning_check(data: Path, preset: str, updates: int, device: str, seeds: int = 2, fixed_batches: int = 8, tail: int = 30) -> bool:
    """Train seed 0 in fp32 and in bf16, and seeds 1.. in fp32, on the same batches; print the final losses.

    A final loss is the mean over the last ``tail`` updates; the seed spread of a loss is its
    largest distance between fp32 seed 0 and another fp32 seed. Returns whether every bf16 loss
    is within that spread of the fp32 loss.
    """
    config = load_preset(preset)
    with batch_stream(data, config) as batches:
        fixed = [on_device(next(batches), device) for _ in range(fixed_batches)]
    runs = {"fp32 s0": ("fp32", 0), "bf16 s0": ("bf16", 0), **{f"fp32 s{seed}": ("fp32", seed) for seed in range(1, seeds)}}
    finals: dict[str, dict[str, float]] = {}
    for label, (precision, seed) in runs.items():
        agent = make_agent(config.replace(precision=precision), device, seed)
        history: dict[str, list[float]] = {key: [] for key in CHECKED_LOSSES}
        started = time.perf_counter()
        for step in range(updates):
            metrics = agent.train_step(fixed[step % fixed_batches])
            for key in CHECKED_LOSSES:
                history[key].append(metrics[key])
        finals[label] = {key: float(np.mean(values[-tail:])) for key, values in history.items()}
        print(f"  {label}: {updates} updates in {time.perf_counter() - started:.0f} s")

    print(f"\n{preset}, {updates} updates on {fixed_batches} fixed batches; final = mean of the last {tail} updates")
    print(f"{'loss':12s} " + " ".join(f"{label:>10s}" for label in runs) + f" | {'|bf16-fp32|':>11s} {'seed spread':>11s}  within")
    passed = True
    for key in CHECKED_LOSSES:
        values = {label: final[key] for label, final in finals.items()}
        fp32, others = values["fp32 s0"], [values[f"fp32 s{seed}"] for seed in range(1, seeds)]
        gap, spread = abs(values["bf16 s0"] - fp32), max(abs(other - fp32) for other in others)
        passed &= gap <= spread
        row = " ".join(f"{value:10.4f}" for value in values.values())
        print(f"{key:12s} {row} | {gap:11.4f} {spread:11.4f}  {'yes' if gap <= spread else 'NO'}")
    print(f"bf16 {'is' if passed else 'is NOT'} within the fp32 seed-to-seed spread on every loss ({seeds} fp32 seeds)")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"], help="presets to time (tiny small paper)")
    parser.add_argument("--updates", type=int, default=0, help="updates per measurement (default: 30 tiny, 4 otherwise)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (more stall on a shared CPU)")
    parser.add_argument("--learning-check", action="store_true", help="compare fp32 and bf16 training instead of timing")
    parser.add_argument("--check-preset", default="tiny", help="preset of the learning check")
    parser.add_argument("--check-updates", type=int, default=300, help="updates per run of the learning check")
    parser.add_argument("--check-seeds", type=int, default=2, help="fp32 seeds that measure the seed-to-seed spread (at least 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}")
    with tempfile.TemporaryDirectory() as folder:
        data = make_dataset(Path(folder), args.episodes)
        if args.learning_check:
            learning_check(data, args.check_preset, args.check_updates, args.device, max(args.check_seeds, 2))
            return
        results = {}
        for name in args.presets:
            updates = args.updates or (30 if name == "tiny" else 4)
            results[name] = bench_preset(name, data, updates, warmup=2 if name == "tiny" else 1, device=args.device)
        print_speed_table(results)


if __name__ == "__main__":
    main()
