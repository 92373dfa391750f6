"""Masked World Models' visual front-end, as LAMP uses it.

A conv stem turns a frame into a grid of tokens; a state/language token joins them; a ViT
masked autoencoder (MAE) learns to reconstruct the pixels of hidden tokens from the few it
sees (mask ratio 0.95 in the paper). The world model reads the MAE encoder's features of the
whole, unmasked frame (without gradients into the MAE) and learns to predict them back, so
the autoencoder and the world model train as separate objectives (Seo et al. 2022).

Camera views arrive stacked along channels (see :mod:`lamp_agent.frontend`): a token covers the
same patch of every view, and masking hides it in all of them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lamp_agent.networks import image_to_input, mlp, symlog


def _transformer(width: int, heads: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class MaskedAutoencoder(nn.Module):
    """Conv-stem ViT MAE over image tokens plus one state/language token (always visible).

    Args:
        image_size: Square frame side in pixels (a multiple of ``patch``).
        state_dim: Size of the proprio state.
        lang_dim: Size of the prompt embedding.
        patch: Pixels per token side; the stem has ``log2(patch)`` stride-2 convolutions.
        stem_depth: Channels of the first stem convolution (doubling per layer).
        width: Encoder token width.
        layers: Encoder transformer layers.
        heads: Attention heads.
        decoder_width: Decoder token width.
        decoder_layers: Decoder transformer layers.
        predict_reward: Also predict the frame's reward from the decoded state/language token
            (MWM's auxiliary reward prediction, which makes the features reward-aware).
        views: Camera views stacked along the channels of each frame (3 channels each).
    """

    def __init__(self, image_size: int, state_dim: int, lang_dim: int, *, patch: int, stem_depth: int, width: int, layers: int, heads: int, decoder_width: int, decoder_layers: int, predict_reward: bool = False, views: int = 1):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of the MAE patch {patch}")
        self.patch = patch
        self.grid = image_size // patch
        self.num_patches = self.grid**2
        self.num_tokens = self.num_patches + 1
        self.width = width
        self.channels = 3 * views
        stem: list[nn.Module] = []
        channels = self.channels
        for index in range(int(math.log2(patch))):
            out = stem_depth * 2**index
            stem += [nn.Conv2d(channels, out, 4, 2, 1), nn.GroupNorm(1, out), nn.SiLU()]
            channels = out
        stem.append(nn.Conv2d(channels, width, 1))
        self.stem = nn.Sequential(*stem)
        self.state_token = nn.Linear(state_dim + lang_dim, width)
        self.position = nn.Parameter(torch.randn(1, self.num_tokens, width) * 0.02)
        self.encoder = _transformer(width, heads, layers)
        self.encoder_norm = nn.LayerNorm(width)
        self.decoder_in = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.decoder_position = nn.Parameter(torch.randn(1, self.num_tokens, decoder_width) * 0.02)
        self.decoder = _transformer(decoder_width, heads, decoder_layers)
        self.decoder_norm = nn.LayerNorm(decoder_width)
        self.pixel_head = nn.Linear(decoder_width, patch * patch * self.channels)
        self.state_head = nn.Linear(decoder_width, state_dim)
        self.reward_head = nn.Linear(decoder_width, 1) if predict_reward else None

    def tokens(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        """``[N, 1 + P, width]``: the state/language token first, then the image tokens, with positions."""
        grid = self.stem(image_to_input(image)).flatten(2).transpose(1, 2)
        token = self.state_token(torch.cat([symlog(state), lang], -1)).unsqueeze(1)
        return torch.cat([token, grid], 1) + self.position

    def patches(self, image: torch.Tensor) -> torch.Tensor:
        """Pixel targets ``[N, P, patch * patch * C]`` in [-0.5, 0.5], row-major token order."""
        pixels = image_to_input(image)
        count, _, size, _ = pixels.shape
        grid, patch, channels = self.grid, self.patch, self.channels
        pixels = pixels.view(count, channels, grid, patch, grid, patch).permute(0, 2, 4, 3, 5, 1)
        return pixels.reshape(count, grid * grid, patch * patch * channels)

    def decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """Frames ``[N, C, H, W]`` in [-0.5, 0.5] from the features of every token ``[N, 1 + P, width]``
        (what :meth:`encode` gives, or what the world model predicts of it)."""
        decoded = self.decoder_norm(self.decoder(self.decoder_in(encoded) + self.decoder_position))
        pixels = self.pixel_head(decoded[:, 1:])
        grid, patch = self.grid, self.patch
        image = pixels.view(-1, grid, grid, patch, patch, self.channels).permute(0, 5, 1, 3, 2, 4)
        return image.reshape(-1, self.channels, grid * patch, grid * patch)

    def encode(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        """Features of every token of the whole frame, ``[N, 1 + P, width]``."""
        return self.encoder_norm(self.encoder(self.tokens(image, state, lang)))

    def random_keep(self, count: int, mask_ratio: float, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices ``[N, K]`` of image tokens left visible (at least one per frame)."""
        keep = max(1, int(round(self.num_patches * (1.0 - mask_ratio))))
        noise = torch.rand(count, self.num_patches, generator=generator, device=device)
        return noise.argsort(1)[:, :keep]

    def reconstruct(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted pixels of every patch ``[N, P, patch*patch*C]`` and the decoded
        state/language token ``[N, decoder_width]`` from the kept tokens."""
        tokens = self.tokens(image, state, lang)
        index = keep.unsqueeze(-1).expand(-1, -1, self.width)
        visible = torch.cat([tokens[:, :1], tokens[:, 1:].gather(1, index)], 1)
        encoded = self.encoder_norm(self.encoder(visible))
        encoded = self.decoder_in(encoded)
        count = image.shape[0]
        full = self.mask_token.expand(count, self.num_patches, -1).clone()
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, full.shape[-1]), encoded[:, 1:].to(full.dtype))
        decoded = torch.cat([encoded[:, :1], full], 1) + self.decoder_position
        decoded = self.decoder_norm(self.decoder(decoded))
        return self.pixel_head(decoded[:, 1:]), decoded[:, 0]

    def losses(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor, mask_ratio: float, reward: torch.Tensor | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Per-frame MAE losses ``[N]``: pixel MSE on hidden patches, symlog state MSE and, with a
        reward head and ``reward`` ``[N]`` given, symlog reward MSE."""
        keep = self.random_keep(image.shape[0], mask_ratio, image.device, generator)
        pixels, token = self.reconstruct(image, state, lang, keep)
        state_prediction = self.state_head(token)
        hidden = torch.ones(image.shape[0], self.num_patches, device=image.device)
        hidden.scatter_(1, keep, 0.0)
        error = (pixels - self.patches(image)).square().mean(-1)
        pixel_loss = (error * hidden).sum(1) / hidden.sum(1).clamp(min=1.0)
        state_loss = (state_prediction - symlog(state)).square().mean(-1)
        losses = {"mae_pixels": pixel_loss, "mae_state": state_loss}
        if self.reward_head is not None and reward is not None:
            losses["mae_reward"] = (self.reward_head(token).squeeze(-1) - symlog(reward)).square()
        return losses


class MaskedWorldModelFrontend(nn.Module):
    """The world model's view of a frame through a :class:`MaskedAutoencoder` (MWM).

    Args:
        image_size, state_dim, lang_dim: Observation sizes.
        feat_dim: Size of the RSSM features the decoders read.
        config: The agent config (``mae_*`` fields, ``mlp_units``, ``mlp_layers``).
        views: Camera views stacked along the channels of each frame.
    """

    def __init__(self, image_size: int, state_dim: int, lang_dim: int, feat_dim: int, config, views: int = 1):
        super().__init__()
        self.mae = MaskedAutoencoder(
            image_size, state_dim, lang_dim, patch=config.mae_patch, stem_depth=config.mae_stem_depth,
            width=config.mae_width, layers=config.mae_layers, heads=config.mae_heads,
            decoder_width=config.mae_decoder_width, decoder_layers=config.mae_decoder_layers,
            predict_reward=config.mae_reward_weight > 0, views=views,
        )
        self.reward_weight = config.mae_reward_weight
        self.mask_ratio = config.mae_mask_ratio
        self.token_proj = nn.Linear(config.mae_width, config.mae_token_proj)
        self.embed_dim = self.mae.num_tokens * config.mae_token_proj
        self.feature_decoder = mlp(feat_dim, self.mae.num_tokens * config.mae_width, config.mlp_units, config.mlp_layers)
        self.state_decoder = mlp(feat_dim, state_dim, config.mlp_units, config.mlp_layers)

    def observe(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor) -> dict[str, torch.Tensor]:
        """MAE features of the unmasked frames (no gradient into the MAE) and the state."""
        with torch.no_grad():
            features = self.mae.encode(image, state, lang)
        return {"features": features, "state": state}

    def embed(self, observed: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[N, embed_dim]``: every token projected small, then flattened."""
        return self.token_proj(observed["features"]).flatten(1)

    def decoder_losses(self, feat: torch.Tensor, observed: dict[str, torch.Tensor], pick: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-sample losses: MSE to the MAE features (summed) ``[N]``, or ``[len(pick)]`` for the
        frames ``pick`` indexes alone; symlog state MSE ``[N]``."""
        target, feature_feat = observed["features"].flatten(1), feat
        if pick is not None:
            target, feature_feat = target[pick], feat[pick]
        feature_loss = (self.feature_decoder(feature_feat) - target).square().sum(-1)
        state_loss = (self.state_decoder(feat) - symlog(observed["state"])).square().sum(-1)
        return {"features": feature_loss, "state": state_loss}

    def decode_image(self, feat: torch.Tensor) -> torch.Tensor:
        """The frames ``[N, H, W, C]`` (floats in [0, 1]) that model features predict: the predicted
        MAE features through the MAE's decoder."""
        tokens = self.feature_decoder(feat).view(feat.shape[0], self.mae.num_tokens, -1)
        return (self.mae.decode(tokens) + 0.5).clamp(0, 1).movedim(-3, -1)

    def representation_parameters(self) -> list[nn.Parameter]:
        """The MAE's parameters, trained by its own optimizer."""
        return list(self.mae.parameters())

    def representation_losses(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor, reward: torch.Tensor) -> dict[str, torch.Tensor]:
        """MAE losses on these frames at the configured mask ratio, the reward term weighted."""
        losses = self.mae.losses(image, state, lang, self.mask_ratio, reward)
        if "mae_reward" in losses:
            losses["mae_reward"] = self.reward_weight * losses["mae_reward"]
        return losses
