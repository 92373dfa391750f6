"""Pretraining from a dataset's shards and reward set: collection into the dataset, resume, errors, CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from lamp_agent import PretrainConfig
from lamp_agent.pretrain import RUN_FILE, pretrain
from lamp_cli.agent import main as agent_cli
from lamp_cli.data import main as data_cli
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.rewards.text import embedding_cache_path
from lamp_data.store import iter_episodes, open_dataset, verify_dataset

FINGERPRINT = "colour-000001"
PROMPTS = ["reach the red block", "push the red block", "make the scene blue"]
SMALL = {"batch_size": 2, "seq_len": 8}


class ColourScorer:
    """A tiny stand-in reward model: each prompt scores one colour channel of every frame."""

    prompts = PROMPTS
    fingerprint = FINGERPRINT
    info = {"model_spec": "colour:channels", "model": {"family": "colour"}, "prompt_set": {"name": "colours", "count": 3}}

    def score(self, frames: np.ndarray) -> np.ndarray:
        return (frames.astype(np.float32) / 255).mean((1, 2)).astype(np.float16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Four 20-step dummy episodes in two shards, with a colour reward set."""
    out = tmp_path_factory.mktemp("pretrain") / "data"
    config = CollectConfig(env="dummy", episodes=4, shard_episodes=2, seed=3, env_config=EnvConfig(image_size=16, episode_length=20))
    collect(out, config, scorer_factory=ColourScorer, progress=False)
    return out


@pytest.fixture
def data_copy(dataset, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    return copy


def cached_embeddings(out: Path) -> np.ndarray:
    """Put fixed prompt embeddings where pretraining caches them, so tests skip the text encoder."""
    embeddings = np.random.default_rng(0).normal(size=(len(PROMPTS), 384)).astype(np.float32)
    path = embedding_cache_path(PROMPTS, "minilm", out / "lang")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, embeddings)
    return embeddings


def run(data: Path, out: Path, steps: int, **options) -> object:
    if not (out / "lang").exists():
        cached_embeddings(out)
    options = {"agent_overrides": SMALL, **options}
    config = PretrainConfig(data=str(data), rewards=FINGERPRINT, out=str(out), steps=steps, preset="tiny", **options)
    return pretrain(config, progress=False, scorer_factory=ColourScorer)


def test_pretraining_collects_scored_shards_that_verify(data_copy, tmp_path):
    summary = run(data_copy, tmp_path / "run", steps=4, collect_every=2)
    assert summary.step == 4 and summary.updates == 4 and summary.episodes_collected == 2
    assert summary.shards_written == 2 and 0.0 <= summary.data_wait_fraction < 1.0
    assert np.isfinite(list(summary.metrics.values())).all() and "intrinsic_reward" in summary.metrics
    dataset = open_dataset(data_copy)
    agent_shards = [name for name in dataset.shard_sidecars() if name.startswith("agent-")]
    assert len(agent_shards) == 2 and len({name.rsplit("-", 2)[1] for name in agent_shards}) == 2
    assert set(agent_shards) <= set(dataset.reward_shard_sidecars(FINGERPRINT))
    assert verify_dataset(data_copy).ok
    result = CliRunner().invoke(data_cli, ["verify", str(data_copy)])
    assert result.exit_code == 0, result.output
    run_folder = tmp_path / "run"
    assert (run_folder / "checkpoints" / "step-00000004" / "config.json").is_file()
    assert list((run_folder / "tb").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_folder / "tb"), size_guidance={"images": 0}).Reload()
    assert "world_model/open_loop" in events.Tags()["images"]  # the world model's open-loop check
    with pytest.raises(LampError, match="pass --resume"):
        run(data_copy, run_folder, steps=6, collect_every=2)


def test_resume_continues_exactly(dataset, tmp_path):
    straight_data, resumed_data = tmp_path / "a", tmp_path / "b"
    shutil.copytree(dataset, straight_data)
    shutil.copytree(dataset, resumed_data)
    straight = run(straight_data, tmp_path / "straight", steps=4, collect_every=2)
    first = run(resumed_data, tmp_path / "resumed", steps=2, collect_every=2)
    assert first.step == 2 and first.episodes_collected == 1
    # An interruption after the checkpoint but before the collected shard was committed:
    for path in list((resumed_data / "shards").glob("agent-*")) + list((resumed_data / "rewards").glob("*/agent-*")):
        path.unlink()
    second = run(resumed_data, tmp_path / "resumed", steps=4, collect_every=2, resume=True)
    assert second.resumed_from == 2 and second.updates == 2 and second.episodes_collected == 2
    expected = load_file(Path(straight.checkpoint) / "weights.safetensors")
    got = load_file(Path(second.checkpoint) / "weights.safetensors")
    assert expected.keys() == got.keys()
    for name in expected:
        assert np.array_equal(expected[name].numpy(), got[name].numpy()), name
    assert second.metrics == straight.metrics


def test_reward_set_that_does_not_match_the_dataset_is_refused(data_copy, tmp_path):
    with pytest.raises(LampError, match="has no reward set 'clip-nothing'"):
        pretrain(PretrainConfig(data=str(data_copy), rewards="clip-nothing", out=str(tmp_path / "r"), steps=1), progress=False)
    with pytest.raises(LampError, match="fewer than the training sequence length 64"):
        run(data_copy, tmp_path / "long", steps=1, agent_overrides={"seq_len": 64})
    for suffix in (".json", ".tar"):
        (data_copy / "shards" / f"collect-00000002{suffix}").unlink()
    with pytest.raises(LampError, match="does not match"):
        pretrain(PretrainConfig(data=str(data_copy), rewards=FINGERPRINT, out=str(tmp_path / "r"), steps=1), progress=False)
    assert not (tmp_path / "r").exists()


def test_cli_reports_bad_input_on_one_line(data_copy, tmp_path):
    result = CliRunner().invoke(agent_cli, ["pretrain", "--data", str(data_copy), "--rewards", "nope", "--steps", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "has no reward set 'nope'" in result.output


def test_cli_pretrains_as_a_subprocess_with_the_real_text_encoder(data_copy, tmp_path):
    command = Path(sys.executable).parent / "lamp-agent"
    out = tmp_path / "run"
    completed = subprocess.run(
        [str(command), "pretrain", "--data", str(data_copy), "--rewards", FINGERPRINT, "--steps", "2",
         "--preset", "tiny", "--alpha", "1.0", "--own-prompt", "0.0", "--out", str(out), "--quiet", "--threads", "1"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    assert "step 2 (2 updates" in completed.stdout
    (cache,) = (out / "lang").glob("*.npy")
    embeddings = np.load(cache)
    assert embeddings.shape == (3, 384) and np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    import json

    meta = json.loads((out / "checkpoints" / "step-00000002" / "config.json").read_text())
    assert meta["info"]["alpha"] == 1.0 and meta["info"]["method"] == "p2e" and meta["info"]["reward_set"] == FINGERPRINT
    assert meta["config"]["own_prompt_fraction"] == 0.0


def test_the_checkpoint_acts_at_the_action_repeat_its_data_was_recorded_with(dataset, tmp_path):
    from lamp_agent import Agent
    from lamp_agent.online import init_action_repeat

    cached_embeddings(tmp_path / "run")
    config = PretrainConfig(data=str(dataset), rewards=FINGERPRINT, out=str(tmp_path / "run"), steps=1, preset="cpu", agent_overrides=SMALL)
    summary = pretrain(config, progress=False, scorer_factory=ColourScorer)
    # the cpu preset's env says 2; the data says 1, and the agent config holds none
    assert Agent.load(summary.checkpoint).info["action_repeat"] == 1 and "action_repeat" not in Agent.load(summary.checkpoint).config.to_dict()
    assert init_action_repeat(summary.checkpoint, "cpu") == 1 and init_action_repeat("scratch", "cpu") == 2
    with pytest.raises(LampError, match="action_repeat is the env's, not the agent's"):
        run(dataset, tmp_path / "other", steps=1, agent_overrides={**SMALL, "action_repeat": 2})
    assert not (tmp_path / "other" / RUN_FILE).exists()


def test_pretraining_on_two_camera_data_encodes_both_views(tmp_path):
    from lamp_agent import Agent

    data = tmp_path / "data"
    config = CollectConfig(env="dummy", episodes=2, shard_episodes=2, seed=3, env_config=EnvConfig(image_size=16, episode_length=20, cameras=("front", "wrist")))
    collect(data, config, scorer_factory=ColourScorer, progress=False)
    summary = run(data, tmp_path / "run", steps=2, collect_every=2)
    assert summary.step == 2 and np.isfinite(list(summary.metrics.values())).all()
    agent = Agent.load(summary.checkpoint)
    assert agent.cameras == ("front", "wrist")
    assert agent.nets["frontend"].image_encoder.net[0].in_channels == 6  # the two views stacked
    assert agent.nets["frontend"].image_decoder.net[-1].out_channels == 6
    collected = [e for e in iter_episodes(data) if e["meta"]["run"].startswith("agent-")]
    assert collected and all(e["image_wrist"].shape == e["image"].shape for e in collected)
    assert verify_dataset(data).ok


def test_a_preset_asking_for_the_wrist_camera_refuses_front_only_data(dataset, tmp_path):
    with pytest.raises(LampError, match="encodes cameras front,wrist, but .* has no wrist camera; collect it with --cameras front,wrist"):
        run(dataset, tmp_path / "run", steps=1, agent_overrides={**SMALL, "cameras": ["front", "wrist"]})
    assert not (tmp_path / "run" / "checkpoints").exists()
