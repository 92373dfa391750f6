"""Prompt sets: the language a reward model scores every stored frame against.

LAMP pretrains on rewards for thousands of instructions built from templates with a ``[NOUN]``
slot crossed with synonym lists per object class (the paper: 40 templates × 117 nouns). The
sets here do the same for the embedded simulator's objects:

* ``lamp-metaworld`` (the default): every task's canonical instruction and paraphrases first,
  then 40 manipulation templates × the object nouns below (about 4,700 prompts).
* ``random-verbs``: the paper's ablation, verbs that do not describe manipulation × the same nouns.
* ``unrelated``: the paper's ablation, text that has nothing to do with the scene.
* ``instructions``: only the tasks' instructions and paraphrases (small, for quick runs).

A user's own set is a ``.txt`` file (one prompt per line, ``#`` starts a comment line) or a
``.json`` file (a list of strings, or ``{"name": ..., "prompts": [...]}``). Every set has a name,
a stable order (reward column ``i`` belongs to prompt ``i``) and a content hash.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamp_data.envs.tasks import list_tasks
from lamp_data.errors import LampError
from lamp_data.provenance import stable_hash
from lamp_data.registry import Registry

DEFAULT_PROMPT_SET = "lamp-metaworld"
"""The prompt set used when none is named."""

NOUN_SLOT = "[NOUN]"
"""The placeholder every template fills with an object noun."""

MANIPULATION_TEMPLATES = (
    "pick up the [NOUN]",
    "lift the [NOUN]",
    "grasp the [NOUN]",
    "grab the [NOUN]",
    "hold the [NOUN]",
    "raise the [NOUN] off the table",
    "move the [NOUN]",
    "push the [NOUN]",
    "pull the [NOUN]",
    "slide the [NOUN]",
    "shove the [NOUN] forward",
    "drag the [NOUN] toward you",
    "nudge the [NOUN]",
    "touch the [NOUN]",
    "reach for the [NOUN]",
    "reach toward the [NOUN]",
    "press the [NOUN]",
    "poke the [NOUN]",
    "tap the [NOUN]",
    "turn the [NOUN]",
    "rotate the [NOUN]",
    "twist the [NOUN]",
    "spin the [NOUN]",
    "flip the [NOUN]",
    "open the [NOUN]",
    "close the [NOUN]",
    "shut the [NOUN]",
    "put down the [NOUN]",
    "place the [NOUN] on the table",
    "drop the [NOUN]",
    "knock over the [NOUN]",
    "move the [NOUN] to the left",
    "move the [NOUN] to the right",
    "move the gripper to the [NOUN]",
    "put the gripper on the [NOUN]",
    "bring the [NOUN] closer",
    "push the [NOUN] away",
    "insert the [NOUN]",
    "take the [NOUN]",
    "interact with the [NOUN]",
)
"""40 templates of manipulation instructions, in a fixed order."""

RANDOM_VERB_TEMPLATES = (
    "paint the [NOUN]",
    "sing to the [NOUN]",
    "admire the [NOUN]",
    "photograph the [NOUN]",
    "describe the [NOUN]",
    "ignore the [NOUN]",
    "imagine the [NOUN]",
    "name the [NOUN]",
    "forget the [NOUN]",
    "praise the [NOUN]",
    "sketch the [NOUN]",
    "listen to the [NOUN]",
    "smell the [NOUN]",
    "wonder about the [NOUN]",
    "worry about the [NOUN]",
    "dream of the [NOUN]",
    "count the [NOUN]",
    "study the [NOUN]",
    "remember the [NOUN]",
    "criticize the [NOUN]",
    "thank the [NOUN]",
    "greet the [NOUN]",
    "wave at the [NOUN]",
    "whisper to the [NOUN]",
    "laugh at the [NOUN]",
    "write about the [NOUN]",
    "read about the [NOUN]",
    "vote for the [NOUN]",
    "translate the [NOUN]",
    "celebrate the [NOUN]",
    "envy the [NOUN]",
    "forgive the [NOUN]",
    "marry the [NOUN]",
    "audit the [NOUN]",
    "interview the [NOUN]",
    "applaud the [NOUN]",
    "mourn the [NOUN]",
    "predict the [NOUN]",
    "evaluate the [NOUN]",
    "recommend the [NOUN]",
)
"""40 templates with verbs that do not describe a manipulation (the paper's ablation)."""

UNRELATED_TEMPLATES = (
    "a short poem about the [NOUN]",
    "the history of the [NOUN]",
    "my grandmother loved the [NOUN]",
    "what time does the [NOUN] open",
    "the [NOUN] was on the news last night",
    "a documentary about the [NOUN]",
    "how much does the [NOUN] cost",
    "the [NOUN] reminds me of summer",
    "we talked about the [NOUN] for hours",
    "the [NOUN] is my favourite",
    "a painting of the [NOUN] at sunset",
    "the [NOUN] won an award",
    "nobody expected the [NOUN]",
    "the children drew the [NOUN]",
    "the [NOUN] is famous in spain",
    "a song about the [NOUN]",
    "the [NOUN] appears in the novel",
    "a recipe inspired by the [NOUN]",
    "the [NOUN] was invented long ago",
    "the museum has a [NOUN]",
    "the [NOUN] is very quiet today",
    "a tourist photographed the [NOUN]",
    "the [NOUN] moved to another city",
    "the weather suits the [NOUN]",
    "the [NOUN] has a long tradition",
    "everyone is talking about the [NOUN]",
    "the [NOUN] is on sale this week",
    "a podcast episode on the [NOUN]",
    "the [NOUN] inspired the architect",
    "the [NOUN] sleeps during winter",
    "the teacher explained the [NOUN]",
    "the [NOUN] needs a new name",
    "the [NOUN] was featured in a film",
    "a festival dedicated to the [NOUN]",
    "the [NOUN] is older than the town",
    "scientists studied the [NOUN]",
    "the [NOUN] lives near the river",
    "the [NOUN] became a local legend",
    "the choir sang about the [NOUN]",
    "the [NOUN] is hard to pronounce",
)
"""40 templates of text unrelated to the scene (the paper's ablation)."""

UNRELATED_NOUNS = (
    "ocean", "violin", "giraffe", "volcano", "cathedral", "novel", "orchestra", "glacier",
    "penguin", "lighthouse", "marathon", "opera", "desert", "tiger", "harbour", "comet",
    "village", "carnival", "rainforest", "whale", "senator", "pyramid", "galaxy", "meadow",
    "dolphin", "sculpture", "election", "monsoon", "canyon", "elephant", "poet", "castle",
    "waterfall", "parrot", "theatre", "eclipse", "orchard", "kangaroo", "lagoon", "cello",
    "bakery", "island", "owl", "stadium", "rainbow", "wolf", "library", "harvest", "fox",
    "saxophone", "mountain", "hurricane", "zebra", "temple", "river", "opera singer", "moon",
    "camel", "vineyard", "jungle", "trumpet", "peacock", "lake", "skyscraper", "bee", "prairie",
    "cheetah", "parliament", "forest", "cartoon", "squirrel", "piano", "beach", "planet",
    "bridge", "chef", "gorilla", "storm", "festival", "flamingo", "reef", "novelist", "cloud",
    "market", "octopus", "ballet", "swamp", "dragonfly", "mayor", "tundra", "lion", "poem",
    "valley", "hedgehog", "monastery", "telescope", "butterfly", "sunset", "fjord", "panda",
    "circus", "jazz band", "avalanche", "rhinoceros", "courthouse", "sailboat", "moose", "cafe",
    "hippo", "garden", "astronaut", "geyser", "bison", "museum", "snowstorm", "koala", "tornado",
)
"""Nouns for the unrelated-text ablation: none of them appears in the simulator."""

OBJECT_NOUNS: dict[str, tuple[str, ...]] = {
    "puck": ("puck", "disc", "hockey puck", "round token"),
    "block": ("block", "cube", "brick", "box"),
    "cup": ("cup", "mug", "coffee cup", "coffee mug"),
    "drawer": ("drawer", "drawer handle", "cabinet drawer", "sliding drawer"),
    "door": ("door", "door handle", "cabinet door", "hinged door"),
    "button": ("button", "push button", "red button", "switch button"),
    "faucet": ("faucet", "tap", "water tap", "faucet handle"),
    "window": ("window", "window handle", "sliding window", "window pane"),
    "lever": ("lever", "handle", "lever arm", "pull handle"),
    "peg": ("peg", "stick", "rod", "pin"),
    "nut": ("nut", "ring", "square nut", "wrench"),
    "lid": ("lid", "cover", "box lid", "cap"),
    "dial": ("dial", "knob", "rotary dial", "round knob"),
    "shelf": ("shelf", "rack", "bookshelf", "cupboard"),
    "ball": ("ball", "basketball", "soccer ball", "sphere"),
    "hoop": ("hoop", "basket", "net", "rim"),
    "hammer": ("hammer", "mallet", "tool", "claw hammer"),
    "nail": ("nail", "spike", "screw", "tack"),
    "coffee machine": ("coffee machine", "espresso machine", "coffee maker", "machine"),
    "goal": ("goal", "target", "goal post", "target zone"),
    "bin": ("bin", "container", "tray", "bucket"),
    "plate": ("plate", "dish", "platter", "saucer"),
    "switch": ("switch", "light switch", "toggle", "wall switch"),
    "wall": ("wall", "barrier", "obstacle", "partition"),
    "hole": ("hole", "slot", "opening", "gap"),
    "handle": ("handle", "grip", "knob handle", "bar"),
    "table": ("table", "tabletop", "workbench", "desk"),
    "lock": ("lock", "latch", "door lock", "bolt"),
    "thermos": ("thermos", "flask", "bottle", "water bottle"),
    "plug": ("plug", "power plug", "socket plug", "connector"),
    "microwave": ("microwave", "microwave door", "oven", "microwave oven"),
    "saucepan": ("saucepan", "pot", "pan", "cooking pot"),
}
"""Synonyms per object class of the embedded simulator (about 117 nouns in all)."""


def object_nouns(object_names: Iterable[str] = ()) -> list[str]:
    """All nouns: the synonym lists above, then any task object not covered by them.

    Args:
        object_names: Object names reported by the task catalogue (``TaskSpec.objects``).
    """
    nouns: list[str] = []
    for synonyms in OBJECT_NOUNS.values():
        nouns.extend(synonyms)
    for name in object_names:
        noun = normalize_prompt(name.replace("_", " ").replace("-", " "))
        if noun and noun not in OBJECT_NOUNS:
            nouns.append(noun)
    return _unique(nouns)


def fill_templates(templates: Iterable[str], nouns: Iterable[str]) -> list[str]:
    """Every template crossed with every noun, templates outermost."""
    nouns = list(nouns)
    prompts = []
    for template in templates:
        if NOUN_SLOT not in template:
            raise LampError(f"prompt template '{template}' has no {NOUN_SLOT} slot")
        prompts.extend(template.replace(NOUN_SLOT, noun) for noun in nouns)
    return prompts


def normalize_prompt(text: str) -> str:
    """Lower case, single spaces, no trailing full stop: the form prompts are matched in."""
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().lower()


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class PromptSet:
    """An ordered, named list of prompts; reward column ``i`` belongs to ``prompts[i]``."""

    name: str
    """Registered name, or the file it was read from."""
    prompts: tuple[str, ...]
    """The prompts, in their stable order."""
    description: str = ""
    """One line on how the set was made."""

    def __post_init__(self) -> None:
        if not self.prompts:
            raise LampError(f"prompt set '{self.name}' has no prompts")
        seen: dict[str, int] = {}
        for index, prompt in enumerate(self.prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise LampError(f"prompt set '{self.name}': prompt {index} is empty or not text")
            if prompt in seen:
                raise LampError(f"prompt set '{self.name}': prompt {index} repeats prompt {seen[prompt]} ('{prompt}')")
            seen[prompt] = index

    def __len__(self) -> int:
        return len(self.prompts)

    @functools.cached_property
    def hash(self) -> str:
        """Content hash of the prompts in order (the name does not count)."""
        return stable_hash(list(self.prompts))

    @functools.cached_property
    def _normalized_index(self) -> dict[str, int]:
        index: dict[str, int] = {}
        for position, prompt in enumerate(self.prompts):
            index.setdefault(normalize_prompt(prompt), position)
        return index

    def index_of(self, instruction: str) -> int | None:
        """Column of ``instruction`` (exact, else case/space/full-stop insensitive), or None."""
        try:
            return self.prompts.index(instruction)
        except ValueError:
            return self._normalized_index.get(normalize_prompt(instruction))

    def to_json(self) -> dict[str, Any]:
        """JSON form: name, hash, count, description and the prompts."""
        return {
            "name": self.name,
            "hash": self.hash,
            "count": len(self.prompts),
            "description": self.description,
            "prompts": list(self.prompts),
        }

    def summary(self) -> dict[str, Any]:
        """Name, hash and count, as recorded in dataset and reward-set metadata."""
        return {"name": self.name, "hash": self.hash, "count": len(self.prompts)}

    @classmethod
    def from_json(cls, value: Any, name: str = "prompts") -> "PromptSet":
        """Read a list of prompts or ``{"name": ..., "prompts": [...]}``; checks ``hash`` if given."""
        if isinstance(value, list):
            return cls(name, tuple(value))
        if isinstance(value, dict) and isinstance(value.get("prompts"), list):
            prompt_set = cls(str(value.get("name", name)), tuple(value["prompts"]), str(value.get("description", "")))
            if "hash" in value and value["hash"] != prompt_set.hash:
                raise LampError(f"prompt set '{prompt_set.name}': stored hash {value['hash']} does not match its prompts ({prompt_set.hash})")
            return prompt_set
        raise LampError(f"prompt set '{name}' must be a JSON list of strings or an object with a 'prompts' list")


def task_instructions() -> list[str]:
    """Every registered task's canonical instruction and paraphrases, in catalogue order."""
    prompts: list[str] = []
    for task in list_tasks():
        prompts.append(task.instruction)
        prompts.extend(task.paraphrases)
    return _unique(prompt.strip() for prompt in prompts if prompt.strip())


def task_objects() -> list[str]:
    """Object names of every registered task, in catalogue order."""
    return _unique(name for task in list_tasks() for name in task.objects)


def _lamp_metaworld() -> PromptSet:
    prompts = task_instructions() + fill_templates(MANIPULATION_TEMPLATES, object_nouns(task_objects()))
    return PromptSet(
        DEFAULT_PROMPT_SET,
        tuple(_unique(prompts)),
        f"task instructions + {len(MANIPULATION_TEMPLATES)} manipulation templates × object nouns",
    )


def _random_verbs() -> PromptSet:
    prompts = fill_templates(RANDOM_VERB_TEMPLATES, object_nouns(task_objects()))
    return PromptSet("random-verbs", tuple(_unique(prompts)), "ablation: non-manipulation verbs × object nouns")


def _unrelated() -> PromptSet:
    prompts = fill_templates(UNRELATED_TEMPLATES, UNRELATED_NOUNS)
    return PromptSet("unrelated", tuple(_unique(prompts)), "ablation: text unrelated to the scene")


def _instructions() -> PromptSet:
    return PromptSet("instructions", tuple(task_instructions()), "task instructions and paraphrases only")


PROMPT_SETS: Registry[PromptSet] = Registry("prompt set")
"""Built-in prompt sets by name; each factory takes no arguments."""

PROMPT_SETS.register(DEFAULT_PROMPT_SET, _lamp_metaworld, description="task instructions + manipulation templates × object nouns (default)")
PROMPT_SETS.register("random-verbs", _random_verbs, description="ablation: non-manipulation verbs × object nouns")
PROMPT_SETS.register("unrelated", _unrelated, description="ablation: text unrelated to the scene")
PROMPT_SETS.register("instructions", _instructions, description="task instructions and paraphrases only")


@functools.lru_cache(maxsize=16)
def _registered(name: str) -> PromptSet:
    builder: Callable[[], PromptSet] = PROMPT_SETS.get(name)
    return builder()


def read_prompt_file(path: str | Path) -> PromptSet:
    """Read a ``.txt`` (one prompt per line) or ``.json`` prompt file; no prompts → LampError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LampError(f"cannot read prompt file {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise LampError(f"prompt file {path} is not UTF-8 text") from error
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise LampError(f"prompt file {path} is not valid JSON: {error}") from error
        if isinstance(value, (list, dict)) and not (value.get("prompts") if isinstance(value, dict) else value):
            raise LampError(f"prompt file {path} has no prompts")
        return PromptSet.from_json(value, name=str(path))
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [line for line in prompts if line and not line.startswith("#")]
    if not prompts:
        raise LampError(f"prompt file {path} has no prompts")
    return PromptSet(str(path), tuple(prompts), f"read from {path.name}")


def load_prompt_set(name_or_path: str | PromptSet | list[str] | tuple[str, ...] | None = None) -> PromptSet:
    """A registered prompt set by name, or one read from a ``.txt``/``.json`` file.

    Args:
        name_or_path: A name from :data:`PROMPT_SETS` (default :data:`DEFAULT_PROMPT_SET`),
            a file path, a :class:`PromptSet` (returned as is) or a list of prompts (named
            ``custom``).
    """
    if isinstance(name_or_path, PromptSet):
        return name_or_path
    if isinstance(name_or_path, (list, tuple)):
        return PromptSet("custom", tuple(name_or_path), "given as a list")
    name = name_or_path or DEFAULT_PROMPT_SET
    if name in PROMPT_SETS:
        return _registered(name)
    path = Path(name)
    if path.suffix.lower() in (".txt", ".json") or path.exists():
        if not path.is_file():
            raise LampError(f"prompt file {path} does not exist")
        return read_prompt_file(path)
    raise LampError(f"unknown prompt set '{name}' (known: {', '.join(PROMPT_SETS.names())}; or give a .txt/.json file)")


def prompt_set_names() -> list[str]:
    """Names of the built-in prompt sets."""
    return PROMPT_SETS.names()
