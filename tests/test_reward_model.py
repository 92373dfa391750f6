"""Training the in-domain reward model: reproducible resume, data checks, card, CLI, and that it
learns rewards a random model of the same architecture does not have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lamp_data import schema
from lamp_data.errors import LampError
from lamp_data.rewards.training import RewardModelTrainConfig, train_reward_model

FIXTURE_TASKS = {"red-dot-fixture": "push the red block", "blue-dot-fixture": "lift the cup"}
"""Two fake tasks: in one the red dot travels to the top-left corner, in the other the blue dot
travels to the bottom-right one. Both dots are in every frame, so only the motion tells them apart."""
SIZE = 16
STEPS = 8


def _episode(task: str, expert: bool, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], bool]:
    """Frames of one fixture episode: the task's dot moves to its corner (expert) or both wander."""
    red, blue = rng.uniform(4, SIZE - 5, 2), rng.uniform(4, SIZE - 5, 2)
    goal = np.array([1.0, 1.0]) if task == "red-dot-fixture" else np.array([SIZE - 2.0, SIZE - 2.0])
    background = rng.integers(20, 90, 3)
    frames = []
    for step in range(STEPS + 1):
        if step:
            if expert:
                moving = red if task == "red-dot-fixture" else blue
                moving += (goal - moving) / max(1, STEPS + 1 - step)
            else:
                red = np.clip(red + rng.normal(0, 1.0, 2), 1, SIZE - 2)
                blue = np.clip(blue + rng.normal(0, 1.0, 2), 1, SIZE - 2)
        image = np.empty((SIZE, SIZE, 3), np.uint8)
        image[:] = background
        for position, colour in ((red, (255, 0, 0)), (blue, (0, 0, 255))):
            row, col = np.round(position).astype(int)
            image[row - 1 : row + 2, col - 1 : col + 2] = colour
        frames.append(image)
    moving = red if task == "red-dot-fixture" else blue
    success = np.zeros(STEPS + 1, bool)
    success[-1] = bool(np.linalg.norm(moving - goal) < 1.0)
    episode = {
        schema.IMAGE: np.stack(frames),
        schema.STATE: np.zeros((STEPS + 1, 2), np.float32),
        schema.ACTION: np.zeros((STEPS, 2), np.float32),
        schema.REWARD: np.zeros(STEPS, np.float32),
        schema.SUCCESS: success,
        schema.IS_FIRST: np.arange(STEPS + 1) == 0,
        schema.IS_LAST: np.arange(STEPS + 1) == STEPS,
        schema.IS_TERMINAL: np.zeros(STEPS + 1, bool),
    }
    return episode, bool(success[-1])


def write_fixture_dataset(path: Path, episodes: int, seed: int, policy: str = "expert", random_share: float = 0.0) -> Path:
    """A dataset of fixture episodes written through the store's writer, ``episodes`` per shard of 8."""
    from lamp_data.store import layout
    from lamp_data.store.writer import ShardWriter, create_dataset, encode_episode

    dataset = create_dataset(path, {"env": {"name": "dot-fixture"}, "collection": {"seed": seed}})
    rng = np.random.default_rng(seed)
    tasks = sorted(FIXTURE_TASKS)
    for first in range(0, episodes, 8):
        with ShardWriter(dataset.shards_dir / f"{layout.shard_name('fixture', first)}.tar") as shard:
            for index in range(first, min(first + 8, episodes)):
                task = tasks[index % 2]
                expert = rng.random() >= random_share
                episode, success = _episode(task, expert, rng)
                meta = {"task": task, "instruction": FIXTURE_TASKS[task], "policy": policy if expert else "random",
                        "episode": index, "steps": STEPS, "success": success}
                key = layout.episode_key(index)
                shard.add(encode_episode(key, episode, meta), {"key": key, "steps": STEPS, "task": task, "success": success})
    return path


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory) -> str:
    from tiny_models import save_tiny_distilbert

    return str(save_tiny_distilbert(tmp_path_factory.mktemp("text") / "distilbert"))


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    return write_fixture_dataset(tmp_path_factory.mktemp("train") / "data", 32, seed=0)


def _config(text_folder: str, **overrides) -> RewardModelTrainConfig:
    return RewardModelTrainConfig.tiny(text_encoder=text_folder, image_size=SIZE, **overrides)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from lamp_data.rewards.vlm.r3m.checkpoint import read_r3m_checkpoint

    return read_r3m_checkpoint(path)[1]


def test_resumed_training_equals_straight_training(tmp_path, train_data, text_folder):
    straight = train_reward_model([train_data], tmp_path / "straight", _config(text_folder, steps=6, checkpoint_every=100), progress=False)
    train_reward_model([train_data], tmp_path / "resumed", _config(text_folder, steps=3, checkpoint_every=100), progress=False)
    resumed = train_reward_model([train_data], tmp_path / "resumed", _config(text_folder, steps=6, checkpoint_every=100), resume=True, progress=False)
    straight_weights, resumed_weights = _weights(straight), _weights(resumed)
    assert straight_weights.keys() == resumed_weights.keys()
    for key in straight_weights:
        assert torch.equal(straight_weights[key], resumed_weights[key]), key
    initial = RewardModelTrainConfig.tiny(text_encoder=text_folder, image_size=SIZE, steps=1)
    first_step = train_reward_model([train_data], tmp_path / "one", initial, progress=False)
    assert any(not torch.equal(_weights(first_step)[key], straight_weights[key]) for key in straight_weights)
    cards = [json.loads((tmp_path / name / "model_card.json").read_text()) for name in ("straight", "resumed")]
    assert cards[0]["curves"] == cards[1]["curves"] and len(cards[0]["curves"]["total"]) == 6
    other_seed = train_reward_model([train_data], tmp_path / "seed1", _config(text_folder, steps=6, seed=1), progress=False)
    assert any(not torch.equal(_weights(other_seed)[key], straight_weights[key]) for key in straight_weights)


def test_checkpoint_loads_through_the_r3m_spec_with_its_card(tmp_path, train_data, text_folder):
    from lamp_data.rewards.vlm import load_reward_model

    path = train_reward_model([train_data], tmp_path / "model", _config(text_folder, steps=4), progress=False)
    model = load_reward_model(f"r3m:{path}")
    frames = np.zeros((3, SIZE, SIZE, 3), np.uint8)
    rewards = model.episode_rewards(frames, model.embed_prompts(list(FIXTURE_TASKS.values())))
    assert rewards.shape == (3, 2) and np.isfinite(rewards).all()
    assert not any(key.startswith("module.lang_enc") for key in torch.load(path, weights_only=True)["r3m"])
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["format_version"] == 1 and card["seed"] == 0 and card["steps"] == 4
    assert sorted(card["tasks"]) == sorted(FIXTURE_TASKS)
    assert card["data"]["episodes"] == 32 and len(card["data"]["fingerprint"]) == 16
    assert set(card["curves"]) >= {"total", "tcn", "language", "l1", "l2"}
    assert card["architecture"]["trunk"] == "conv-small" and "torch" in card["provenance"]["versions"]
    assert (tmp_path / "model" / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "Data fingerprint" in (tmp_path / "model" / "model_card.md").read_text()
    changed = write_fixture_dataset(tmp_path / "changed", 32, seed=5)
    other = train_reward_model([changed], tmp_path / "other", _config(text_folder, steps=1), progress=False)
    assert json.loads((other.parent / "model_card.json").read_text())["data"]["fingerprint"] != card["data"]["fingerprint"]


def test_contrasting_every_other_text_adds_to_the_language_loss(tmp_path, train_data, text_folder):
    one = train_reward_model([train_data], tmp_path / "one", _config(text_folder, steps=2), progress=False)
    every = train_reward_model([train_data], tmp_path / "all", _config(text_folder, steps=2, text_negatives="all"), progress=False)
    curves = [json.loads((path.parent / "model_card.json").read_text())["curves"] for path in (one, every)]
    assert curves[0]["tcn"][0] == curves[1]["tcn"][0]
    assert np.isfinite(curves[1]["language"]).all() and curves[1]["language"][0] > curves[0]["language"][0]


def test_bad_data_and_outputs_are_refused(tmp_path, train_data, text_folder):
    from lamp_data.envs import EnvConfig
    from lamp_data.pipeline.collect import CollectConfig, collect

    heldout = tmp_path / "heldout"
    collect(heldout, CollectConfig(env="mw-pick-place", episodes=1, policy="expert", env_config=EnvConfig(image_size=16, episode_length=2)), progress=False)
    with pytest.raises(LampError, match="held-out task 'pick-place'"):
        train_reward_model([heldout], tmp_path / "out", _config(text_folder), progress=False)
    random_data = write_fixture_dataset(tmp_path / "random", 8, seed=1, random_share=1.0)
    with pytest.raises(LampError, match="no episode of the training data succeeds"):
        train_reward_model([random_data], tmp_path / "out", _config(text_folder), progress=False)
    with pytest.raises(LampError, match="failure contrast needs failed episodes"):
        train_reward_model([train_data], tmp_path / "out", _config(text_folder, failure_contrast=True), progress=False)
    scripted = write_fixture_dataset(tmp_path / "scripted", 8, seed=1, policy="scripted")
    with pytest.raises(LampError, match="recorded by policy 'scripted'"):
        train_reward_model([scripted], tmp_path / "out", _config(text_folder), progress=False)
    with pytest.raises(LampError, match="at least one dataset"):
        train_reward_model([], tmp_path / "out", _config(text_folder), progress=False)
    with pytest.raises(LampError, match="nothing to resume"):
        train_reward_model([train_data], tmp_path / "out", _config(text_folder), resume=True, progress=False)
    assert not (tmp_path / "out").exists()
    done = train_reward_model([train_data], tmp_path / "done", _config(text_folder, steps=2), progress=False)
    before = done.read_bytes()
    with pytest.raises(LampError, match="pass --resume"):
        train_reward_model([train_data], tmp_path / "done", _config(text_folder, steps=2), progress=False)
    with pytest.raises(LampError, match="settings differ.*learning_rate"):
        train_reward_model([train_data], tmp_path / "done", _config(text_folder, steps=4, learning_rate=1e-2), resume=True, progress=False)
    with pytest.raises(LampError, match="training data differ"):
        other_data = write_fixture_dataset(tmp_path / "other", 8, seed=2)
        train_reward_model([other_data], tmp_path / "done", _config(text_folder, steps=4), resume=True, progress=False)
    assert done.read_bytes() == before
    with pytest.raises(LampError, match="non-negative"):
        RewardModelTrainConfig(steps=-1)
    with pytest.raises(LampError, match="batch size must be at least 1"):
        RewardModelTrainConfig(batch_size=0)
    with pytest.raises(LampError, match="text negatives must be one of"):
        RewardModelTrainConfig(text_negatives="some")


def test_failure_contrast_draws_failed_episodes_of_the_same_task(tmp_path, train_data, text_folder):
    from lamp_data.rewards.training.data import load_training_episodes, sample_batch

    mixed = write_fixture_dataset(tmp_path / "mixed", 32, seed=3, random_share=0.5)
    episodes = load_training_episodes([train_data, mixed])
    plain = sample_batch(episodes, 16, seed=0, step=5, max_shift=0)
    batch = sample_batch(episodes, 16, seed=0, step=5, max_shift=0, contrast=True)
    assert plain.contrast_frames is None and np.array_equal(plain.frames, batch.frames)
    assert batch.contrast_frames.shape == (16, 2, SIZE, SIZE, 3) and batch.has_contrast.all()
    failed = {index: episodes.frames[index] for index in np.flatnonzero(~episodes.successful)}
    for row, task in enumerate(batch.task_ids):
        first = batch.contrast_frames[row, 0]
        sources = [index for index, frames in failed.items() if np.array_equal(frames[0], first)]
        assert sources and all(episodes.task_ids[index] == task for index in sources)

    config = _config(text_folder, steps=3, checkpoint_every=100)
    plain_model = train_reward_model([train_data, mixed], tmp_path / "plain", config, progress=False)
    contrast_config = _config(text_folder, steps=3, checkpoint_every=100, failure_contrast=True)
    contrast_model = train_reward_model([train_data, mixed], tmp_path / "contrast", contrast_config, progress=False)
    curves = [json.loads((path.parent / "model_card.json").read_text()) for path in (plain_model, contrast_model)]
    assert curves[0]["curves"]["tcn"][0] == curves[1]["curves"]["tcn"][0]
    assert curves[0]["curves"]["language"][0] != curves[1]["curves"]["language"][0]
    assert "failed episodes of the same task" in curves[1]["objectives"]
    assert "failure_contrast" not in RewardModelTrainConfig().training_identity()
    resumed = train_reward_model([train_data, mixed], tmp_path / "contrast", replace(contrast_config, steps=4), resume=True, progress=False)
    assert json.loads((resumed.parent / "model_card.json").read_text())["steps"] == 4
    with pytest.raises(LampError, match="settings differ.*failure_contrast"):
        train_reward_model([train_data, mixed], tmp_path / "contrast", replace(config, steps=5), resume=True, progress=False)


def test_cli_in_process_and_as_a_subprocess(tmp_path, train_data, text_folder):
    from lamp_cli.data import main

    arguments = ["train-reward-model", "--data", str(train_data), "--out", str(tmp_path / "cli"), "--image-size", str(SIZE),
                 "--batch-size", "4", "--text-encoder", text_folder]
    runner = CliRunner()
    result = runner.invoke(main, arguments + ["--steps", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "model.pt").is_file() and "r3m:" in result.output
    again = runner.invoke(main, arguments + ["--steps", "2"])
    assert again.exit_code == 2 and "pass --resume" in again.output
    resumed = runner.invoke(main, arguments + ["--steps", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((tmp_path / "cli" / "model_card.json").read_text())["steps"] == 3
    missing = runner.invoke(main, ["train-reward-model", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "does not exist" in missing.output

    command = [str(Path(sys.executable).parent / "lamp-data"), *arguments[:4], str(tmp_path / "sub"), *arguments[5:], "--steps", "2"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert json.loads((tmp_path / "sub" / "model_card.json").read_text())["steps"] == 2


def test_trained_model_beats_a_random_one_of_the_same_architecture(tmp_path, train_data, text_folder):
    """Judged on unseen episodes (expert successes and random failures) of the fixture tasks."""
    from lamp_data.pipeline.relabel import relabel
    from lamp_eval.reward_quality import reward_quality_table

    config = _config(text_folder, steps=150, batch_size=16, max_shift=1, learning_rate=1e-3, checkpoint_every=1000)
    trained = train_reward_model([train_data], tmp_path / "trained", config, progress=False)
    untrained = train_reward_model([train_data], tmp_path / "untrained", replace(config, steps=0), progress=False)
    assert json.loads((tmp_path / "untrained" / "model_card.json").read_text())["steps"] == 0

    evaluation = write_fixture_dataset(tmp_path / "eval", 48, seed=7, random_share=0.5)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(FIXTURE_TASKS.values()) + "\n")
    fingerprints = [relabel(evaluation, f"r3m:{path}", str(prompts), progress=False).fingerprint for path in (trained, untrained)]
    rows = reward_quality_table([evaluation / "rewards" / fingerprint for fingerprint in fingerprints])
    good, baseline = rows
    assert good["successes"] >= 10 and good["failures"] >= 10
    for measure in ("progress_spearman", "success_auroc", "instruction_rank"):
        assert good[measure] > baseline[measure] + 0.05, (measure, rows)
    assert good["progress_spearman"] > 0.5 and good["success_auroc"] > 0.7 and good["instruction_rank"] > 0.6


def test_the_committed_model_loads_and_matches_its_card():
    from lamp_data.rewards.vlm import load_reward_model

    from lamp_data.rewards.vlm import shipped_model_path

    folder = shipped_model_path("lamp-r3m-metaworld").parent
    path = folder / "model.pt"
    size = sum(file.stat().st_size for file in folder.rglob("*") if file.is_file())
    assert size <= 20 * 2**20
    card = json.loads((folder / "model_card.json").read_text())
    assert card["steps"] == 2000 and card["seed"] == 0 and card["train_config"]["text_negatives"] == "all"
    assert card["architecture"]["head"] == "mlp-gain" and card["train_config"]["failure_contrast"] is True
    assert set(card["quality"]) == {"held-out tasks", "pretraining tasks"}
    model = load_reward_model(f"r3m:{path}")
    assert model.metadata["extra"]["data_fingerprint"] == card["data"]["fingerprint"]
    assert model.metadata["extra"]["trained_steps"] == card["steps"]
    prompts = model.embed_prompts(["open the drawer", "close the drawer"])
    rewards = model.episode_rewards(np.zeros((2, 64, 64, 3), np.uint8), prompts)
    assert rewards.shape == (2, 2) and np.isfinite(rewards).all()


@pytest.mark.parametrize("head", ["mlp-gain", "bilinear", "bilinear-gain"])
def test_other_heads_split_exactly_and_round_trip(tmp_path, train_data, text_folder, head):
    from lamp_data.rewards.vlm import load_reward_model
    from lamp_data.rewards.vlm.r3m.networks import R3MConfig, build_r3m

    config = R3MConfig.tiny()
    assert "head" not in config.to_dict() and R3MConfig.from_dict(config.to_dict()) == config
    model = build_r3m(R3MConfig(**{**config.to_dict(), "head": head}), seed=0)
    first, frames, texts = torch.randn(1, model.image_dim), torch.randn(5, model.image_dim), torch.randn(3, config.lang_dim)
    split = model.split_rewards(*model.frame_terms(first, frames), model.prompt_terms(texts))
    direct = model.reward(first[:, None].expand(5, 3, -1), frames[:, None].expand(5, 3, -1), texts[None].expand(5, 3, -1))
    assert split.shape == (5, 3) and torch.allclose(split, direct, atol=1e-5)
    at_start = model.reward(first.expand(3, -1), first.expand(3, -1), texts)
    assert torch.equal(at_start, torch.zeros(3)) == head.endswith("-gain")
    with pytest.raises(LampError, match="head"):
        R3MConfig(head="transformer")

    path = train_reward_model([train_data], tmp_path / head, _config(text_folder, steps=2, head=head), progress=False)
    loaded = load_reward_model(f"r3m:{path}")
    assert loaded.model.config.head == head and loaded.spec()["config"]["head"] == head
    rewards = loaded.episode_rewards(np.zeros((3, SIZE, SIZE, 3), np.uint8), loaded.embed_prompts(list(FIXTURE_TASKS.values())))
    assert rewards.shape == (3, 2) and np.isfinite(rewards).all()
    assert np.all(rewards[0] == 0) == head.endswith("-gain")
