"""Tiny randomly initialised reward models, saved in the real formats, for tests and benchmarks.

Nothing here downloads anything: tokenizers are built from a small word list (DistilBERT, and a
unigram model for SigLIP) or from the byte alphabet (CLIP's and X-CLIP's byte-level BPE with no
merges), models from small configs, and
everything is written with ``save_pretrained`` / :func:`save_r3m_checkpoint` so it is read back
through exactly the path real weights take.
"""

from __future__ import annotations

from pathlib import Path

from lamp_data.rewards.text import quiet_transformers

TINY_WORDS = (
    "pick", "up", "the", "cup", "push", "pull", "red", "block", "reach", "open", "close", "drawer",
    "door", "press", "button", "turn", "faucet", "a", "robot", "arm", "on", "table", "to", "put",
    "puck", "peg", "lift", "move", "window", "lid",
)
"""Words the tiny DistilBERT tokenizer knows (anything else becomes [UNK])."""


def save_tiny_distilbert(folder: str | Path, seed: int = 0, dim: int = 32) -> Path:
    """A 1-layer DistilBERT (``dim``-d, 32 by default; 768 matches R3M's head) with its tokenizer."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer

    quiet_transformers()
    folder = Path(folder)
    specials = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    vocab = {token: index for index, token in enumerate(specials + TINY_WORDS)}
    tokenizer = DistilBertTokenizer(vocab=vocab)
    torch.manual_seed(seed)
    config = DistilBertConfig(vocab_size=len(vocab), dim=dim, n_layers=1, n_heads=2, hidden_dim=2 * dim, max_position_embeddings=64, pad_token_id=0)
    DistilBertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_clip(folder: str | Path, seed: int = 0, image_size: int = 32, *, width: int = 32, layers: int = 1, patch_size: int = 8, projection_dim: int = 16, text_width: int | None = None, text_layers: int | None = None) -> Path:
    """A small CLIP (by default 1 layer, 32-d towers, 16-d projection) with tokenizer and image-processor config.

    Args:
        folder: Where to ``save_pretrained``.
        seed: Seed of the random initialisation.
        image_size: Input side of the vision tower.
        width: Hidden size of the vision tower (heads: ``width // 32``, at least 2).
        layers: Transformer layers of the vision tower.
        patch_size: Vision patch side.
        projection_dim: Size of the joint embedding.
        text_width: Hidden size of the text tower (default ``width``).
        text_layers: Transformer layers of the text tower (default ``layers``).
    """
    import json

    import torch
    from transformers import CLIPConfig, CLIPModel

    quiet_transformers()
    folder = Path(folder)
    tokenizer = _byte_clip_tokenizer()
    vocab = tokenizer.get_vocab()
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id

    def tower(size: int, depth: int) -> dict:
        return dict(hidden_size=size, intermediate_size=4 * size, num_hidden_layers=depth, num_attention_heads=max(2, size // 32))

    text = dict(tower(text_width or width, text_layers or layers), vocab_size=len(vocab), max_position_embeddings=32,
                bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    vision = dict(tower(width, layers), image_size=image_size, patch_size=patch_size)
    torch.manual_seed(seed)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor = {
        "image_processor_type": "CLIPImageProcessor",
        "size": {"shortest_edge": image_size},
        "crop_size": {"height": image_size, "width": image_size},
        "do_resize": True, "do_center_crop": True, "do_rescale": True, "do_normalize": True,
        "rescale_factor": 1 / 255,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return folder


def _byte_clip_tokenizer():
    """CLIP's byte-level BPE tokenizer over the 256 byte symbols with no merges; the end-of-text
    token has the highest id, as in CLIP (X-CLIP's text tower pools the highest id)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    characters = list(bytes_to_unicode().values())
    vocab = {character: index for index, character in enumerate(characters)}
    for character in characters:
        vocab[character + "</w>"] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    return CLIPTokenizer(vocab=vocab, merges=[])


def save_tiny_xclip(folder: str | Path, seed: int = 0, image_size: int = 32, frames: int = 4, *, width: int = 32, layers: int = 1, patch_size: int = 8, projection_dim: int = 16, text_width: int | None = None, text_layers: int | None = None, prompt_layers: int = 1) -> Path:
    """A small X-CLIP (by default 4 frames, 1 layer, 32-d towers, 16-d projection) with tokenizer and processor config.

    Args:
        folder: Where to ``save_pretrained``.
        seed: Seed of the random initialisation.
        image_size: Input side of the vision tower.
        frames: Frames per video (``vision_config.num_frames``; the released models take 8).
        width: Hidden size of the vision tower (heads: ``width // 32``, at least 2).
        layers: Transformer layers of the vision tower.
        patch_size: Vision patch side.
        projection_dim: Size of the joint embedding, of the multi-frame integration transformer
            and of the video-specific prompt generator.
        text_width: Hidden size of the text tower (default ``width``).
        text_layers: Transformer layers of the text tower (default ``layers``).
        prompt_layers: Layers of the video-specific prompt generator (released models: 2).
    """
    import json

    import torch
    from transformers import XCLIPConfig, XCLIPModel

    quiet_transformers()
    folder = Path(folder)
    tokenizer = _byte_clip_tokenizer()
    eos = tokenizer.eos_token_id

    def tower(size: int, depth: int) -> dict:
        return dict(hidden_size=size, intermediate_size=4 * size, num_hidden_layers=depth, num_attention_heads=max(2, size // 32))

    text = dict(tower(text_width or width, text_layers or layers), vocab_size=len(tokenizer.get_vocab()), max_position_embeddings=32,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=eos)
    heads = max(2, projection_dim // 32)
    vision = dict(tower(width, layers), image_size=image_size, patch_size=patch_size, num_frames=frames,
                  mit_hidden_size=projection_dim, mit_intermediate_size=4 * projection_dim, mit_num_hidden_layers=1, mit_num_attention_heads=heads)
    config = XCLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim, prompt_layers=prompt_layers, prompt_num_attention_heads=heads)
    torch.manual_seed(seed)
    XCLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor = {  # the layout of microsoft/xclip-base-patch32's VideoMAE processor config
        "feature_extractor_type": "VideoMAEFeatureExtractor",
        "size": image_size, "crop_size": image_size, "resample": 2,
        "do_resize": True, "do_center_crop": True, "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return folder


def _unigram_tokenizer(max_length: int):
    """A SentencePiece-style unigram tokenizer (``▁`` word boundaries, ``</s>`` appended, padded
    with ``</s>``) built with the ``tokenizers`` library: SigLIP's own tokenizer needs a
    SentencePiece model file, which cannot be made offline without the ``sentencepiece`` package."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [(token, 0.0) for token in specials]
    pieces += [(f"▁{word}", -2.0) for word in TINY_WORDS]
    pieces += [(character, -8.0) for character in letters] + [(f"▁{character}", -8.0) for character in letters] + [("▁", -9.0)]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2))
    backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(" ", "▁"), normalizers.Prepend("▁")])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="</s>", unk_token="<unk>", model_max_length=max_length)


def save_tiny_siglip(folder: str | Path, seed: int = 0, image_size: int = 32, *, width: int = 32, layers: int = 1, patch_size: int = 8, text_width: int | None = None, text_layers: int | None = None) -> Path:
    """A small SigLIP (by default 1 layer, 32-d towers) with a unigram tokenizer and processor config.

    The tokenizer is a ``tokenizers`` unigram model saved as ``tokenizer.json`` (loaded as
    ``PreTrainedTokenizerFast``), see :func:`_unigram_tokenizer`.

    Args:
        folder: Where to ``save_pretrained``.
        seed: Seed of the random initialisation.
        image_size: Input side of the vision tower.
        width: Hidden size of the vision tower and of the joint embedding (heads: ``width // 32``, at least 2).
        layers: Transformer layers of the vision tower.
        patch_size: Vision patch side.
        text_width: Hidden size of the text tower (default ``width``); its head projects to ``width``.
        text_layers: Transformer layers of the text tower (default ``layers``).
    """
    import json

    import torch
    from transformers import SiglipConfig, SiglipModel

    quiet_transformers()
    folder = Path(folder)
    max_length = 16
    tokenizer = _unigram_tokenizer(max_length)

    def tower(size: int, depth: int) -> dict:
        return dict(hidden_size=size, intermediate_size=4 * size, num_hidden_layers=depth, num_attention_heads=max(2, size // 32))

    text = dict(tower(text_width or width, text_layers or layers), vocab_size=len(tokenizer), max_position_embeddings=max_length,
                projection_size=width, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    vision = dict(tower(width, layers), image_size=image_size, patch_size=patch_size)
    torch.manual_seed(seed)
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor = {  # the layout of google/siglip-base-patch16-224's processor config
        "image_processor_type": "SiglipImageProcessor",
        "size": {"height": image_size, "width": image_size}, "resample": 3,
        "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return folder


def save_tiny_r3m(path: str | Path, trunk: str = "conv-small", text_encoder: str = "minilm", image_size: int = 32, seed: int = 0, *, original_layout: bool = False, head_hidden: int = 64, head_layers: int = 4) -> Path:
    """A small R3M saved as our checkpoint, or (``original_layout``) exactly as R3M saves one.

    Args:
        path: The ``.pt`` file to write.
        trunk: Image trunk name (``conv-small``, ``resnet18`` ...).
        text_encoder: ``minilm`` or a folder (e.g. from :func:`save_tiny_distilbert`).
        image_size: Side frames are resized to.
        seed: Seed of the random initialisation.
        head_hidden: Width of the reward MLP's hidden layers (R3M: 1024).
        head_layers: Hidden layers of the reward MLP (R3M: 4).
        original_layout: Write ``{"r3m": {"module.<key>": tensor}}`` only, without our config,
            as R3M's training code does (the loader then infers the architecture).
    """
    import torch

    from lamp_data.rewards.text import build_text_encoder
    from lamp_data.rewards.vlm.r3m.checkpoint import save_r3m_checkpoint
    from lamp_data.rewards.vlm.r3m.networks import R3MConfig, build_r3m

    encoder = build_text_encoder(text_encoder)
    config = R3MConfig(trunk=trunk, image_size=image_size, text_encoder=text_encoder, lang_dim=encoder.dim, head_hidden=head_hidden, head_layers=head_layers)
    model = build_r3m(config, encoder, seed=seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if original_layout:
        torch.save({"r3m": {f"module.{key}": value for key, value in model.state_dict().items()}}, path)
        return path
    return save_r3m_checkpoint(model, path, {"purpose": "tiny test model"})
