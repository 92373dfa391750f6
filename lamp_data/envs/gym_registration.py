"""Every env of :data:`lamp_data.envs.ENVS` under Gymnasium's ``lamp`` namespace.

Importing :mod:`lamp_data.envs` registers the ids; no simulator is imported until an env is
made (an RLBench id without the ``rlbench`` extra fails only then, naming the extra)::

    import gymnasium as gym
    import lamp_data.envs

    env = gym.make("lamp/MetaWorld-pick-place-v0", image_size=96, canonical=True, render_mode="rgb_array")
    env = gym.make("lamp/MetaWorld-pretrain-v0", episode_length=150, action_repeat=2)
    env = gym.make("lamp_data.envs:lamp/Dummy-v0")   # Gymnasium imports the module itself

Ids: ``dummy`` → ``lamp/Dummy-v0``, ``mw-<task>`` → ``lamp/MetaWorld-<task>-v0``,
``rlbench-<task>`` → ``lamp/RLBench-<task>-v0``. Keyword arguments of ``gymnasium.make`` are
the fields of :class:`~lamp_data.envs.base.EnvConfig` (``image_size``, ``episode_length``,
``action_repeat``, ``randomization``), plus ``canonical=True`` for no randomization and
``render_mode``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym

from lamp_data.envs.base import EnvConfig, RandomizationConfig
from lamp_data.envs.factory import make_env
from lamp_data.errors import LampError

NAMESPACE = "lamp"
VERSION = 0
RENDER_MODES = ("rgb_array",)
"""``render()`` returns the latest frame; Gymnasium adds ``human`` and ``rgb_array_list`` on top."""
_FAMILIES = {"mw-": "MetaWorld-", "rlbench-": "RLBench-"}
_ENTRY_POINT = f"{__name__}:make_gym_env"


def gym_id(name: str) -> str:
    """The Gymnasium id of the registered env ``name``: ``mw-pick-place`` → ``lamp/MetaWorld-pick-place-v0``."""
    for prefix, family in _FAMILIES.items():
        if name.startswith(prefix):
            return f"{NAMESPACE}/{family}{name[len(prefix):]}-v{VERSION}"
    return f"{NAMESPACE}/{name.capitalize()}-v{VERSION}"


def register_gym_envs(names: Iterable[str]) -> list[str]:
    """Register each env name with Gymnasium (ids already there are left alone); returns the ids."""
    ids = []
    for name in names:
        env_id = gym_id(name)
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_ENTRY_POINT, kwargs={"name": name})
        ids.append(env_id)
    return ids


def make_gym_env(
    name: str,
    *,
    render_mode: str | None = None,
    canonical: bool = False,
    randomization: RandomizationConfig | dict[str, Any] | None = None,
    **config: Any,
) -> gym.Env:
    """Build the env ``name`` for ``gymnasium.make`` (its entry point).

    Args:
        name: A name registered in :data:`lamp_data.envs.ENVS`.
        render_mode: ``"rgb_array"`` or None; ``render()`` returns the latest frame either way.
        canonical: Turn domain randomization off.
        randomization: A :class:`RandomizationConfig` or its fields as a dict (not with ``canonical``).
        **config: Other :class:`EnvConfig` fields: ``image_size``, ``episode_length``, ``action_repeat``.

    Raises:
        LampError: an unknown render mode, ``canonical`` with ``randomization``, or a bad config value.
        TypeError: a keyword that is no field of :class:`EnvConfig`.
    """
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise LampError(f"render_mode must be one of {', '.join(RENDER_MODES)} or None, got {render_mode!r}")
    if canonical and randomization is not None:
        raise LampError("give either canonical=True or randomization, not both")
    if canonical:
        randomization = RandomizationConfig.canonical()
    elif isinstance(randomization, dict):
        randomization = RandomizationConfig(**randomization)
    env_config = EnvConfig(**config, **({} if randomization is None else {"randomization": randomization}))
    env = make_env(name, env_config)
    env.unwrapped.render_mode = render_mode
    return env


make_gym_env.metadata = {"render_modes": list(RENDER_MODES)}  # read by gymnasium.make
