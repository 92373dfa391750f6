"""The agent's replay of a stored dataset: training sequences aligned with the stored episodes."""

import numpy as np
import pytest
import torch

from lamp_agent.core.replay import ShardReplay
from lamp_data import schema
from lamp_data.envs import EnvConfig
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.store import RewardSetWriter, iter_episodes, open_dataset

TINY = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5))
PROMPTS = ["reach the red block", "push the red block"]


def _channel_rewards(dataset, shard):
    """Fake rewards of one shard: prompt ``p`` scores the mean of colour channel ``p % 3`` of each frame."""
    channels = [index % 3 for index in range(len(PROMPTS))]
    return {
        episode["__key__"]: (episode[schema.IMAGE][..., channels].mean(axis=(1, 2)) / 255).astype(np.float16)
        for episode in iter_episodes(dataset, shards=[shard])
    }


@pytest.fixture(scope="module")
def rewarded_dataset(tmp_path_factory):
    """Seven random-policy dummy episodes in shards of three, with the reward set ``fake-0002``."""
    out = tmp_path_factory.mktemp("replay") / "data"
    collect(out, CollectConfig(episodes=7, shard_episodes=3, seed=5, **TINY), progress=False)
    writer = RewardSetWriter(out, "fake-0002", {"model": "fake"}, PROMPTS)
    for shard in open_dataset(out).shards():
        writer.write_shard(shard.name, _channel_rewards(out, shard.name))
    return out


def test_sequence_batches_align_steps_and_choose_prompts(rewarded_dataset):
    episodes = list(iter_episodes(rewarded_dataset))
    sequences = ShardReplay(rewarded_dataset, seq_len=6, batch_size=4, reward_set="fake-0002", shuffle_buffer=3, seed=1)
    batches = [batch for _, batch in zip(range(3), sequences)]
    batch = batches[0]
    assert batch[schema.IMAGE].shape == (4, 6, 16, 16, 3) and batch[schema.IMAGE].dtype == torch.uint8
    assert batch[schema.ACTION].shape == (4, 6, 4) and batch[schema.VLM_REWARD].shape == (4, 6)
    assert batch[schema.PROMPT_INDEX].dtype == torch.int64 and batch[schema.IS_FIRST][:, 0].all()
    assert (batch[schema.ACTION][:, 0] == 0).all() and (batch[schema.REWARD][:, 0] == 0).all()
    for row in range(4):  # each row is a whole episode: check alignment against the stored one
        image = batch[schema.IMAGE][row].numpy()
        match = [e for e in episodes if np.array_equal(e[schema.IMAGE], image)]
        assert len(match) == 1
        episode = match[0]
        assert np.array_equal(batch[schema.ACTION][row, 1:].numpy(), episode[schema.ACTION])
        assert np.array_equal(batch[schema.REWARD][row, 1:].numpy(), episode[schema.REWARD])
        prompt = int(batch[schema.PROMPT_INDEX][row])
        assert PROMPTS[prompt] == episode["meta"]["instruction"]
        rewards = _channel_rewards(rewarded_dataset, episode["__shard__"])[episode["__key__"]]
        assert np.allclose(batch[schema.VLM_REWARD][row].numpy(), rewards[:, prompt].astype(np.float32))
    always_zero = ShardReplay(rewarded_dataset, seq_len=3, batch_size=2, reward_set="fake-0002",
                              prompt_chooser=lambda meta, count, rng: 0, shuffle_buffer=2)
    batch = next(iter(always_zero))
    assert batch[schema.IMAGE].shape[:2] == (2, 3) and (batch[schema.PROMPT_INDEX] == 0).all()


def test_sequences_split_shards_over_dataloader_workers(rewarded_dataset):
    sequences = ShardReplay(rewarded_dataset, seq_len=6, batch_size=1, shuffle_buffer=1, seed=0, refresh_seconds=0.0)
    loader = torch.utils.data.DataLoader(sequences, batch_size=None, num_workers=2)
    first_frames = set()
    for _, batch in zip(range(8), loader):
        first_frames.add(batch[schema.IMAGE][0, 0].numpy().tobytes())
    stored = {e[schema.IMAGE][0].tobytes() for e in iter_episodes(rewarded_dataset)}
    assert first_frames <= stored and len(first_frames) >= 3


def test_a_two_camera_dataset_streams_both_views(tmp_path):
    out = tmp_path / "data"
    collect(out, CollectConfig(episodes=2, seed=5, env="dummy", env_config=EnvConfig(image_size=16, episode_length=5, cameras=("front", "wrist"))), progress=False)
    batch = next(iter(ShardReplay(out, seq_len=4, batch_size=2, shuffle_buffer=1)))
    assert batch[schema.IMAGE_WRIST].shape == batch[schema.IMAGE].shape == (2, 4, 16, 16, 3)
    stored = {frame.tobytes() for episode in iter_episodes(out) for frame in episode[schema.IMAGE_WRIST]}
    assert {frame.numpy().tobytes() for frame in batch[schema.IMAGE_WRIST].flatten(0, 1)} <= stored
