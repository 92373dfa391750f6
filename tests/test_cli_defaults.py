"""Every CLI option's default comes from the config (or function) it sets, and help stays torch-free."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import click
import pytest

from lamp_agent.config import AgentConfig, PretrainConfig
from lamp_cli import agent, data, eval as eval_cli
from lamp_cli.defaults import field_default, parameter_default
from lamp_cli.eval_finetune import parse_seeds
from lamp_data.display.browse import browse_dataset
from lamp_data.display.showcase import render_showcase
from lamp_data.display.view import view_episode
from lamp_data.envs import EnvConfig
from lamp_data.formats import ExportOptions, import_dataset
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.pipeline.executors import ExecutorConfig
from lamp_data.pipeline.relabel import relabel
from lamp_data.rewards.training.config import RewardModelTrainConfig
from lamp_eval.demo import DemoConfig
from lamp_eval.grid import run_grid
from lamp_eval.report import ReportConfig
from lamp_eval.runs import FinetuneConfig

GROUPS = {"lamp-data": data.main, "lamp-agent": agent.main, "lamp-eval": eval_cli.main}


def _negated(value: bool) -> bool:
    return not value


SOURCES = {
    "lamp-data collect": {
        "device": (CollectConfig, "device"),
        "run_name": (CollectConfig, "run"),
        "executor": (ExecutorConfig, "kind"),
        "address": (ExecutorConfig, "address"),
        "workers": (ExecutorConfig, "workers"),
        "num_cpus_per_worker": (ExecutorConfig, "cpus_per_worker"),
        "on_damage": (collect, "on_damage"),
    },
    "lamp-data relabel": {
        "device": (relabel, "device"),
        "batch_size": (relabel, "batch_size"),
        "executor": (ExecutorConfig, "kind"),
        "address": (ExecutorConfig, "address"),
        "workers": (ExecutorConfig, "workers"),
        "num_cpus_per_worker": (ExecutorConfig, "cpus_per_worker"),
    },
    "lamp-data train-reward-model": {
        name: (RewardModelTrainConfig, name)
        for name in ("steps", "seed", "image_size", "batch_size", "learning_rate", "text_encoder", "text_negatives", "head",
                     "failure_contrast")
    },
    "lamp-data render": {name: (render_showcase, name) for name in ("steps", "image_size", "seed")},
    "lamp-data view": {"frames": (view_episode, "frames"), "fps": (view_episode, "fps")},
    "lamp-data browse": {name: (browse_dataset, name) for name in ("frames", "max_episodes")},
    "lamp-data export": {name: (ExportOptions, name) for name in ("fps", "crf", "pixel_format", "dataset_id")},
    "lamp-data import": {"shard_episodes": (import_dataset, "shard_episodes")},
    "lamp-agent pretrain": {
        name: (PretrainConfig, name)
        for name in ("preset", "alpha", "device", "seed", "collect_every", "checkpoint_every", "text_encoder", "resume", "on_damage")
    },
    "lamp-eval finetune": {
        **{
            name: (FinetuneConfig, name)
            for name in ("steps", "instruction", "eval_every", "eval_episodes", "eval_sampled", "preset", "method", "env_prefix", "env",
                         "replay_ratio", "finetune_critic", "prefill", "initial_updates",
                         "batch_size", "seq_len", "text_encoder", "device", "save_agent", "keep_checkpoints")
        },
        "image_size": (EnvConfig, "image_size"),
        "episode_length": (EnvConfig, "episode_length"),
        "seeds": (FinetuneConfig, "seeds", parse_seeds),
        "executor": (ExecutorConfig, "kind"),
        "address": (ExecutorConfig, "address"),
        "gpus_per_run": (ExecutorConfig, "gpus_per_worker"),
        "num_cpus_per_run": (ExecutorConfig, "cpus_per_worker"),
    },
    "lamp-eval leaderboard": {
        "baseline": (ReportConfig, "baseline"),
        "score": (ReportConfig, "score"),
        "reps": (ReportConfig, "reps"),
        "seed": (ReportConfig, "seed"),
        "no_gifs": (ReportConfig, "gifs", _negated),
    },
    "lamp-eval demo": {name: (DemoConfig, name) for name in ("task", "reward_model", "seed")},
    "lamp-eval grid": {name: (run_grid, name) for name in ("workers", "threads", "niceness")},
}
"""Command -> option -> where its default is defined: (config class or function, field or
parameter[, how to turn the option's default into that value])."""

CLI_ONLY = {"lamp-data prompts": {"limit"}, "lamp-eval demo": {"out"}}
"""Options whose default belongs to the command itself (how much to print, where the demo writes)."""


def _commands() -> list[tuple[str, click.Command]]:
    found = []
    for group_name, group in GROUPS.items():
        context = click.Context(group)
        for name in group.list_commands(context):
            found.append((f"{group_name} {name}", group.get_command(context, name)))
    return found


def _option_default(option: click.Option):
    """The default the command's function receives (None when the option sets none)."""
    return option.to_info_dict()["default"]


def _library_default(owner, name: str):
    return field_default(owner, name) if dataclasses.is_dataclass(owner) else parameter_default(owner, name)


COMMANDS = _commands()


@pytest.mark.parametrize("command_name,command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_option_default_is_the_library_default(command_name, command):
    sources = SOURCES.get(command_name, {})
    options = {param.name: param for param in command.params if isinstance(param, click.Option)}
    assert set(sources) <= set(options), f"{command_name}: no such options {set(sources) - set(options)}"
    for name, source in sources.items():
        owner, field_name, *convert = source
        value = _option_default(options[name])
        if convert:
            value = convert[0](value)
        expected = _library_default(owner, field_name)
        assert value == expected and type(value) is type(expected), f"{command_name} --{name.replace('_', '-')}: {value!r}"
    for name, option in options.items():
        if name in sources or name in CLI_ONLY.get(command_name, set()):
            continue
        # anything else defaults to nothing: unset, a flag left off, or read from the dataset
        default = _option_default(option)
        assert default is None or default is False or default == (), f"{command_name} --{name}: default {default!r} written in the CLI"


def test_collect_help_names_the_config_defaults_used_for_a_new_dataset():
    options = {param.name: param for param in data.main.get_command(click.Context(data.main), "collect").params}
    for option_name, config_class, field_name in (
        ("env_name", CollectConfig, "env"), ("policy", CollectConfig, "policy"), ("seed", CollectConfig, "seed"),
        ("shard_episodes", CollectConfig, "shard_episodes"), ("noise", CollectConfig, "noise"),
        ("image_size", EnvConfig, "image_size"), ("episode_length", EnvConfig, "episode_length"),
        ("action_repeat", EnvConfig, "action_repeat"),
    ):
        assert _option_default(options[option_name]) is None
        assert f"else {field_default(config_class, field_name)})" in options[option_name].help, option_name
    assert f"else {','.join(EnvConfig.cameras)})" in options["cameras"].help
    assert "else on)" in options["canonical"].help and EnvConfig().randomization.enabled
    assert "else off)" in options["goal_marker"].help and not EnvConfig.goal_marker


def test_finetune_action_repeat_defaults_to_the_inits_and_its_help_names_the_envs_default():
    options = {param.name: param for param in eval_cli.main.get_command(click.Context(eval_cli.main), "finetune").params}
    assert _option_default(options["action_repeat"]) is None
    assert f"else {field_default(EnvConfig, 'action_repeat')})" in options["action_repeat"].help


def test_pretrain_help_names_the_agent_config_defaults():
    options = {param.name: param for param in agent.main.get_command(click.Context(agent.main), "pretrain").params}
    assert f"preset default {AgentConfig.alpha};" in options["alpha"].help
    assert f"preset default {AgentConfig.own_prompt_fraction})" in options["own_prompt"].help


def test_field_default_reads_defaults_and_factories_and_refuses_the_rest():
    @dataclasses.dataclass
    class Example:
        required: int
        plain: str = "cpu"
        built: list = dataclasses.field(default_factory=lambda: [1, 2])

    assert field_default(Example, "plain") == "cpu"
    assert field_default(Example, "built") == [1, 2]
    with pytest.raises(ValueError, match="Example.required has no default"):
        field_default(Example, "required")
    with pytest.raises(KeyError, match="no field 'missing'"):
        field_default(Example, "missing")


def test_parameter_default_reads_a_keyword_default():
    def stage(path, *, batch_size=64):
        return path, batch_size

    assert parameter_default(stage, "batch_size") == 64
    with pytest.raises(ValueError, match="has no default"):
        parameter_default(stage, "path")
    with pytest.raises(KeyError):
        parameter_default(stage, "missing")


@pytest.mark.parametrize("module", ["lamp_cli.data", "lamp_cli.agent", "lamp_cli.eval"])
def test_group_help_imports_neither_torch_nor_mujoco(module):
    code = (
        "import sys\n"
        f"from {module} import main\n"
        "assert main(['--help'], standalone_mode=False) == 0\n"
        "print(sorted(name for name in ('torch', 'mujoco') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Commands:" in result.stdout
    assert result.stdout.splitlines()[-1] == "[]"
