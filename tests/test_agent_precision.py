"""Training precision: bf16 autocast updates, the unchanged fp32 default, channels-last convs."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lamp_agent import Agent, load_preset
from lamp_agent.config import AgentConfig
from lamp_agent.networks import ConvDecoder, ConvEncoder
from lamp_cli.agent import main as agent_cli
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect
from test_agent_pretrain import FINGERPRINT, ColourScorer, cached_embeddings

SIZES = dict(image_size=16, state_dim=4, action_dim=4, lang_dim=8)


def random_batch(seed: int = 0, batch_size: int = 4, length: int = 16) -> dict[str, torch.Tensor]:
    """A ``[B, L, ...]`` batch of random frames, states, actions and rewards, one episode per row."""
    generator = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(batch_size, length, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "image": torch.randint(0, 256, (batch_size, length, 16, 16, 3), dtype=torch.uint8, generator=generator),
        "state": torch.randn(batch_size, length, 4, generator=generator),
        "action": torch.rand(batch_size, length, 4, generator=generator) * 2 - 1,
        "is_first": is_first,
        "is_terminal": torch.zeros(batch_size, length, dtype=torch.bool),
        "vlm_reward": torch.rand(batch_size, length, generator=generator),
        "reward": torch.rand(batch_size, length, generator=generator),
        "lang": torch.randn(batch_size, 8, generator=generator),
    }


@pytest.mark.parametrize("frontend", ["cnn", "mwm"])
def test_bf16_update_is_finite_and_trains_float32_parameters(frontend):
    agent = Agent(load_preset("tiny", frontend=frontend, precision="bf16"), **SIZES, seed=0)
    before = {name: value.detach().clone() for name, value in agent.nets.named_parameters()}
    for mode in ("pretrain", "finetune"):
        metrics = agent.train_step(random_batch(), mode=mode)
        assert np.isfinite(list(metrics.values())).all(), metrics
        gradients = [value.grad for value in agent.nets.parameters() if value.grad is not None]
        assert gradients and all(gradient.dtype == torch.float32 and torch.isfinite(gradient).all() for gradient in gradients)
    assert {value.dtype for value in agent.nets.parameters()} == {torch.float32}
    for part in ("frontend", "rssm", "reward", "ensemble", "actor", "critic"):
        assert any(not torch.equal(value, before[name]) for name, value in agent.nets.named_parameters() if name.startswith(part + ".")), part
    action, carry = agent.policy_step({"image": np.zeros((16, 16, 3), np.uint8), "state": np.zeros(4, np.float32)}, np.zeros(8, np.float32))
    assert action.dtype == np.float32 and carry["latent"]["deter"].dtype == torch.float32


def test_fp32_is_the_default_and_repeats_exactly():
    default = load_preset("tiny")
    assert default.precision == "fp32" and default.channels_last is False
    explicit = Agent(load_preset("tiny", precision="fp32", channels_last=False), **SIZES, seed=3)
    implicit = Agent(default, **SIZES, seed=3)
    for seed in range(2):
        assert explicit.train_step(random_batch(seed)) == implicit.train_step(random_batch(seed))


def test_bf16_differs_from_fp32_only_slightly():
    fp32 = Agent(load_preset("tiny"), **SIZES, seed=3).train_step(random_batch())
    bf16 = Agent(load_preset("tiny", precision="bf16"), **SIZES, seed=3).train_step(random_batch())
    assert fp32 != bf16
    assert bf16["model_loss"] == pytest.approx(fp32["model_loss"], rel=0.01)


def test_channels_last_convs_match_contiguous_ones():
    torch.manual_seed(0)
    encoder, decoder = ConvEncoder(16, 8), ConvDecoder(12, 16, 8)
    encoder_cl, decoder_cl = ConvEncoder(16, 8), ConvDecoder(12, 16, 8)
    encoder_cl.load_state_dict(encoder.state_dict())
    decoder_cl.load_state_dict(decoder.state_dict())
    encoder_cl.use_channels_last()
    decoder_cl.use_channels_last()
    assert encoder_cl.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    image = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    feat = torch.randn(5, 12)
    torch.testing.assert_close(encoder_cl(image), encoder(image), atol=1e-5, rtol=0)
    decoded = decoder_cl(feat)
    assert decoded.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(decoded, decoder(feat), atol=1e-5, rtol=0)


def test_channels_last_agent_round_trips_through_a_checkpoint(tmp_path):
    agent = Agent(load_preset("tiny", precision="bf16", channels_last=True), **SIZES, seed=0)
    assert agent.nets["frontend"].image_decoder.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    agent.train_step(random_batch())
    agent.save(tmp_path / "agent")
    loaded = Agent.load(tmp_path / "agent")
    assert loaded.config.precision == "bf16" and loaded.config.channels_last
    assert loaded.nets["frontend"].image_encoder.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    for name, value in agent.nets.state_dict().items():
        assert torch.equal(value, loaded.nets.state_dict()[name]), name


def test_unknown_precision_is_a_lamp_error_and_old_configs_get_fp32():
    with pytest.raises(LampError, match="precision must be one of fp32, bf16, auto, got 'fp16'"):
        load_preset("tiny", precision="fp16")
    old = {key: value for key, value in load_preset("tiny").to_dict().items() if key not in ("precision", "channels_last")}
    config = AgentConfig.from_dict(old)
    assert config.precision == "fp32" and config.channels_last is False


def test_pretrain_cli_takes_the_precision(tmp_path):
    data = tmp_path / "data"
    collect(data, CollectConfig(env="dummy", episodes=2, shard_episodes=2, seed=0, env_config=EnvConfig(image_size=16, episode_length=20)), scorer_factory=ColourScorer, progress=False)
    out = tmp_path / "run"
    cached_embeddings(out)
    result = CliRunner().invoke(
        agent_cli,
        ["pretrain", "--data", str(data), "--rewards", FINGERPRINT, "--steps", "1", "--preset", "tiny",
         "--precision", "bf16", "--out", str(out), "--quiet", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "step 1 (1 updates" in result.output
    meta = json.loads((out / "checkpoints" / "step-00000001" / "config.json").read_text())
    assert meta["config"]["precision"] == "bf16" and meta["config"]["channels_last"] is False
