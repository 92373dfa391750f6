"""The agent's parts on synthetic batches: world model, MAE, Plan2Explore, reward mix, finetune freeze, replay."""

import numpy as np
import pytest
import torch

from lamp_agent import Agent, load_preset
from lamp_agent.core.replay import EpisodeReplay, HindsightPrompts
from lamp_agent.mwm import MaskedAutoencoder
from lamp_agent.p2e import Ensemble
from lamp_data.errors import LampError
from lamp_data.prefetch import Prefetcher

SIZES = dict(image_size=16, state_dim=4, action_dim=4, lang_dim=8)


def moving_dot_episode(steps: int, seed: int) -> dict[str, np.ndarray]:
    """A store-schema episode: a red square moving with the actions on a coloured background."""
    rng = np.random.default_rng(seed)
    position = rng.uniform(2, 13, 2)
    background = rng.integers(0, 128, 3)
    actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    frames, states = [], []
    for step in range(steps + 1):
        if step:
            position = np.clip(position + 2 * actions[step - 1, :2], 1, 14)
        image = np.empty((16, 16, 3), np.uint8)
        image[:] = background
        row, col = position.astype(int)
        image[row - 1 : row + 2, col - 1 : col + 2] = (255, 0, 0)
        frames.append(image)
        states.append(np.concatenate([position / 8 - 1, background[:2] / 64 - 1]).astype(np.float32))
    distance = np.linalg.norm(np.stack(states)[1:, :2], axis=-1)
    flags = np.zeros(steps + 1, bool)
    first, last = flags.copy(), flags.copy()
    first[0], last[-1] = True, True
    return {
        "image": np.stack(frames), "state": np.stack(states), "action": actions,
        "reward": (-distance).astype(np.float32), "success": flags.copy(), "is_first": first,
        "is_last": last, "is_terminal": flags.copy(),
        "vlm_reward": np.concatenate([[0.0], 1.0 - distance]).astype(np.float32),
    }


@pytest.fixture(scope="module")
def fixed_batch():
    replay = EpisodeReplay(capacity_steps=10_000, seq_len=16, seed=0)
    for seed in range(6):
        replay.add_episode(moving_dot_episode(20, seed))
    batch = replay.sample(4)
    batch["lang"] = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    return batch


@pytest.mark.parametrize("frontend", ["cnn", "mwm"])
def test_world_model_loss_falls_on_a_fixed_batch(fixed_batch, frontend):
    agent = Agent(load_preset("tiny", frontend=frontend), **SIZES, seed=1)
    losses = [agent.train_step(fixed_batch)["model_loss"] for _ in range(30)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses
    assert agent.step == 30


def test_mae_reconstructs_masked_patches_better_after_training(fixed_batch):
    torch.manual_seed(0)
    mae = MaskedAutoencoder(16, 4, 8, patch=4, stem_depth=8, width=32, layers=1, heads=2, decoder_width=32, decoder_layers=1)
    image = fixed_batch["image"].flatten(0, 1)
    state = fixed_batch["state"].flatten(0, 1)
    lang = fixed_batch["lang"].repeat_interleave(16, 0)

    def masked_error() -> float:
        with torch.no_grad():
            losses = mae.losses(image, state, lang, 0.75, generator=torch.Generator().manual_seed(123))
        return losses["mae_pixels"].mean().item()

    before = masked_error()
    optimizer = torch.optim.Adam(mae.parameters(), lr=1e-3)
    for _ in range(60):
        loss = sum(value.mean() for value in mae.losses(image, state, lang, 0.95).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = masked_error()
    assert after < 0.5 * before, (before, after)
    assert mae.random_keep(3, 0.95, torch.device("cpu")).shape == (3, 1)


def test_ensemble_disagrees_more_off_its_training_data():
    torch.manual_seed(0)
    ensemble = Ensemble(6, 4, size=5, units=32, layers=1)
    seen = torch.randn(256, 6)
    target = torch.tanh(seen[:, :4] + seen[:, 2:])
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=3e-3)
    for _ in range(150):
        loss = ensemble.loss(seen, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unseen = torch.randn(256, 6) * 2 + 4
    with torch.no_grad():
        on_seen, on_unseen = ensemble.disagreement(seen).mean().item(), ensemble.disagreement(unseen).mean().item()
    assert on_unseen > 5 * on_seen, (on_seen, on_unseen)


def _lang(agent: Agent) -> torch.Tensor:
    return torch.randn(10, agent.sizes["lang_dim"], generator=torch.Generator().manual_seed(3))


def _imagined(agent: Agent):
    generator = torch.Generator().manual_seed(7)
    feat_dim = agent.nets["rssm"].feat_dim
    return torch.randn(6, 10, feat_dim, generator=generator), torch.rand(5, 10, 4, generator=generator) * 2 - 1


@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.5])
def test_alpha_mixes_novelty_and_vlm_reward(alpha):
    agent = Agent(load_preset("tiny", alpha=alpha), **SIZES, seed=0)
    torch.nn.init.normal_(agent.nets["reward"][-1].weight, std=0.5)
    feats, actions = _imagined(agent)
    with torch.no_grad():
        rewards = agent.imagined_rewards(feats, actions, "pretrain", _lang(agent))
        intrinsic = rewards["intrinsic"] / agent.nets["intrinsic_stats"].magnitude
        extrinsic = rewards["extrinsic"] / agent.nets["extrinsic_stats"].magnitude
        torch.testing.assert_close(rewards["reward"], alpha * intrinsic + (1 - alpha) * extrinsic)
        assert intrinsic.std() > 0 and extrinsic.std() > 0
        # Scrambling one source changes the mixed reward only if that source has weight.
        torch.nn.init.normal_(agent.nets["reward"][-1].weight, std=0.5)
        for weight in agent.nets["ensemble"].weights:
            torch.nn.init.normal_(weight, std=0.5)
        again = agent.imagined_rewards(feats, actions, "pretrain", _lang(agent), update=False)["reward"]
    assert torch.equal(again, rewards["reward"]) is False
    if alpha == 1.0:
        torch.testing.assert_close(rewards["reward"], intrinsic)
    if alpha == 0.0:
        torch.testing.assert_close(rewards["reward"], extrinsic)


def test_alpha_one_ignores_the_vlm_head_and_zero_ignores_the_ensemble():
    for alpha, scramble in ((1.0, "reward"), (0.0, "ensemble")):
        agent = Agent(load_preset("tiny", alpha=alpha), **SIZES, seed=0)
        feats, actions = _imagined(agent)
        with torch.no_grad():
            before = agent.imagined_rewards(feats, actions, "pretrain", _lang(agent))["reward"]
            for parameter in agent.nets[scramble].parameters():
                parameter.add_(torch.randn_like(parameter))
            after = agent.imagined_rewards(feats, actions, "pretrain", _lang(agent), update=False)["reward"]
        torch.testing.assert_close(before, after)


def test_policy_step_carries_state_and_stays_in_bounds():
    agent = Agent(load_preset("tiny"), **SIZES, seed=0)
    obs = {"image": np.zeros((16, 16, 3), np.uint8), "state": np.zeros(4, np.float32)}
    lang = np.ones(8, np.float32)
    action, carry = agent.policy_step(obs, lang)
    assert action.shape == (4,) and action.dtype == np.float32 and np.abs(action).max() <= 1
    second, carry = agent.policy_step(obs, lang, carry, explore=False)
    assert carry["latent"]["deter"].shape == (1, 64)
    repeat, _ = agent.policy_step(obs, lang, carry, explore=False)
    assert np.abs(repeat).max() <= 1 and np.isfinite(second).all()


def test_prepare_finetune_freezes_the_critic_body_and_probes_a_fresh_head(fixed_batch):
    agent = Agent(load_preset("tiny"), **SIZES, seed=0)
    agent.train_step(fixed_batch)
    critic = agent.nets["critic"]
    agent.prepare_finetune()
    body = {name: value.clone() for name, value in critic.body.named_parameters()}
    norm = {name: value.clone() for name, value in critic.activation.named_parameters()}
    head = critic.head.weight.clone()
    assert torch.count_nonzero(head) == 0
    actor = [p.clone() for p in agent.nets["actor"].parameters()]
    for _ in range(3):
        metrics = agent.train_step(fixed_batch, mode="finetune")
    assert "intrinsic_reward" not in metrics and "ensemble_loss" not in metrics
    for name, value in critic.body.named_parameters():
        assert torch.equal(value, body[name]), name
    for name, value in critic.activation.named_parameters():
        assert torch.equal(value, norm[name]), name
    assert not torch.equal(critic.head.weight, head)
    assert any(not torch.equal(a, b) for a, b in zip(agent.nets["actor"].parameters(), actor))


def test_finetune_critic_full_trains_the_pretrained_critic_body_under_a_fresh_head(fixed_batch):
    agent = Agent(load_preset("tiny", finetune_critic="full"), **SIZES, seed=0)
    agent.train_step(fixed_batch)
    critic = agent.nets["critic"]
    agent.prepare_finetune()
    assert torch.count_nonzero(critic.head.weight) == 0
    assert all(parameter.requires_grad for parameter in critic.body.parameters())
    body = {name: value.clone() for name, value in critic.body.named_parameters()}
    for _ in range(3):
        agent.train_step(fixed_batch, mode="finetune")
    assert any(not torch.equal(value, body[name]) for name, value in critic.body.named_parameters())
    with pytest.raises(LampError, match="finetune_critic must be one of probe, full"):
        load_preset("tiny", finetune_critic="half")


def test_bad_mode_and_incomplete_batch_are_clear_errors(fixed_batch):
    agent = Agent(load_preset("tiny"), **SIZES)
    with pytest.raises(LampError, match="train mode"):
        agent.train_step(fixed_batch, mode="sideways")
    with pytest.raises(LampError, match="lacks lang"):
        agent.train_step({k: v for k, v in fixed_batch.items() if k != "lang"})
    with pytest.raises(LampError, match="unknown agent preset"):
        load_preset("huge")
    with pytest.raises(LampError, match="unknown agent config keys"):
        load_preset("tiny", wings=2)


def test_presets_match_the_paper_sizes():
    paper = load_preset("paper")
    assert paper.frontend == "mwm" and paper.mae_mask_ratio == 0.95 and paper.deter == 1024
    assert (paper.stoch_groups, paper.stoch_classes) == (32, 32) and (paper.batch_size, paper.seq_len) == (50, 50)
    assert (paper.mae_batch_size, paper.mae_seq_len) == (32, 32) and paper.ensemble_size == 10
    assert paper.horizon == 15 and paper.alpha == 0.9
    assert paper.cameras == ("front", "wrist") and load_preset("tiny").cameras is None
    tiny = load_preset("tiny")
    assert (tiny.deter, tiny.stoch_groups, tiny.stoch_classes, tiny.batch_size, tiny.seq_len, tiny.horizon) == (64, 4, 4, 4, 16, 5)


def test_episode_replay_keeps_the_batch_layout_and_evicts_oldest():
    replay = EpisodeReplay(capacity_steps=50, seq_len=8, seed=0)
    for seed in range(4):
        replay.add_episode(moving_dot_episode(20, seed))
    assert len(replay) == 2 and replay.steps == 42
    batch = replay.sample(5)
    assert batch["image"].shape == (5, 8, 16, 16, 3) and batch["image"].dtype == torch.uint8
    assert batch["action"].shape == (5, 8, 4) and batch["reward"].shape == (5, 8)
    assert batch["vlm_reward"].dtype == torch.float32 and batch["is_first"].dtype == torch.bool
    first = batch["is_first"]
    assert torch.all(batch["action"][first] == 0) and torch.all(batch["reward"][first] == 0)
    short = EpisodeReplay(100, 30)
    short.add_episode(moving_dot_episode(5, 0))
    with pytest.raises(LampError, match="at least 30 frames"):
        short.sample(1)


def test_hindsight_prompts_mix_own_and_other_prompts():
    prompts = ["reach the red block", "push the red block", "open the drawer", "close the drawer"]
    rng = np.random.default_rng(0)
    own = {"instruction": "push the red block"}
    always = HindsightPrompts(prompts, 1.0)
    assert {always(own, 4, rng) for _ in range(50)} == {1}
    never = [HindsightPrompts(prompts, 0.0)(own, 4, rng) for _ in range(400)]
    assert set(never) == {0, 1, 2, 3}
    half = [HindsightPrompts(prompts, 0.5)(own, 4, rng) for _ in range(2000)]
    assert 0.55 < half.count(1) / len(half) < 0.70  # 0.5 own + 0.5 * 1/4 by chance
    unknown = {HindsightPrompts(prompts, 1.0)({"instruction": "dance"}, 4, rng) for _ in range(200)}
    assert unknown == {0, 1, 2, 3}


def test_prefetcher_keeps_order_counts_waits_and_passes_errors_on():
    with Prefetcher(iter(range(10)), depth=2) as items:
        assert list(items) == list(range(10))
        assert items.wait_seconds >= 0.0

    def broken():
        yield 1
        raise LampError("shard went missing")

    items = Prefetcher(broken())
    assert next(items) == 1
    with pytest.raises(LampError, match="shard went missing"):
        next(items)
    items.close()


def test_reward_head_learns_one_reward_per_prompt(fixed_batch):
    """Pretraining relabels each sequence with its own prompt; a head that reads the prompt can
    fit both rewards of the same frames, one that does not can only fit their average."""
    agent = Agent(load_preset("tiny", model_lr=3e-3), **SIZES, seed=0)
    batch = {key: value.clone() for key, value in fixed_batch.items()}
    batch = {key: torch.cat([value, value]) for key, value in batch.items()}
    prompts = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))
    batch["lang"] = prompts.repeat_interleave(4, 0)
    batch["vlm_reward"] = torch.cat([torch.zeros(4, 16), torch.full((4, 16), 5.0)])
    for _ in range(60):
        metrics = agent.train_step(batch)
    with torch.no_grad():  # the same features (seen under the first prompt), scored under each prompt
        frontend, rssm = agent.nets["frontend"], agent.nets["rssm"]
        observed = frontend.observe(batch["image"][:4].flatten(0, 1), batch["state"][:4].flatten(0, 1).float(),
                                    batch["lang"][:4].repeat_interleave(16, 0))
        posterior, _ = rssm.observe(frontend.embed(observed).view(4, 16, -1), batch["action"][:4].float(), batch["is_first"][:4].bool())
        feat = rssm.feat(posterior)
        low, high = (agent.reward_dist.mean(agent.reward_logits(feat, prompt[None, None])).mean().item() for prompt in prompts)
    assert high - low > 1.0, (low, high)  # a prompt-blind head gives exactly the same reward
    assert np.isfinite(metrics["reward_error"]) and np.isfinite(metrics["reward_excess"])


def test_reward_loss_is_reported_above_its_two_hot_floor():
    from lamp_agent.networks import TwoHotSymlog

    dist = TwoHotSymlog(255)
    target = torch.tensor([0.0, 0.37, 4.2, -3.0, 9.9])
    perfect = dist.two_hot(target).clamp_min(1e-12).log()
    torch.testing.assert_close(dist.loss(perfect, target), dist.floor(target), atol=1e-5, rtol=0)
    assert (dist.loss(torch.zeros(5, 255), target) - dist.floor(target)).min() > 1.0
    # every preset's bins are fine enough for rewards of a few units
    for name in ("tiny", "small", "paper"):
        assert load_preset(name).reward_bins >= 255, name


def test_mae_predicts_the_reward_when_asked(fixed_batch):
    agent = Agent(load_preset("tiny", frontend="mwm"), **SIZES, seed=0)
    metrics = agent.train_step(fixed_batch)
    assert np.isfinite(metrics["mae_reward_loss"]) and agent.nets["frontend"].mae.reward_head is not None
    off = Agent(load_preset("tiny", frontend="mwm", mae_reward_weight=0.0), **SIZES, seed=0)
    assert "mae_reward_loss" not in off.train_step(fixed_batch) and off.nets["frontend"].mae.reward_head is None


def test_old_configs_convert_their_train_ratio_and_keep_their_reward_heads():
    from lamp_agent.config import AgentConfig

    old = load_preset("tiny").to_dict()
    for key in ("replay_ratio", "reward_lang", "mae_reward_weight", "prefill", "initial_updates"):
        old.pop(key)
    old.update(train_ratio=0.5, batch_size=4, seq_len=16, action_repeat=2)  # the agent config held the action repeat then
    config = AgentConfig.from_dict(old)
    assert config.replay_ratio == 32.0 and config.updates_per_env_step == 0.5
    assert not config.reward_lang and config.mae_reward_weight == 0.0
    agent = Agent(config, **SIZES, seed=0)
    assert agent.nets["reward"][0].in_features == agent.nets["rssm"].feat_dim
    for bad in ({"replay_ratio": 0.0}, {"prefill": -1}):
        with pytest.raises(LampError):
            load_preset("tiny", **bad)
    for changes in ({"action_repeat": 2}, {"action_repeat": 0}):  # the env's, not the agent's
        with pytest.raises(LampError, match="the env's, not the agent's"):
            load_preset("tiny", **changes)
        with pytest.raises(LampError, match="the env's, not the agent's"):
            config.replace(**changes)


def test_a_presets_env_section_gives_the_action_repeat_its_files_and_bases_included(tmp_path):
    from lamp_agent.config import preset_env

    assert preset_env("cpu") == preset_env("cpu-v1") == preset_env("paper") == {"action_repeat": 2}
    assert preset_env("tiny") == {} and "action_repeat" not in load_preset("cpu").to_dict()
    (tmp_path / "child.yaml").write_text("base: cpu\nhorizon: 7\n")
    (tmp_path / "old.yaml").write_text("base: tiny\naction_repeat: 3\n")  # written when the agent config held it
    (tmp_path / "own.yaml").write_text("base: old.yaml\nenv:\n  action_repeat: 4\n")
    assert preset_env(str(tmp_path / "child.yaml")) == {"action_repeat": 2} and load_preset(str(tmp_path / "child.yaml")).horizon == 7
    assert preset_env(str(tmp_path / "old.yaml")) == {"action_repeat": 3} and load_preset(str(tmp_path / "old.yaml")) == load_preset("tiny").replace(preset="old")
    assert preset_env(str(tmp_path / "own.yaml")) == {"action_repeat": 4}
    (tmp_path / "bad.yaml").write_text("base: tiny\nenv:\n  image_size: 32\n")
    with pytest.raises(LampError, match="unknown env settings image_size"):
        preset_env(str(tmp_path / "bad.yaml"))


def test_world_model_only_updates_leave_actor_and_critic_alone(fixed_batch):
    agent = Agent(load_preset("tiny"), **SIZES, seed=0)
    before = {name: parameter.detach().clone() for name, parameter in agent.nets.named_parameters()}
    metrics = agent.train_step(fixed_batch, policy=False)
    changed = {name for name, parameter in agent.nets.named_parameters() if not torch.equal(before[name], parameter)}
    assert "actor_loss" not in metrics and np.isfinite(metrics["model_loss"])
    assert any(name.startswith("rssm.") for name in changed) and any(name.startswith("reward.") for name in changed)
    assert not any(name.startswith(("actor.", "critic.", "slow_critic.")) for name in changed), sorted(changed)


@pytest.mark.parametrize("frontend", ["cnn", "mwm"])
def test_open_loop_decodes_truth_and_prediction_without_touching_the_agents_randomness(fixed_batch, frontend):
    from lamp_agent.open_loop import open_loop_image

    agent = Agent(load_preset("tiny", frontend=frontend), **SIZES, seed=0)
    twin = Agent(load_preset("tiny", frontend=frontend), **SIZES, seed=0)
    video = agent.open_loop(fixed_batch, context=5)
    assert set(video) == {"truth", "model", "error"}
    assert video["model"].shape == video["truth"].shape == (4, 16, 16, 16, 3) and video["model"].dtype == np.uint8
    np.testing.assert_array_equal(video["truth"], fixed_batch["image"].numpy())
    np.testing.assert_array_equal(video["error"], np.abs(video["truth"].astype(int) - video["model"].astype(int)).astype(np.uint8))
    image = open_loop_image(video, frames=8)
    assert image.shape == (3 * 4 * 16, 8 * 16, 3)
    # logging the check changes nothing the agent does next
    assert agent.train_step(fixed_batch) == twin.train_step(fixed_batch)
    with pytest.raises(LampError, match="context"):
        agent.open_loop(fixed_batch, context=16)
