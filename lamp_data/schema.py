"""Reserved step keys and format versions, defined once for the whole project.

An episode in memory is a flat dict of numpy arrays. Frames and per-frame arrays have
``T + 1`` rows (the first observation plus one per action); actions and env rewards have
``T`` rows. Training batches re-align everything to ``[batch, time]`` steps where step ``t``
holds observation ``t``, the action that led to it (zeros at ``is_first``) and the reward
received on arriving at it (zero at ``is_first``).
"""

IMAGE = "image"
"""uint8 [T+1, H, W, 3] camera frames."""
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
