"""Does a frame show a Meta-World task's goal? :func:`goal_visibility` finds out in the simulator.

Meta-World draws most goals at random each episode. Some tasks move something drawn with the
goal (the basketball hoop, the coffee machine, the door and its lock); others mark the goal only
with a site, which rendering hides (``lamp_data.envs.rendering``) because it would give the goal
away. On those a frame cannot tell a success from a near miss: the puck 4 cm from an unmarked
spot looks like the puck 6 cm from it. Reward models that read frames can only be judged on
success detection where the frame shows the goal (``lamp_data.envs.tasks.TaskSpec.goal_visible``), or
where the env draws a marker at hidden goals (``EnvConfig.goal_marker``; checked here without it).
"""

from __future__ import annotations

import mujoco
import numpy as np

from lamp_data.envs.metaworld_suite import TaskSimulator
from lamp_data.envs.randomization import RandomizationConfig, sample_randomization

GOAL_KINDS = ("fixed", "shown", "hidden")
"""The goal is the same every episode / moves with something drawn / is drawn by nothing."""

_MOVES = 1e-3
"""A position that varies by more than this (m, standard deviation over resets) moves."""
_RIGID = 1e-4
"""An offset that varies by less than this (m) is constant."""


def goal_visibility(task: str, resets: int = 8, seed: int = 0) -> str:
    """How a frame of Meta-World ``task`` shows its goal: one of :data:`GOAL_KINDS`.

    Resets the task ``resets`` times under one scene randomization with different goal seeds.
    The goal is ``fixed`` when it does not move, ``shown`` when some rendered geom keeps a
    constant offset from it while it moves, else ``hidden``.
    """
    simulator = TaskSimulator(task, 32, cameras=("front",))
    try:
        model, data = simulator.env.model, simulator.env.data
        scene = sample_randomization(np.random.default_rng(seed), RandomizationConfig())
        goals, positions = [], []
        for index in range(resets):
            simulator.reset(seed * resets + index, scene)
            mujoco.mj_forward(model, data)  # some tasks move goal bodies after their last forward pass
            goals.append(np.array(simulator.env._target_pos, float))
            positions.append(data.geom_xpos.copy())
        drawn = (model.geom_rgba[:, 3] > 0) & (simulator.renderer.option.geomgroup[model.geom_group] > 0)
    finally:
        simulator.close()
    goals_array, positions_array = np.array(goals), np.array(positions)
    if goals_array.std(0).max() <= _MOVES:
        return "fixed"
    offsets = positions_array - goals_array[:, None, :]
    tracking = drawn & (offsets.std(0).max(-1) < _RIGID) & (positions_array.std(0).max(-1) > _MOVES)
    return "shown" if tracking.any() else "hidden"
