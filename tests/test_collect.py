"""collect: determinism, crash-safe resume under SIGKILL, bad input, inline rewards, in-process policies."""

import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamp_cli.data import main as lamp_data_cli
from lamp_data import schema
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect, episode_seeds
from lamp_data.pipeline.executors import ExecutorConfig
from lamp_data.store import dataset_card, iter_episodes, open_dataset, verify_dataset

TINY = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5))
LAMP_DATA = str(Path(sys.executable).with_name("lamp-data"))


def episode_bytes(folder: Path) -> dict[str, dict[str, bytes]]:
    """Every episode's raw sample files (key -> file extension -> bytes), over all committed shards."""
    episodes: dict[str, dict[str, bytes]] = {}
    for shard in open_dataset(folder).shards():
        with tarfile.open(shard.tar_path) as archive:
            for member in archive.getmembers():
                key, extension = member.name.split(".", 1)
                assert extension not in episodes.setdefault(key, {}), f"duplicate {member.name}"
                episodes[key][extension] = archive.extractfile(member).read()
    return episodes


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_episode_seeds_depend_only_on_dataset_seed_and_index():
    seed_a, rng_a = episode_seeds(7, 3)
    seed_b, rng_b = episode_seeds(7, 3)
    assert seed_a == seed_b and rng_a.random() == rng_b.random()
    assert len({episode_seeds(7, i)[0] for i in range(50)} | {episode_seeds(8, 0)[0]}) == 51


def test_content_independent_of_workers_shards_and_extension(tmp_path):
    one = tmp_path / "one"
    collect(one, CollectConfig(episodes=7, shard_episodes=3, policy="noisy-expert", seed=2, **TINY), progress=False)
    other = tmp_path / "other"
    two_workers = ExecutorConfig(workers=2)
    collect(other, CollectConfig(episodes=4, shard_episodes=2, policy="noisy-expert", seed=2, **TINY), progress=False,
            executor=two_workers)
    summary = collect(other, CollectConfig(episodes=7, shard_episodes=2, policy="noisy-expert", seed=2, **TINY), progress=False,
                      executor=two_workers)
    assert summary.episodes_written == 3 and summary.episodes_total == 7 and summary.shards_written == 2
    assert [s.name for s in open_dataset(other).shards()] == [
        "collect-00000000", "collect-00000002", "collect-00000004", "collect-00000006"
    ]
    assert episode_bytes(one) == episode_bytes(other)
    again = collect(other, CollectConfig(episodes=7, shard_episodes=5, policy="noisy-expert", seed=2, **TINY), progress=False)
    assert again.episodes_written == 0 and again.episodes_total == 7
    different = tmp_path / "different"
    collect(different, CollectConfig(episodes=2, policy="noisy-expert", seed=3, **TINY), progress=False)
    assert episode_bytes(different)["ep00000001"]["image.npy.gz"] != episode_bytes(one)["ep00000001"]["image.npy.gz"]


def _wait_for_first_write(folder: Path, process: subprocess.Popen, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        shards = folder / "shards"
        if shards.is_dir() and any(shards.iterdir()):
            return
        time.sleep(0.01)


def test_sigkill_at_random_moments_then_resume_is_exact(tmp_path):
    """Kill the whole process group of `lamp-data collect --workers 2` mid-write, resume, compare."""
    args = ["--env", "dummy", "--episodes", "24", "--shard-episodes", "3", "--episode-length", "200",
            "--image-size", "64", "--seed", "3", "--policy", "noisy-expert"]
    reference = tmp_path / "reference"
    collect(reference, CollectConfig(env="dummy", episodes=24, shard_episodes=3, seed=3, policy="noisy-expert", env_config=EnvConfig(episode_length=200, image_size=64)), progress=False)
    expected = episode_bytes(reference)
    chooser = random.Random(1234)
    killed_with_leftovers = 0
    for trial in range(3):
        out = tmp_path / f"trial{trial}"
        for attempt in range(2 if trial == 0 else 1):  # trial 0 also kills the first resume
            process = subprocess.Popen(
                [LAMP_DATA, "collect", *args, "--out", str(out), "--workers", "2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            _wait_for_first_write(out, process)
            time.sleep(chooser.uniform(0.0, 0.8))
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            leftovers = [p for p in (out / "shards").iterdir() if p.name.startswith(".") or not p.with_suffix(".json").exists()]
            killed_with_leftovers += bool(leftovers)
        partial = episode_bytes(out)
        assert all(expected[key] == files for key, files in partial.items())
        workers = 1 + trial % 2
        result = subprocess.run([LAMP_DATA, "collect", *args, "--out", str(out), "--workers", str(workers)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"24 episodes ({24 - len(partial)} new in" in " ".join(result.stdout.split())
        verified = subprocess.run([LAMP_DATA, "verify", str(out)], capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "24 episodes" in verified.stdout and "warning" not in verified.stderr
        resumed = episode_bytes(out)
        assert sorted(resumed) == [f"ep{i:08d}" for i in range(24)]
        assert resumed == expected
        assert not [p for p in (out / "shards").iterdir() if p.name.startswith(".")]
    assert killed_with_leftovers >= 1, "no kill landed mid-write; the test did not exercise recovery"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--env", "no-such-env"], "unknown env 'no-such-env'"),
        (["--episodes", "-3"], "episodes must be at least 1"),
        (["--workers", "0"], "workers must be at least 1"),
        (["--shard-episodes", "-1"], "shard episodes must be at least 1"),
        (["--policy", "psychic"], "unknown policy 'psychic'"),
        (["--seed", "4"], "different seed: 0 in the dataset, 4 asked"),
        (["--image-size", "32"], r"different env config: image size 16 in the dataset, 32 asked \(--image-size\); leave"),
        (["--policy", "expert"], "run 'collect' in .* was recorded with"),
        (["--cameras", "front,wrist"], "different env config: cameras front in the dataset, front,wrist asked"),
        (["--goal-marker"], "different env config: goal marker false in the dataset, true asked"),
        (["--canonical"], r"different env config: randomization differs in camera jitter, .* \(--canonical/--randomized\)"),
        (["--cameras", "front,top"], "unknown camera 'top' \\(known: front, wrist\\)"),
        (["--cameras", "wrist"], "the front camera must be among the cameras"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, extra, message):
    out = tmp_path / "data"
    base = ["collect", "--env", "dummy", "--episodes", "2", "--episode-length", "5", "--image-size", "16",
            "--shard-episodes", "1", "--out", str(out)]
    assert CliRunner().invoke(lamp_data_cli, base).exit_code == 0
    (out / "shards" / ".collect-00000009.tar.abc.tmp").write_bytes(b"left by a crash")
    before = tree(out)
    result = CliRunner().invoke(lamp_data_cli, base + extra)  # the last value of an option wins
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert re.search(message, lines[0])
    if "different" in message:  # names the fields that differ, dumps no configs
        assert len(lines[0].replace(str(out), "")) < 250
    assert tree(out) == before


def test_unusable_output_paths_are_refused(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a dataset")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    cases = [(a_file, "is a file"), (a_file / "sub", "is a file"), (stranger, "not a dataset"),
             (Path("/proc/lamp-dataset"), "cannot")]
    for out, message in cases:
        with pytest.raises(LampError, match=message):
            collect(out, CollectConfig(episodes=1, **TINY), progress=False)
    assert a_file.read_text() == "not a dataset" and [p.name for p in stranger.iterdir()] == ["notes.txt"]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(LampError, match="permission denied"):
            collect(locked / "data", CollectConfig(episodes=1, **TINY), progress=False)


def test_verify_and_info_cli_exit_codes(tmp_path):
    out = tmp_path / "data"
    collect(out, CollectConfig(episodes=3, shard_episodes=2, **TINY), progress=False)
    runner = CliRunner()
    ok = runner.invoke(lamp_data_cli, ["verify", str(out)])
    assert ok.exit_code == 0 and "2 shards, 3 episodes" in ok.output
    card = json.loads(runner.invoke(lamp_data_cli, ["info", str(out), "--json"]).output)
    assert card["episodes"] == 3 and card["steps"] == 15 and card["env"] == "dummy"
    assert "3 in 2 shards" in runner.invoke(lamp_data_cli, ["info", str(out)]).output
    shard = out / "shards" / "collect-00000002.tar"
    shard.write_bytes(shard.read_bytes()[:-1024])
    bad = runner.invoke(lamp_data_cli, ["verify", str(out)])
    assert bad.exit_code == 1 and "BAD shards/collect-00000002.tar" in bad.output
    missing = runner.invoke(lamp_data_cli, ["verify", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and missing.output.startswith("Error: ")


class ChannelScorer:
    """A tiny real scorer: per prompt, mean intensity of one colour channel, relative to frame 0."""

    def __init__(self, prompts):
        self.prompts = list(prompts)
        self.fingerprint = "channels-" + str(len(self.prompts))
        self.info = {"model": {"family": "channels"}, "prompt_set": "test"}

    def score(self, frames):
        means = frames.astype(np.float32).mean(axis=(1, 2)) / 255.0
        columns = [means[:, index % 3] - means[0, index % 3] for index in range(len(self.prompts))]
        return np.stack(columns, axis=1).astype(np.float16)


class ChannelScorerFactory:
    """Picklable zero-argument factory, as worker processes need."""

    def __call__(self):
        return ChannelScorer(["reach the red block", "push the red block", "make it green"])


def test_inline_rewards_written_per_shard_and_filled_on_resume(tmp_path):
    out = tmp_path / "data"
    config = CollectConfig(episodes=5, shard_episodes=2, prompts="test", **TINY)
    summary = collect(out, config, scorer_factory=ChannelScorerFactory(), progress=False, executor=ExecutorConfig(workers=2))
    assert summary.reward_shards_written == 3
    dataset = open_dataset(out)
    assert dataset.reward_sets() == ["channels-3"] and len(dataset.prompts()) == 3
    assert dataset.info["prompt_set"]["count"] == 3 and dataset.info["prompt_set"]["name"] == "test"
    scorer = ChannelScorerFactory()()
    for episode in iter_episodes(out, reward_set="channels-3"):
        assert np.array_equal(episode[schema.VLM_REWARD], scorer.score(episode[schema.IMAGE]))
    removed = out / "rewards" / "channels-3" / "collect-00000002.json"
    stored = removed.with_suffix(".tar").read_bytes()
    removed.unlink()
    resumed = collect(out, CollectConfig(episodes=6, shard_episodes=2, prompts="test", **TINY),
                      scorer_factory=ChannelScorerFactory(), progress=False)
    assert resumed.reward_shards_written == 1 and resumed.episodes_written == 1
    assert resumed.rederived == ("rewards/channels-3/collect-00000002.tar",)  # complete: sidecar re-derived
    assert removed.with_suffix(".tar").read_bytes() == stored
    assert verify_dataset(out).ok
    assert len(list(iter_episodes(out, reward_set="channels-3"))) == 6
    card = dataset_card(out)
    assert card["reward_sets"][0]["complete"] and card["prompt_set"]["count"] == 3


class TowardsOrigin:
    """An in-process policy with state, like an agent: moves to the centre, counts resets."""

    def __init__(self):
        self.resets = 0

    def reset(self, info):
        assert "task" in info
        self.resets += 1

    def __call__(self, obs):
        action = np.zeros(4, np.float32)
        action[:2] = np.clip(-obs["state"][:2], -1, 1)
        return action


def test_in_process_policy_extends_dataset_under_its_own_run(tmp_path):
    out = tmp_path / "data"
    collect(out, CollectConfig(episodes=3, shard_episodes=2, **TINY), progress=False)
    policy = TowardsOrigin()
    config = CollectConfig(episodes=5, shard_episodes=2, run="agent", policy="agent-v1", **TINY)
    summary = collect(out, config, policy=policy, progress=False)
    assert summary.episodes_written == 2 and policy.resets == 2
    episodes = {e["__key__"]: e for e in iter_episodes(out)}
    assert sorted(episodes) == [f"ep{i:08d}" for i in range(5)]
    assert episodes["ep00000004"]["__shard__"] == "agent-00000004" and episodes["ep00000004"]["meta"]["policy"] == "agent-v1"
    assert np.allclose(episodes["ep00000004"][schema.ACTION][0, :2], np.clip(-episodes["ep00000004"][schema.STATE][0, :2], -1, 1))
    assert open_dataset(out).info["runs"]["agent"] == {"policy": "agent-v1", "custom_policy": True}
    with pytest.raises(LampError, match="workers=1"):
        collect(out, CollectConfig(episodes=6, run="agent", policy="agent-v1", **TINY), policy=policy, progress=False,
                executor=ExecutorConfig(workers=2))
    with pytest.raises(LampError, match="another run name"):
        collect(out, CollectConfig(episodes=6, run="agent", policy="expert", **TINY), progress=False)
    assert verify_dataset(out).ok and dataset_card(out)["runs"]["agent"]["episodes"] == 2


def test_collects_on_the_embedded_simulator(tmp_path):
    out = tmp_path / "mw"
    config = CollectConfig(env="mw-pretrain", episodes=2, policy="noisy-expert", seed=1, env_config=EnvConfig(episode_length=8, image_size=32))
    summary = collect(out, config, progress=False)
    assert summary.episodes_total == 2 and summary.steps == 16
    episodes = list(iter_episodes(out))
    assert episodes[0][schema.IMAGE].shape == (9, 32, 32, 3) and episodes[0][schema.ACTION].shape == (8, 4)
    assert all(e["meta"]["task"] in open_dataset(out).info["task_split"]["pretrain"] for e in episodes)
    assert episodes[0][schema.IMAGE].std() > 0 and verify_dataset(out).ok


def test_goal_marker_is_recorded_and_kept_when_extending(tmp_path):
    out = tmp_path / "reach"
    runner = CliRunner()
    options = ["--env", "mw-reach", "--episode-length", "4", "--image-size", "32", "--policy", "expert"]
    assert runner.invoke(lamp_data_cli, ["collect", *options, "--goal-marker", "--episodes", "1", "--out", str(out)]).exit_code == 0
    extended = runner.invoke(lamp_data_cli, ["collect", "--episodes", "2", "--out", str(out)])
    assert extended.exit_code == 0, extended.output
    info = open_dataset(out).info
    assert info["env"]["config"]["goal_marker"] is True and info["env"]["spec"]["config"]["goal_marker"] is True
    plain = tmp_path / "plain"
    assert runner.invoke(lamp_data_cli, ["collect", *options, "--episodes", "2", "--out", str(plain)]).exit_code == 0
    assert "goal_marker" not in open_dataset(plain).info["env"]["config"]
    assert "goal marker)" in runner.invoke(lamp_data_cli, ["info", str(out)]).output
    assert "goal marker" not in runner.invoke(lamp_data_cli, ["info", str(plain)]).output
    marked, unmarked = list(iter_episodes(out)), list(iter_episodes(plain))
    for with_marker, without in zip(marked, unmarked):
        np.testing.assert_array_equal(with_marker[schema.STATE], without[schema.STATE])
        assert not np.array_equal(with_marker[schema.IMAGE], without[schema.IMAGE])


def test_unknown_env_suggests_close_names(tmp_path):
    result = CliRunner().invoke(lamp_data_cli, ["collect", "--env", "pick-place", "--episodes", "1", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "unknown env 'pick-place'; did you mean mw-pick-place" in result.output
    assert not (tmp_path / "d").exists()


def test_resuming_takes_the_options_the_dataset_was_made_with(tmp_path):
    options = ["--env", "dummy", "--image-size", "16", "--episode-length", "4", "--action-repeat", "2", "--canonical",
               "--seed", "7", "--shard-episodes", "3", "--policy", "noisy-expert", "--noise", "0.5"]
    out = tmp_path / "data"
    runner = CliRunner()
    assert runner.invoke(lamp_data_cli, ["collect", *options, "--episodes", "2", "--out", str(out)]).exit_code == 0
    extended = runner.invoke(lamp_data_cli, ["collect", "--episodes", "5", "--out", str(out)])
    assert extended.exit_code == 0, extended.output
    assert "5 episodes (3 new" in " ".join(extended.output.split())
    reference = tmp_path / "reference"
    assert runner.invoke(lamp_data_cli, ["collect", *options, "--episodes", "5", "--out", str(reference)]).exit_code == 0
    assert episode_bytes(out) == episode_bytes(reference)
    # shards of 3 episodes: the resumed block 0 holds episode 2, the next block starts at 3
    assert [shard.name for shard in open_dataset(out).shards()] == ["collect-00000000", "collect-00000002", "collect-00000003"]
    assert open_dataset(out).info["runs"]["collect"] == {"policy": "noisy-expert", "noise": 0.5}
    # an option given explicitly still has to agree with the dataset
    conflicting = runner.invoke(lamp_data_cli, ["collect", "--episodes", "6", "--out", str(out), "--image-size", "32"])
    assert conflicting.exit_code == 2 and "different env config" in conflicting.output
    # a new dataset still gets the defaults
    fresh = runner.invoke(lamp_data_cli, ["collect", "--env", "dummy", "--episodes", "1", "--out", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0, fresh.output
    assert dataset_card(tmp_path / "fresh")["image_size"] == EnvConfig().image_size


def test_info_names_the_prompt_set_and_splits_the_size(tmp_path):
    from lamp_data.store import RewardSetWriter

    out = tmp_path / "lamp[r3m-abc]"
    collect(out, CollectConfig(episodes=3, shard_episodes=2, **TINY), progress=False)
    prompts = ["reach the red block", "push the red block"]
    info = {"prompt_set": {"hash": "0f", "count": 2}, "provenance": {"prompt_set_name": "lamp-metaworld"}}
    writer = RewardSetWriter(out, "r3m-abc", info, prompts)
    for shard in open_dataset(out).shards():
        writer.write_shard(shard.name, {
            episode["__key__"]: np.zeros((len(episode[schema.IMAGE]), 2), np.float16)
            for episode in iter_episodes(out, shards=[shard.name])
        })
    card = dataset_card(out)
    reward_bytes = card["reward_sets"][0]["bytes"]
    printed = " ".join(CliRunner().invoke(lamp_data_cli, ["info", str(out)], env={"COLUMNS": "200"}).output.split())
    assert "prompt set │ lamp-metaworld (2 prompts)" in printed
    assert f"frames and episodes {(card['bytes'] - reward_bytes) / 1e3:.1f} kB" in printed
    assert f"rewards {reward_bytes / 1e3:.1f} kB" in printed
    assert str(out) in printed


def test_two_cameras_store_both_views_and_resume_with_them(tmp_path):
    out = tmp_path / "data"
    base = ["collect", "--env", "dummy", "--episodes", "2", "--episode-length", "5", "--image-size", "16", "--out", str(out)]
    result = CliRunner().invoke(lamp_data_cli, base + ["--cameras", "front,wrist", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(lamp_data_cli, base[:4] + ["3"] + base[5:]).exit_code == 0  # resumes with both cameras
    info = open_dataset(out).info
    assert info["cameras"] == ["front", "wrist"] and info["sample_fields"]["image_wrist"] == "image_wrist.npy.gz"
    episodes = list(iter_episodes(out))
    assert len(episodes) == 3
    for episode in episodes:
        assert episode[schema.IMAGE_WRIST].shape == episode[schema.IMAGE].shape == (6, 16, 16, 3)
        assert not np.array_equal(episode[schema.IMAGE_WRIST], episode[schema.IMAGE])
    verify = CliRunner().invoke(lamp_data_cli, ["verify", str(out)])
    assert verify.exit_code == 0 and "3 episodes" in verify.output
    assert re.search(r"cameras\s+.\s+front, wrist", CliRunner().invoke(lamp_data_cli, ["info", str(out)]).output)
    assert dataset_card(out)["cameras"] == ["front", "wrist"]
    readme = (out / "README.md").read_text()
    assert "image_wrist.npy.gz" in readme and "from the front and wrist cameras" in readme

    # the front camera's frames are those of a front-only dataset of the same seed, byte for byte
    plain = tmp_path / "plain"
    collect(plain, CollectConfig(episodes=3, seed=1, **TINY), progress=False)
    assert open_dataset(plain).info["cameras"] == ["front"]
    both, front = episode_bytes(out), episode_bytes(plain)
    for key in front:
        assert set(both[key]) - set(front[key]) == {"image_wrist.npy.gz"}
        assert both[key]["image.npy.gz"] == front[key]["image.npy.gz"]

    # an episode that lost its wrist view is damaged in a dataset that records one
    shard = open_dataset(out).shards()[0]
    with tarfile.open(shard.tar_path) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers() if "image_wrist" not in m.name]
    with tarfile.open(shard.tar_path, "w") as archive:
        for member, data in members:
            archive.addfile(member, io.BytesIO(data))
    sidecar_path = shard.tar_path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["sha256"], sidecar["bytes"] = hashlib.sha256(shard.tar_path.read_bytes()).hexdigest(), shard.tar_path.stat().st_size
    sidecar_path.write_text(json.dumps(sidecar))
    report = verify_dataset(out)
    assert not report.ok and "missing fields ['image_wrist']" in report.problems[0][1]


def test_datasets_made_before_cameras_were_recorded_still_read_verify_and_resume(tmp_path):
    from lamp_data.atomic import atomic_write_json
    from lamp_data.store import layout

    out = tmp_path / "data"
    collect(out, CollectConfig(episodes=2, shard_episodes=1, **TINY), progress=False)
    info = dict(open_dataset(out).info)
    del info["cameras"]
    info["sample_fields"] = dict(layout.FIELD_FILES)
    atomic_write_json(out / "meta" / "info.json", layout.seal_info(info))
    assert verify_dataset(out).ok and dataset_card(out)["cameras"] == ["front"]
    assert [set(episode) & {"image", "image_wrist"} for episode in iter_episodes(out)] == [{"image"}, {"image"}]
    summary = collect(out, CollectConfig(episodes=3, shard_episodes=1, **TINY), progress=False)
    assert summary.episodes_written == 1 and verify_dataset(out).ok
    with pytest.raises(LampError, match="different env config"):
        collect(out, CollectConfig(episodes=4, shard_episodes=1, env="dummy", env_config=EnvConfig(image_size=16, episode_length=5, cameras="front,wrist")), progress=False)


PINNED_EPISODES = [
    # (config, skip rendered images, sha256[:16] of each episode's sample files), recorded before the
    # data wing's episode loop was rewritten: the same seed must keep giving the same bytes.
    (dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5), episodes=3, policy="noisy-expert", seed=2), False,
     {"ep00000000": "08aaeab6f6d41164", "ep00000001": "bfd5b38ea4ac276c", "ep00000002": "98e5b930dd3debee"}),
    (dict(env_config=EnvConfig(image_size=32, episode_length=12, cameras=("front", "wrist")), episodes=3, policy="noisy-expert", seed=5), True,
     {"ep00000000": "2eaad1716932e08c", "ep00000001": "d0d562fb440286be", "ep00000002": "7871fed1df241566"}),
    (dict(env_config=EnvConfig(image_size=32, episode_length=12), episodes=2, policy="random", seed=6), True,
     {"ep00000000": "3f72e028c8131bcd", "ep00000001": "264ee4bb2e4ef752"}),
]


@pytest.mark.parametrize("options, skip_images, pinned", PINNED_EPISODES, ids=["dummy", "metaworld-two-cameras", "metaworld-random"])
def test_episodes_match_hashes_pinned_before_the_episode_loop_was_rewritten(tmp_path, options, skip_images, pinned):
    # Meta-World frames come from the system's OpenGL rasteriser, so their bytes are pinned only for the
    # dummy env (rendered in numpy); every other array and the metadata are pinned for both.
    collect(tmp_path, CollectConfig(**options), progress=False)
    digests = {}
    for key, files in sorted(episode_bytes(tmp_path).items()):
        digest = hashlib.sha256()
        for extension in sorted(files):
            if not (skip_images and extension.startswith("image")):
                digest.update(extension.encode())
                digest.update(files[extension])
        digests[key] = digest.hexdigest()[:16]
    assert digests == pinned
