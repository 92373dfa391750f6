"""Reference returns of a task, so a run's return can be read as a fraction of the expert's.

:func:`task_baselines` plays two fixed policies on exactly the evaluation seeds of a run:

* ``random`` — the registered ``random`` policy of :mod:`lamp_data.pipeline.rollout` (actions uniform in
  ``[-1, 1]``), drawing from ``np.random.default_rng(seed)`` for the episode reset with ``seed``;
* ``expert`` — the registered ``expert`` policy (the env's scripted expert, no noise); ``None``
  when the backend has no expert.

Both play through :func:`lamp_data.pipeline.rollout.run_episode`, the one episode loop.

:func:`normalised_return` maps a mean return onto that scale: 0 is the random policy, 1 the
expert. The finetuning loop stores the baselines dict in ``run.json`` under ``baselines``; the
leaderboard reads it from there.

The dict (also the cache file's content)::

    {"format_version": 1, "env": "mw-pick-place", "env_config": {...}, "seeds": [...],
     "random": {"return_mean": .., "success_rate": .., "returns": [..], "successes": [..]},
     "expert": {...} or null}
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data.atomic import atomic_write_json
from lamp_data.envs import EnvConfig, make_env
from lamp_data.errors import LampError
from lamp_data.pipeline.rollout import POLICIES, run_episode
from lamp_data.provenance import stable_hash

BASELINES_FORMAT_VERSION = 1
"""Version of the baselines dict (in ``run.json`` and in cache files)."""
SUPPORTED_BASELINES_VERSIONS = (BASELINES_FORMAT_VERSION,)


def task_baselines(
    env_name: str,
    env_config: EnvConfig,
    seeds: list[int],
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Mean return and success rate of a uniform random policy and of the scripted expert.

    Each policy plays one episode per reset seed, until ``terminated`` or ``truncated``; an
    episode's return is the sum of its step rewards and it succeeds if ``info["success"]`` is
    set at any step. The env is built with exactly ``env_config``, whatever its fields.

    Args:
        env_name: A registered env name (``dummy``, ``mw-pick-place``, ...).
        env_config: The config the runs are evaluated with.
        seeds: Reset seeds of the evaluation episodes.
        cache_dir: If given, the result is kept in ``<cache_dir>/<hash>.json`` (the hash of
            env name, config and seeds) and read back from there on the next call.

    Returns:
        The JSON-able baselines dict described in the module docstring; ``"expert"`` is
        ``None`` when the env has no scripted expert.

    Raises:
        LampError: when ``seeds`` is empty or a cache file is unreadable or of another version.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise LampError("baselines need at least one evaluation seed")
    key = json.loads(json.dumps({
        "format_version": BASELINES_FORMAT_VERSION,
        "env": env_name,
        "env_config": env_config.to_dict(),
        "seeds": seeds,
    }))
    cache_path = Path(cache_dir) / f"{stable_hash(key)}.json" if cache_dir is not None else None
    if cache_path is not None and cache_path.is_file():
        return _read_cached(cache_path, key)

    env = make_env(env_name, env_config)
    try:
        random_episodes = [_play(env, "random", seed) for seed in seeds]
        try:
            expert_episodes = [_play(env, "expert", seed) for seed in seeds]
        except LampError:
            expert_episodes = None
    finally:
        env.close()
    baselines = {
        **key,
        "random": _summary(random_episodes),
        "expert": None if expert_episodes is None else _summary(expert_episodes),
    }
    if cache_path is not None:
        atomic_write_json(cache_path, baselines)
    return baselines


def normalised_return(value: float, baselines: dict[str, Any] | None) -> float:
    """``(value - random) / (expert - random)``: 0 for the random policy, 1 for the expert.

    Args:
        value: A mean episode return on the baselines' seeds.
        baselines: A dict from :func:`task_baselines`, or None.

    Returns:
        The normalised return, or NaN when there are no baselines, no expert, or the expert
        does no better or worse than the random policy.
    """
    if not baselines or not baselines.get("expert"):
        return math.nan
    random_return = float(baselines["random"]["return_mean"])
    expert_return = float(baselines["expert"]["return_mean"])
    if expert_return == random_return:
        return math.nan
    return (float(value) - random_return) / (expert_return - random_return)


def _play(env: Any, policy: str, seed: int) -> tuple[float, bool]:
    """One episode of the registered ``policy`` from reset seed ``seed``: ``(return, success at any step)``."""
    episode = run_episode(env, POLICIES.get(policy)(env, np.random.default_rng(seed)), seed)
    return episode.total_reward, episode.success


def _summary(episodes: list[tuple[float, bool]]) -> dict[str, Any]:
    returns = [episode_return for episode_return, _ in episodes]
    successes = [success for _, success in episodes]
    return {
        "return_mean": float(np.mean(returns)),
        "success_rate": float(np.mean(successes)),
        "returns": returns,
        "successes": successes,
    }


def _read_cached(path: Path, key: dict[str, Any]) -> dict[str, Any]:
    try:
        baselines = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise LampError(f"cannot read cached baselines {path}: {error}; delete it to measure again") from None
    version = baselines.get("format_version")
    if version not in SUPPORTED_BASELINES_VERSIONS:
        raise LampError(f"{path} has baselines format version {version}; this toolkit reads {SUPPORTED_BASELINES_VERSIONS}")
    if any(baselines.get(name) != value for name, value in key.items()):
        raise LampError(f"cached baselines {path} were measured for another env, config or seeds; delete it to measure again")
    return baselines
