"""Train an R3M-style language-reward model on in-domain episodes (successes and failures), resumably.

``train_reward_model(["data/experts"], "models/rm", RewardModelTrainConfig(steps=3000))`` reads
every episode into memory, trains the image trunk and the reward head ``G(e_0, e_t, l)`` of
:class:`lamp_data.rewards.vlm.r3m.networks.R3M` with R3M's objectives, and writes a folder::

    model.pt              the checkpoint; ``load_reward_model("r3m:<folder>/model.pt")`` reads it
    model_card.json       data fingerprint, tasks, config, loss per step, seed, versions
    model_card.md         the same, short, for people
    training_curve.png    the losses per step
    train_state/          optimizer state and step, for ``resume=True``

The text side is a frozen pretrained sentence encoder (MiniLM by default), so the model is
trained with each task's instruction and its paraphrases and reads unseen wordings through the
encoder. Its embeddings of the training texts are computed once; the checkpoint holds only the
trunk and the head, and the loader rebuilds the encoder from the config.

Objectives (R3M, Nair et al. 2022), on the first frame and frames ``s0 < s1 < s2`` of one episode:

* time-contrastive InfoNCE with negative L2 distance as similarity: ``s1`` is closer to ``s0``
  than ``s2`` is and than the ``s1`` frames of the other episodes in the batch, and likewise
  closer to ``s2`` than ``s0`` is;
* language alignment, a two-way softmax per pair: in a successful episode,
  ``G(e_0, e_s2, l)`` beats ``G(e_0, e_s1, l)`` and ``G(e_0, e_s0, l)`` (later frames score
  higher), beats ``G(e_0, e_s2, l')`` for another task's text ``l'``, and beats another episode's
  ``G(e'_0, e'_s2, l)`` when that episode is of another task or failed;
* L1 and L2 penalties on the frame embeddings.

The head's form is ``RewardModelTrainConfig.head`` (see ``lamp_data.rewards.vlm.r3m.networks.HEADS``). With
``mlp-gain`` the reward is the MLP's value at ``e_t`` less its value at ``e_0``, so no prompt is
favoured before anything happened; with the failure contrast it detected success on held-out
Meta-World tasks better than the plain head (lamp_data/models/lamp-r3m-metaworld/README.md).

Each step's batch comes from ``(seed, step)`` alone and the optimizer state is saved with the
weights, so training ``k`` steps, then resuming to ``2k``, gives the same parameters as
training ``2k`` steps straight.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lamp_data.atomic import atomic_path, atomic_write_json
from lamp_data.errors import LampError
from lamp_data.progress import progress_bar
from lamp_data.provenance import file_sha256, provenance
from lamp_data.rewards.text import build_text_encoder
from lamp_data.rewards.training.card import write_model_card
from lamp_data.rewards.training.config import RewardModelTrainConfig
from lamp_data.rewards.training.data import Batch, TrainingEpisodes, load_training_episodes, sample_batch
from lamp_data.rewards.vlm.r3m.checkpoint import read_r3m_checkpoint, save_r3m_checkpoint
from lamp_data.rewards.vlm.r3m.networks import R3M, build_r3m
from lamp_data.schema import CHECKPOINT_FORMAT_VERSION

MODEL_FILE = "model.pt"
STATE_DIR = "train_state"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
LOSS_KEYS = ("total", "tcn", "language", "l1", "l2", "language_accuracy")
"""Per-step training records, in the order the card lists them."""


class TextEmbeddingTable(nn.Module):
    """Fixed embeddings of known texts, standing in for the frozen text encoder in training.

    It holds no parameters, so a checkpoint of a model built with it holds only the trunk and
    the head; the loader rebuilds the real encoder, which gives these same embeddings.

    Args:
        texts: The known texts.
        embeddings: float ``[len(texts), D]`` their embeddings by the real encoder.
        identity: The real encoder's ``identity()``.
    """

    def __init__(self, texts: Sequence[str], embeddings: torch.Tensor, identity: dict[str, Any]):
        super().__init__()
        self.index = {text: row for row, text in enumerate(texts)}
        self.register_buffer("table", embeddings.detach().float().clone(), persistent=False)
        self.dim = int(embeddings.shape[1])
        self._identity = identity

    def identity(self) -> dict[str, Any]:
        """The real encoder's identity."""
        return self._identity

    def forward(self, texts: list[str]) -> torch.Tensor:
        missing = [text for text in texts if text not in self.index]
        if missing:
            raise LampError(f"text '{missing[0]}' was not embedded for training")
        return self.table[[self.index[text] for text in texts]]


def _pairwise_distance(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """L2 distances ``[N, M]``, smooth at zero."""
    squared = (first[:, None, :] - second[None, :, :]).pow(2).sum(-1)
    return (squared + 1e-8).sqrt()


def _row_distance(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return ((first - second).pow(2).sum(-1) + 1e-8).sqrt()


def r3m_losses(
    model: R3M, batch: Batch, text_embeddings: torch.Tensor, config: RewardModelTrainConfig, task_texts: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """R3M's losses on one batch (see the module docstring); ``total`` is their weighted sum.

    Args:
        model: The model being trained.
        batch: From :func:`~lamp_data.rewards.training.data.sample_batch`.
        text_embeddings: float ``[texts, D]``, rows indexed by the batch's text indices.
        config: Loss weights.
        task_texts: bool ``[tasks, texts]``, which texts belong to each task; needed for
            ``text_negatives="all"``.
    """
    frames = torch.from_numpy(np.ascontiguousarray(batch.frames))
    size, views = frames.shape[:2]
    embeddings = model.encode_frames(frames.reshape(size * views, *frames.shape[2:])).reshape(size, views, -1)
    first, early, middle, late = embeddings.unbind(1)
    labels = torch.arange(size)

    from_early = torch.cat([-_pairwise_distance(early, middle), -_row_distance(early, late)[:, None]], dim=1)
    from_late = torch.cat([-_pairwise_distance(late, middle), -_row_distance(late, early)[:, None]], dim=1)
    tcn = nn.functional.cross_entropy(from_early, labels) + nn.functional.cross_entropy(from_late, labels)

    own_text = text_embeddings[torch.from_numpy(batch.own_text)]
    other_text = text_embeddings[torch.from_numpy(batch.other_text)]
    reward_late = model.reward(first, late, own_text)
    negatives = [model.reward(first, middle, own_text), model.reward(first, early, own_text), model.reward(first, late, other_text)]
    successful = torch.from_numpy(batch.successful)
    masks = [successful, successful, successful & torch.from_numpy(batch.has_other)]
    shifted = torch.roll(labels, 1)
    task_ids = torch.from_numpy(batch.task_ids)
    negatives.append(model.reward(first[shifted], late[shifted], own_text))
    masks.append(successful & ((task_ids[shifted] != task_ids) | ~successful[shifted]))
    if batch.contrast_frames is not None:
        contrast = torch.from_numpy(np.ascontiguousarray(batch.contrast_frames))
        contrast_first, contrast_frame = model.encode_frames(contrast.reshape(size * 2, *contrast.shape[2:])).reshape(size, 2, -1).unbind(1)
        negatives.append(model.reward(contrast_first, contrast_frame, own_text))
        masks.append(successful & torch.from_numpy(batch.has_contrast))
    if config.text_negatives == "all":
        del negatives[2], masks[2]
    pair_losses = torch.stack([nn.functional.softplus(negative - reward_late) for negative in negatives])
    pair_masks = torch.stack(masks).float()
    language = (pair_losses * pair_masks).sum() / pair_masks.sum().clamp(min=1.0)
    if config.text_negatives == "all":
        if task_texts is None:
            raise ValueError("text_negatives='all' needs task_texts")
        count = len(text_embeddings)
        every_text = model.reward(first[:, None].expand(-1, count, -1), late[:, None].expand(-1, count, -1),
                                  text_embeddings[None].expand(size, -1, -1))
        others = ~task_texts[task_ids]
        logits = torch.cat([reward_late[:, None], every_text.masked_fill(~others, float("-inf"))], dim=1)
        text_loss = nn.functional.cross_entropy(logits, torch.zeros(size, dtype=torch.long), reduction="none")
        chosen = (successful & others.any(1)).float()
        language = language + (text_loss * chosen).sum() / chosen.sum().clamp(min=1.0)
    accuracy = ((reward_late > negatives[0]).float() * successful.float()).sum() / successful.float().sum().clamp(min=1.0)

    flat = embeddings.reshape(size * views, -1)
    l1 = flat.abs().sum(-1).mean()
    l2 = flat.pow(2).sum(-1).sqrt().mean()
    total = config.tcn_weight * tcn + config.language_weight * language + config.l1_weight * l1 + config.l2_weight * l2
    return {"total": total, "tcn": tcn, "language": language, "l1": l1, "l2": l2, "language_accuracy": accuracy.detach()}


def _trainable(model: R3M) -> list[tuple[str, nn.Parameter]]:
    return [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]


def _save_optimizer(optimizer: torch.optim.Optimizer, names: list[str], path: Path) -> None:
    """Adam's per-parameter tensors by parameter name, as safetensors (no pickle)."""
    from safetensors.torch import save_file

    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"{names[index]}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous().reshape(-1)
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary))


def _load_optimizer(optimizer: torch.optim.Optimizer, names: list[str], path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    state_dict = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for index, name in enumerate(names):
        entries = {key.split("/", 1)[1]: value for key, value in tensors.items() if key.split("/", 1)[0] == name}
        if not entries:
            continue
        parameter_shape = optimizer.param_groups[0]["params"][index].shape
        state[index] = {key: value.reshape(()) if key == "step" else value.reshape(parameter_shape) for key, value in entries.items()}
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)


@dataclass
class TrainingRun:
    """What a training run carries between steps and into its checkpoint."""

    out: Path
    config: RewardModelTrainConfig
    episodes: TrainingEpisodes
    model: R3M
    optimizer: torch.optim.Optimizer
    names: list[str]
    history: list[dict[str, float]]
    text_identity: dict[str, Any]

    @functools.cached_property
    def task_text_mask(self) -> torch.Tensor:
        """bool ``[tasks, texts]``: the texts of each task."""
        mask = torch.zeros(len(self.episodes.tasks), len(self.episodes.texts), dtype=torch.bool)
        for task, indices in enumerate(self.episodes.task_texts):
            mask[task, indices] = True
        return mask

    @property
    def step(self) -> int:
        return len(self.history)

    def extra(self) -> dict[str, Any]:
        """Training facts stored inside the checkpoint."""
        return {
            "trained_steps": self.step,
            "seed": self.config.seed,
            "data_fingerprint": self.episodes.fingerprint,
            "tasks": self.episodes.tasks,
            "train_config": asdict(self.config),
        }

    def save(self) -> None:
        """Write the checkpoint, then the optimizer, then the state file that commits both."""
        model_path = save_r3m_checkpoint(self.model, self.out / MODEL_FILE, extra=self.extra())
        optimizer_path = self.out / STATE_DIR / OPTIMIZER_FILE
        _save_optimizer(self.optimizer, self.names, optimizer_path)
        atomic_write_json(
            self.out / STATE_DIR / STATE_FILE,
            {
                "format_version": CHECKPOINT_FORMAT_VERSION,
                "step": self.step,
                "training": self.config.training_identity(),
                "data_fingerprint": self.episodes.fingerprint,
                "model_sha256": file_sha256(model_path),
                "optimizer_sha256": file_sha256(optimizer_path),
                "history": self.history,
            },
        )


def _check_out(out: Path, resume: bool) -> dict[str, Any] | None:
    """The saved state to resume from, or None for a fresh run; LampError if ``out`` is unusable."""
    if out.exists() and not out.is_dir():
        raise LampError(f"output path {out} is a file, not a folder")
    state_path = out / STATE_DIR / STATE_FILE
    if not resume:
        if (out / MODEL_FILE).exists() or state_path.exists():
            raise LampError(f"{out} already holds a reward model; pass --resume to continue it or choose another --out")
        return None
    if not state_path.is_file():
        raise LampError(f"nothing to resume in {out} (no {STATE_DIR}/{STATE_FILE})")
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError) as error:
        raise LampError(f"cannot read {state_path}: {error}") from error
    if state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise LampError(f"{state_path} has format_version {state.get('format_version')!r}; this version reads {CHECKPOINT_FORMAT_VERSION}")
    for key, file in (("model_sha256", out / MODEL_FILE), ("optimizer_sha256", out / STATE_DIR / OPTIMIZER_FILE)):
        if not file.is_file() or file_sha256(file) != state.get(key):
            raise LampError(f"{file} does not match {state_path} (interrupted or edited); cannot resume")
    return state


def build_training_run(out: Path, config: RewardModelTrainConfig, episodes: TrainingEpisodes, state: dict[str, Any] | None = None) -> TrainingRun:
    """A reward-model training run in ``out``: model, optimizer and history, continued from ``state``
    (what :func:`_check_out` read) when given.

    Raises:
        LampError: ``state`` was saved with other settings or data, or for more steps than ``config.steps``.
    """
    text_encoder = build_text_encoder(config.text_encoder)
    with torch.no_grad():
        text_embeddings = text_encoder(episodes.texts).float()
    table = TextEmbeddingTable(episodes.texts, text_embeddings, text_encoder.identity())
    model = build_r3m(config.r3m_config(table.dim), text_encoder=table, seed=config.seed).train()
    named = _trainable(model)
    names = [name for name, _ in named]
    optimizer = torch.optim.Adam([parameter for _, parameter in named], lr=config.learning_rate)
    history: list[dict[str, float]] = []
    if state is not None:
        if state["training"] != config.training_identity():
            wanted = config.training_identity()
            changed = sorted(key for key in {*wanted, *state["training"]} if state["training"].get(key) != wanted.get(key))
            raise LampError(f"cannot resume {out}: settings differ from the saved run ({', '.join(changed)})")
        if state["data_fingerprint"] != episodes.fingerprint:
            raise LampError(f"cannot resume {out}: the training data differ from the saved run's")
        if state["step"] > config.steps:
            raise LampError(f"{out} is already trained for {state['step']} steps, more than --steps {config.steps}")
        _, weights, _ = read_r3m_checkpoint(out / MODEL_FILE)
        model.load_state_dict(weights, strict=False)
        _load_optimizer(optimizer, names, out / STATE_DIR / OPTIMIZER_FILE)
        history = list(state["history"])
    return TrainingRun(out, config, episodes, model, optimizer, names, history, text_encoder.identity())


def train_step(run: TrainingRun, text_embeddings: torch.Tensor) -> dict[str, float]:
    """One optimizer step of ``run`` on a batch sampled for its current step; the step's losses."""
    batch = sample_batch(run.episodes, run.config.batch_size, run.config.seed, run.step, run.config.max_shift, run.config.failure_contrast)
    losses = r3m_losses(run.model, batch, text_embeddings, run.config, run.task_text_mask)
    run.optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    run.optimizer.step()
    record = {key: float(losses[key].detach()) for key in LOSS_KEYS}
    run.history.append(record)
    return record


def train_reward_model(
    data_dirs: Sequence[str | Path],
    out: str | Path,
    config: RewardModelTrainConfig | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train an R3M-style reward model on episodes of pretraining tasks (successes as positives).

    Args:
        data_dirs: Datasets from ``lamp-data collect --policy expert|noisy-expert|random`` (pretraining tasks).
        out: Output folder (see the module docstring for what it holds).
        config: Training settings; defaults to ``RewardModelTrainConfig()``.
        resume: Continue the run saved in ``out`` up to ``config.steps``.
        progress: Show a progress bar.

    Returns:
        Path of the checkpoint, for ``load_reward_model(f"r3m:{path}")``.

    Raises:
        LampError: bad data (held-out tasks, other policies, none at all), an ``out`` that
            already holds a model without ``resume``, or a resume whose settings or data differ.
    """
    config = config or RewardModelTrainConfig()
    out = Path(out)
    state = _check_out(out, resume)
    episodes = load_training_episodes(data_dirs)
    if not episodes.successful.any():
        raise LampError("no episode of the training data succeeds; the language objective needs expert successes")
    if config.failure_contrast and not any(len(failed) for failed in episodes.failed_by_task):
        raise LampError("failure contrast needs failed episodes of the training tasks (add random or noisy-expert episodes)")
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        run = build_training_run(out, config, episodes, state)
        text_embeddings = run.model.lang_enc.table
        with progress_bar("training", total=config.steps, unit="steps", completed=run.step, enabled=progress) as bar:
            while run.step < config.steps:
                record = train_step(run, text_embeddings)
                if run.step % config.checkpoint_every == 0 or run.step == config.steps:
                    run.save()
                bar.advance(status=_loss_status(record))
            if state is None and config.steps == 0:
                run.save()
    finally:
        torch.set_num_threads(threads)
    write_model_card(run.out, _card(run))
    return out / MODEL_FILE


def _card(run: TrainingRun) -> dict[str, Any]:
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "spec": f"r3m:{run.out / MODEL_FILE}",
        "architecture": run.model.config.to_dict(),
        "text_encoder": run.text_identity,
        "parameters": sum(parameter.numel() for _, parameter in _trainable(run.model)),
        "train_config": asdict(run.config),
        "seed": run.config.seed,
        "steps": run.step,
        "data": {
            "fingerprint": run.episodes.fingerprint,
            "datasets": run.episodes.datasets,
            "episodes": len(run.episodes),
            "successful_episodes": int(run.episodes.successful.sum()),
        },
        "tasks": run.episodes.tasks,
        "texts": run.episodes.texts,
        "objectives": "R3M: time-contrastive InfoNCE, language alignment (later frames, other texts, other episodes"
        + (", failed episodes of the same task" if run.config.failure_contrast else "") + "), L1+L2 embedding penalties",
        "curves": {key: [record[key] for record in run.history] for key in LOSS_KEYS},
        "provenance": provenance(),
    }


def _loss_status(record: dict[str, float]) -> str:
    """The latest losses, as the progress bar shows them."""
    return f"loss {record['total']:.3f} tcn {record['tcn']:.3f} lang {record['language']:.3f} acc {record['language_accuracy']:.2f}"
