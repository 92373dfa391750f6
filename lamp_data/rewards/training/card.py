"""The model card of a trained reward model: JSON for programs, Markdown and a PNG for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lamp_data.atomic import atomic_open, atomic_path, atomic_write_json

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
CURVE_PNG = "training_curve.png"
CURVE_SMOOTHING = 25
"""Steps in the running mean drawn over each loss curve."""


def _running_mean(values: list[float], window: int) -> list[float]:
    import numpy as np

    if len(values) < window:
        return list(values)
    kernel = np.ones(window) / window
    return list(np.convolve(values, kernel, mode="valid"))


PLOT_PANELS = (("losses", ("total", "tcn", "language")), ("language accuracy", ("language_accuracy",)))
"""Panels of the training-curve plot and the curves each one draws."""


def plot_curves(curves: dict[str, list[float]], path: Path) -> None:
    """Losses and language accuracy per step (faint) with running means, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PLOT_PANELS), figsize=(9, 3))
    for axis, (title, keys) in zip(axes, PLOT_PANELS):
        for colour, key in enumerate(keys):
            values = curves.get(key) or []
            if not values:
                continue
            axis.plot(range(1, len(values) + 1), values, color=f"C{colour}", alpha=0.25, linewidth=0.6)
            smooth = _running_mean(values, CURVE_SMOOTHING)
            axis.plot(range(len(values) - len(smooth) + 1, len(values) + 1), smooth, color=f"C{colour}", linewidth=1.2, label=key)
        axis.set_title(title)
        axis.set_xlabel("step")
        if axis.get_legend_handles_labels()[1]:
            axis.legend(fontsize="small")
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.25)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80)
    plt.close(figure)


def _markdown(card: dict[str, Any]) -> str:
    curves = card["curves"]
    last = {key: values[-1] for key, values in curves.items() if values}
    architecture = card["architecture"]
    data = card["data"]
    lines = [
        "# In-domain R3M-style reward model",
        "",
        f"- Load with: `{card['spec']}`",
        f"- Architecture: {architecture['trunk']} trunk at {architecture['image_size']} px, "
        f"text encoder {architecture['text_encoder']} ({architecture['lang_dim']}-d, frozen), "
        f"head {architecture['head_layers']}×{architecture['head_hidden']}; {card['parameters']:,} trained parameters",
        f"- Trained {card['steps']} steps, seed {card['seed']}, batch {card['train_config']['batch_size']}, "
        f"learning rate {card['train_config']['learning_rate']}",
        f"- Data fingerprint `{data['fingerprint']}`: {data['episodes']} episodes "
        f"({data['successful_episodes']} successful) from {len(data['datasets'])} dataset(s)",
        f"- Tasks ({len(card['tasks'])}): {', '.join(card['tasks'])}",
        f"- Objectives: {card['objectives']}",
        "- Final step: " + ", ".join(f"{key} {value:.4g}" for key, value in last.items()),
        f"- Versions: {', '.join(f'{name} {version}' for name, version in card['provenance']['versions'].items())}",
        "",
        f"![training curves]({CURVE_PNG})",
        "",
    ]
    for title, quality in card.get("quality", {}).items():
        lines += [f"## Reward quality: {title}", "", "```bash", quality["command"], "```", "", quality["table"], ""]
    return "\n".join(lines)


def write_model_card(folder: str | Path, card: dict[str, Any]) -> None:
    """Write ``model_card.json``, ``model_card.md`` and ``training_curve.png`` into ``folder``.

    A card may carry ``quality``: ``{title: {"command": ..., "table": markdown}}``, reward-quality
    tables measured after training (``bench/reward_quality_set.py``), shown under the curves.
    """
    folder = Path(folder)
    plot_curves(card["curves"], folder / CURVE_PNG)
    atomic_write_json(folder / CARD_JSON, card)
    with atomic_open(folder / CARD_MARKDOWN) as handle:
        handle.write(_markdown(card))
