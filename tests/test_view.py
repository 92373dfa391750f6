"""``lamp-data view``: contact sheets and GIFs of an episode over its reward curves; bad input writes nothing."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageSequence

from lamp_cli.data import main
from lamp_data import schema
from lamp_data.display.view import view_episode
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.store import RewardSetWriter, iter_episodes, open_dataset

PROMPTS = ["reach the red block", "push the red block", "open the door"]
FINGERPRINT = "fake-0001"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Four 5-step dummy episodes in two shards, with a reward set over three prompts."""
    out = tmp_path_factory.mktemp("view") / "data"
    collect(out, CollectConfig(env="dummy", episodes=4, shard_episodes=2, seed=1, env_config=EnvConfig(image_size=16, episode_length=5)),
            progress=False)
    writer = RewardSetWriter(out, FINGERPRINT, {"model": {"family": "fake"}}, PROMPTS)
    for shard in open_dataset(out).shards():
        rewards = {
            episode["__key__"]: np.linspace(0, 1, len(episode[schema.IMAGE]) * len(PROMPTS)).reshape(-1, len(PROMPTS))
            for episode in iter_episodes(out, shards=[shard.name])
        }
        writer.write_shard(shard.name, rewards)
    return out


def test_contact_sheet_with_reward_curves(dataset, tmp_path):
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(main, ["view", str(dataset), "--episode", "2", "--reward-set", FINGERPRINT,
                                       "--prompt", PROMPTS[2], "--prompt", PROMPTS[0], "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: ep00000002 (") and "VLM reward of 2 prompts from fake-0001" in result.output
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width >= 800 and image.height >= 500


def test_gif_has_a_frame_per_step_and_default_prompt_is_the_instruction(dataset, tmp_path):
    view = view_episode(dataset, tmp_path / "episode.gif", reward_set=FINGERPRINT, fps=5)
    assert view.key == "ep00000000" and view.steps == 5 and view.prompts == [view.instruction]
    with Image.open(view.path) as image:
        frames = list(ImageSequence.Iterator(image))
        assert image.format == "GIF" and len(frames) == 6 and image.info["duration"] == 200
    plain = view_episode(dataset, tmp_path / "plain.png", episode=3, frames=3)
    assert plain.prompts == [] and plain.reward_set is None and plain.path.is_file()


def test_without_out_it_writes_episode_k_png_in_the_current_folder(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shown = CliRunner().invoke(main, ["view", str(dataset), "--episode", "3"])
    first = CliRunner().invoke(main, ["view", str(dataset)])
    assert shown.exit_code == 0 and first.exit_code == 0, shown.output + first.output
    assert shown.output.startswith("episode-3.png: ep00000003 (") and first.output.startswith("episode-0.png: ep00000000 (")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["episode-0.png", "episode-3.png"]
    with Image.open(tmp_path / "episode-3.png") as image:
        assert image.format == "PNG"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--episode", "9"], "has no episode ep00000009"),
        (["--reward-set", "nope-0000"], "has no reward set 'nope-0000'"),
        (["--reward-set", FINGERPRINT, "--prompt", "juggle the cup"], "has no prompt 'juggle the cup'"),
        (["--prompt", PROMPTS[0]], "give the reward set"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(dataset, tmp_path, arguments, message):
    out = tmp_path / "figures" / "episode.png"
    result = CliRunner().invoke(main, ["view", str(dataset), *arguments, "--out", str(out)])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_missing_dataset_as_a_subprocess(dataset, tmp_path):
    lamp_data_cli = Path(sys.executable).parent / "lamp-data"
    run = subprocess.run([str(lamp_data_cli), "view", str(dataset), "--out", str(tmp_path / "episode.jpg")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.strip() == "Error: output must end in .png or .gif, got 'episode.jpg'"
    with pytest.raises(LampError, match="does not exist"):
        view_episode(tmp_path / "missing", tmp_path / "episode.png")
    assert list(tmp_path.iterdir()) == []
