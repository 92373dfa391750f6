"""Finetuning end to end on the dummy env with the tiny agent, from scratch and pretrained."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from lamp_data.envs import EnvConfig, RandomizationConfig
from lamp_data.errors import LampError
from lamp_eval.finetune import FinetuneConfig, finetune, method_label, plan_runs
from lamp_eval.report import ReportConfig, leaderboard
from lamp_eval.runs import RUN_INFO, RUN_LOG, Evaluation, eval_episode_seeds, find_runs, with_finetune_env

LANG_DIM = 384  # all-MiniLM-L6-v2


def _save_pretrained(folder, alpha, info):
    from lamp_agent import Agent, load_preset

    agent = Agent(load_preset("tiny", alpha=alpha), image_size=16, state_dim=4, action_dim=4, lang_dim=LANG_DIM, seed=7)
    agent.info = info
    agent.save(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "lamp": _save_pretrained(root / "lamp", 0.9, {"reward_set": "r3m-abc123", "prompt_set": {"hash": "0f", "count": 3}}),
        "p2e": _save_pretrained(root / "p2e", 1.0, {}),
    }


def _config(out, inits, **changes):
    values = dict(
        tasks=("reach-dummy",), inits=tuple(str(init) for init in inits), out=str(out), seeds=(0,), steps=10,
        eval_every=5, eval_episodes=2, env="dummy", image_size=16, episode_length=5, preset="tiny",
        replay_ratio=2.0, batch_size=2, seq_len=5,
    )
    values.update(changes)
    return FinetuneConfig(**with_finetune_env(values))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, checkpoints):
    out = tmp_path_factory.mktemp("runs")
    results = finetune(_config(out, ["scratch", checkpoints["lamp"]], save_agent=True), progress=False)
    return out, results


def test_method_labels_come_from_checkpoints(checkpoints, tmp_path):
    assert method_label("scratch") == "scratch"
    assert method_label(str(checkpoints["lamp"])) == "lamp[r3m-abc123]"
    assert method_label(str(checkpoints["p2e"])) == "p2e"
    # the prompt set's name is found in the reward set's info when the dataset is at hand
    reward_info = tmp_path / "data" / "rewards" / "clip-0f0f" / "info.json"
    reward_info.parent.mkdir(parents=True)
    reward_info.write_text(json.dumps({"provenance": {"prompt_set_name": "random-verbs"}}))
    info = {"reward_set": "clip-0f0f", "pretrain": {"data": str(tmp_path / "data")}}
    ablation = _save_pretrained(tmp_path / "verbs", 0.5, info)
    assert method_label(str(ablation)) == "lamp[clip-0f0f,random-verbs,alpha=0.5]"
    reward_info.write_text(json.dumps({"provenance": {"prompt_set_name": "lamp-metaworld"}}))
    assert method_label(str(ablation)) == "lamp[clip-0f0f,alpha=0.5]"


def test_runs_end_to_end_from_scratch_and_pretrained(finished):
    out, results = finished
    assert [(result.config.method, result.skipped) for result in results] == [("scratch", False), ("lamp[r3m-abc123]", False)]
    for result in results:
        folder = Path(result.folder)
        assert folder == out / result.config.method / "reach-dummy" / "seed-0"
        lines = [json.loads(line) for line in (folder / RUN_LOG).read_text().splitlines()]
        assert [line["step"] for line in lines] == [0, 5, 10]
        assert [episode["seed"] for episode in lines[-1]["episodes"]] == eval_episode_seeds(2)
        assert all(0.0 <= line["success_rate"] <= 1.0 for line in lines)
        info = json.loads((folder / RUN_INFO).read_text())
        assert info["status"] == "finished" and info["config"]["steps"] == 10 and info["format_version"] == 1
        assert "torch" in info["provenance"]["versions"] and info["instruction_used"] in ("reach the red block", "push the red block")
        assert not set(info["summary"]["train_seeds"]) & set(info["eval_seeds"])
        assert info["env_config"]["randomization"]["max_distractors"] == 0  # canonical env
        assert info["summary"]["env_steps"] == 10 and info["summary"]["updates"] >= 1
        gif = (folder / "rollout.gif").read_bytes()
        assert gif[:6] == b"GIF89a" and len(gif) < 50_000
        assert not list(folder.parent.glob(".*partial"))
    assert results[0].config.init == "scratch" and not json.loads((results[0].folder / RUN_INFO).read_text())["pretrained"]


def test_critic_is_linearly_probed_and_everything_else_trains(finished, checkpoints):
    _, results = finished
    before = load_file(str(checkpoints["lamp"] / "weights.safetensors"))
    after = load_file(str(results[1].folder / "agent" / "weights.safetensors"))
    body = [name for name in before if name.startswith("critic.body.") or name.startswith("critic.activation.")]
    assert body
    for name in body:
        assert np.array_equal(before[name].numpy(), after[name].numpy()), name
    changed = lambda prefix: any(  # noqa: E731
        not np.array_equal(before[name].numpy(), after[name].numpy()) for name in before if name.startswith(prefix)
    )
    for trained in ("critic.head.", "actor.", "rssm.", "frontend.", "reward."):
        assert changed(trained), trained
    info = json.loads((results[1].folder / RUN_INFO).read_text())
    scratch_info = json.loads((results[0].folder / RUN_INFO).read_text())
    assert info["trainable_parameters"] < scratch_info["trainable_parameters"]


def test_a_fully_trained_critic_is_a_setting_of_the_run_and_its_identity(finished, checkpoints, tmp_path):
    out, results = finished
    [full] = finetune(_config(tmp_path / "full", [checkpoints["lamp"]], finetune_critic="full", save_agent=True, steps=30, eval_every=15),
                      progress=False)  # the fresh head is zero: the body learns from the second update on
    before = load_file(str(checkpoints["lamp"] / "weights.safetensors"))
    after = load_file(str(full.folder / "agent" / "weights.safetensors"))
    assert any(not np.array_equal(before[name].numpy(), after[name].numpy()) for name in before if name.startswith("critic.body."))
    info = json.loads((full.folder / RUN_INFO).read_text())
    probed = json.loads((results[1].folder / RUN_INFO).read_text())
    assert info["agent_config"]["finetune_critic"] == "full" and probed["agent_config"]["finetune_critic"] == "probe"
    assert info["trainable_parameters"] > probed["trainable_parameters"]
    assert info["config"]["finetune_critic"] == "full" and "finetune_critic" not in probed["config"]


def test_evaluations_with_sampled_actions_are_logged_beside_the_mean_action_and_change_no_training(finished, tmp_path):
    out, results = finished
    [plain] = [result for result in results if result.config.init == "scratch"]
    [sampled] = finetune(_config(tmp_path, ["scratch"], eval_sampled=True), progress=False)
    lines = [json.loads(line) for line in (sampled.folder / RUN_LOG).read_text().splitlines()]
    assert [{key: value for key, value in line.items() if key != "sampled"} for line in lines] == [
        json.loads(line) for line in (plain.folder / RUN_LOG).read_text().splitlines()]
    assert (sampled.folder / "train.jsonl").read_text() == (plain.folder / "train.jsonl").read_text()
    assert all(set(line["sampled"]) == {"success_rate", "return_mean", "episodes"} for line in lines)
    assert all([episode["seed"] for episode in line["sampled"]["episodes"]] == eval_episode_seeds(2) for line in lines)
    assert any(line["sampled"]["episodes"] != line["episodes"] for line in lines)
    assert [Evaluation.from_dict(line).to_dict() for line in lines] == lines  # what a resumed run reads back
    assert json.loads((sampled.folder / RUN_INFO).read_text())["config"]["eval_sampled"] is True
    assert "eval_sampled" not in json.loads((plain.folder / RUN_INFO).read_text())["config"]
    assert sampled.config.identity() != dataclasses.replace(sampled.config, eval_sampled=False).identity()
    [again] = finetune(_config(tmp_path / "again", ["scratch"], eval_sampled=True), progress=False)
    assert (again.folder / RUN_LOG).read_text() == (sampled.folder / RUN_LOG).read_text()


def test_finished_runs_are_skipped_and_interrupted_ones_restart(finished, checkpoints, tmp_path):
    out, results = finished
    again = finetune(_config(out, ["scratch", checkpoints["lamp"]], save_agent=True), progress=False)
    assert [result.skipped for result in again] == [True, True]
    assert [result.final_success_rate for result in again] == [result.final_success_rate for result in results]
    with pytest.raises(LampError, match="different config"):
        finetune(_config(out, ["scratch"], steps=15), progress=False)
    # a run cut off mid-way leaves only a hidden staging folder; the next call starts it afresh
    staging = tmp_path / "scratch" / "reach-dummy" / ".seed-0.partial"
    staging.mkdir(parents=True)
    (staging / RUN_LOG).write_text('{"step": 0, "success_rate": 1.0, "return_mean": 0, "episodes": []}\n{"st')
    [result] = finetune(_config(tmp_path, ["scratch"]), progress=False)
    assert not staging.exists() and not result.skipped
    log = (result.folder / RUN_LOG).read_text()
    assert log == (results[0].folder / RUN_LOG).read_text()  # same seed, same run


def test_leaderboard_from_finetune_runs(finished, tmp_path):
    out, _ = finished
    result = leaderboard([out], tmp_path / "report", ReportConfig(reps=200))
    assert {row.method for row in result.leaderboard.rows} == {"scratch", "lamp[r3m-abc123]"}
    assert (tmp_path / "report" / "gifs" / "reach-dummy__scratch__seed-0.gif").is_file()
    page = (tmp_path / "report" / "leaderboard.html").read_text()
    assert "<figcaption>reach-dummy · scratch · seed 0</figcaption>" in page
    assert len(find_runs([out])) == 2


def test_bad_input_is_one_line_exit_2(checkpoints, tmp_path):
    from lamp_cli.eval import main

    runner = CliRunner()
    cases = {
        "unknown task 'no-such-task'": ["--task", "no-such-task", "--init", "scratch"],
        "pretraining split": ["--task", "button-press", "--init", "scratch"],
        "does not exist": ["--task", "pick-place", "--init", str(tmp_path / "missing")],
        "not an agent checkpoint": ["--task", "pick-place", "--init", str(tmp_path)],
        "--seeds must look like": ["--task", "pick-place", "--init", "scratch", "--seeds", "a,b"],
        "unknown env": ["--task", "pick-place", "--env", "nope", "--init", "scratch"],
    }
    for message, arguments in cases.items():
        result = runner.invoke(main, ["finetune", *arguments, "--out", str(tmp_path / "runs")])
        assert result.exit_code == 2, (message, result.output)
        assert len(result.output.strip().splitlines()) == 1 and message in result.output, result.output
    assert not (tmp_path / "runs").exists()
    twin = _save_pretrained(tmp_path / "twin", 1.0, {})
    with pytest.raises(LampError, match="both get the method label 'p2e'"):
        finetune(_config(tmp_path / "runs", [checkpoints["p2e"], twin]), progress=False)
    with pytest.raises(LampError, match="single --init"):
        _config(tmp_path, ["scratch", checkpoints["lamp"]], method="mine")


def test_cli_as_subprocess(finished, tmp_path):
    out, _ = finished
    command = Path(sys.executable).parent / "lamp-eval"
    report = subprocess.run([command, "leaderboard", str(out), "--out", str(tmp_path / "r"), "--reps", "200"],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "lamp[r3m-abc123]" in report.stdout
    bad = subprocess.run([command, "finetune", "--task", "no-such-task", "--init", "scratch", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("Error: unknown task")


@pytest.mark.slow
def test_short_run_on_a_real_heldout_metaworld_task_with_instruction_tuning(tmp_path):
    from lamp_data.envs.tasks import get_task

    spec = get_task("door-close")
    candidates = (spec.instruction, *spec.paraphrases)
    steps = len(candidates) * 3 + 6
    config = _config(tmp_path, ["scratch"], tasks=("door-close",), env=None, instruction="auto", steps=steps,
                     eval_every=6, eval_episodes=1, episode_length=3, seq_len=4)
    [result] = finetune(config, progress=False)
    info = json.loads((result.folder / RUN_INFO).read_text())
    assert info["config"]["env"] == "mw-door-close" and info["env_spec"]["backend"] == "metaworld"
    assert [entry["instruction"] for entry in info["instructions_tried"]] == list(candidates)
    assert info["instruction_used"] in candidates and info["summary"]["env_steps"] == steps
    steps_logged = [json.loads(line)["step"] for line in (result.folder / RUN_LOG).read_text().splitlines()]
    assert steps_logged[0] == len(candidates) * 3 and steps_logged[-1] == steps
    with pytest.raises(LampError, match="leaves nothing"):
        finetune(_config(tmp_path / "short", ["scratch"], tasks=("door-close",), env=None, instruction="auto",
                         steps=3, eval_every=3, episode_length=3, seq_len=4), progress=False)
    assert not (tmp_path / "short").exists()


def test_a_finetuning_env_holds_only_what_a_run_sets_and_is_recorded_flat(tmp_path):
    with pytest.raises(LampError, match="sets only image size, episode length, goal marker and action repeat"):
        FinetuneConfig(tasks=("reach-dummy",), inits=("scratch",), out=str(tmp_path), env="dummy",
                       env_config=EnvConfig(image_size=16, episode_length=5))  # randomized
    with pytest.raises(LampError, match="not both"):
        _config(tmp_path, ["scratch"], env_config=EnvConfig(image_size=16, episode_length=5))
    [run] = plan_runs(_config(tmp_path, ["scratch"]))
    record = run.to_dict()
    assert (record["image_size"], record["episode_length"]) == (16, 5) and "env_config" not in record
    assert "goal_marker" not in record and run.env_config.randomization == RandomizationConfig.canonical()


def test_a_runs_action_repeat_is_its_inits_unless_given_and_its_record_says_which(tmp_path, checkpoints):
    from lamp_agent.checkpoint import resolve_checkpoint
    from lamp_eval.finetune import run_env_config

    [scratch] = plan_runs(_config(tmp_path, ["scratch"], preset="cpu", seq_len=3))
    assert run_env_config(scratch).action_repeat == 2 and scratch.to_dict()["action_repeat"] is None  # the preset's env
    [given] = plan_runs(_config(tmp_path, ["scratch"], preset="cpu", seq_len=3, action_repeat=1))
    assert run_env_config(given).action_repeat == 1 and given.to_dict()["action_repeat"] == 1
    assert given.identity() != scratch.identity()
    [pretrained] = plan_runs(_config(tmp_path, [checkpoints["lamp"]], seq_len=3))
    assert run_env_config(pretrained).action_repeat == 1
    # a checkpoint written when the agent config held the action repeat acts at that one
    legacy = tmp_path / "legacy"
    shutil.copytree(resolve_checkpoint(checkpoints["lamp"]), legacy)
    meta = json.loads((legacy / "config.json").read_text())
    meta["config"]["action_repeat"] = 2
    (legacy / "config.json").write_text(json.dumps(meta))
    [old] = plan_runs(_config(tmp_path, [legacy], seq_len=3))
    assert run_env_config(old).action_repeat == 2 and old.to_dict()["action_repeat"] is None


def test_goal_marker_reaches_the_env_and_the_run_identity(tmp_path):
    config = _config(tmp_path, ["scratch"], tasks=("pick-place",), env=None, steps=6, eval_every=6, eval_episodes=1,
                     episode_length=3, seq_len=4, goal_marker=True)
    [result] = finetune(config, progress=False)
    info = json.loads((result.folder / RUN_INFO).read_text())
    assert info["config"]["goal_marker"] is True and info["env_config"]["goal_marker"] is True
    assert info["env_spec"]["config"]["goal_marker"] is True
    plain = dataclasses.replace(result.config, env_config=dataclasses.replace(result.config.env_config, goal_marker=False))
    assert "goal_marker" not in plain.to_dict() and plain.identity() != result.config.identity()


def test_schedule_counts_env_steps_with_action_repeat_prefill_and_replay_ratio(tmp_path):
    from lamp_eval.runs import TRAIN_LOG

    config = _config(tmp_path, ["scratch"], steps=20, replay_ratio=2.0, batch_size=2, seq_len=3, action_repeat=2,
                     prefill=10, initial_updates=3)
    [result] = finetune(config, progress=False)
    info = json.loads((result.folder / RUN_INFO).read_text())
    assert info["env_config"]["action_repeat"] == 2 and info["schedule"]["prefill"] == 10
    assert info["updates_per_env_step"] == pytest.approx(2.0 / 6)
    # no update during the prefill, then the burst, then one update per 3 env steps
    assert abs(info["summary"]["updates"] - (3 + (20 - 10) // 3)) <= 1, info["summary"]
    assert info["summary"]["env_steps"] == 20
    assert [json.loads(line)["step"] for line in (result.folder / RUN_LOG).read_text().splitlines()] == [0, 5, 10, 15, 20]
    # every training episode holds ceil(5 / 2) = 3 decisions
    training = [json.loads(line) for line in (result.folder / TRAIN_LOG).read_text().splitlines()]
    assert [line["step"] for line in training] == [5, 10, 15, 20]
    assert training[0]["updates"] == 0 and "actor_entropy" not in training[0]
    assert training[-1]["updates"] == info["summary"]["updates"]
    for name in ("actor_entropy", "model_loss", "reward_excess", "critic_loss", "imagined_return"):
        assert np.isfinite(training[-1][name]), name
    assert list((result.folder / "tb").glob("events.out.tfevents.*"))


def test_runs_store_the_tasks_random_and_expert_baselines(finished):
    _, results = finished
    info = json.loads((results[0].folder / RUN_INFO).read_text())
    baselines = info["baselines"]
    assert baselines["seeds"] == info["eval_seeds"] and baselines["env_config"]["action_repeat"] == 1
    assert np.isfinite(baselines["random"]["return_mean"])


def test_a_replay_ratio_of_zero_is_refused(tmp_path):
    from lamp_cli.eval import main

    for flag, value in (("--replay-ratio", "0"), ("--action-repeat", "0"), ("--prefill", "-1")):
        result = CliRunner().invoke(main, ["finetune", "--task", "reach-dummy", "--env", "dummy", "--init", "scratch",
                                           flag, value, "--out", str(tmp_path / "runs")])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "runs").exists()


def test_runs_leave_the_world_models_open_loop_predictions(tmp_path):
    from lamp_eval.finetune import OPEN_LOOP_PNG

    config = _config(tmp_path, ["scratch"], steps=20, episode_length=10, seq_len=8, replay_ratio=8.0)
    [result] = finetune(config, progress=False)
    import imageio.v3 as iio

    image = iio.imread(result.folder / OPEN_LOOP_PNG)
    assert image.shape == (3 * 2 * 16, 8 * 16, 3)  # 2 episodes held: truth, model, error rows each


def test_a_two_camera_checkpoint_finetunes_in_an_env_that_renders_both_views(tmp_path):
    from lamp_agent import Agent, load_preset

    agent = Agent(load_preset("tiny"), image_size=16, state_dim=4, action_dim=4, lang_dim=LANG_DIM, seed=7,
                  cameras=("front", "wrist"))
    agent.info = {"reward_set": "r3m-abc123"}
    agent.save(tmp_path / "two")
    results = finetune(_config(tmp_path / "runs", [tmp_path / "two"], save_agent=True), progress=False)
    info = json.loads((Path(results[0].folder) / RUN_INFO).read_text())
    assert info["status"] == "finished" and info["summary"]["updates"] >= 1
    assert info["env_config"]["cameras"] == ["front", "wrist"]
    assert "cameras" not in info["baselines"]["env_config"]  # measured on the front camera alone
    finetuned = Agent.load(Path(results[0].folder) / "agent")
    assert finetuned.cameras == ("front", "wrist")
    # a checkpoint saved before agents recorded their cameras encodes the front camera alone
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["cameras"] == ["front", "wrist"]
    one = Agent(load_preset("tiny"), image_size=16, state_dim=4, action_dim=4, lang_dim=LANG_DIM, seed=7)
    one.save(tmp_path / "one")
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    del config["cameras"]
    (tmp_path / "one" / "config.json").write_text(json.dumps(config))
    assert Agent.load(tmp_path / "one").cameras == ("front",)


def test_a_checkpoint_of_another_frame_size_is_refused_before_anything_is_written(checkpoints, tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(LampError, match="trained on 16-px frames, not 32; pass --image-size 16"):
        finetune(_config(out, [checkpoints["lamp"]], image_size=32), progress=False)
    assert not out.exists()
