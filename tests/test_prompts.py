"""Prompt sets: scale, stable order and hash, task instructions, files, and the CLI."""

import json

import pytest
from click.testing import CliRunner

from lamp_cli.data import main
from lamp_data.envs.tasks import list_tasks
from lamp_data.errors import LampError
from lamp_data.rewards.prompts import (
    DEFAULT_PROMPT_SET,
    MANIPULATION_TEMPLATES,
    PromptSet,
    load_prompt_set,
    object_nouns,
    prompt_set_names,
    task_objects,
)


def test_default_set_has_paper_scale_and_every_task_instruction():
    prompt_set = load_prompt_set()
    assert prompt_set.name == DEFAULT_PROMPT_SET
    assert len(MANIPULATION_TEMPLATES) == 40 and len(object_nouns(task_objects())) >= 117
    assert len(prompt_set) >= 4000
    for task in list_tasks():
        for text in (task.instruction, *task.paraphrases):
            index = prompt_set.index_of(text)
            assert index is not None and prompt_set.prompts[index] == text.strip()
    assert prompt_set.index_of("  Pick up the CUP. ") == prompt_set.prompts.index("pick up the cup")
    assert prompt_set.index_of("juggle three flaming torches") is None
    for obj in task_objects():
        assert any(obj in prompt for prompt in prompt_set.prompts), obj


def test_sets_have_stable_order_and_content_hash():
    first = load_prompt_set(DEFAULT_PROMPT_SET)
    rebuilt = PromptSet("other-name", tuple(first.prompts))
    assert rebuilt.hash == first.hash
    swapped = PromptSet("x", (first.prompts[1], first.prompts[0], *first.prompts[2:]))
    assert swapped.hash != first.hash
    names = prompt_set_names()
    assert {"lamp-metaworld", "random-verbs", "unrelated", "instructions"} <= set(names)
    hashes = {load_prompt_set(name).hash for name in names}
    assert len(hashes) == len(names)
    instructions = set(load_prompt_set("instructions").prompts)
    assert not instructions & set(load_prompt_set("unrelated").prompts)
    assert not instructions & set(load_prompt_set("random-verbs").prompts)


def test_prompt_files(tmp_path):
    text_file = tmp_path / "mine.txt"
    text_file.write_text("# my prompts\npick up the cup\n\n  open the drawer  \n")
    from_text = load_prompt_set(str(text_file))
    assert from_text.prompts == ("pick up the cup", "open the drawer")
    json_file = tmp_path / "mine.json"
    json_file.write_text(json.dumps(from_text.to_json()))
    assert load_prompt_set(str(json_file)).hash == from_text.hash
    (tmp_path / "list.json").write_text(json.dumps(["a", "b"]))
    assert load_prompt_set(str(tmp_path / "list.json")).prompts == ("a", "b")

    (tmp_path / "empty.txt").write_text("# nothing here\n\n")
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "dupes.txt").write_text("a\nb\na\n")
    (tmp_path / "bad.json").write_text('{"prompts": ["a"], "hash": "0000"}')
    for name, message in [
        ("empty.txt", "has no prompts"),
        ("empty.json", "has no prompts"),
        ("dupes.txt", "repeats prompt 0"),
        ("bad.json", "does not match"),
        ("missing.txt", "does not exist"),
    ]:
        with pytest.raises(LampError, match=message):
            load_prompt_set(str(tmp_path / name))
    with pytest.raises(LampError, match="unknown prompt set 'nope'"):
        load_prompt_set("nope")


def test_prompts_cli_lists_and_shows(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(main, ["prompts"])
    assert listed.exit_code == 0, listed.output
    assert "lamp-metaworld" in listed.output and "unrelated" in listed.output
    assert max(len(line) for line in listed.output.splitlines()) <= 80  # not a terminal: laid out for 80 columns
    shown = runner.invoke(main, ["prompts", "instructions", "--json"])
    assert shown.exit_code == 0
    value = json.loads(shown.output)
    assert value["count"] == len(value["prompts"]) and value["hash"] == load_prompt_set("instructions").hash
    (tmp_path / "empty.txt").write_text("\n")
    failed = runner.invoke(main, ["prompts", str(tmp_path / "empty.txt")])
    assert failed.exit_code == 2 and "has no prompts" in failed.output
