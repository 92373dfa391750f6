"""Reserved step keys and format versions, defined once for the whole project.

An episode in memory is a flat dict of numpy arrays. Frames and per-frame arrays have
``T + 1`` rows (the first observation plus one per action); actions and env rewards have
``T`` rows. Training batches re-align everything to ``[batch, time]`` steps where step ``t``
holds observation ``t``, the action that led to it (zeros at ``is_first``) and the reward
received on arriving at it (zero at ``is_first``).
"""

from collections.abc import Iterable

from lamp_data.errors import LampError

IMAGE = "image"
"""uint8 [T+1, H, W, 3] frames of the front camera (the one reward models score)."""
IMAGE_WRIST = "image_wrist"
"""uint8 [T+1, H, W, 3] frames of the wrist camera, in episodes recorded with it."""
CAMERA_KEYS = {"front": IMAGE, "wrist": IMAGE_WRIST}
"""Camera name -> the step key of its frames. ``front`` is in every episode; the others only in
episodes recorded with them (a dataset's ``meta/info.json`` lists its cameras)."""
DEFAULT_CAMERAS = ("front",)
"""The cameras of a dataset, env or agent that names none."""

STATE = "state"
"""float32 [T+1, S] proprioceptive state."""
ACTION = "action"
"""float32 [T, A] actions in [-1, 1]."""
REWARD = "reward"
"""float32 [T] the task's own dense reward."""
SUCCESS = "success"
"""bool [T+1] the task's success flag after each frame (False for the first)."""
IS_FIRST = "is_first"
IS_LAST = "is_last"
IS_TERMINAL = "is_terminal"
VLM_REWARD = "vlm_reward"
"""float16 [T+1, P] reward-model score of every frame against every prompt."""
PROMPT_INDEX = "prompt_index"
"""int the prompt a training sequence is conditioned on."""

STEP_KEYS = (IMAGE, STATE, ACTION, REWARD, SUCCESS, IS_FIRST, IS_LAST, IS_TERMINAL)

DATASET_FORMAT_VERSION = 1
"""Version of ``meta/info.json`` and the shard sample layout."""
REWARD_FORMAT_VERSION = 1
"""Version of ``rewards/<fingerprint>/`` reward sets."""
CHECKPOINT_FORMAT_VERSION = 1
"""Version of agent and reward-model checkpoints."""
RUN_FORMAT_VERSION = 1
"""Version of evaluation run logs."""
REPORT_FORMAT_VERSION = 1
"""Version of leaderboard reports (``leaderboard.json``)."""


def check_cameras(cameras: str | Iterable[str]) -> tuple[str, ...]:
    """Camera names (a sequence, or one comma-separated string) in :data:`CAMERA_KEYS` order.

    Raises:
        LampError: an unknown or repeated name, or no ``front`` camera (rewards score its frames).
    """
    names = [name.strip() for name in cameras.split(",")] if isinstance(cameras, str) else [str(name) for name in cameras]
    unknown = [name for name in names if name not in CAMERA_KEYS]
    if unknown:
        raise LampError(f"unknown camera '{unknown[0]}' (known: {', '.join(CAMERA_KEYS)})")
    if len(set(names)) != len(names):
        raise LampError(f"cameras must be distinct, got {','.join(names)}")
    if "front" not in names:
        raise LampError(f"the front camera must be among the cameras (reward models score it), got {','.join(names) or 'none'}")
    return tuple(name for name in CAMERA_KEYS if name in names)


def image_keys(cameras: Iterable[str]) -> tuple[str, ...]:
    """The step keys of these cameras' frames, ``image`` first."""
    return tuple(CAMERA_KEYS[name] for name in check_cameras(cameras))
