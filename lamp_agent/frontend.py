"""The CNN visual front-end and the interface both front-ends share.

A front-end turns an observation (image, proprio state, prompt embedding) into the embedding
the RSSM filters, and scores how well model features explain the observation. The state and
the language embedding enter as one "state/language token" next to the image embedding, as in
LAMP. :class:`~lamp_agent.mwm.MaskedWorldModelFrontend` is the other implementation.

Several camera views (LAMP's front and wrist cameras) reach a front-end stacked along the
channel axis, ``[N, H, W, 3 * views]`` (:meth:`lamp_agent.Agent.stack_views`), and are
reconstructed the same way. Stacking, as DreamerV3 does with image inputs of one size, rather
than a shared encoder applied to each view with the features concatenated: only the first
encoder layer and the last decoder layer grow, so a second view costs a few percent of an
update instead of doubling the conv (or, for the MAE, attention over twice the tokens) work,
and the embedding the RSSM reads keeps its size whatever the number of views. The price is
that the first layer mixes pixels of unaligned views at the same position; it learns to keep
them apart, and per-view encoders remain the choice should a view need its own resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from lamp_agent.networks import ConvDecoder, ConvEncoder, image_to_input, mlp, symlog


class CnnFrontend(nn.Module):
    """Conv encoder/decoder on frames plus an MLP state/language token (DreamerV3 style).

    Args:
        image_size: Square frame side in pixels.
        views: Camera views stacked along the channels of each frame.
        state_dim: Size of the proprio state.
        lang_dim: Size of the prompt embedding.
        feat_dim: Size of the RSSM features the decoders read.
        depth: Channels of the first conv layer.
        min_resolution: Conv feature map side before flattening.
        token_units: Size of the state/language token.
        units: Width of the state decoder MLP.
        layers: Hidden layers of the token and state MLPs.
    """

    def __init__(self, image_size: int, state_dim: int, lang_dim: int, feat_dim: int, *, depth: int, min_resolution: int, token_units: int, units: int, layers: int, views: int = 1):
        super().__init__()
        self.image_encoder = ConvEncoder(image_size, depth, min_resolution, in_channels=3 * views)
        self.token = mlp(state_dim + lang_dim, token_units, token_units, 1)
        self.image_decoder = ConvDecoder(feat_dim, image_size, depth, min_resolution, out_channels=3 * views)
        self.state_decoder = mlp(feat_dim, state_dim, units, layers)
        self.embed_dim = self.image_encoder.out_dim + token_units

    def observe(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat ``[N, ...]`` observation → what :meth:`embed` and :meth:`decoder_losses` read."""
        return {"image": image, "state": state, "lang": lang}

    def embed(self, observed: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[N, embed_dim]``: image embedding next to the state/language token."""
        token = self.token(torch.cat([symlog(observed["state"]), observed["lang"]], -1))
        return torch.cat([self.image_encoder(observed["image"]), token], -1)

    def decoder_losses(self, feat: torch.Tensor, observed: dict[str, torch.Tensor], pick: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-sample reconstruction losses: image MSE (summed over pixels) ``[N]``, or ``[len(pick)]``
        for the frames ``pick`` indexes alone; symlog state MSE ``[N]``."""
        image, image_feat = observed["image"], feat
        if pick is not None:
            image, image_feat = image[pick], feat[pick]
        image_loss = (self.image_decoder(image_feat) - image_to_input(image)).square().sum((1, 2, 3))
        state_loss = (self.state_decoder(feat) - symlog(observed["state"])).square().sum(-1)
        return {"image": image_loss, "state": state_loss}

    def decode_image(self, feat: torch.Tensor) -> torch.Tensor:
        """The frames ``[N, H, W, 3 * views]`` (floats in [0, 1]) that model features ``[N, feat_dim]`` predict."""
        return (self.image_decoder(feat) + 0.5).clamp(0, 1).movedim(-3, -1)

    def representation_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by a separate objective (none: the CNN learns with the world model)."""
        return []

    def representation_losses(self, image: torch.Tensor, state: torch.Tensor, lang: torch.Tensor, reward: torch.Tensor) -> dict[str, torch.Tensor]:
        """The separate objective's losses (none for the CNN)."""
        return {}
