"""The end-to-end smoke run: collect, relabel, pretrain, finetune and report, as the demo chains them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_eval.demo import DEFAULT_REWARD_MODEL, DemoConfig, run_demo
from lamp_eval.runs import finetune_env


def _micro(**changes) -> DemoConfig:
    return DemoConfig(**{
        "showcase_steps": 0, "episodes": 2, "env_config": EnvConfig(episode_length=20, image_size=32), "workers": 1,
        "prompts": "instructions", "pretrain_steps": 3, "alphas": (0.9,), "finetune_steps": 40,
        "finetune_env_config": finetune_env(image_size=32, episode_length=20),
        "eval_every": 20, "eval_episodes": 1, "seeds": (0,), "preset": "tiny", **changes,
    })


@pytest.mark.slow
def test_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    summary = run_demo(tmp_path / "demo", _micro(agent_overrides={"horizon": 4}))
    lines = capsys.readouterr().out.splitlines()  # output is not a terminal here: tables are laid out for 80 columns
    header = next(index for index, line in enumerate(lines) if line.startswith("rank  method"))
    end = next(index for index in range(header + 2, len(lines)) if not lines[index].startswith(" "))
    assert end > header + 2 and max(len(line) for line in lines[header:end]) <= 80
    assert any(line.startswith("Both arms train the world model on the same data") for line in lines)
    assert any(line.startswith("pretrain: 3/3 updates (100%)") for line in lines)  # plain progress lines
    assert lines[end - 1].split()[-1] == "(n=1)" and lines[-1].startswith("Stage times (s): collect ")
    again = run_demo(tmp_path / "demo", _micro(agent_overrides={"horizon": 4}))
    out = tmp_path / "demo"
    agents = {path.parts[-4]: json.loads(path.read_text())["agent_config"] for path in (out / "runs").glob("*/*/seed-0/run.json")}
    assert len(agents) == 2 and {agent["horizon"] for agent in agents.values()} == {4}  # scratch trains with the overrides too
    assert summary["reward_set"].startswith("r3m-") and summary["reward_model"] == DEFAULT_REWARD_MODEL
    assert (out / "data" / "rewards" / summary["reward_set"] / "info.json").is_file()
    board = json.loads((out / "report" / "leaderboard.json").read_text())
    assert sorted(row["method"] for row in board["rows"]) == ["lamp[" + summary["reward_set"] + ",instructions]", "scratch"]
    assert Path(summary["report"]).is_file() and Path(summary["report"]).read_text().startswith("<!DOCTYPE html>")
    assert json.loads((out / "demo.json").read_text())["reward_set"] == summary["reward_set"]
    assert again["reward_set"] == summary["reward_set"]
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "lamp-data"), "verify", str(out / "data")], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_demo_refuses_a_missing_reward_model(tmp_path, monkeypatch):
    import lamp_eval.demo as demo
    from lamp_data.errors import LampError
    from lamp_data.rewards.vlm import shipped_model_path

    assert shipped_model_path(DEFAULT_REWARD_MODEL).is_file()
    monkeypatch.setattr("lamp_data.rewards.vlm.shipped.MODELS_ROOT", tmp_path / "absent")
    with pytest.raises(LampError, match=f"shipped reward model '{DEFAULT_REWARD_MODEL}' is missing from this install"):
        demo.run_demo(tmp_path / "out", _micro())
    assert not (tmp_path / "out").exists()


def test_demo_report_cites_the_reference_experiment(tmp_path):
    from lamp_eval.demo import demo_about, reference_summary

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"settings": {"steps": 16000}, "partial": True, "finished": 7, "planned": 30, "cells": [
        {"task": "door-close", "method": "lamp", "runs": 5, "statistic": "iqm",
         "norm-final": {"value": 0.61, "low": 0.5, "high": 0.7}},
        {"task": "door-close", "method": "p2e", "runs": 0, "statistic": "mean"},
    ]}))
    text = reference_summary(summary)
    assert "(partial: 7 of 30 runs): 16000 env steps per run" in text and "door-close lamp (5 runs)" in text
    assert "iqm 0.61 [0.50, 0.70]" in text and "p2e" not in text
    assert "results/reference/grid.md" in reference_summary(tmp_path / "missing.json")
    assert "reference" in demo_about(DemoConfig(), "r3m:model.pt", "r3m-abc")


def test_the_demo_refuses_a_finetuning_env_whose_frames_differ_from_pretrainings():
    with pytest.raises(LampError, match=r"finetuning env's frames \(64 px\) must be the pretraining env's \(32 px\)"):
        DemoConfig(env_config=EnvConfig(image_size=32))
    assert DemoConfig().finetune_env_config == finetune_env(episode_length=100)
