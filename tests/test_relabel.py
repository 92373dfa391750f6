"""Relabel: equal to inline rewards, resumable after SIGKILL, idempotent, and nothing written on errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamp_cli.data import main
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.pipeline.relabel import relabel
from lamp_data.rewards.vlm.scoring import make_scorer
from lamp_data.store import iter_episodes, open_dataset
from tiny_models import save_tiny_distilbert, save_tiny_r3m

PROMPTS = "reach the red block\npush the red block\npick up the cup\nopen the drawer\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("relabel")
    distilbert = save_tiny_distilbert(root / "distilbert")
    prompts = root / "prompts.txt"
    prompts.write_text(PROMPTS)
    model = save_tiny_r3m(root / "r3m.pt", text_encoder=str(distilbert))
    spec = f"r3m:{model}"
    inline = root / "inline"
    config = CollectConfig(env="dummy", episodes=6, shard_episodes=2, seed=3, env_config=EnvConfig(episode_length=5, image_size=16))
    collect(inline, CollectConfig(**{**config.__dict__, "vlm": spec, "prompts": str(prompts)}), progress=False)
    plain = root / "plain"
    collect(plain, config, progress=False)
    return {"root": root, "spec": spec, "prompts": prompts, "inline": inline, "plain": plain, "distilbert": distilbert}


def reward_files(dataset: Path) -> dict[str, bytes]:
    """Every file under rewards/, info.json without its provenance (and the checksum covering it)."""
    files = {}
    for path in sorted((dataset / "rewards").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "info.json":
                value = json.loads(data)
                value.pop("provenance")
                value.pop("checksum")
                data = json.dumps(value, sort_keys=True).encode()
            files[str(path.relative_to(dataset))] = data
    return files


def test_relabel_equals_inline_rewards_and_direct_scoring(setup, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(setup["inline"], copy)
    shutil.rmtree(copy / "rewards")
    summary = relabel(copy, setup["spec"], progress=False)  # prompts from meta/prompts.json
    assert (summary.shards_written, summary.episodes, summary.frames, summary.prompts) == (3, 6, 36, 4)
    inline_files = reward_files(setup["inline"])
    assert inline_files and reward_files(copy) == inline_files
    assert open_dataset(copy).reward_sets() == [summary.fingerprint]

    scorer = make_scorer(setup["spec"], str(setup["prompts"]))
    assert scorer.fingerprint == summary.fingerprint
    for episode in iter_episodes(copy, reward_set=summary.fingerprint):
        np.testing.assert_array_equal(episode["vlm_reward"], scorer.score(episode["image"]))

    again = relabel(setup["inline"], setup["spec"], str(setup["prompts"]), progress=False)
    assert (again.shards_written, again.shards_skipped, again.frames) == (0, 3, 0)
    assert reward_files(setup["inline"]) == inline_files


def test_relabel_resumes_after_sigkill_with_same_files(setup, tmp_path):
    slow_model = save_tiny_r3m(tmp_path / "slow.pt", image_size=128, text_encoder=str(setup["distilbert"]))
    dataset = tmp_path / "many"
    collect(dataset, CollectConfig(env="dummy", episodes=16, shard_episodes=2, seed=5, env_config=EnvConfig(episode_length=5, image_size=16)), progress=False)
    reference = tmp_path / "reference"
    shutil.copytree(dataset, reference)
    spec = f"r3m:{slow_model}"

    lamp_data_cli = Path(sys.executable).parent / "lamp-data"
    process = subprocess.Popen(
        [str(lamp_data_cli), "relabel", str(dataset), "--vlm", spec, "--prompts", str(setup["prompts"]), "--batch-size", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    committed: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        committed = [p for p in (dataset / "rewards").glob("*/*.json") if p.name not in ("info.json", "prompts.json")]
        if committed:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    committed = [p for p in (dataset / "rewards").glob("*/*.json") if p.name not in ("info.json", "prompts.json")]
    assert 1 <= len(committed) < 8, "the kill should land mid-way"

    resumed = relabel(dataset, spec, str(setup["prompts"]), batch_size=4, progress=False)
    assert resumed.shards_skipped == len(committed) and resumed.shards_written == 8 - len(committed)
    full = relabel(reference, spec, str(setup["prompts"]), batch_size=4, progress=False)
    assert full.fingerprint == resumed.fingerprint
    assert reward_files(dataset) == reward_files(reference)


def test_errors_are_clear_and_write_nothing(setup, tmp_path, monkeypatch):
    dataset = tmp_path / "data"
    shutil.copytree(setup["plain"], dataset)
    before = sorted(str(p) for p in dataset.rglob("*"))
    (tmp_path / "empty.txt").write_text("\n# none\n")
    cases = [
        ("nope:model", None, "unknown reward model family"),
        (f"r3m:{tmp_path / 'missing.pt'}", None, "does not exist"),
        (setup["spec"], str(tmp_path / "empty.txt"), "has no prompts"),
    ]
    for spec, prompts, message in cases:
        with pytest.raises(LampError, match=message):
            relabel(dataset, spec, prompts, progress=False)

    from lamp_data.rewards.vlm.r3m.scorer import R3MRewardModel

    real = R3MRewardModel.episode_rewards
    monkeypatch.setattr(R3MRewardModel, "episode_rewards", lambda self, *a, **k: real(self, *a, **k)[:, :-1])
    with pytest.raises(LampError, match=r"rewards for 6 frames × 4 prompts"):
        relabel(dataset, setup["spec"], str(setup["prompts"]), progress=False)
    monkeypatch.undo()
    assert sorted(str(p) for p in dataset.rglob("*")) == before

    runner = CliRunner()
    failed = runner.invoke(main, ["relabel", str(dataset), "--vlm", "r3m:/no/such/model.pt"])
    assert failed.exit_code == 2 and failed.output.startswith("Error: ") and len(failed.output.strip().splitlines()) == 1
    assert sorted(str(p) for p in dataset.rglob("*")) == before


def test_relabel_cli_in_process(setup, tmp_path):
    dataset = tmp_path / "data"
    shutil.copytree(setup["plain"], dataset)
    result = CliRunner().invoke(main, ["relabel", str(dataset), "--vlm", setup["spec"], "--prompts", "instructions", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["shards_written"] == 3 and summary["prompt_set"] == "instructions"
    info = open_dataset(dataset).reward_set_info(summary["fingerprint"])
    assert info["prompt_set"]["count"] == summary["prompts"] and info["provenance"]["model_spec"] == setup["spec"]
    assert os.path.isfile(dataset / "rewards" / summary["fingerprint"] / "prompts.json")


def test_relabel_scores_the_front_camera_of_two_camera_data_and_reads_old_datasets(setup, tmp_path):
    from lamp_data.atomic import atomic_write_json
    from lamp_data.store import layout, verify_dataset

    both = tmp_path / "both"
    collect(both, CollectConfig(env="dummy", episodes=6, shard_episodes=2, seed=3, env_config=EnvConfig(episode_length=5, image_size=16, cameras=("front", "wrist"))), progress=False)
    old = tmp_path / "old"
    shutil.copytree(setup["plain"], old)
    info = dict(open_dataset(old).info)
    del info["cameras"]  # as written before datasets recorded their cameras
    info["sample_fields"] = dict(layout.FIELD_FILES)
    atomic_write_json(old / "meta" / "info.json", layout.seal_info(info))
    for dataset in (both, old):
        relabel(dataset, setup["spec"], str(setup["prompts"]), progress=False)
        assert verify_dataset(dataset).ok
    # the same front frames get the same rewards, whatever other camera the dataset holds
    def reward_tars(dataset):
        return {name: data for name, data in reward_files(dataset).items() if name.endswith(".tar")}

    assert reward_tars(both) and reward_tars(both) == reward_tars(old) == reward_tars(setup["inline"])
