"""Reward models: tiny random models saved in the real formats and loaded through the real path."""

from pathlib import Path

import numpy as np
import pytest
import torch

from lamp_data.errors import LampError
from lamp_data.rewards.vlm import REWARD_MODELS, load_reward_model
from lamp_data.rewards.vlm.resnet import ResNet, infer_trunk
from lamp_data.rewards.vlm.scoring import make_scorer
from tiny_models import save_tiny_clip, save_tiny_distilbert, save_tiny_r3m, save_tiny_siglip, save_tiny_xclip

PROMPTS = ["pick up the cup", "push the red block", "open the drawer"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    distilbert = save_tiny_distilbert(folder / "distilbert")
    return {
        "distilbert": distilbert,
        "r3m": save_tiny_r3m(folder / "r3m.pt", text_encoder=str(distilbert)),
        "clip": save_tiny_clip(folder / "clip"),
        "siglip": save_tiny_siglip(folder / "siglip"),
        "xclip": save_tiny_xclip(folder / "xclip"),
        "original": save_tiny_r3m(folder / "r3m_18" / "model.pt", trunk="resnet18", text_encoder=str(distilbert), original_layout=True),
    }


def frames(count=5, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("name, parameters", [("resnet18", 11_176_512), ("resnet50", 23_508_032)])
def test_resnet_matches_torchvision_layout(name, parameters):
    trunk = ResNet(name)
    keys = trunk.state_dict().keys()
    assert sum(p.numel() for p in trunk.parameters()) == parameters  # torchvision's count minus fc
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias"} <= set(keys)
    assert infer_trunk({f"convnet.{key}": value for key, value in trunk.state_dict().items()}) == name
    assert trunk.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, trunk.out_dim)


def test_r3m_split_head_equals_naive_head(models):
    reward_model = load_reward_model(f"r3m:{models['r3m']}")
    model = reward_model.model
    with torch.inference_mode():
        embedded = model.encode_frames(torch.from_numpy(frames()))
        text = model.encode_text(PROMPTS)
        count, prompts = len(embedded), len(PROMPTS)
        naive = model.reward(embedded[:1, None].expand(count, prompts, -1), embedded[:, None].expand(count, prompts, -1), text[None].expand(count, prompts, -1))
        first, per_frame = model.frame_terms(embedded[:1], embedded)
        split = model.split_rewards(first, per_frame, model.prompt_terms(text))
    torch.testing.assert_close(split, naive, rtol=1e-5, atol=1e-6)
    rewards = reward_model.episode_rewards(frames(), reward_model.embed_prompts(PROMPTS), batch_size=2)
    assert rewards.dtype == np.float16 and rewards.shape == (5, 3)
    np.testing.assert_allclose(rewards, naive.numpy(), rtol=2e-3, atol=1e-3)


def test_r3m_checkpoint_round_trip_and_layout(models):
    payload = torch.load(models["r3m"], map_location="cpu", weights_only=True)
    assert all(key.startswith("module.") for key in payload["r3m"])
    assert {"module.convnet.layers.0.weight", "module.lang_rew.pred.0.weight", "module.lang_enc.model.embeddings.word_embeddings.weight"} <= set(payload["r3m"])
    first = make_scorer(f"r3m:{models['r3m']}", PROMPTS)
    again = make_scorer(f"r3m:{models['r3m']}?standardize=0", PROMPTS)
    assert first.fingerprint == again.fingerprint
    np.testing.assert_array_equal(first.score(frames()), again.score(frames()))
    standardized = make_scorer(f"r3m:{models['r3m']}?standardize=1", PROMPTS)
    assert standardized.fingerprint != first.fingerprint
    values = standardized.score(frames()).astype(np.float32)
    np.testing.assert_allclose(values.mean(0), 0, atol=1e-2)
    other = make_scorer(f"r3m:{models['r3m']}", PROMPTS[:2])
    assert other.fingerprint != first.fingerprint


def test_original_r3m_checkpoint_loads_by_path_and_cache(models, monkeypatch, tmp_path):
    spec = f"r3m:{models['original']}?text={models['distilbert']}"
    reward_model = load_reward_model(spec)
    config = reward_model.model.config
    assert (config.trunk, config.image_size, config.head_hidden, config.head_layers, config.lang_dim) == ("resnet18", 0, 64, 4, 32)
    state = {key.removeprefix("module."): value for key, value in torch.load(models["original"], weights_only=True)["r3m"].items()}
    for key, value in reward_model.model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    monkeypatch.setenv("R3M_HOME", str(models["original"].parent.parent))
    cached = load_reward_model(f"r3m:resnet18?text={models['distilbert']}")
    assert cached.spec() == reward_model.spec()
    monkeypatch.setattr("lamp_data.rewards.text.DISTILBERT_HUB_ID", "lamp-test/not-a-cached-model")
    with pytest.raises(LampError, match="not available offline"):
        load_reward_model(f"r3m:{models['original']}")
    monkeypatch.setenv("R3M_HOME", str(tmp_path))
    with pytest.raises(LampError, match=r"R3M resnet50 weights not found at .*r3m_50/model.pt"):
        load_reward_model("r3m:resnet50")


def test_bad_specs_give_clear_errors(models, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    cases = [
        ("nope:thing", "unknown reward model family 'nope'"),
        ("r3m", "must look like 'family:name-or-path'"),
        (f"r3m:{tmp_path / 'missing.pt'}", "does not exist"),
        (f"r3m:{tmp_path / 'junk.pt'}", "cannot read R3M checkpoint"),
        (f"r3m:{tmp_path / 'other.pt'}", "is not an R3M checkpoint"),
        (f"r3m:{models['r3m']}?colour=red", "unknown option"),
        (f"clip:{models['clip']}?alpha=2", "between 0 and 1"),
        (f"clip:{tmp_path / 'no-such-dir'}", "does not exist"),
        ("clip:lamp-test/not-a-cached-clip", "not in the local Hugging Face cache"),
    ]
    for spec, message in cases:
        with pytest.raises(LampError, match=message):
            load_reward_model(spec)


def test_clip_cosine_and_projection(models):
    plain = load_reward_model(f"clip:{models['clip']}")
    images = plain.embed_frames(frames(4, size=48))
    embedded = plain.embed_prompts(PROMPTS)
    rewards = plain.episode_rewards(frames(4, size=48), embedded).astype(np.float32)
    cosine = (images @ embedded["goal"].T).numpy()
    np.testing.assert_allclose(rewards, cosine - cosine[:1], atol=2e-3)
    assert np.abs(rewards[0]).max() < 1e-6
    alone = torch.cat([plain.embed_prompts([prompt])["goal"] for prompt in PROMPTS])
    torch.testing.assert_close(alone, embedded["goal"], rtol=1e-4, atol=1e-5)

    alpha = 0.7
    projected = load_reward_model(f"clip:{models['clip']}?alpha={alpha}&baseline=a robot arm")
    goal = embedded["goal"]
    baseline = torch.nn.functional.normalize(plain._encode_text(["a robot arm"]), dim=-1)[0]
    expected = np.zeros((len(images), len(PROMPTS)), np.float32)
    for p in range(len(PROMPTS)):
        direction = torch.nn.functional.normalize(goal[p] - baseline, dim=0)
        matrix = alpha * torch.outer(direction, direction) + (1 - alpha) * torch.eye(len(direction))
        for n in range(len(images)):
            expected[n, p] = 1 - 0.5 * torch.sum((matrix @ (images[n] - goal[p])) ** 2)
    got = projected.episode_rewards(frames(4, size=48), projected.embed_prompts(PROMPTS)).astype(np.float32)
    np.testing.assert_allclose(got, expected - expected[:1], atol=2e-3)
    assert projected.spec() != plain.spec() and projected.spec()["weights"] == plain.spec()["weights"]


def test_every_registered_family_scores_through_make_scorer(models):
    specs = {
        "r3m": f"r3m:{models['r3m']}",
        "clip": f"clip:{models['clip']}?standardize=1",
        "siglip": f"siglip:{models['siglip']}",
        "xclip": f"xclip:{models['xclip']}?stride=2",
    }
    assert set(REWARD_MODELS.names()) == set(specs)
    for family, spec in specs.items():
        scorer = make_scorer(spec, PROMPTS, batch_size=3)
        scores = scorer.score(frames(7))
        assert scores.dtype == np.float16 and scores.shape == (7, 3) and np.isfinite(scores).all()
        assert scorer.fingerprint.startswith(f"{family}-") and scorer.info["fingerprint"] == scorer.fingerprint
        assert scorer.info["prompt_set"]["count"] == 3 and scorer.info["provenance"]["model_spec"] == spec
        with pytest.raises(LampError, match="uint8"):
            scorer.score(frames(2).astype(np.float32))


def test_a_shipped_name_loads_the_same_model_as_its_path(models, tmp_path, monkeypatch):
    import shutil

    from lamp_data.rewards.vlm import shipped_model_path

    name = "lamp-r3m-metaworld"
    path = tmp_path / name / "model.pt"
    path.parent.mkdir()
    shutil.copy(models["r3m"], path)
    monkeypatch.setattr("lamp_data.rewards.vlm.shipped.MODELS_ROOT", tmp_path)
    assert shipped_model_path(name) == path
    specs = [name, f"r3m:{name}", f"r3m:{path}"]
    scorers = [make_scorer(spec, PROMPTS) for spec in specs]
    assert len({scorer.fingerprint for scorer in scorers}) == 1
    assert [scorer.info["provenance"]["model_spec"] for scorer in scorers] == specs
    np.testing.assert_array_equal(scorers[0].score(frames()), scorers[2].score(frames()))
    standardized = load_reward_model(f"{name}?standardize=1")
    assert standardized.standardize and standardized.spec() != scorers[0].reward_model.spec()

    with pytest.raises(LampError, match=f"unknown shipped reward model 'nope' \\(known: {name}\\)"):
        shipped_model_path("nope")
    with pytest.raises(LampError, match=f"or name a shipped model \\({name}\\)"):
        load_reward_model("nope")
    with pytest.raises(LampError, match=f"one of: resnet18, resnet34, resnet50, {name}"):
        load_reward_model("r3m:nope")
    path.unlink()
    with pytest.raises(LampError, match=f"'{name}' is missing from this install"):
        load_reward_model(name)


def test_the_in_domain_model_is_shipped_in_the_package():
    import lamp_data
    from lamp_data.rewards.vlm import shipped_model_path

    path = shipped_model_path("lamp-r3m-metaworld")
    assert path.is_file() and path.is_relative_to(Path(lamp_data.__file__).parent)
    assert (path.parent / "model_card.md").is_file() and (path.parent / "README.md").is_file()


@pytest.mark.parametrize("family", ["r3m", "clip", "siglip", "xclip"])
def test_the_fingerprint_does_not_depend_on_what_the_tokenizer_did_before(models, family):
    fresh = load_reward_model(f"{family}:{models[family]}")
    before = fresh.spec()  # taken before any prompt is tokenized
    fresh.episode_rewards(frames(size=32), fresh.embed_prompts(PROMPTS), batch_size=4)
    assert fresh.spec() == before

    other = load_reward_model(f"{family}:{models[family]}")
    tokenizer = other.model.lang_enc.tokenizer if family == "r3m" else other.tokenizer
    tokenizer(["a", "a much longer prompt"], padding="max_length", max_length=9, truncation=True)  # another call first
    assert other.spec() == before
    assert make_scorer(f"{family}:{models[family]}", PROMPTS).info["model"] == before  # what scoring has always recorded
