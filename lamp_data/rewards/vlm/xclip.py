"""X-CLIP video-language reward models through ``transformers``: each frame scored by the clip
that ends at it, relative to the episode's start.

Spec strings: ``xclip:microsoft/xclip-base-patch32`` (a hub id already in the local Hugging Face
cache: nothing is downloaded) or ``xclip:/local/dir`` (a ``save_pretrained`` folder), with
options after ``?`` joined by ``&``:

* ``window=K``: frames per clip. X-CLIP takes a fixed number of frames, its config's
  ``vision_config.num_frames`` (8 for the released models): every vision layer exchanges
  "message" tokens across exactly that many frames and the multi-frame integration transformer
  has one position embedding per frame. Another count cannot run on the same weights, so the
  window is always the model's count; the option exists to state it, and any other value is an
  error rather than a silently different model.
* ``stride=S`` (default 1): take every S-th frame, so a clip spans ``(K - 1) S + 1`` steps of the
  episode (X-CLIP was trained on 8 frames spread over a few seconds of 30 fps video).
* ``video_prompt=0``: score against the plain text embedding instead of X-CLIP's video-specific
  prompt (see below); its cost then no longer grows with the number of prompts per frame.
* ``standardize=1``: standardise each prompt's rewards over the episode (mean 0, std 1).

The clip of frame ``t`` is frames ``t - (K-1)S, ..., t - S, t``; indices before the episode's
start are the first frame, so the first clip is the first frame repeated K times. With video
embedding ``v(w)`` (unit length) and prompt embedding ``g``, the score is X-CLIP's own video-text
cosine, ``s(w, g) = v(w)·ĝ(w)`` where ``ĝ(w)`` is the unit-length ``g + prompt_generator(g, w)``:
X-CLIP adds to each prompt a residual that cross-attends to the clip's patch tokens. The reward,
like ``clip:``, is ``r_t = s(w_t, g) - s(w_0, g)``, so ``r_0 = 0``.

Cost: the text tower runs once per prompt set. Frames are preprocessed once per episode. Each
frame's clip passes the vision tower once per episode, K frames wide: X-CLIP's frames attend to
each other inside the vision tower, so a frame's features depend on its clip and cannot be
reused across the K clips it belongs to. The video-specific prompt is per clip and prompt (a few
small layers on the projection width), so with ``video_prompt=1`` (the default, X-CLIP's own score)
the per-frame cost grows with the prompt set; ``video_prompt=0`` makes it independent of it.

Frames are prepared as X-CLIP's processor prepares video frames (resize of the shorter side,
centre crop, bilinear, ImageNet mean and std unless ``preprocessor_config.json`` says otherwise),
in torch on the model's device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lamp_data.errors import LampError
from lamp_data.rewards.vlm.base import parse_flag, split_spec_options, standardize_per_prompt
from lamp_data.rewards.vlm.pretrained import PretrainedRewardModel, image_settings, load_pretrained

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPEC_OPTIONS = ("window", "stride", "video_prompt", "standardize")
TEXT_BATCH = 256
"""Prompts tokenized and encoded together."""
PROMPT_CHUNK_ELEMENTS = 1 << 24
"""Floats of the prompt generator's widest layer per pass (clips × prompts × 4 × width)."""


def window_indices(length: int, window: int, stride: int = 1) -> np.ndarray:
    """Frame indices ``[length, window]`` of each frame's clip: row ``t`` is
    ``t - (window-1)·stride, ..., t - stride, t``, with indices before 0 set to 0."""
    offsets = (np.arange(window) - (window - 1)) * stride
    return np.maximum(np.arange(length)[:, None] + offsets[None, :], 0)


class XCLIPRewardModel(PretrainedRewardModel):
    """A frozen ``XCLIPModel`` scoring the clip that ends at each frame against each prompt.

    ``embed_frames`` only preprocesses frames (X-CLIP cannot embed a frame apart from its clip);
    :meth:`embed_windows` runs the vision tower on clips; :meth:`episode_rewards` builds each
    frame's clip and scores it once.

    Args:
        model: The loaded ``transformers.XCLIPModel``.
        tokenizer: Its tokenizer.
        preprocessing: ``resize``, ``crop``, ``mean``, ``std``, ``interpolation`` (see
            :func:`lamp_data.rewards.vlm.pretrained.image_settings`).
        stride: Every ``stride``-th frame goes into a clip.
        video_prompt: Add X-CLIP's video-specific prompt to each prompt embedding.
        standardize: Standardise each prompt's rewards over the episode.
    """

    family = "xclip"

    def __init__(self, model: Any, tokenizer: Any, preprocessing: dict[str, Any], stride: int = 1, video_prompt: bool = True, standardize: bool = False):
        if stride < 1:
            raise LampError(f"X-CLIP stride must be at least 1, got {stride}")
        super().__init__(model, tokenizer, preprocessing, standardize)
        self.window = int(model.config.vision_config.num_frames)
        self.stride = int(stride)
        self.video_prompt = video_prompt

    def spec(self) -> dict[str, Any]:
        return {
            **self.identity(),
            "preprocessing": {**self.preprocessing, "antialias": True, "scale": "1/255"},
            "window": self.window,
            "stride": self.stride,
            "window_start": "indices before the first frame repeat the first frame",
            "video_prompt": self.video_prompt,
            "reward": "s(w_t, g) - s(w_0, g), s = cos(v(w), g + prompt_generator(g, w))" if self.video_prompt else "s(w_t, g) - s(w_0, g), s = cos(v(w), g)",
        }

    @torch.inference_mode()
    def embed_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        rows = []
        for start in range(0, len(prompts), TEXT_BATCH):
            tokens = self.tokenize(list(prompts[start : start + TEXT_BATCH])).to(self.device)
            features = self.model.get_text_features(**tokens)
            rows.append(getattr(features, "pooler_output", features).float())
        text = torch.cat(rows)
        return {"text": text, "unit": torch.nn.functional.normalize(text, dim=-1)}

    def embed_frames(self, frames: np.ndarray) -> torch.Tensor:
        """Preprocessed pixels ``[N, 3, S, S]`` of uint8 frames ``[N, H, W, 3]``."""
        with torch.inference_mode():
            return self.preprocess(torch.from_numpy(np.ascontiguousarray(frames)))

    @torch.inference_mode()
    def embed_windows(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clips of pixels ``[B, K, 3, S, S]`` → unit video embeddings ``[B, D]`` and, for the
        video-specific prompt, the clips' patch tokens averaged over frames ``[B, tokens, D]``."""
        count, frames = clips.shape[:2]
        if frames != self.window:
            raise LampError(f"X-CLIP takes clips of {self.window} frames, got {frames}")
        outputs = self.model.get_video_features(pixel_values=clips)
        embedded = {"video": torch.nn.functional.normalize(outputs.pooler_output.float(), dim=-1)}
        if self.video_prompt:
            tokens = self.model.prompts_visual_layernorm(outputs.last_hidden_state[:, 1:, :]) @ self.model.prompts_visual_projection
            embedded["visual"] = tokens.view(count, frames, tokens.shape[1], -1).mean(dim=1)
        return embedded

    @torch.inference_mode()
    def similarity(self, clips: dict[str, torch.Tensor], prompts: dict[str, torch.Tensor]) -> torch.Tensor:
        """``s(w, g)`` for every embedded clip and prompt, ``[B, P]``."""
        video = clips["video"]
        if not self.video_prompt:
            return video @ prompts["unit"].T
        text = prompts["text"]
        chunk = max(1, PROMPT_CHUNK_ELEMENTS // (len(video) * 4 * text.shape[-1]))
        columns = []
        for start in range(0, len(text), chunk):
            part = text[start : start + chunk][None].expand(len(video), -1, -1)
            part = part + self.model.prompts_generator(part, clips["visual"])
            columns.append(torch.einsum("bd,bpd->bp", video, torch.nn.functional.normalize(part, dim=-1)))
        return torch.cat(columns, dim=1)

    def score(self, first: dict[str, torch.Tensor], frames: dict[str, torch.Tensor], prompts: dict[str, torch.Tensor]) -> np.ndarray:
        """Rewards ``[B, P]`` of embedded clips against the first clip (``first``, one row)."""
        return (self.similarity(frames, prompts) - self.similarity(first, prompts)).cpu().numpy()

    def episode_rewards(self, frames: np.ndarray, prompts: Any, batch_size: int = 64) -> np.ndarray:
        """Rewards float16 ``[T+1, P]``: frames preprocessed once, each frame's clip scored once.

        A forward pass takes ``batch_size // K`` clips (at least one), about ``batch_size`` frames.
        """
        pixels = torch.cat([self.embed_frames(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)])
        indices = torch.from_numpy(window_indices(len(frames), self.window, self.stride)).to(self.device)
        clips_per_pass = max(1, batch_size // self.window)
        first: dict[str, torch.Tensor] | None = None
        rows = []
        for start in range(0, len(frames), clips_per_pass):
            embedded = self.embed_windows(pixels[indices[start : start + clips_per_pass]])
            if first is None:
                first = {key: value[:1] for key, value in embedded.items()}
            rows.append(self.score(first, embedded, prompts))
        rewards = np.concatenate(rows)
        return (standardize_per_prompt(rewards) if self.standardize else rewards).astype(np.float16)


def _positive_int(options: dict[str, str], key: str, default: int) -> int:
    """An integer option ≥ 1."""
    try:
        value = int(options.get(key, str(default)))
    except ValueError:
        raise LampError(f"X-CLIP option {key}={options[key]} is not an integer") from None
    if value < 1:
        raise LampError(f"X-CLIP option {key}={value} must be at least 1")
    return value


def load_xclip(argument: str, device: str = "cpu") -> XCLIPRewardModel:
    """Factory for ``xclip:<hub id | folder>[?window=K&stride=S&video_prompt=0&standardize=1]``."""
    target, options = split_spec_options(argument, SPEC_OPTIONS)
    stride = _positive_int(options, "stride", 1)
    window = _positive_int(options, "window", 1) if "window" in options else None
    video_prompt = parse_flag({"video_prompt": options.get("video_prompt", "1")}, "video_prompt")
    standardize = parse_flag(options, "standardize")
    from transformers import XCLIPModel

    model, tokenizer, source = load_pretrained(XCLIPModel, target, "X-CLIP", "xclip")
    frames = int(model.config.vision_config.num_frames)
    if window is not None and window != frames:
        raise LampError(f"X-CLIP model '{target}' takes clips of exactly {frames} frames (vision_config.num_frames), not window={window}")
    side = int(model.config.vision_config.image_size)
    defaults = {"size": side, "crop_size": side, "do_center_crop": True, "resample": 2, "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD}
    return XCLIPRewardModel(model.to(device), tokenizer, image_settings(source, defaults), stride=stride, video_prompt=video_prompt, standardize=standardize)
