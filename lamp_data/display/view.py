"""Looking at data: one stored episode's frames over its reward curves, as a PNG or a GIF.

:func:`view_episode` draws the task reward and, given a reward set, the VLM reward of the chosen
prompts under the episode's frames: a contact sheet of evenly spaced frames (``.png``) or an
animation with a cursor moving along the curves (``.gif``). Every input is checked before
anything is drawn, and the file appears only whole (atomic rename).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_path
from lamp_data.errors import LampError
from lamp_data.store import EpisodeIndex, index_episodes, layout

FRAMES_ON_SHEET = 8
"""Frames shown on a contact sheet (evenly spaced, first and last included)."""
GIF_FPS = 15
"""Episode frames per second of the animation."""
MAX_GIF_FRAMES = 200
"""Longer episodes are subsampled to at most this many animation frames."""
MAX_FRAMES_ON_SHEET = 64
"""Most frames a contact sheet shows (each one widens the figure)."""
MAX_FPS = 100
"""Fastest animation: GIF frame delays are counted in hundredths of a second."""
FORMATS = (".png", ".gif")
_LEGEND_CHARACTERS = 48


@dataclass(frozen=True)
class EpisodeView:
    """What :func:`view_episode` drew."""

    path: Path
    """The file written."""
    key: str
    """The episode's sample key, e.g. ``ep00000012``."""
    task: str | None
    """The episode's task."""
    instruction: str | None
    """The task's instruction."""
    steps: int
    """Actions in the episode (it has one frame more)."""
    success: bool
    """True if the task succeeded at some step."""
    prompts: list[str] = field(default_factory=list)
    """Prompts whose VLM reward is drawn."""
    reward_set: str | None = None
    """Fingerprint of the reward set they come from."""


def view_episode(
    dataset: str | Path,
    out: str | Path | None = None,
    *,
    episode: int | None = None,
    reward_set: str | None = None,
    prompts: Sequence[str] = (),
    frames: int = FRAMES_ON_SHEET,
    fps: int = GIF_FPS,
) -> EpisodeView:
    """Draw one episode's frames over its task reward (and VLM rewards) into ``out``.

    Args:
        dataset: A dataset folder.
        out: A ``.png`` (contact sheet) or ``.gif`` (animation) file to write; default:
            ``episode-<K>.png`` in the current folder, K the episode's number.
        episode: The episode number (``ep00000012`` is 12); default: the first stored episode.
        reward_set: A reward-set fingerprint (``lamp-data info`` lists them) to draw VLM rewards from.
        prompts: Prompts of that reward set to draw; default: the episode's instruction.
        frames: Frames on a contact sheet.
        fps: Episode frames per second of the animation (a long episode's animation skips
            frames but keeps this speed).

    Returns:
        What was drawn.

    Raises:
        LampError: an unknown output format, no such episode, reward set or prompt, prompts
            without a reward set, or a damaged shard; nothing is written then.
    """
    out = Path(out) if out is not None else None
    if out is not None and out.suffix.lower() not in FORMATS:
        raise LampError(f"output must end in {' or '.join(FORMATS)}, got '{out.name}'")
    if not 1 <= frames <= MAX_FRAMES_ON_SHEET:
        raise LampError(f"frames must be between 1 and {MAX_FRAMES_ON_SHEET}, got {frames}")
    if not 1 <= fps <= MAX_FPS:
        raise LampError(f"fps must be between 1 and {MAX_FPS} (GIF frame delays are hundredths of a second), got {fps}")
    if prompts and reward_set is None:
        raise LampError("prompts select columns of a reward set: give the reward set's fingerprint too")
    episodes = index_episodes(dataset, reward_set=reward_set)
    if episode is None:
        if not len(episodes):
            raise LampError(f"{episodes.dataset.path} holds no episodes yet")
        position = 0
    else:
        position = episodes.find(layout.episode_key(episode))
    sample = episodes[position]
    if out is None:
        out = Path(f"episode-{layout.episode_index(sample['__key__'])}.png")
    columns = _prompt_columns(episodes, sample, prompts)
    meta = sample["meta"]
    curves = {prompt: sample[schema.VLM_REWARD][:, column].astype(np.float32) for prompt, column in columns.items()}
    title = _title(sample, meta)
    with atomic_path(out) as temporary:
        if out.suffix.lower() == ".png":
            _contact_sheet(temporary, sample, curves, title, frames)
        else:
            _animation(temporary, sample, curves, title, fps)
    return EpisodeView(
        path=out,
        key=sample["__key__"],
        task=meta.get("task"),
        instruction=meta.get("instruction"),
        steps=len(sample[schema.ACTION]),
        success=bool(sample[schema.SUCCESS].any()),
        prompts=list(columns),
        reward_set=reward_set,
    )


def _prompt_columns(episodes: EpisodeIndex, sample: dict[str, Any], prompts: Sequence[str]) -> dict[str, int]:
    """Prompt -> reward column, checked against the prompts of the index's reward set."""
    reward_set = episodes.reward_set
    if reward_set is None:
        return {}
    available = episodes.dataset.reward_set_prompts(reward_set)
    column_of = {prompt: column for column, prompt in enumerate(available)}
    if not prompts:
        instruction = sample["meta"].get("instruction")
        if instruction not in column_of:
            raise LampError(
                f"the episode's instruction '{instruction}' is not a prompt of reward set {reward_set}; "
                f"choose prompts, e.g. '{available[0]}'"
            )
        prompts = [instruction]
    unknown = [prompt for prompt in prompts if prompt not in column_of]
    if unknown:
        raise LampError(f"reward set {reward_set} has no prompt {', '.join(repr(p) for p in unknown)} ({len(available)} prompts)")
    return {prompt: column_of[prompt] for prompt in dict.fromkeys(prompts)}


def _title(sample: dict[str, Any], meta: dict[str, Any]) -> str:
    outcome = "success" if sample[schema.SUCCESS].any() else "no success"
    return (
        f"{sample['__key__']}  {meta.get('task')}: \u201c{meta.get('instruction')}\u201d  "
        f"{len(sample[schema.ACTION])} steps, {outcome}"
    )


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_curves(axes: list, sample: dict[str, Any], curves: dict[str, np.ndarray]) -> None:
    """Task reward (and success) on the first axes, VLM rewards on the second, over frame index."""
    steps = len(sample[schema.ACTION])
    task_axes = axes[0]
    task_axes.plot(np.arange(1, steps + 1), sample[schema.REWARD], color="black", linewidth=1.2, label="task reward")
    for number, (start, stop) in enumerate(_runs(sample[schema.SUCCESS])):
        task_axes.axvspan(start - 0.5, stop - 0.5, color="tab:green", alpha=0.2, label=None if number else "success")
    task_axes.set_ylabel("task reward")
    task_axes.legend(loc="upper left", fontsize="small")
    if curves:
        vlm_axes = axes[1]
        for prompt, values in curves.items():
            label = prompt if len(prompt) <= _LEGEND_CHARACTERS else prompt[: _LEGEND_CHARACTERS - 1] + "\u2026"
            vlm_axes.plot(np.arange(steps + 1), values, linewidth=1.2, label=label)
        vlm_axes.set_ylabel("VLM reward")
        vlm_axes.legend(loc="upper left", fontsize="small")
    for curve_axes in axes:
        curve_axes.set_xlim(0, steps)
        curve_axes.grid(alpha=0.3)
    axes[-1].set_xlabel("frame (step)")


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True in ``flags``."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _contact_sheet(path: Path, sample: dict[str, Any], curves: dict[str, np.ndarray], title: str, frames: int) -> None:
    images = sample[schema.IMAGE]
    shown = np.unique(np.linspace(0, len(images) - 1, min(frames, len(images))).round().astype(int))
    curve_rows = 2 if curves else 1
    figure = _figure(max(8.0, 1.3 * len(shown)), 1.6 + 2.0 * curve_rows)
    grid = figure.add_gridspec(1 + curve_rows, len(shown), height_ratios=[1.3] + [1.6] * curve_rows)
    for column, index in enumerate(shown):
        frame_axes = figure.add_subplot(grid[0, column])
        frame_axes.imshow(images[index], interpolation="nearest")
        frame_axes.set_title(f"t={index}", fontsize="small")
        frame_axes.set_axis_off()
    axes = [figure.add_subplot(grid[1 + row, :]) for row in range(curve_rows)]
    _plot_curves(axes, sample, curves)
    for curve_axes in axes:
        for index in shown:
            curve_axes.axvline(index, color="grey", linestyle=":", linewidth=0.8)
    figure.suptitle(title, fontsize="medium")
    figure.savefig(path, format="png")


def _animation(path: Path, sample: dict[str, Any], curves: dict[str, np.ndarray], title: str, fps: int) -> None:
    from PIL import Image

    images = sample[schema.IMAGE]
    curve_rows = 2 if curves else 1
    figure = _figure(6.0, 4.0 + 1.6 * curve_rows)
    grid = figure.add_gridspec(1 + curve_rows, 1, height_ratios=[4.0] + [1.6] * curve_rows)
    frame_axes = figure.add_subplot(grid[0])
    frame_axes.set_axis_off()
    shown = frame_axes.imshow(images[0], interpolation="nearest")
    label = frame_axes.set_title("t=0", fontsize="small")
    axes = [figure.add_subplot(grid[1 + row]) for row in range(curve_rows)]
    _plot_curves(axes, sample, curves)
    cursors = [curve_axes.axvline(0, color="tab:red", linewidth=1.0) for curve_axes in axes]
    figure.suptitle(title, fontsize="small")
    figure.canvas.draw()
    figure.set_layout_engine("none")  # keep the first frame's layout: nothing jumps between frames
    moving = [(frame_axes, shown), (frame_axes, label), *zip(axes, cursors)]
    for _, artist in moving:
        artist.set_animated(True)
    figure.canvas.draw()
    background = figure.canvas.copy_from_bbox(figure.bbox)  # everything that stays; only the moving parts are redrawn
    stride = -(-len(images) // MAX_GIF_FRAMES)
    pictures = []
    for index in range(0, len(images), stride):
        shown.set_data(images[index])
        label.set_text(f"t={index}")
        for cursor in cursors:
            cursor.set_xdata([index, index])
        figure.canvas.restore_region(background)
        for artist_axes, artist in moving:
            artist_axes.draw_artist(artist)
        pictures.append(np.array(figure.canvas.buffer_rgba())[..., :3])
    # One palette for all frames, from a few of them: far faster than a palette per frame, and no flicker.
    samples = pictures[:: max(1, len(pictures) // 8)]
    palette = Image.fromarray(np.concatenate(samples, axis=0)).quantize(method=Image.Quantize.FASTOCTREE)
    frames = [Image.fromarray(picture).quantize(palette=palette, dither=Image.Dither.NONE) for picture in pictures]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:],
                   duration=round(1000 * stride / fps), loop=0)
