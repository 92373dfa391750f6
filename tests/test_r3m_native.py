"""R3M's own checkpoints score frames at the size they come in, as R3M's ``forward`` does.

The reference below is written from R3M's forward pass, not from our modules: frames in
[0, 255] scaled by 1/255 and ImageNet-normalised, a torchvision-layout ResNet-18 in functional
ops, DistilBERT's last hidden state averaged over the tokens of one prompt, and the reward MLP on
``[e_0, e_t, l]`` (``get_reward_le``). The checkpoint is a tiny one in R3M's on-disk layout, with
its batch-norm statistics randomised so the trunk's normalisation is exercised and its last layer
scaled up so rewards are of order one.
"""

from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lamp_data.errors import LampError
from lamp_data.rewards.vlm import load_reward_model
from lamp_data.rewards.vlm.scoring import make_scorer
from tiny_models import save_tiny_distilbert, save_tiny_r3m

PROMPTS = ["pick up the cup", "push the red block", "open the drawer"]
SIZES = (64, 128, 224)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TOLERANCE = 3e-5
"""Largest difference from the reference allowed, relative to the largest reward: float32 rounding
(both implementations lie within about 1e-5 of a float64 reference)."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An R3M-layout ResNet-18 checkpoint (``{"r3m": {"module.<key>": tensor}}``) and its text folder."""
    folder = tmp_path_factory.mktemp("r3m-native")
    distilbert = save_tiny_distilbert(folder / "distilbert")
    path = save_tiny_r3m(folder / "model.pt", trunk="resnet18", text_encoder=str(distilbert), original_layout=True, head_hidden=32)
    state = torch.load(path, weights_only=True)["r3m"]
    generator = torch.Generator().manual_seed(1)
    for key, value in state.items():
        if ".bn" in key or ".downsample.1." in key:
            if key.endswith("running_var") or key.endswith(".weight"):
                state[key] = 0.5 + torch.rand(value.shape, generator=generator)
            elif key.endswith("running_mean") or key.endswith(".bias"):
                state[key] = 0.1 * torch.randn(value.shape, generator=generator)
    last = max(key for key in state if key.startswith("module.lang_rew.pred.") and key.endswith(".weight"))
    state[last] = 30 * state[last]
    torch.save({"r3m": state}, path)
    return path, distilbert, {key.removeprefix("module."): value for key, value in state.items()}


@pytest.fixture(scope="module")
def loaded(checkpoint):
    """Reward models by spec options, each loaded once."""
    path, distilbert, _ = checkpoint

    @lru_cache(maxsize=None)
    def load(options: str = ""):
        return load_reward_model(f"r3m:{path}?text={distilbert}{options}")

    return load


def episode(size, count=3, seed=0):
    """uint8 frames ``[count, size, size, 3]``: noise around a colour that changes from frame to frame."""
    rng = np.random.default_rng(seed + size)
    colours = rng.uniform(40, 215, (count, 1, 1, 3))
    return np.clip(colours + rng.normal(0, 40, (count, size, size, 3)), 0, 255).astype(np.uint8)


def reference_trunk(state, images):
    """torchvision's ResNet-18 forward (eval mode, ``fc`` an identity) from a state dict."""

    def norm(x, name):
        return F.batch_norm(x, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"], state[f"{name}.bias"], False, 0.0, 1e-5)

    x = F.conv2d(images, state["convnet.conv1.weight"], stride=2, padding=3)
    x = F.max_pool2d(F.relu(norm(x, "convnet.bn1")), 3, 2, 1)
    for stage in range(1, 5):
        for block in range(2):
            name = f"convnet.layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            out = F.relu(norm(F.conv2d(x, state[f"{name}.conv1.weight"], stride=stride, padding=1), f"{name}.bn1"))
            out = norm(F.conv2d(out, state[f"{name}.conv2.weight"], padding=1), f"{name}.bn2")
            if f"{name}.downsample.0.weight" in state:
                x = norm(F.conv2d(x, state[f"{name}.downsample.0.weight"], stride=stride), f"{name}.downsample.1")
            x = F.relu(out + x)
    return x.mean(dim=(2, 3))


def reference_text(state, folder, prompts):
    """R3M's ``LangEncoder``: DistilBERT (the checkpoint's weights), last hidden state averaged over tokens."""
    from transformers import AutoTokenizer, DistilBertModel

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = DistilBertModel.from_pretrained(folder, local_files_only=True).eval()
    weights = {key.removeprefix("lang_enc.model."): value for key, value in state.items() if key.startswith("lang_enc.model.")}
    model.load_state_dict(weights, strict=False)
    rows = []
    for prompt in prompts:
        tokens = tokenizer([prompt], return_tensors="pt", padding=True)
        rows.append(model(**tokens).last_hidden_state.mean(1)[0])
    return torch.stack(rows)


def reference_rewards(state, folder, frames, resize=None):
    """``get_reward_le(e_0, e_t, l)`` for every frame and prompt, float32 ``[T+1, P]``."""
    with torch.no_grad():
        images = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        if resize:
            images = F.interpolate(images, size=(resize, resize), mode="bilinear", align_corners=False, antialias=True)
        embedded = reference_trunk(state, (images / 255.0 - MEAN) / STD)
        text = reference_text(state, folder, PROMPTS)
        count, prompts = len(embedded), len(text)
        x = torch.cat([embedded[:1, None].expand(count, prompts, -1), embedded[:, None].expand(count, prompts, -1), text[None].expand(count, prompts, -1)], -1)
        layers = sorted(int(key.split(".")[2]) for key in state if key.startswith("lang_rew.pred.") and key.endswith(".weight"))
        for index, layer in enumerate(layers):
            x = x @ state[f"lang_rew.pred.{layer}.weight"].T + state[f"lang_rew.pred.{layer}.bias"]
            if index < len(layers) - 1:
                x = F.relu(x)
        return x.squeeze(-1).numpy()


def our_rewards(reward_model, frames):
    """Our float32 rewards, before the float16 a reward set stores."""
    embedded = reward_model.embed_frames(frames)
    return reward_model.score(embedded[:1], embedded, reward_model.embed_prompts(PROMPTS))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("resize", [None, 224], ids=["native", "image_size=224"])
def test_rewards_match_an_independent_r3m_forward(checkpoint, loaded, size, resize):
    _, folder, state = checkpoint
    reward_model = loaded("" if resize is None else f"&image_size={resize}")
    frames = episode(size)
    expected = reference_rewards(state, folder, frames, resize)
    got = our_rewards(reward_model, frames)
    scale = float(np.abs(expected).max())
    difference = float(np.abs(got - expected).max())
    print(f"size {size} {'native' if resize is None else f'resized to {resize}'}: max |ours - reference| {difference:.3g} (rewards up to {scale:.3g})")
    assert got.shape == (len(frames), len(PROMPTS)) and scale > 0.1
    assert difference <= TOLERANCE * scale
    assert np.abs(expected - expected[:1]).max() > 1000 * TOLERANCE * scale  # the frames matter


def test_native_size_is_the_default_and_changes_the_rewards(checkpoint, loaded):
    path, folder, state = checkpoint
    native, resized = loaded(), loaded("&image_size=224")
    assert native.model.config.image_size == 0 and resized.model.config.image_size == 224
    frames = episode(128)
    at_native = our_rewards(native, frames)
    gap = float(np.abs(at_native - our_rewards(resized, frames)).max())
    scale = float(np.abs(at_native).max())
    print(f"128 px, native vs resized to 224: max |difference| {gap:.3g} (rewards up to {scale:.3g})")
    assert gap > 1000 * TOLERANCE * scale
    scorer = make_scorer(f"r3m:{path}?text={folder}", PROMPTS)
    np.testing.assert_allclose(scorer.score(frames).astype(np.float32), reference_rewards(state, folder, frames), rtol=2e-3, atol=2e-3)


def test_frame_size_is_part_of_the_fingerprint(checkpoint):
    path, folder, _ = checkpoint
    scorers = {options: make_scorer(f"r3m:{path}?text={folder}{options}", PROMPTS) for options in ("", "&image_size=0", "&image_size=224", "&image_size=128")}
    native, resized = scorers[""].info["model"], scorers["&image_size=224"].info["model"]
    assert native["preprocessing"]["resize"] == "none" and resized["preprocessing"]["resize"] == 224
    # Resizing to 224 is what this loader did before frames kept their size: only the size differs,
    # so reward sets written then keep their fingerprint under ?image_size=224.
    others = ("config", "preprocessing")
    assert {key: value for key, value in resized.items() if key not in others} == {key: value for key, value in native.items() if key not in others}
    assert {**resized["config"], "image_size": 0} == native["config"]
    assert {**resized["preprocessing"], "resize": "none"} == native["preprocessing"]
    assert scorers["&image_size=0"].fingerprint == scorers[""].fingerprint
    assert len({scorer.fingerprint for scorer in scorers.values()}) == 3


def test_an_in_domain_checkpoint_keeps_its_size_and_fingerprint(tmp_path):
    path = save_tiny_r3m(tmp_path / "model.pt", image_size=32, head_layers=1)
    plain = make_scorer(f"r3m:{path}", PROMPTS)
    assert plain.reward_model.model.config.image_size == 32
    assert make_scorer(f"r3m:{path}?image_size=32", PROMPTS).fingerprint == plain.fingerprint
    native = make_scorer(f"r3m:{path}?image_size=0", PROMPTS)
    assert native.fingerprint != plain.fingerprint and native.reward_model.model.config.image_size == 0


@pytest.mark.parametrize("value", ["abc", "-1", "8", "2000", "", "22.5", "²"])
def test_a_bad_image_size_is_a_clear_error(checkpoint, value):
    path, folder, _ = checkpoint
    with pytest.raises(LampError, match=r"R3M option image_size=.* must be 0 \(frames at their own size\) or a side of 16–1024 pixels"):
        load_reward_model(f"r3m:{path}?text={folder}&image_size={value}")
