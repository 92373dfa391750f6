"""X-CLIP and SigLIP reward models: tiny random models of the real architectures, saved with
``save_pretrained`` and loaded through the real ``xclip:`` / ``siglip:`` specs, checked against
the ``transformers`` model called directly."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lamp_cli.data import main
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.rewards.vlm import load_reward_model
from lamp_data.rewards.vlm.scoring import make_scorer
from lamp_data.store import iter_episodes, open_dataset
from tiny_models import save_tiny_siglip, save_tiny_xclip

PROMPTS = ["pick up the cup", "push the red block", "open the drawer"]
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
SIDE = 32
FRAMES_PER_CLIP = 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    return {
        "xclip": save_tiny_xclip(folder / "xclip", image_size=SIDE, frames=FRAMES_PER_CLIP),
        "siglip": save_tiny_siglip(folder / "siglip", image_size=SIDE),
    }


def frames(count=7, size=SIDE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def pixels(images, mean, std):
    """Frames already at the model's side: only rescaling and normalising, [N, 3, S, S]."""
    return torch.from_numpy(((images / 255.0 - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("stride", [1, 2])
def test_xclip_rewards_equal_the_model_on_hand_built_clips(models, stride):
    from transformers import AutoTokenizer, XCLIPModel

    episode = frames()
    reward_model = load_reward_model(f"xclip:{models['xclip']}?stride={stride}")
    assert reward_model.window == FRAMES_PER_CLIP
    got = reward_model.episode_rewards(episode, reward_model.embed_prompts(PROMPTS), batch_size=8).astype(np.float32)

    model = XCLIPModel.from_pretrained(models["xclip"], local_files_only=True).eval()
    tokens = AutoTokenizer.from_pretrained(models["xclip"], local_files_only=True)(PROMPTS, padding=True, return_tensors="pt")
    normalised = pixels(episode, IMAGENET_MEAN, IMAGENET_STD)
    clips = []
    for t in range(len(episode)):  # frames t-3s, t-2s, t-s, t; before the start, the first frame
        clips.append(torch.stack([normalised[max(0, t - (FRAMES_PER_CLIP - 1 - j) * stride)] for j in range(FRAMES_PER_CLIP)]))
    with torch.inference_mode():
        output = model(**tokens, pixel_values=torch.stack(clips))
        cosine = (output.logits_per_video / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(got, cosine - cosine[:1], atol=2e-3)
    assert got.shape == (7, 3) and np.abs(got[0]).max() < 1e-6 and np.abs(got[1:]).max() > 1e-3

    plain = load_reward_model(f"xclip:{models['xclip']}?stride={stride}&video_prompt=0")
    plain_rewards = plain.episode_rewards(episode, plain.embed_prompts(PROMPTS), batch_size=64).astype(np.float32)
    with torch.inference_mode():
        text = torch.nn.functional.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
        unprompted = (output.video_embeds @ text.T).numpy()
    np.testing.assert_allclose(plain_rewards, unprompted - unprompted[:1], atol=2e-3)
    assert not np.allclose(plain_rewards, got, atol=1e-3)


def test_xclip_is_deterministic_and_independent_of_batching(models):
    episode = frames(9, size=20, seed=1)
    first = make_scorer(f"xclip:{models['xclip']}", PROMPTS, batch_size=4)
    again = make_scorer(f"xclip:{models['xclip']}?window={FRAMES_PER_CLIP}", PROMPTS, batch_size=64)
    assert first.fingerprint == again.fingerprint
    np.testing.assert_array_equal(first.score(episode), first.score(episode))
    np.testing.assert_allclose(first.score(episode).astype(np.float32), again.score(episode).astype(np.float32), atol=2e-3)
    embedded = first.reward_model.embed_prompts(PROMPTS)
    alone = torch.cat([first.reward_model.embed_prompts([prompt])["text"] for prompt in PROMPTS])
    torch.testing.assert_close(alone, embedded["text"], rtol=1e-4, atol=1e-5)


def test_siglip_rewards_equal_the_model(models):
    from transformers import AutoTokenizer, SiglipModel

    episode = frames(5)
    model = SiglipModel.from_pretrained(models["siglip"], local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(models["siglip"], local_files_only=True)
    tokens = tokenizer(PROMPTS, padding="max_length", max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
    with torch.inference_mode():
        logits = model(input_ids=tokens["input_ids"], pixel_values=pixels(episode, 0.5, 0.5)).logits_per_image
        cosine = ((logits - model.logit_bias) / model.logit_scale.exp()).numpy()
        probability = torch.sigmoid(logits).numpy()

    plain = load_reward_model(f"siglip:{models['siglip']}")
    got = plain.episode_rewards(episode, plain.embed_prompts(PROMPTS), batch_size=2).astype(np.float32)
    np.testing.assert_allclose(got, cosine - cosine[:1], atol=2e-3)
    assert got.shape == (5, 3) and np.abs(got[0]).max() < 1e-6
    pair = load_reward_model(f"siglip:{models['siglip']}?probability=1")
    np.testing.assert_allclose(pair.episode_rewards(episode, pair.embed_prompts(PROMPTS)).astype(np.float32), probability - probability[:1], atol=2e-3)

    alpha = 0.6
    projected = load_reward_model(f"siglip:{models['siglip']}?alpha={alpha}&baseline=a robot arm")
    images = plain.embed_frames(episode)
    goal = plain.embed_prompts(PROMPTS)["goal"]
    baseline = plain._encode_text(["a robot arm"])[0]
    expected = np.zeros((len(episode), len(PROMPTS)), np.float32)
    for p in range(len(PROMPTS)):
        direction = torch.nn.functional.normalize(goal[p] - baseline, dim=0)
        matrix = alpha * torch.outer(direction, direction) + (1 - alpha) * torch.eye(len(direction))
        for n in range(len(episode)):
            expected[n, p] = 1 - 0.5 * torch.sum((matrix @ (images[n] - goal[p])) ** 2)
    got = projected.episode_rewards(episode, projected.embed_prompts(PROMPTS)).astype(np.float32)
    np.testing.assert_allclose(got, expected - expected[:1], atol=2e-3)


def test_frames_are_prepared_as_each_processor_does(models):
    wide = np.random.default_rng(2).integers(0, 256, (2, 24, 48, 3), dtype=np.uint8)
    siglip = load_reward_model(f"siglip:{models['siglip']}")
    xclip = load_reward_model(f"xclip:{models['xclip']}")
    assert siglip.preprocessing["resize"] == [SIDE, SIDE] and siglip.preprocessing["crop"] is None
    assert (xclip.preprocessing["resize"], xclip.preprocessing["crop"], xclip.preprocessing["interpolation"]) == (SIDE, SIDE, "bilinear")
    squashed = siglip.preprocess(torch.from_numpy(wide))
    cropped = xclip.embed_frames(wide)
    assert squashed.shape == cropped.shape == (2, 3, SIDE, SIDE)
    scaled = torch.nn.functional.interpolate(torch.from_numpy(wide).permute(0, 3, 1, 2).float() / 255, size=(SIDE, 2 * SIDE), mode="bilinear", antialias=True)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(cropped, (scaled[..., SIDE // 2 : SIDE // 2 + SIDE] - mean) / std)


def test_fingerprints_follow_the_options(models):
    xclip, siglip = models["xclip"], models["siglip"]
    groups = [
        [f"xclip:{xclip}", f"xclip:{xclip}?window={FRAMES_PER_CLIP}&stride=1&video_prompt=1&standardize=0"],
        [f"xclip:{xclip}?stride=2"],
        [f"xclip:{xclip}?video_prompt=0"],
        [f"xclip:{xclip}?standardize=1"],
        [f"siglip:{siglip}", f"siglip:{siglip}?alpha=0&probability=0"],
        [f"siglip:{siglip}?probability=1"],
        [f"siglip:{siglip}?alpha=0.5"],
        [f"siglip:{siglip}?alpha=0.5&baseline=a robot"],
        [f"siglip:{siglip}?standardize=1"],
    ]
    fingerprints = [{make_scorer(spec, PROMPTS).fingerprint for spec in group} for group in groups]
    assert all(len(group) == 1 for group in fingerprints)
    assert len(set().union(*fingerprints)) == len(groups)
    assert make_scorer(f"siglip:{siglip}", PROMPTS[:2]).fingerprint not in fingerprints[4]
    standardized = make_scorer(f"xclip:{xclip}?standardize=1", PROMPTS).score(frames()).astype(np.float32)
    np.testing.assert_allclose(standardized.mean(0), 0, atol=1e-2)


@pytest.mark.parametrize("family", ["xclip", "siglip"])
def test_relabel_through_the_cli_writes_a_valid_reward_set(models, family, tmp_path):
    dataset = tmp_path / "data"
    collect(dataset, CollectConfig(env="dummy", episodes=3, shard_episodes=2, seed=1, env_config=EnvConfig(episode_length=5, image_size=16)), progress=False)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    spec = f"{family}:{models[family]}?standardize=1" if family == "siglip" else f"{family}:{models[family]}?stride=2"
    result = CliRunner().invoke(main, ["relabel", str(dataset), "--vlm", spec, "--prompts", str(prompts), "--batch-size", "8", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["shards_written"], summary["episodes"], summary["frames"], summary["prompts"]) == (2, 3, 18, 3)
    assert summary["fingerprint"].startswith(f"{family}-")
    info = open_dataset(dataset).reward_set_info(summary["fingerprint"])
    assert info["model"]["family"] == family and info["provenance"]["model_spec"] == spec
    scorer = make_scorer(spec, str(prompts))
    assert scorer.fingerprint == summary["fingerprint"]
    for episode in iter_episodes(dataset, reward_set=summary["fingerprint"]):
        assert episode["vlm_reward"].shape == (6, 3) and episode["vlm_reward"].dtype == np.float16
        np.testing.assert_array_equal(episode["vlm_reward"], scorer.score(episode["image"]))


def test_bad_specs_give_clear_errors(models, tmp_path):
    xclip, siglip = models["xclip"], models["siglip"]
    cases = [
        (f"xclip:{xclip}?window=8", f"takes clips of exactly {FRAMES_PER_CLIP} frames"),
        (f"xclip:{xclip}?stride=0", "stride=0 must be at least 1"),
        (f"xclip:{xclip}?stride=two", "stride=two is not an integer"),
        (f"xclip:{xclip}?video_prompt=maybe", "must be 0 or 1"),
        (f"xclip:{xclip}?alpha=0.5", "unknown option"),
        (f"xclip:{siglip}", "holds a siglip model, not X-CLIP"),
        (f"xclip:{tmp_path / 'missing'}", "X-CLIP model folder .* does not exist"),
        (f"siglip:{siglip}?probability=1&alpha=0.5", "cannot be combined"),
        (f"siglip:{siglip}?alpha=1.5", "between 0 and 1"),
        (f"siglip:{siglip}?colour=red", "unknown option"),
        (f"siglip:{xclip}", "holds a xclip model, not SigLIP"),
        ("siglip:lamp-test/not-a-cached-siglip", "not in the local Hugging Face cache"),
    ]
    for spec, message in cases:
        with pytest.raises(LampError, match=message):
            load_reward_model(spec)

    dataset = tmp_path / "data"
    collect(dataset, CollectConfig(env="dummy", episodes=1, env_config=EnvConfig(episode_length=3, image_size=16)), progress=False)
    failed = CliRunner().invoke(main, ["relabel", str(dataset), "--vlm", f"xclip:{xclip}?window=8"])
    assert failed.exit_code == 2 and failed.output.startswith("Error: ") and len(failed.output.strip().splitlines()) == 1
    assert not (dataset / "rewards").exists() or not any((dataset / "rewards").iterdir())
