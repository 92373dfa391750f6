"""Online training: the learning settings the cpu preset was chosen from, runs continued after a
kill, the lock on a run folder, and the precision chosen per machine."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lamp_agent import Agent, load_preset
from lamp_agent.core.replay import EpisodeReplay
from lamp_agent.precision import native_bf16_cpu, resolve_precision
from lamp_data.errors import LampError
from test_agent_model import SIZES, moving_dot_episode

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def batch():
    replay = EpisodeReplay(capacity_steps=10_000, seq_len=16, seed=0)
    for seed in range(6):
        replay.add_episode(moving_dot_episode(20, seed))
    sampled = replay.sample(4)
    sampled["lang"] = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    return sampled


def test_learning_rates_warm_up_per_optimizer_and_survive_a_checkpoint(batch, tmp_path):
    agent = Agent(load_preset("tiny", lr_warmup=10), **SIZES, seed=0)
    for _ in range(3):
        agent.train_step(batch, mode="finetune")
    assert agent.optimizers["model"].param_groups[0]["lr"] == pytest.approx(1e-3 * 3 / 10)
    assert agent.optimizers["actor"].param_groups[0]["lr"] == pytest.approx(3e-4 * 3 / 10)
    agent.save(tmp_path / "agent")
    loaded = Agent.load(tmp_path / "agent")
    assert loaded.optimizer_steps == agent.optimizer_steps == {"model": 3, "ensemble": 0, "actor": 3, "critic": 3}
    for twin in (agent, loaded):
        for _ in range(8):
            twin.train_step(batch, mode="finetune")
    assert loaded.optimizers["model"].param_groups[0]["lr"] == pytest.approx(1e-3)  # warmed up after 10 steps
    for name, value in agent.nets.state_dict().items():
        assert torch.equal(value, loaded.nets.state_dict()[name]), name
    plain = Agent(load_preset("tiny"), **SIZES, seed=0)
    plain.train_step(batch, mode="finetune")
    assert "base_lr" not in plain.optimizers["model"].param_groups[0]  # no warm-up: optimizer state as before


def test_image_loss_on_a_share_of_the_frames_decodes_only_those(batch):
    agent = Agent(load_preset("tiny", image_loss_fraction=0.25), **SIZES, seed=0)
    decoded = []
    agent.nets["frontend"].image_decoder.register_forward_hook(lambda module, inputs, output: decoded.append(inputs[0].shape[0]))
    metrics = agent.train_step(batch, mode="finetune")
    assert decoded == [16] and np.isfinite(metrics["image_loss"])  # 4 x 16 frames, a quarter decoded
    mwm = Agent(load_preset("tiny", frontend="mwm", image_loss_fraction=0.5), **SIZES, seed=0)
    assert np.isfinite(mwm.train_step(batch, mode="finetune")["features_loss"])


def test_replay_value_loss_changes_the_critic_alone_and_only_in_finetuning(batch):
    plain = Agent(load_preset("tiny"), **SIZES, seed=0)
    repval = Agent(load_preset("tiny", repval_loss=0.3), **SIZES, seed=0)
    first, second = plain.train_step(batch, mode="finetune"), repval.train_step(batch, mode="finetune")
    assert first["model_loss"] == second["model_loss"] and first["actor_loss"] == second["actor_loss"]
    assert second["critic_loss"] > first["critic_loss"] and np.isfinite(second["critic_loss"])
    changed = {name for name, value in plain.nets.state_dict().items() if not torch.equal(value, repval.nets.state_dict()[name])}
    assert changed and all(name.startswith(("critic.", "slow_critic.")) for name in changed), sorted(changed)
    pretrain = Agent(load_preset("tiny", repval_loss=0.3), **SIZES, seed=0).train_step(batch, mode="pretrain")
    assert pretrain == Agent(load_preset("tiny"), **SIZES, seed=0).train_step(batch, mode="pretrain")


def test_prioritised_ends_replay_the_last_window_more_often():
    def last_window_share(prioritize: bool) -> float:
        replay = EpisodeReplay(capacity_steps=1000, seq_len=5, seed=0, prioritize_ends=prioritize)
        replay.add_episode(moving_dot_episode(20, 0))  # 21 frames: starts 0..16
        ends = [bool(replay.sample(1)["is_last"][0, -1]) for _ in range(2000)]
        return float(np.mean(ends))

    assert last_window_share(False) == pytest.approx(1 / 17, abs=0.02)
    assert last_window_share(True) == pytest.approx(5 / 21, abs=0.03)  # starts 16..20 all clip to 16


def test_a_scaled_actor_output_starts_every_state_at_the_same_small_mean():
    agent = Agent(load_preset("tiny", actor_init_scale=0.01), **SIZES, seed=0)
    inputs = torch.randn(64, agent.nets["actor"].net[0].in_features)
    dist = agent.nets["actor"](inputs)
    assert dist.mean.abs().max() < 0.05 and dist.stddev.std() < 0.01
    wide = Agent(load_preset("tiny"), **SIZES, seed=0).nets["actor"](inputs)
    assert wide.mean.abs().max() > 0.1


def test_new_settings_are_checked():
    for name, value in (("lr_warmup", -1), ("image_loss_fraction", 0.0), ("image_loss_fraction", 1.5),
                        ("actor_init_scale", 0.0), ("repval_loss", -0.1)):
        with pytest.raises(LampError, match=name):
            load_preset("tiny", **{name: value})


def test_auto_precision_takes_bf16_only_where_the_hardware_has_it():
    assert native_bf16_cpu(frozenset({"avx2", "amx_bf16", "avx512_bf16"}), onednn_cap="") == "amx_bf16"
    assert native_bf16_cpu(frozenset({"avx2", "avx512f", "avx512_bf16"}), onednn_cap="") == "avx512_bf16"
    assert native_bf16_cpu(frozenset({"avx2", "fma"}), onednn_cap="") is None
    assert native_bf16_cpu(frozenset({"avx2", "amx_bf16"}), onednn_cap="AVX2") is None  # oneDNN capped below it
    assert resolve_precision("fp32", "cpu") == ("fp32", "as configured")
    assert resolve_precision("bf16", "cpu") == ("bf16", "as configured")
    chosen, why = resolve_precision("auto", "cpu")
    assert (chosen == "bf16") == (native_bf16_cpu() is not None) and why.startswith("auto: ")
    agent = Agent(load_preset("tiny", precision="auto"), **SIZES, seed=0)
    assert agent.precision == chosen and agent.config.precision == "auto"
    assert load_preset("paper").precision == "auto" and load_preset("cpu").precision == "fp32"


FINETUNE = [
    "finetune", "--task", "reach-dummy", "--env", "dummy", "--init", "scratch", "--preset", "tiny", "--seeds", "0",
    "--steps", "300", "--eval-every", "60", "--eval-episodes", "2", "--image-size", "16", "--episode-length", "20",
    "--prefill", "40", "--initial-updates", "5", "--replay-ratio", "16", "--threads", "1", "--no-progress",
]


def _finetune(out: Path, **popen) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "lamp_cli.eval", *FINETUNE, "--out", str(out)], cwd=ROOT,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _wait_for(condition, process: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_killed_run_continues_from_its_checkpoint_to_the_same_logs_and_a_second_process_is_locked_out(tmp_path):
    whole = _finetune(tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.communicate()
    cut = _finetune(tmp_path / "cut")
    staging = tmp_path / "cut" / "scratch" / "reach-dummy" / ".seed-0.partial"
    latest = staging / "resume" / "checkpoints" / "latest.json"
    _wait_for(latest.is_file, cut)
    second = _finetune(tmp_path / "cut")  # the same run, while the first works on it
    _, error = second.communicate(timeout=120)
    assert second.returncode == 2 and error.strip().count("\n") == 0 and "another lamp-eval finetune is working on" in error
    _wait_for(lambda: json.loads(latest.read_text())["step"] >= 120, cut)  # a later checkpoint, mid-run
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    assert not (tmp_path / "cut" / "scratch" / "reach-dummy" / "seed-0").exists()
    again = _finetune(tmp_path / "cut")
    assert again.wait(timeout=300) == 0, again.communicate()
    done, reference = tmp_path / "cut" / "scratch" / "reach-dummy" / "seed-0", tmp_path / "whole" / "scratch" / "reach-dummy" / "seed-0"
    for name in ("log.jsonl", "train.jsonl", "rollout.gif"):
        assert (done / name).read_bytes() == (reference / name).read_bytes(), name
    summary = json.loads((done / "run.json").read_text())["summary"]
    assert summary["resumes"] == 1 and summary["checkpoints"] >= 4 and summary["checkpoint_seconds"] >= 0
    assert not (done / "resume").exists() and not staging.exists()
    events = [path for path in (done / "tb").iterdir() if path.name.startswith("events")]
    assert len(events) == 2  # the cut attempt's and the continuation's, the first purged past the checkpoint
