"""Random and expert baselines of a task on the dummy env, and the normalisation they define."""

import json
import math

import pytest

from lamp_data.envs import EnvConfig, RandomizationConfig
from lamp_data.envs.dummy import DummyEnv
from lamp_data.errors import LampError
from lamp_eval.baselines import normalised_return, task_baselines
from lamp_eval.runs import eval_episode_seeds

CONFIG = EnvConfig(image_size=16, episode_length=5, randomization=RandomizationConfig.canonical())
SEEDS = eval_episode_seeds(6)


def test_baselines_are_deterministic_per_seed_and_the_expert_beats_random():
    baselines = task_baselines("dummy", CONFIG, SEEDS)
    assert baselines == task_baselines("dummy", CONFIG, SEEDS)
    assert baselines["format_version"] == 1 and baselines["env"] == "dummy" and baselines["seeds"] == SEEDS
    assert baselines["env_config"] == json.loads(json.dumps(CONFIG.to_dict()))
    random, expert = baselines["random"], baselines["expert"]
    assert len(random["returns"]) == len(expert["returns"]) == len(SEEDS)
    assert random["return_mean"] == pytest.approx(sum(random["returns"]) / len(SEEDS))
    assert expert["return_mean"] > random["return_mean"]
    assert expert["success_rate"] == 1.0 and expert["success_rate"] > random["success_rate"]
    # each episode depends on its own seed only, not on the other seeds asked for
    alone = task_baselines("dummy", CONFIG, SEEDS[3:4])
    assert alone["random"]["returns"] == random["returns"][3:4]
    assert alone["expert"]["returns"] == expert["returns"][3:4]
    # the config given is the config measured: longer episodes give other returns
    longer = task_baselines("dummy", EnvConfig(image_size=16, episode_length=8, randomization=CONFIG.randomization), SEEDS)
    assert longer["env_config"]["episode_length"] == 8 and longer["random"]["returns"] != random["returns"]
    json.dumps(baselines, allow_nan=False)


def test_cache_round_trip(tmp_path):
    first = task_baselines("dummy", CONFIG, SEEDS, cache_dir=tmp_path)
    [cached] = tmp_path.glob("*.json")
    assert json.loads(cached.read_text()) == first
    # a second call reads the file instead of playing the episodes again
    edited = {**first, "random": {**first["random"], "return_mean": -123.0}}
    cached.write_text(json.dumps(edited))
    assert task_baselines("dummy", CONFIG, SEEDS, cache_dir=tmp_path)["random"]["return_mean"] == -123.0
    # other seeds or another config are another file
    task_baselines("dummy", CONFIG, SEEDS[:2], cache_dir=tmp_path)
    task_baselines("dummy", EnvConfig(image_size=16, episode_length=4, randomization=CONFIG.randomization), SEEDS, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 3
    cached.write_text(json.dumps({**first, "format_version": 99}))
    with pytest.raises(LampError, match="baselines format version 99"):
        task_baselines("dummy", CONFIG, SEEDS, cache_dir=tmp_path)
    with pytest.raises(LampError, match="at least one evaluation seed"):
        task_baselines("dummy", CONFIG, [])


def test_env_without_an_expert_has_no_expert_baseline(monkeypatch):
    def no_expert(self, noise=0.0, rng=None):
        raise LampError("this backend has no scripted expert")

    monkeypatch.setattr(DummyEnv, "expert_action", no_expert)
    baselines = task_baselines("dummy", CONFIG, SEEDS[:2])
    assert baselines["expert"] is None and len(baselines["random"]["returns"]) == 2
    assert math.isnan(normalised_return(baselines["random"]["return_mean"], baselines))


def test_normalised_return_by_hand():
    baselines = {"random": {"return_mean": -10.0}, "expert": {"return_mean": 30.0}}
    # (value - random) / (expert - random) with a range of 40
    assert normalised_return(-10.0, baselines) == 0.0
    assert normalised_return(30.0, baselines) == 1.0
    assert normalised_return(0.0, baselines) == pytest.approx(0.25)
    assert normalised_return(50.0, baselines) == pytest.approx(1.5)
    assert normalised_return(-30.0, baselines) == pytest.approx(-0.5)
    assert math.isnan(normalised_return(1.0, {"random": {"return_mean": 2.0}, "expert": {"return_mean": 2.0}}))
    assert math.isnan(normalised_return(1.0, {"random": {"return_mean": 2.0}, "expert": None}))
    assert math.isnan(normalised_return(1.0, None))
