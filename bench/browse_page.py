"""A browse page of real Meta-World data, rendered in headless Chromium, and its screenshot.

Collects randomized noisy-expert episodes of the pretraining tasks, scores them with the shipped
reward model (``lamp-r3m-metaworld``) against every task's instruction, writes the
``lamp-data browse`` page, opens it in headless Chromium on a successful episode and saves a
screenshot. Prints the page's size, Chromium's console messages (there should be none) and the
time each step took. Needs Chromium (``apt-get install chromium``).

Usage::

    .venv/bin/python bench/browse_page.py                           # about 2 minutes on one core
    .venv/bin/python bench/browse_page.py --out results/examples/browse-metaworld.png
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", default="results/examples/browse-metaworld.png", help="The screenshot (.png).")
    parser.add_argument("--page", default=None, help="Also keep the page here (.html).")
    args = parser.parse_args()

    from lamp_data.display.browse import browse_dataset
    from lamp_data.display.headless import render_page
    from lamp_data.envs import EnvConfig
    from lamp_data.pipeline.collect import CollectConfig, collect
    from lamp_data.pipeline.relabel import relabel
    from lamp_data.store import iter_episodes

    timings = {}
    with tempfile.TemporaryDirectory(prefix="lamp-browse-") as folder:
        data = Path(folder) / "mw-pretrain"
        started = time.perf_counter()
        collect(data, CollectConfig(env="mw-pretrain", episodes=args.episodes, policy="noisy-expert", noise=0.3, seed=args.seed,
                                    shard_episodes=8, env_config=EnvConfig(episode_length=args.episode_length)))
        timings["collect"] = time.perf_counter() - started
        started = time.perf_counter()
        relabel(data, "lamp-r3m-metaworld", "instructions")
        timings["relabel"] = time.perf_counter() - started
        started = time.perf_counter()
        page = browse_dataset(data, Path(args.page) if args.page else Path(folder) / "mw-pretrain.html",
                              prompts=["open the drawer"])
        timings["browse"] = time.perf_counter() - started
        shown = next((e["__key__"] for e in iter_episodes(data) if e["success"].any()), "ep00000000")
        started = time.perf_counter()
        rendered = render_page(page.path, screenshot=args.out, fragment=shown, window=(1280, 1720))
        timings["chromium"] = time.perf_counter() - started
    print(f"page: {page.episodes} episodes, {len(page.reward_sets)} reward sets, {page.bytes / 1e6:.2f} MB")
    print(f"{rendered.browser}: {len(rendered.console)} console messages; screenshot of {shown}: {args.out}")
    for message in rendered.console:
        print(f"  console: {message}")
    print("seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in timings.items()))


if __name__ == "__main__":
    main()
