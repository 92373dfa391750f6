"""R3M's language-reward model, as LAMP uses it, configurable for in-domain models.

The model has three parts, named as in R3M's own checkpoints (``{"r3m": state_dict}`` saved from
a ``DataParallel`` wrapper, so every key starts with ``module.``):

* ``convnet``: the image trunk (torchvision-layout ResNet-18/34/50, or a small conv net for
  in-domain models), fed uint8 frames scaled to 0–1 and ImageNet-normalised;
* ``lang_enc.model``: the frozen text encoder (DistilBERT in R3M; its last hidden state is
  mean-pooled over every token, 768-d; see :mod:`lamp_data.rewards.text`);
* ``lang_rew.pred``: the reward MLP ``G(e_0, e_t, l)`` on the concatenation ``[e_0, e_t, l]``
  (for ResNet-50: 4864 → 1024 → 1024 → 1024 → 1024 → 1), LAMP's reward for frame ``t``.

Two choices are fixed here and recorded in every fingerprint:

* **Text embedding.** R3M tokenizes a batch with padding and averages the last hidden state
  over all positions, padding included, so an embedding depends on its batch. Here each
  prompt is tokenized and encoded on its own (no padding), which equals R3M's result for a
  batch of one.
* **Frame size.** ``image_size = 0`` feeds frames at the size they come in, as R3M and LAMP do:
  R3M's ``forward`` only scales to 0–1 and normalises unless told another input shape, and LAMP
  hands it its 128 × 128 renders. R3M's own checkpoints carry no config and load this way. Any
  other ``image_size`` resizes frames (bilinear, antialiased, the whole frame, no crop) to that
  side when they differ; our in-domain checkpoints store the size they were trained at.

The first linear layer splits into three matmuls, ``W [e_0, e_t, l] + b = W_0 e_0 + W_t e_t +
(W_l l + b)``, so the prompt term is computed once per prompt and the frame terms once per
frame; only the later layers run per (frame, prompt) pair.

The modules: :mod:`~lamp_data.rewards.vlm.r3m.networks` (config, reward heads, the model),
:mod:`~lamp_data.rewards.vlm.r3m.checkpoint` (R3M's file layout plus our config, read and written) and
:mod:`~lamp_data.rewards.vlm.r3m.scorer` (the model behind the reward-model protocol, and the ``r3m:``
spec strings).
"""
