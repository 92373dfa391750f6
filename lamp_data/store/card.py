"""The dataset card: what a dataset holds, from its metadata and sidecars (no tar is read)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from lamp_data.store import layout
from lamp_data.store.reader import open_dataset


def dataset_card(path: str | Path) -> dict[str, Any]:
    """Summary of a dataset: episodes, steps, tasks, success rate, runs, prompt and reward sets, size.

    Raises:
        LampError: ``path`` is not a dataset.
    """
    dataset = open_dataset(path)
    info = dataset.info
    sidecars = dataset.shard_sidecars()
    tasks: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    successes = episodes = steps = size = 0
    for sidecar in sidecars.values():
        size += int(sidecar["bytes"])
        steps += int(sidecar["nsteps"])
        runs[str(sidecar.get("run", "?"))] += int(sidecar["nsamples"])
        for entry in sidecar["samples"]:
            episodes += 1
            tasks[str(entry.get("task"))] += 1
            successes += bool(entry.get("success"))
    reward_sets = []
    for fingerprint in dataset.reward_sets():
        reward_sidecars = dataset.reward_shard_sidecars(fingerprint)
        set_info = dataset.reward_set_info(fingerprint)
        reward_bytes = sum(int(s["bytes"]) for s in reward_sidecars.values())
        size += reward_bytes
        reward_sets.append({
            "fingerprint": fingerprint,
            "model": set_info.get("model", set_info.get("spec")),
            "prompts": set_info.get("prompt_count"),
            "shards": len(reward_sidecars),
            "complete": set(reward_sidecars) >= set(sidecars),
            "bytes": reward_bytes,
        })
    prompts = dataset.prompts()
    env = info.get("env", {})
    return {
        "path": str(dataset.path),
        "format_version": info.get("format_version"),
        "env": env.get("name"),
        "image_size": env.get("config", {}).get("image_size"),
        "episode_length": env.get("config", {}).get("episode_length"),
        "seed": info.get("collection", {}).get("seed"),
        "episodes": episodes,
        "steps": steps,
        "shards": len(sidecars),
        "tasks": dict(sorted(tasks.items())),
        "success_rate": successes / episodes if episodes else 0.0,
        "runs": {run: {"episodes": count, **info.get("runs", {}).get(run, {})} for run, count in sorted(runs.items())},
        "prompt_set": info.get("prompt_set") or ({"count": len(prompts)} if prompts else None),
        "reward_sets": reward_sets,
        "bytes": size,
        "bytes_per_step": size / steps if steps else 0.0,
        "interrupted_writes": len(layout.interrupted_writes(dataset.shards_dir)),
        "created": info.get("provenance", {}).get("created"),
    }
