"""Dataset cards: the summary of what a dataset holds (:func:`dataset_card`, from its metadata and
sidecars, no tar is read) and the ``README.md`` that lets Hugging Face ``datasets`` load the folder
(:func:`write_dataset_card`).

The README's YAML front matter names the data files of each config (``default``: the episode
shards; ``rewards-<fingerprint>``: one reward set) and their features, so
``datasets.load_dataset(folder)`` reads episodes with frames typed as uint8 ``Array4D``
(``.with_format("numpy", dtype=None)`` then gives numpy arrays with the stored dtypes). The
``meta.json`` field is typed ``Json`` because its randomization record differs between episodes;
that type needs ``datasets`` 4.7 or newer.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_write_bytes
import lamp_data.store.layout as layout
from lamp_data.store.reader import Dataset, open_dataset

CARD_FORMAT_VERSION = 1
"""Version of the ``README.md`` front matter written by :func:`write_dataset_card`."""
REWARD_CONFIG_PREFIX = "rewards-"
"""A reward set's ``datasets`` config is named ``rewards-<fingerprint>``."""
_LICENSES = {"metaworld": "mit", "dummy": "mit"}
"""License of the data by simulator backend: Meta-World's assets and textures are MIT-licensed."""


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
        "cameras": list(layout.dataset_cameras(info)),
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
        "interrupted_writes": len(layout.interrupted_writes(dataset.shards_dir)) + len(layout.orphan_tars(dataset.shards_dir)),
        "created": info.get("provenance", {}).get("created"),
    }


def hub_features(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``datasets`` features of an episode sample, in the YAML form of a card's ``dataset_info``.

    Frames (of every camera ``info`` records) become ``Array4D [None, H, W, 3]`` when ``info``
    records the image size, and the state ``Array2D [None, S]`` when the env spec names its
    fields; other arrays are nested lists.
    """
    env = info.get("env", {})
    image_size = env.get("config", {}).get("image_size")
    state_fields = env.get("spec", {}).get("state_fields")
    fields = layout.sample_fields(layout.dataset_cameras(info))
    frames = [None, image_size, image_size, 3] if image_size else None
    shapes = {**{key: frames for key in schema.CAMERA_KEYS.values()},
              schema.STATE: [None, len(state_fields)] if state_fields else None}
    dtypes = {**layout.FIELD_DTYPES, **{key: np.uint8 for key in fields if key not in layout.FIELD_DTYPES}}
    features = []
    for field, dtype in dtypes.items():
        name, dtype = fields[field], np.dtype(dtype).name
        rank = _RANKS.get(field, 1)
        if shapes.get(field):
            features.append({"name": name, "dtype": {f"array{rank}_d": {"shape": shapes[field], "dtype": dtype}}})
        else:
            nested: Any = dtype
            for _ in range(rank):
                nested = {"list": nested}
            features.append({"name": name, **nested})
    features.append({"name": layout.FIELD_FILES[layout.META], "dtype": "json"})
    return features + _key_features()


_RANKS = {**{key: 4 for key in schema.CAMERA_KEYS.values()}, schema.STATE: 2, schema.ACTION: 2}
"""Array rank of each field with more than one axis."""


def _key_features() -> list[dict[str, Any]]:
    """The sample key and the shard path that ``datasets`` adds to every sample."""
    return [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}]


def _reward_features(prompt_count: int) -> list[dict[str, Any]]:
    shape = {"shape": [None, int(prompt_count)], "dtype": "float16"}
    return [{"name": layout.REWARD_FILE, "dtype": {"array2_d": shape}}] + _key_features()


def write_dataset_card(dataset: str | Path | Dataset) -> Path:
    """Write ``README.md`` into a dataset folder, atomically, so ``datasets.load_dataset(folder)`` works.

    The card is derived from ``meta/info.json`` and the reward sets present (it holds no counts,
    which change as shards are added; ``lamp-data info`` gives those). The store rewrites it
    whenever it writes ``meta/info.json`` or creates a reward set; call this for a dataset made
    by an older version.

    Returns:
        The path of the card.

    Raises:
        LampError: ``dataset`` is not a dataset.
    """
    import yaml

    dataset = open_dataset(dataset)
    info = dataset.info
    env = info.get("env", {})
    backend = env.get("spec", {}).get("backend")
    configs = [{"config_name": "default", "default": True,
                "data_files": [{"split": "train", "path": f"{layout.SHARDS_DIR}/*.tar"}]}]
    infos = [{"config_name": "default", "features": hub_features(info)}]
    reward_sets = []
    for fingerprint in dataset.reward_sets():
        set_info = dataset.reward_set_info(fingerprint)
        name = REWARD_CONFIG_PREFIX + fingerprint
        configs.append({"config_name": name,
                        "data_files": [{"split": "train", "path": f"{layout.REWARDS_DIR}/{fingerprint}/*.tar"}]})
        infos.append({"config_name": name, "features": _reward_features(set_info["prompt_count"])})
        reward_sets.append((fingerprint, set_info))
    front = {
        "license": _LICENSES.get(backend, "other"),
        "pretty_name": f"LAMP episodes: {env.get('name', 'unknown env')}",
        "task_categories": ["robotics", "reinforcement-learning"],
        "tags": ["lamp", "robotics", "webdataset", str(backend or "unknown")],
        "configs": configs,
        "dataset_info": infos,
        "lamp": {"card_format_version": CARD_FORMAT_VERSION, "dataset_format_version": info.get("format_version")},
    }
    text = "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + _card_body(info, reward_sets, backend)
    path = layout.card_path(dataset.path)
    atomic_write_bytes(path, text.encode())
    return path


def _card_body(info: dict[str, Any], reward_sets: list[tuple[str, dict[str, Any]]], backend: str | None) -> str:
    env = info.get("env", {})
    config = env.get("config", {})
    collection = info.get("collection", {})
    provenance = info.get("provenance", {})
    randomization = config.get("randomization", {})
    randomized = any(bool(value) for value in randomization.values())
    sample_fields = layout.sample_fields(layout.dataset_cameras(info))
    fields = "\n".join(
        f"| `{sample_fields[field]}` | {doc} |" for field, doc in _FIELD_DOCS.items() if field in sample_fields
    )
    if reward_sets:
        sets = "\n".join(
            f"- `{REWARD_CONFIG_PREFIX}{fingerprint}`: {set_info.get('prompt_count')} prompts "
            f"(`{layout.REWARDS_DIR}/{fingerprint}/{layout.PROMPTS_FILE}`), model "
            f"`{json.dumps(set_info.get('model', set_info.get('spec')), sort_keys=True)}`"
            for fingerprint, set_info in reward_sets
        )
    else:
        sets = "None yet (`lamp-data relabel` adds one)."
    runs = ", ".join(f"`{run}` ({record.get('policy', '?')})" for run, record in sorted(info.get("runs", {}).items())) or "-"
    versions = ", ".join(f"{name} {version}" for name, version in sorted(provenance.get("versions", {}).items())) or "-"
    license_note = (
        "MIT, like the simulator's assets the frames render." if backend in _LICENSES
        else "Set by whoever publishes it; the frames render the simulator's assets, under its terms."
    )
    cameras = layout.dataset_cameras(info)
    views = "" if cameras == schema.DEFAULT_CAMERAS else f" from the {' and '.join(cameras)} cameras"
    summary = (
        f"Robot episodes recorded with the LAMP toolkit: env `{env.get('name')}` ({config.get('image_size')} px "
        f"frames{views}, {config.get('episode_length')}-step episodes, action repeat {config.get('action_repeat', 1)}, "
        f"domain randomization {'on' if randomized else 'off'}), dataset seed {collection.get('seed')}."
    )
    return f"""# LAMP episodes: {env.get("name", "unknown env")}

{summary}
`lamp-data info <folder>` prints the current counts, tasks and success rate; `lamp-data verify <folder>`
checks every shard against its sidecar; `lamp-data view <folder> --out episode.png` draws an episode.

## Loading

```python
from datasets import load_dataset

episodes = load_dataset("<folder>", split="train").with_format("numpy", dtype=None)
episode = episodes[0]   # one episode: episode["image.npy.gz"] is uint8 [T+1, H, W, 3]
```

Without `.with_format(...)` arrays arrive as nested Python lists; `dtype=None` keeps the stored
dtypes (the numpy format otherwise widens integers to int64). `meta.json` is a dict (task,
instruction, seed, randomization, ...; lists inside it become arrays under the numpy format, and
`datasets` may change a float in it in the last digit). With the toolkit, `lamp_data.store.index_episodes("<folder>")[i]`
gives the same episode with keys `image`, `state`, ... after checking the shard's sha256.

| field | content |
|---|---|
{fields}

## Rewards

Each reward set is a config of its own, one sample per episode with the same `__key__`:
`vlm_reward.npy` is float16 [T+1, P], column *i* scoring prompt *i* of the set's `prompts.json`.

```python
from datasets import concatenate_datasets, load_dataset

episodes = load_dataset("<folder>", split="train")
rewards = load_dataset("<folder>", "rewards-<fingerprint>", split="train")
assert rewards["__key__"] == episodes["__key__"]   # a complete set: same episodes, same order
joined = concatenate_datasets([episodes, rewards.remove_columns(["__key__", "__url__"])], axis=1)
joined = joined.with_format("numpy", dtype=None)   # joined[i]["vlm_reward.npy"]: float16 [T+1, P]
```

With the toolkit: `index_episodes("<folder>", reward_set="<fingerprint>")[i]["vlm_reward"]`.

{sets}

## Provenance

Created {provenance.get("created", "?")} by runs {runs}.
Software: {versions}.
`meta/info.json` holds the full record (env spec, randomization config, task split, collection
config, command line).

## License

{license_note}
"""


_FIELD_DOCS = {
    schema.IMAGE: "uint8 [T+1, H, W, 3] camera frames (gzip-compressed `.npy`)",
    schema.IMAGE_WRIST: "uint8 [T+1, H, W, 3] wrist camera frames (gzip-compressed `.npy`); `image.npy.gz` is the front camera",
    schema.STATE: "float32 [T+1, S] proprioceptive state",
    schema.ACTION: "float32 [T, A] actions in [-1, 1]",
    schema.REWARD: "float32 [T] the task's dense reward",
    schema.SUCCESS: "bool [T+1] task success after each frame",
    schema.IS_FIRST: "bool [T+1] true at the first frame",
    schema.IS_LAST: "bool [T+1] true at the last frame",
    schema.IS_TERMINAL: "bool [T+1] true if the episode ended in a terminal state",
    layout.META: "JSON: episode index, run, policy, seed, task, instruction, randomization, steps, success",
}
