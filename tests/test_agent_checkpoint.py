"""Agent checkpoints: exact resumption, and clear errors for missing or damaged ones."""

import json

import numpy as np
import pytest
import torch

from lamp_agent import Agent, load_preset
from lamp_data.errors import LampError
from lamp_data.schema import CHECKPOINT_FORMAT_VERSION

SIZES = dict(image_size=16, state_dim=4, action_dim=4, lang_dim=8)


def random_batch(seed: int, batch: int = 2, length: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    first = torch.zeros(batch, length, dtype=torch.bool)
    first[:, 0] = True
    return {
        "image": torch.randint(0, 256, (batch, length, 16, 16, 3), generator=generator, dtype=torch.uint8),
        "state": torch.randn(batch, length, 4, generator=generator),
        "action": torch.rand(batch, length, 4, generator=generator) * 2 - 1,
        "is_first": first, "is_terminal": torch.zeros(batch, length, dtype=torch.bool),
        "reward": torch.randn(batch, length, generator=generator),
        "vlm_reward": torch.rand(batch, length, generator=generator),
        "lang": torch.randn(batch, 8, generator=generator),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    agent = Agent(load_preset("tiny", frontend="mwm", batch_size=2, seq_len=8), **SIZES, seed=3)
    for seed in range(2):
        agent.train_step(random_batch(seed))
    agent.info = {"alpha": agent.config.alpha, "reward_set": "fake-01"}
    folder = tmp_path_factory.mktemp("ckpt") / "agent"
    agent.save(folder)
    return agent, folder


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_resume_repeats_the_next_updates_exactly(trained, mode, tmp_path):
    _, folder = trained
    original = Agent.load(folder)
    if mode == "finetune":
        original.prepare_finetune()
    original.train_step(random_batch(5), mode=mode)
    folder = tmp_path / "checkpoint"
    original.save(folder)
    restored = Agent.load(folder)
    assert restored.step == original.step == 3 and restored.phase == original.phase
    assert restored.info["reward_set"] == "fake-01"
    batches = [random_batch(10 + i) for i in range(2)]
    expected = [original.train_step(batch, mode=mode) for batch in batches]
    got = [restored.train_step(batch, mode=mode) for batch in batches]
    assert got == expected
    for (name, mine), theirs in zip(restored.nets.state_dict().items(), original.nets.state_dict().values()):
        assert torch.equal(mine, theirs), name
    obs = {"image": np.zeros((16, 16, 3), np.uint8), "state": np.zeros(4, np.float32)}
    lang = np.ones(8, np.float32)
    assert np.array_equal(restored.policy_step(obs, lang)[0], original.policy_step(obs, lang)[0])


def test_checkpoint_records_what_evaluation_needs(trained):
    _, folder = trained
    meta = json.loads((folder / "config.json").read_text())
    assert meta["format_version"] == CHECKPOINT_FORMAT_VERSION and meta["preset"] == "tiny"
    assert meta["sizes"] == SIZES and meta["step"] == 2 and meta["info"]["alpha"] == 0.9
    assert "versions" in meta["provenance"]
    state = torch.load(folder / "state.pt", weights_only=True)
    assert set(state["optimizers"]) == {"model", "ensemble", "actor", "critic", "representation"}


def test_missing_and_damaged_checkpoints_are_clear_errors(trained, tmp_path):
    import shutil

    _, folder = trained
    with pytest.raises(LampError, match="no agent checkpoint"):
        Agent.load(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LampError, match="config.json is missing"):
        Agent.load(empty)

    def damaged(name: str):
        copy = tmp_path / name
        shutil.copytree(folder, copy)
        return copy

    flipped = damaged("flipped")
    data = bytearray((flipped / "weights.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (flipped / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(LampError, match="weights.safetensors does not match"):
        Agent.load(flipped)

    gone = damaged("gone")
    (gone / "state.pt").unlink()
    with pytest.raises(LampError, match="state.pt is missing"):
        Agent.load(gone)

    for name, change, message in (
        ("future", {"format_version": 99}, "format_version 99"),
        ("resized", {"sizes": {**SIZES, "state_dim": 7}}, "does not fit"),
        ("alien", {"kind": "something-else"}, "not an agent checkpoint"),
    ):
        copy = damaged(name)
        meta = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(LampError, match=message):
            Agent.load(copy)

    garbled = damaged("garbled")
    (garbled / "config.json").write_text("{not json")
    with pytest.raises(LampError, match="not valid JSON"):
        Agent.load(garbled)


def test_a_pretraining_run_folder_loads_its_newest_checkpoint(tmp_path):
    from lamp_agent.checkpoint import latest_checkpoint, read_checkpoint_config
    from lamp_data.atomic import atomic_write_json

    agent = Agent(load_preset("tiny"), image_size=16, state_dim=4, action_dim=4, lang_dim=8)
    run = tmp_path / "run"
    agent.save(run / "checkpoints" / "step-00000000")
    assert latest_checkpoint(run) is None
    atomic_write_json(run / "checkpoints" / "latest.json", {"checkpoint": "step-00000000", "format_version": CHECKPOINT_FORMAT_VERSION, "step": 0})
    assert read_checkpoint_config(run)["kind"] == read_checkpoint_config(run / "checkpoints" / "step-00000000")["kind"]
    assert Agent.load(run).step == agent.step
    atomic_write_json(run / "checkpoints" / "latest.json", {"checkpoint": "step-00000000", "format_version": 99})
    with pytest.raises(LampError, match="format_version"):
        Agent.load(run)
