"""Registries, atomic writes and the command line's error policy."""

import json
import os

import click
import pytest
from click.testing import CliRunner

from lamp_cli.lazy import LazyGroup
from lamp_data.atomic import atomic_path, atomic_write_json, is_temporary
from lamp_data.errors import LampError, MissingExtraError
from lamp_data.registry import Registry


def test_registry_imports_on_demand_and_names_missing_extra():
    registry = Registry("widget")
    registry.register("json-dumps", "json:dumps")
    registry.register("absent", "package_that_does_not_exist_xyz:thing", extra="fancy")
    assert registry.names() == ["absent", "json-dumps"]
    assert registry.create("json-dumps", [1]) == "[1]"
    with pytest.raises(MissingExtraError, match=r"lamp-toolkit\[fancy\]"):
        registry.get("absent")
    with pytest.raises(LampError, match="unknown widget 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError):
        registry.register("json-dumps", "json:loads")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "info.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["info.json"]
    assert is_temporary(tmp_path / ".shard.tar.abc.tmp") and not is_temporary(target)


def test_lamp_error_is_one_line_exit_2():
    @click.command()
    def broken():
        raise LampError("the thing is wrong")

    group = LazyGroup(name="g", commands={"broken": broken})
    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: the thing is wrong"


def test_dummy_env_is_deterministic_per_seed():
    from lamp_data.envs import make_env

    env = make_env("dummy", image_size=16, episode_length=5)
    first, info_a = env.reset(seed=3)
    again, info_b = env.reset(seed=3)
    assert (first["image"] == again["image"]).all() and info_a == info_b
    with pytest.raises(LampError, match="image size"):
        make_env("dummy", image_size=4)
    assert os.environ["MUJOCO_GL"] == "egl"


def test_atomic_write_gets_normal_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "card.json", {})
    finally:
        os.umask(mask)
    assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o644
