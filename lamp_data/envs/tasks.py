"""The task catalogue: every task's split, family, instruction, paraphrases and object nouns.

The held-out split mirrors LAMP's five RLBench finetuning tasks with their closest Meta-World
analogues (``FINETUNE_TASKS``): pick up cup → ``pick-place``, take lid off saucepan →
``disassemble``, push button → ``button-press-topdown``, close microwave → ``door-close``,
turn tap → ``faucet-open``. Tasks that are the same scene and skill as one of those are held
out as well, so pretraining never sees the finetuning task under another name:

* ``pick-place-wall`` and ``bin-picking``: the same puck picked and placed at a goal (behind a
  wall / in a bin);
* ``assembly``: the same nut and peg as ``disassemble``, the motion reversed;
* ``button-press-topdown-wall``: the same top-down button behind a wall;
* ``door-open``: the same door as ``door-close``, the motion reversed;
* ``faucet-close``: the same faucet as ``faucet-open``, turned the other way.

Related but distinct skills stay in pretraining, as in the paper (whose pretraining tasks
shared skills with the finetuning ones): pressing a button from the front (``button-press``,
``button-press-wall``, ``coffee-button``), other doors with locks (``door-lock``,
``door-unlock``), other pick-and-place scenes (``shelf-place``, ``pick-out-of-hole``).

Instructions name objects by class, never by colour, because colours are randomized.

Sixteen Meta-World tasks draw their goal at random each episode and show it by nothing in the
frame (only by a goal-marker site, which rendering hides because it would give the goal away):
``push`` to an unmarked spot, ``reach`` an unmarked point, ``pick-place`` to a point in the air.
A frame cannot tell a success on them from a near miss, so no reward computed from frames can
either (``TaskSpec.goal_visible``; ``bench/goal_visibility.py`` checks every task in the simulator).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from lamp_data.errors import LampError

PRETRAIN = "pretrain"
HELDOUT = "heldout"
SPLITS = (PRETRAIN, HELDOUT)
BACKENDS = ("metaworld", "rlbench")


@dataclass(frozen=True)
class TaskSpec:
    """One task of one backend, with the language used to prompt and describe it."""

    name: str
    """Task name as used in env names, e.g. ``"pick-place"`` (env ``mw-pick-place``)."""
    backend: str
    """``"metaworld"`` or ``"rlbench"``."""
    split: str
    """:data:`PRETRAIN` or :data:`HELDOUT`."""
    family: str
    """Skill family, e.g. ``"pick"``, ``"push"``, ``"press"``, ``"open"``."""
    instruction: str
    """Canonical natural-language instruction."""
    paraphrases: tuple[str, ...]
    """Alternative phrasings of the instruction."""
    objects: tuple[str, ...]
    """Object class nouns the task involves."""
    goal_visible: bool | None = None
    """Whether a frame shows where the goal is: something drawn moves with a randomized goal, or
    the goal is the same every episode. False for tasks whose goal only a hidden marker shows;
    None where not checked (RLBench)."""

    @property
    def goal_label(self) -> str | None:
        """``shown`` / ``hidden`` for :attr:`goal_visible` (None where not checked)."""
        return None if self.goal_visible is None else ("shown" if self.goal_visible else "hidden")

    def to_dict(self) -> dict:
        """JSON-able form (``lamp-data tasks --json``)."""
        return {
            "name": self.name,
            "backend": self.backend,
            "split": self.split,
            "family": self.family,
            "instruction": self.instruction,
            "paraphrases": list(self.paraphrases),
            "objects": list(self.objects),
            "goal_visible": self.goal_visible,
        }


FINETUNE_TASKS = ("pick-place", "disassemble", "button-press-topdown", "door-close", "faucet-open")
"""The Meta-World finetuning tasks, analogues of LAMP's five RLBench tasks."""
RLBENCH_FINETUNE_TASKS = ("pick_up_cup", "take_lid_off_saucepan", "push_button", "close_microwave", "turn_tap")
"""LAMP's five RLBench finetuning tasks."""

_HELDOUT_METAWORLD = frozenset(
    {*FINETUNE_TASKS, "pick-place-wall", "bin-picking", "assembly", "button-press-topdown-wall", "door-open", "faucet-close"}
)

GOAL_HIDDEN_METAWORLD = frozenset(
    {
        "coffee-pull", "hand-insert", "pick-out-of-hole", "pick-place", "pick-place-wall", "plate-slide-back",
        "plate-slide-back-side", "plate-slide-side", "push", "push-back", "push-wall", "reach", "reach-wall",
        "stick-pull", "stick-push", "sweep",
    }
)
"""Meta-World tasks whose randomized goal nothing in the frame shows (``bench/goal_visibility.py``)."""

# name: (family, instruction, paraphrases, objects)
_METAWORLD = {
    "assembly": ("insert", "put the nut onto the peg", ("place the ring nut over the peg", "slide the nut down onto the peg", "assemble the nut on the peg"), ("nut", "peg")),
    "basketball": ("pick", "dunk the ball into the basket", ("put the ball in the hoop", "pick up the ball and drop it in the basket", "score the ball in the hoop"), ("ball", "hoop")),
    "bin-picking": ("pick", "move the puck from one bin into the other", ("pick the puck out of the bin and place it in the other bin", "transfer the puck between the bins", "put the puck into the second bin"), ("puck", "bin")),
    "box-close": ("place", "put the lid on the box", ("close the box with its lid", "cover the box with the lid", "place the lid onto the box"), ("lid", "box")),
    "button-press-topdown": ("press", "press the button from the top", ("push the button down", "press down on the button", "push the button from above"), ("button",)),
    "button-press-topdown-wall": ("press", "press the button from the top behind the wall", ("push the button down behind the wall", "press down on the button past the wall", "reach over the wall and press the button"), ("button", "wall")),
    "button-press": ("press", "press the button", ("push the button in", "press the button on the front of the box", "push the button"), ("button",)),
    "button-press-wall": ("press", "press the button behind the wall", ("push the button past the wall", "reach around the wall and press the button", "press the button beyond the wall"), ("button", "wall")),
    "coffee-button": ("press", "press the button on the coffee machine", ("push the coffee machine's button", "start the coffee machine", "press the coffee button"), ("coffee machine", "button")),
    "coffee-pull": ("pull", "pull the mug away from the coffee machine", ("take the mug out from under the coffee machine", "slide the mug back from the coffee machine", "move the mug away from the coffee machine"), ("mug", "coffee machine")),
    "coffee-push": ("push", "push the mug under the coffee machine", ("slide the mug beneath the coffee machine", "move the mug to the coffee machine", "put the mug under the spout"), ("mug", "coffee machine")),
    "dial-turn": ("turn", "turn the dial", ("rotate the dial", "twist the knob", "turn the knob around"), ("dial",)),
    "disassemble": ("pick", "take the nut off the peg", ("lift the nut off the peg", "remove the ring nut from the peg", "pull the nut up off the peg"), ("nut", "peg")),
    "door-close": ("close", "close the door", ("push the door shut", "shut the door", "swing the door closed"), ("door",)),
    "door-lock": ("turn", "lock the door", ("turn the door lock", "twist the lock to lock the door", "rotate the lock down"), ("door", "lock")),
    "door-open": ("open", "open the door", ("pull the door open", "swing the door open", "open the door by its handle"), ("door", "handle")),
    "door-unlock": ("turn", "unlock the door", ("turn the lock to unlock the door", "twist the door lock open", "rotate the lock up"), ("door", "lock")),
    "drawer-close": ("close", "close the drawer", ("push the drawer shut", "slide the drawer closed", "shut the drawer"), ("drawer",)),
    "drawer-open": ("open", "open the drawer", ("pull the drawer out", "slide the drawer open", "pull the drawer open by its handle"), ("drawer", "handle")),
    "faucet-close": ("turn", "turn the faucet off", ("close the faucet", "rotate the tap handle to close it", "turn off the tap"), ("faucet",)),
    "faucet-open": ("turn", "turn the faucet on", ("open the faucet", "rotate the tap handle to open it", "turn on the tap"), ("faucet",)),
    "hammer": ("tool", "hammer the nail into the wall", ("pick up the hammer and drive in the nail", "use the hammer to hit the nail", "knock the nail in with the hammer"), ("hammer", "nail")),
    "hand-insert": ("insert", "put the block into the hole", ("slide the block into the hole in the table", "insert the block into the hole", "push the block into the opening"), ("block", "hole")),
    "handle-press-side": ("press", "press the handle down from the side", ("push the side handle down", "press down on the handle from the side", "lower the handle from the side"), ("handle",)),
    "handle-press": ("press", "press the handle down", ("push the handle down", "press down on the handle", "lower the handle"), ("handle",)),
    "handle-pull-side": ("pull", "pull the handle up from the side", ("lift the side handle", "pull up on the handle from the side", "raise the handle from the side"), ("handle",)),
    "handle-pull": ("pull", "pull the handle up", ("lift the handle", "pull up on the handle", "raise the handle"), ("handle",)),
    "lever-pull": ("pull", "pull the lever up", ("lift the lever", "raise the lever", "pull up on the lever"), ("lever",)),
    "peg-insert-side": ("insert", "insert the peg into the hole from the side", ("push the peg sideways into the hole", "slide the peg into the side hole", "put the peg in the hole"), ("peg", "hole")),
    "peg-unplug-side": ("pull", "unplug the peg from the side", ("pull the peg out of the hole", "remove the plug from the socket", "take the peg out sideways"), ("peg", "plug")),
    "pick-out-of-hole": ("pick", "pick the puck out of the hole", ("lift the puck out of the hole", "take the puck out of the hole and raise it", "pull the puck up out of the hole"), ("puck", "hole")),
    "pick-place-wall": ("pick", "pick up the puck and place it at the goal behind the wall", ("lift the puck over the wall to the goal", "move the puck past the wall to the goal", "carry the puck over the wall"), ("puck", "wall")),
    "pick-place": ("pick", "pick up the puck and place it at the goal", ("lift the puck and put it at the target", "grasp the puck and move it to the goal", "pick the puck up and set it down at the goal"), ("puck",)),
    "plate-slide-back-side": ("slide", "slide the plate back out of the goal from the side", ("pull the plate sideways out of the net", "slide the plate out from the side", "move the plate back from the goal sideways"), ("plate", "goal")),
    "plate-slide-back": ("slide", "slide the plate back out of the goal", ("pull the plate out of the net", "slide the plate back toward the robot", "move the plate back out of the goal"), ("plate", "goal")),
    "plate-slide-side": ("slide", "slide the plate into the goal from the side", ("push the plate sideways into the net", "slide the plate sideways into the goal", "move the plate into the goal from the side"), ("plate", "goal")),
    "plate-slide": ("slide", "slide the plate into the goal", ("push the plate into the net", "slide the plate forward into the goal", "move the plate into the goal"), ("plate", "goal")),
    "push-back": ("push", "pull the block back to the goal", ("slide the block back toward the robot", "drag the block back to the target", "move the block backwards to the goal"), ("block",)),
    "push": ("push", "push the puck to the goal", ("slide the puck to the target", "push the puck along the table to the goal", "move the puck to the goal by pushing it"), ("puck",)),
    "push-wall": ("push", "push the puck around the wall to the goal", ("slide the puck past the wall to the target", "push the puck to the goal behind the wall", "move the puck around the wall"), ("puck", "wall")),
    "reach": ("reach", "reach to the goal", ("move the gripper to the target", "put the hand at the goal position", "reach the target point"), ()),
    "reach-wall": ("reach", "reach over the wall to the goal", ("move the gripper past the wall to the target", "reach the target behind the wall", "put the hand at the goal beyond the wall"), ("wall",)),
    "shelf-place": ("pick", "put the block on the shelf", ("pick up the block and place it on the shelf", "move the block onto the shelf", "set the block on the shelf"), ("block", "shelf")),
    "soccer": ("push", "kick the ball into the goal", ("push the soccer ball into the net", "shoot the ball into the goal", "roll the ball into the goal"), ("ball", "goal")),
    "stick-pull": ("tool", "pull the thermos with the stick", ("use the stick to drag the thermos", "grab the stick and pull the thermos back", "hook the thermos with the stick and pull it"), ("stick", "thermos")),
    "stick-push": ("tool", "push the thermos with the stick", ("use the stick to push the thermos", "grab the stick and push the thermos forward", "shove the thermos with the stick"), ("stick", "thermos")),
    "sweep-into": ("push", "sweep the block into the hole", ("push the block into the hole", "slide the block into the opening", "sweep the block into the hole in the table"), ("block", "hole")),
    "sweep": ("push", "sweep the block off the table", ("push the block off the edge of the table", "slide the block off the table", "sweep the block over the edge"), ("block",)),
    "window-close": ("slide", "close the window", ("slide the window shut", "push the window closed", "shut the window"), ("window",)),
    "window-open": ("slide", "open the window", ("slide the window open", "push the window open", "open the sliding window"), ("window",)),
}

# RLBench tasks we register: LAMP's five finetuning tasks and a few pretraining ones.
_RLBENCH = {
    "pick_up_cup": (HELDOUT, "pick", "pick up the cup", ("lift the cup", "grasp the cup and raise it", "pick the cup up off the table"), ("cup",)),
    "take_lid_off_saucepan": (HELDOUT, "pick", "take the lid off the saucepan", ("lift the lid off the pan", "remove the saucepan lid", "take the pan's lid off"), ("lid", "saucepan")),
    "push_button": (HELDOUT, "press", "push the button", ("press the button", "push down on the button", "press the button down"), ("button",)),
    "close_microwave": (HELDOUT, "close", "close the microwave", ("shut the microwave door", "push the microwave door closed", "close the microwave door"), ("microwave", "door")),
    "turn_tap": (HELDOUT, "turn", "turn the tap", ("rotate the tap handle", "turn the faucet", "twist the tap"), ("tap",)),
    "reach_target": (PRETRAIN, "reach", "reach the target", ("move the gripper to the ball", "touch the target ball", "reach to the sphere"), ("target",)),
    "open_drawer": (PRETRAIN, "open", "open the drawer", ("pull the drawer out", "slide the drawer open", "pull the drawer open by its handle"), ("drawer", "handle")),
    "close_drawer": (PRETRAIN, "close", "close the drawer", ("push the drawer shut", "slide the drawer closed", "shut the drawer"), ("drawer",)),
    "lift_numbered_block": (PRETRAIN, "pick", "lift the block", ("pick up the block", "raise the block off the table", "grasp the block and lift it"), ("block",)),
    "slide_block_to_target": (PRETRAIN, "push", "slide the block to the target", ("push the block to the target", "move the block onto the target", "slide the block onto the marker"), ("block", "target")),
    "open_box": (PRETRAIN, "open", "open the box", ("lift the lid of the box", "open the box's lid", "flip the box lid open"), ("box", "lid")),
}


def _build() -> dict[str, TaskSpec]:
    tasks = {}
    for name, (family, instruction, paraphrases, objects) in _METAWORLD.items():
        split = HELDOUT if name in _HELDOUT_METAWORLD else PRETRAIN
        tasks[name] = TaskSpec(name, "metaworld", split, family, instruction, paraphrases, objects, name not in GOAL_HIDDEN_METAWORLD)
    for name, (split, family, instruction, paraphrases, objects) in _RLBENCH.items():
        tasks[name] = TaskSpec(name, "rlbench", split, family, instruction, paraphrases, objects)
    return tasks


TASKS: dict[str, TaskSpec] = _build()
"""Every task by name (Meta-World names use dashes, RLBench names underscores)."""


def get_task(name: str) -> TaskSpec:
    """The task called ``name``.

    Raises:
        LampError: Unknown name; the message lists close matches.
    """
    try:
        return TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(TASKS), n=4)
        hint = f"; did you mean {', '.join(close)}?" if close else "; 'lamp-data tasks' lists them"
        raise LampError(f"unknown task '{name}'{hint}") from None


def list_tasks(split: str | None = None, backend: str | None = None) -> list[TaskSpec]:
    """Tasks filtered by split and backend, sorted by backend then name.

    Raises:
        LampError: Unknown split or backend.
    """
    if split is not None and split not in SPLITS:
        raise LampError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
    if backend is not None and backend not in BACKENDS:
        raise LampError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
    return sorted(
        (
            task
            for task in TASKS.values()
            if (split is None or task.split == split) and (backend is None or task.backend == backend)
        ),
        key=lambda task: (task.backend, task.name),
    )
