"""The task catalogue: complete, split cleanly, clear errors."""

import json

import pytest

from lamp_data.envs import env_names
from lamp_data.envs.tasks import (
    FINETUNE_TASKS,
    HELDOUT,
    PRETRAIN,
    RLBENCH_FINETUNE_TASKS,
    TASKS,
    get_task,
    list_tasks,
)
from lamp_data.errors import LampError


def test_every_metaworld_v3_task_is_registered_once():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    ours = {task.name for task in list_tasks(backend="metaworld")}
    assert ours == {name.removesuffix("-v3") for name in ALL_V3_ENVIRONMENTS}
    assert len(ours) == 50


def test_pretrain_and_heldout_are_disjoint_and_finetune_tasks_are_held_out():
    pretrain = {task.name for task in list_tasks(PRETRAIN)}
    heldout = {task.name for task in list_tasks(HELDOUT)}
    assert pretrain.isdisjoint(heldout)
    assert set(FINETUNE_TASKS) | set(RLBENCH_FINETUNE_TASKS) <= heldout
    near_duplicates = {"pick-place-wall", "bin-picking", "assembly", "button-press-topdown-wall", "door-open", "faucet-close"}
    assert near_duplicates <= heldout
    assert 35 <= len(list_tasks(PRETRAIN, "metaworld")) <= 42


def test_every_task_has_language_and_objects():
    for task in list_tasks():
        assert task.instruction and task.instruction == task.instruction.lower()
        assert 3 <= len(task.paraphrases) <= 5
        assert task.instruction not in task.paraphrases
        assert task.name == "reach" or task.objects
        words = f"{task.instruction} {' '.join(task.paraphrases)}".split()
        assert not {"red", "blue", "green", "yellow"} & set(words), task.name
        json.dumps(task.to_dict())


def test_every_task_has_an_env_name():
    names = set(env_names())
    for task in list_tasks(backend="metaworld"):
        assert f"mw-{task.name}" in names
    for task in list_tasks(backend="rlbench"):
        assert f"rlbench-{task.name}" in names
    assert "mw-pretrain" in names


def test_unknown_names_give_a_clear_error():
    with pytest.raises(LampError, match="did you mean pick-place"):
        get_task("pick-plase")
    with pytest.raises(LampError, match="unknown split"):
        list_tasks(split="train")
    with pytest.raises(LampError, match="unknown backend"):
        list_tasks(backend="isaac")


@pytest.mark.parametrize("task, kind", [("reach", "hidden"), ("door-unlock", "shown"), ("hammer", "fixed")])
def test_goal_visibility_agrees_with_the_simulator(task, kind):
    from lamp_data.envs.goals import goal_visibility

    assert goal_visibility(task, resets=4) == kind
    assert get_task(task).goal_visible is (kind != "hidden")


def test_hidden_goal_tasks_are_meta_world_tasks_of_both_splits():
    from lamp_data.envs.tasks import GOAL_HIDDEN_METAWORLD

    assert GOAL_HIDDEN_METAWORLD <= set(TASKS)
    assert {"pick-place", "reach-wall", "push-back"} <= GOAL_HIDDEN_METAWORLD
    assert all(task.goal_visible is None for task in list_tasks(backend="rlbench"))
    assert {task.name for task in list_tasks(backend="metaworld") if not task.goal_visible} == GOAL_HIDDEN_METAWORLD
