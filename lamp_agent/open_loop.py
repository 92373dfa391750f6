"""Dreamer's first check of a world model, as one image: true frames, open-loop predictions, error.

:meth:`lamp_agent.Agent.open_loop` filters the first frames of some sequences and predicts the
rest from the recorded actions alone; :func:`open_loop_image` lays the result out for
TensorBoard and for the ``open_loop.png`` a finetuning run leaves in its folder.
"""

from __future__ import annotations

import numpy as np

OPEN_LOOP_CONTEXT = 5
"""Frames the world model observes before it predicts the rest of a sequence open loop."""


def open_loop_image(video: dict[str, np.ndarray], frames: int = 8) -> np.ndarray:
    """One uint8 ``[3 * B * H, frames * W, 3]`` image: for each sequence, a row of true frames,
    a row of the model's frames and a row of their difference, ``frames`` time steps across.

    Args:
        video: ``truth``, ``model`` and ``error`` arrays ``[B, L, H, W, 3]`` (what ``open_loop`` returns).
        frames: Time steps shown, spread evenly over the sequence.
    """
    length = video["truth"].shape[1]
    steps = np.unique(np.linspace(0, length - 1, min(frames, length)).round().astype(int))
    rows = [
        np.concatenate(list(video[kind][index, steps]), 1)
        for index in range(video["truth"].shape[0])
        for kind in ("truth", "model", "error")
    ]
    return np.concatenate(rows, 0)
