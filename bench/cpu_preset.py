"""What a finetuning update of each candidate `cpu` preset costs, against `cpu-v1` in the same run.

Usage::

    .venv/bin/python bench/cpu_preset.py --report results/cpu-preset/cost
    .venv/bin/python bench/cpu_preset.py --candidates cpu-v1 cpu results/cpu-preset/candidates/h15.yaml

Each candidate (a preset name or YAML file) builds a scratch agent for 64-px Meta-World frames and
runs finetuning updates on batches drawn from random episodes held in memory (no env, no data
loading: the update alone), one torch thread, in alternating rounds so a noisy machine slows every
candidate alike; the median round is reported. Per candidate: milliseconds per update, updates
per CPU-second, replayed steps (``batch_size * seq_len``) per CPU-second, updates per env step of
its schedule and the update time one env step pays for, each also as a ratio to the first
candidate. Learning itself is measured by the grid (``lamp-eval grid results/cpu-preset/screen.yaml``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, write_report  # noqa: E402

CANDIDATES = Path(__file__).resolve().parent.parent / "results" / "cpu-preset" / "candidates"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=None,
                        help="Presets or YAML files, the first the baseline (default: cpu-v1, cpu and every file in results/cpu-preset/candidates).")
    parser.add_argument("--updates", type=int, default=10, help="Updates per round and candidate.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds.")
    parser.add_argument("--report", type=Path, default=None, help="Write REPORT.md and REPORT.json.")
    return parser.parse_args(argv)


def _episode(rng: np.random.Generator, decisions: int = 75) -> dict[str, np.ndarray]:
    """A random 64-px episode in the store's schema (content does not change an update's cost)."""
    flags = np.zeros(decisions + 1, bool)
    first, last = flags.copy(), flags.copy()
    first[0], last[-1] = True, True
    return {
        "image": rng.integers(0, 256, (decisions + 1, 64, 64, 3), dtype=np.uint8),
        "state": rng.normal(size=(decisions + 1, 7)).astype(np.float32),
        "action": rng.uniform(-1, 1, (decisions, 4)).astype(np.float32),
        "reward": rng.normal(size=decisions).astype(np.float32),
        "success": flags.copy(), "is_first": first, "is_last": last, "is_terminal": flags.copy(),
    }


def measure(names: list[str], updates: int, rounds: int) -> list[dict]:
    """Per candidate: the median round's CPU seconds per update, and what follows from it."""
    import torch

    from lamp_agent import Agent, load_preset
    from lamp_agent.core.replay import EpisodeReplay
    from lamp_agent.online import with_lang

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    episodes = [_episode(rng) for _ in range(6)]
    lang = rng.normal(size=384).astype(np.float32)
    setups = []
    for name in names:
        config = load_preset(name)
        agent = Agent(config, image_size=64, state_dim=7, action_dim=4, lang_dim=384, seed=0)
        replay = EpisodeReplay(100_000, config.seq_len, seed=0, prioritize_ends=config.prioritize_ends)
        for episode in episodes:
            replay.add_episode(episode)
        agent.train_step(with_lang(replay.sample(config.batch_size), lang), mode="finetune")  # warm-up
        setups.append((name, config, agent, replay))
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, config, agent, replay in setups:
            started = time.process_time()
            for _ in range(updates):
                agent.train_step(with_lang(replay.sample(config.batch_size), lang), mode="finetune")
            seconds[name].append((time.process_time() - started) / updates)
    rows = []
    for name, config, agent, _ in setups:
        per_update = statistics.median(seconds[name])
        rows.append({
            "candidate": Path(name).stem if name.endswith(".yaml") else name,
            "ms_per_update": round(per_update * 1000, 1),
            "updates_per_cpu_second": round(1 / per_update, 2),
            "replayed_steps_per_cpu_second": round(config.batch_size * config.seq_len / per_update, 0),
            "updates_per_env_step": round(config.updates_per_env_step, 4),
            "update_ms_per_env_step": round(config.updates_per_env_step * per_update * 1000, 2),
            "precision": agent.precision,
        })
    base = rows[0]
    for row in rows:
        for key in ("ms_per_update", "replayed_steps_per_cpu_second", "update_ms_per_env_step"):
            row[f"{key}_ratio"] = round(row[key] / base[key], 3)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    names = args.candidates or ["cpu-v1", "cpu", *sorted(str(path) for path in CANDIDATES.glob("*.yaml"))]
    rows = measure(names, args.updates, args.rounds)
    lines = [
        "| candidate | ms per update | × cpu-v1 | updates per CPU-s | replayed steps per CPU-s | × cpu-v1 | updates per env step | update ms per env step | × cpu-v1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['candidate']}` | {row['ms_per_update']} | {row['ms_per_update_ratio']} | {row['updates_per_cpu_second']} "
            f"| {row['replayed_steps_per_cpu_second']:.0f} | {row['replayed_steps_per_cpu_second_ratio']} | {row['updates_per_env_step']} "
            f"| {row['update_ms_per_env_step']} | {row['update_ms_per_env_step_ratio']} |"
        )
    from lamp_data.provenance import cpu_description

    cpu = cpu_description()
    markdown = (
        f"One torch thread, median of {args.rounds} alternating rounds of {args.updates} finetuning updates, 64-px frames; "
        f"CPU {cpu['model']} ({', '.join(cpu['numerics_flags'])}). Ratios are against the first row, measured in the same run.\n\n"
        + "\n".join(lines) + "\n"
    )
    print(markdown)
    if args.report:
        write_report(args.report, "Cost of a finetuning update per candidate preset", command_line("cpu_preset.py", argv), markdown,
                     {"rows": rows, "updates": args.updates, "rounds": args.rounds})


if __name__ == "__main__":
    main()
