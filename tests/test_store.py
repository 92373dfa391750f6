"""The shard store: round trips, damage detection, reward sets, stock loaders."""

import json
import shutil
import subprocess
import sys
import tarfile
import warnings

import numpy as np
import pytest

from lamp_data import schema
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.store import (
    RewardSetWriter,
    dataset_card,
    index_episodes,
    iter_episodes,
    layout,
    open_dataset,
    verify_dataset,
    write_dataset_card,
)
from lamp_data.store.writer import recover_orphans, writer_lock

TINY = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Seven random-policy dummy episodes in shards of three (3 + 3 + 1)."""
    out = tmp_path_factory.mktemp("store") / "data"
    collect(out, CollectConfig(episodes=7, shard_episodes=3, seed=5, **TINY), progress=False)
    return out


@pytest.fixture
def copy_of(tiny_dataset, tmp_path):
    destination = tmp_path / "copy"
    shutil.copytree(tiny_dataset, destination)
    return destination


def test_round_trip_fields_and_layout(tiny_dataset):
    dataset = open_dataset(tiny_dataset)
    assert dataset.info["format_version"] == schema.DATASET_FORMAT_VERSION
    assert dataset.info["env"]["name"] == "dummy" and dataset.info["collection"]["seed"] == 5
    shards = dataset.shards()
    assert [s.name for s in shards] == ["collect-00000000", "collect-00000003", "collect-00000006"]
    assert [s.nsamples for s in shards] == [3, 3, 1] and sum(s.nsteps for s in shards) == 35
    episodes = list(iter_episodes(tiny_dataset))
    assert [e["__key__"] for e in episodes] == [f"ep{i:08d}" for i in range(7)]
    episode = episodes[4]
    assert episode["__shard__"] == "collect-00000003"
    assert episode[schema.IMAGE].dtype == np.uint8 and episode[schema.IMAGE].shape == (6, 16, 16, 3)
    assert episode[schema.ACTION].shape == (5, 4) and episode[schema.ACTION].dtype == np.float32
    assert episode[schema.STATE].shape == (6, 4) and episode[schema.REWARD].shape == (5,)
    assert episode[schema.IS_FIRST].tolist() == [True] + [False] * 5
    assert episode[schema.IS_LAST].tolist() == [False] * 5 + [True]
    assert not episode[schema.IS_TERMINAL].any() and not episode[schema.SUCCESS][0]
    meta = episode["meta"]
    assert meta["episode"] == 4 and meta["env"] == "dummy" and meta["policy"] == "random"
    assert meta["task"] in ("reach-dummy", "push-dummy") and meta["instruction"].endswith("red block")
    assert "background" in meta["randomization"] and isinstance(meta["seed"], int)
    assert verify_dataset(tiny_dataset).ok


def test_card_counts_from_sidecars(tiny_dataset):
    card = dataset_card(tiny_dataset)
    assert card["episodes"] == 7 and card["steps"] == 35 and card["shards"] == 3
    assert sum(card["tasks"].values()) == 7 and card["runs"]["collect"]["episodes"] == 7
    assert card["bytes"] == sum(s.bytes for s in open_dataset(tiny_dataset).shards())
    assert card["prompt_set"] is None and card["reward_sets"] == []


def test_unknown_format_version_and_non_dataset_are_refused(copy_of, tmp_path):
    info_path = copy_of / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(LampError, match="format_version 99"):
        open_dataset(copy_of)
    with pytest.raises(LampError, match="not a dataset"):
        open_dataset(tmp_path)
    with pytest.raises(LampError, match="does not exist"):
        list(iter_episodes(tmp_path / "missing"))


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_named_by_reader_and_verify(copy_of, damage):
    target = copy_of / "shards" / "collect-00000003.tar"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:5000])
    else:
        with tarfile.open(target) as archive:  # flip a byte inside the state array's data
            member = archive.getmember("ep00000004.state.npy")
        _flip_byte(target, member.offset_data + member.size - 3)
    report = verify_dataset(copy_of)
    assert not report.ok and [file for file, _ in report.problems] == ["shards/collect-00000003.tar"]
    with pytest.raises(LampError, match="collect-00000003.tar"):
        list(iter_episodes(copy_of))
    with pytest.warns(UserWarning, match="collect-00000003.tar"):
        keys = [e["__key__"] for e in iter_episodes(copy_of, on_error="skip")]
    assert keys == ["ep00000000", "ep00000001", "ep00000002", "ep00000006"]


def test_readers_ignore_interrupted_writes_and_verify_says_what_becomes_of_them(copy_of):
    sidecar_path = copy_of / "shards" / "collect-00000006.json"
    original = json.loads(sidecar_path.read_text())
    sidecar_path.unlink()
    (copy_of / "shards" / ".collect-00000009.tar.x1y2.tmp").write_bytes(b"partial")
    assert [s.name for s in open_dataset(copy_of).shards()] == ["collect-00000000", "collect-00000003"]
    assert len(list(iter_episodes(copy_of))) == 6
    report = verify_dataset(copy_of)
    assert not report.ok and report.episodes == 6
    assert report.problems == [("shards/collect-00000006.tar", report.problems[0][1])]
    assert "decodes completely" in report.problems[0][1] and "re-derives its sidecar" in report.problems[0][1]
    assert [file for file, _ in report.warnings] == ["shards/.collect-00000009.tar.x1y2.tmp"]
    with writer_lock(copy_of):
        recovery = recover_orphans(open_dataset(copy_of))
    assert recovery.rederived == ["shards/collect-00000006.tar"] and not recovery.quarantined
    rederived = json.loads(sidecar_path.read_text())
    assert rederived == original
    assert verify_dataset(copy_of).ok and len(list(iter_episodes(copy_of))) == 7


def _fake_rewards(dataset, shard, prompts):
    return {
        episode["__key__"]: np.stack(
            [episode[schema.IMAGE][..., c % 3].mean(axis=(1, 2)) / 255 for c in range(len(prompts))], axis=1
        ).astype(np.float16)
        for episode in iter_episodes(dataset, shards=[shard])
    }


def test_reward_set_round_trip_and_checks(copy_of):
    prompts = ["reach the red block", "push the red block", "open the door"]
    writer = RewardSetWriter(copy_of, "fake-0001", {"model": {"family": "fake"}}, prompts)
    dataset = open_dataset(copy_of)
    for shard in dataset.shards()[:2]:
        assert not writer.has_shard(shard.name)
        writer.write_shard(shard.name, _fake_rewards(dataset, shard.name, prompts))
        assert writer.has_shard(shard.name)
    assert dataset.reward_sets() == ["fake-0001"]
    assert dataset.reward_set_prompts("fake-0001") == prompts
    assert dataset.reward_set_info("fake-0001")["format_version"] == schema.REWARD_FORMAT_VERSION
    assert dataset.episode_count() == 7 and dataset.has_run("collect") and not dataset.has_run("agent-0")
    assert dataset.rewarded_shards("fake-0001") == ["collect-00000000", "collect-00000003"]
    assert dataset.longest_rewarded_episode("fake-0001") == 6  # 5 steps, 6 frames
    assert dataset.check_reward_set("fake-0001")["prompt_count"] == 3
    joined = list(iter_episodes(copy_of, reward_set="fake-0001", shards=["collect-00000000"]))
    expected = _fake_rewards(dataset, "collect-00000000", prompts)
    assert all(np.array_equal(e[schema.VLM_REWARD], expected[e["__key__"]]) for e in joined)
    assert joined[0][schema.VLM_REWARD].shape == (6, 3) and joined[0][schema.VLM_REWARD].dtype == np.float16
    with pytest.raises(LampError, match="no committed shard for data shard collect-00000006"):
        list(iter_episodes(copy_of, reward_set="fake-0001"))
    last = _fake_rewards(dataset, "collect-00000006", prompts)
    with pytest.raises(LampError, match="cover 0 episodes"):
        writer.write_shard("collect-00000006", {})
    with pytest.raises(LampError, match="shape"):
        writer.write_shard("collect-00000006", {k: v[:, :2] for k, v in last.items()})
    with pytest.raises(LampError, match="no committed data shard"):
        writer.write_shard("collect-00000099", last)
    with pytest.raises(LampError, match="different reward model"):
        RewardSetWriter(copy_of, "fake-0001", {"model": {"family": "other"}}, prompts)
    with pytest.raises(LampError, match="different prompts"):
        RewardSetWriter(copy_of, "fake-0001", {"model": {"family": "fake"}}, prompts[:2])
    RewardSetWriter(copy_of, "fake-0001", {"model": {"family": "fake"}}, prompts).write_shard("collect-00000006", last)
    assert len(list(iter_episodes(copy_of, reward_set="fake-0001"))) == 7
    assert verify_dataset(copy_of).ok
    card = dataset_card(copy_of)
    assert card["reward_sets"][0]["complete"] and card["reward_sets"][0]["shards"] == 3
    reward_tar = copy_of / "rewards" / "fake-0001" / "collect-00000003.tar"
    _flip_byte(reward_tar, 600)
    report = verify_dataset(copy_of)
    assert [file for file, _ in report.problems] == ["rewards/fake-0001/collect-00000003.tar"]
    with pytest.raises(LampError, match="rewards/fake-0001/collect-00000003.tar"):
        list(iter_episodes(copy_of, reward_set="fake-0001"))


def test_the_path_api_names_the_files_the_store_writes(copy_of, tmp_path):
    prompts = ["reach the red block", "push the red block"]
    RewardSetWriter(copy_of, "fake-0003", {"model": "fake"}, prompts).write_shard(
        "collect-00000000", _fake_rewards(open_dataset(copy_of), "collect-00000000", prompts)
    )
    assert layout.is_dataset(copy_of) and not layout.is_dataset(tmp_path)
    assert layout.info_path(copy_of) == copy_of / "meta" / "info.json" and layout.card_path(copy_of).is_file()
    assert layout.shard_path(copy_of, "collect-00000003").is_file()
    assert layout.sidecar_path(layout.shard_path(copy_of, "collect-00000003")).is_file()
    assert layout.reward_set_info_path(copy_of, "fake-0003").is_file()
    assert layout.read_prompts(layout.reward_set_prompts_path(copy_of, "fake-0003")) == prompts
    assert layout.reward_shard_path(copy_of, "fake-0003", "collect-00000000").is_file()
    assert layout.reward_set_location(layout.reward_dir(copy_of, "fake-0003")) == (copy_of, "fake-0003")
    assert layout.reward_set_location(copy_of) is None and layout.reward_set_location(layout.shards_dir(copy_of)) is None


def test_loads_with_stock_webdataset_and_hf_datasets(tiny_dataset):
    import webdataset as wds
    from datasets import load_dataset

    tars = sorted(str(p) for p in (tiny_dataset / "shards").glob("*.tar"))
    samples = list(wds.WebDataset(tars, shardshuffle=False).decode())
    assert [s["__key__"] for s in samples] == [f"ep{i:08d}" for i in range(7)]
    ours = {e["__key__"]: e for e in iter_episodes(tiny_dataset)}
    assert np.array_equal(samples[2]["image.npy.gz"], ours["ep00000002"][schema.IMAGE])
    assert samples[2]["meta.json"] == ours["ep00000002"]["meta"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = load_dataset("webdataset", data_files={"train": tars}, split="train", cache_dir=str(tiny_dataset.parent / "hf"))
    assert len(hf) == 7
    row = hf[3]
    assert np.array_equal(np.asarray(row["image.npy.gz"], np.uint8), ours["ep00000003"][schema.IMAGE])
    assert np.allclose(np.asarray(row["action.npy"], np.float32), ours["ep00000003"][schema.ACTION])
    assert row["meta.json"]["episode"] == 3


def _assert_same_episode(got, expected):
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            assert got[name].dtype == value.dtype and np.array_equal(got[name], value), name
        else:
            assert got[name] == value, name


def test_episode_index_reads_one_episode_by_position(tiny_dataset):
    episodes = index_episodes(tiny_dataset)
    stored = list(iter_episodes(tiny_dataset))
    assert len(episodes) == 7 and episodes.keys == [episode["__key__"] for episode in stored]
    for position in (4, 0, 6, 3, -1, -7):  # out of order, so shards are read again
        _assert_same_episode(episodes[position], stored[position])
    assert [episode["__key__"] for episode in episodes[5:]] == ["ep00000005", "ep00000006"]
    assert [episode["__key__"] for episode in episodes] == episodes.keys
    for position in (7, -8):
        with pytest.raises(IndexError, match="out of range"):
            episodes[position]
    assert episodes.find("ep00000005") == 5
    with pytest.raises(LampError, match="no episode ep00000009"):
        episodes.find("ep00000009")
    episodes[2][schema.IMAGE][:] = 0  # callers get copies: the cached shard stays intact
    _assert_same_episode(episodes[2], stored[2])
    assert len(index_episodes(tiny_dataset, shards=["collect-00000003"])) == 3


def _write_fake_reward_set(dataset_path, fingerprint, prompts):
    writer = RewardSetWriter(dataset_path, fingerprint, {"model": {"family": "fake"}}, prompts)
    dataset = open_dataset(dataset_path)
    for shard in dataset.shards():
        writer.write_shard(shard.name, _fake_rewards(dataset, shard.name, prompts))


def test_episode_index_joins_a_reward_set_and_names_damage(copy_of):
    _write_fake_reward_set(copy_of, "fake-0003", ["reach the red block", "open the door"])
    episodes = index_episodes(copy_of, reward_set="fake-0003")
    stored = list(iter_episodes(copy_of, reward_set="fake-0003"))
    assert episodes.reward_set == "fake-0003" and len(episodes) == len(stored) == 7
    _assert_same_episode(episodes[5], stored[5])
    with pytest.raises(LampError, match="no reward set 'fake-9999'"):
        index_episodes(copy_of, reward_set="fake-9999")
    _flip_byte(copy_of / "shards" / "collect-00000006.tar", 600)
    fresh = index_episodes(copy_of)
    assert fresh[0]["__key__"] == "ep00000000"
    with pytest.raises(LampError, match="collect-00000006.tar"):
        fresh[6]


def test_dataset_card_makes_the_folder_loadable_with_hf_datasets(copy_of, tmp_path):
    from datasets import concatenate_datasets, load_dataset

    prompts = ["reach the red block", "push the red block", "open the door"]
    _write_fake_reward_set(copy_of, "fake-0004", prompts)
    card = (copy_of / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: rewards-fake-0004" in card and "license: mit" in card
    cache = str(tmp_path / "hf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        episodes = load_dataset(str(copy_of), split="train", cache_dir=cache)
        rewards = load_dataset(str(copy_of), "rewards-fake-0004", split="train", cache_dir=cache)
    assert len(episodes) == 7 and episodes.features["image.npy.gz"].shape == (None, 16, 16, 3)
    ours = list(iter_episodes(copy_of, reward_set="fake-0004"))
    rows = episodes.with_format("numpy", dtype=None)
    for position in (0, 6):
        row, episode = rows[position], ours[position]
        assert row["__key__"] == episode["__key__"] and episodes[position]["meta.json"] == episode["meta"]
        for field, extension in layout.FIELD_FILES.items():
            if field != layout.META:
                assert row[extension].dtype == episode[field].dtype and np.array_equal(row[extension], episode[field]), field
    assert rewards["__key__"] == episodes["__key__"]
    joined = concatenate_datasets([episodes, rewards.remove_columns(["__key__", "__url__"])], axis=1)
    row = joined.with_format("numpy", dtype=None)[3]
    assert row["vlm_reward.npy"].dtype == np.float16 and np.array_equal(row["vlm_reward.npy"], ours[3][schema.VLM_REWARD])
    (copy_of / "README.md").unlink()  # a dataset from an older version gets its card back
    assert write_dataset_card(copy_of).read_text() == card


def test_a_two_camera_dataset_loads_with_hf_datasets(tmp_path):
    from datasets import load_dataset

    out = tmp_path / "data"
    collect(out, CollectConfig(episodes=2, seed=5, env="dummy", env_config=EnvConfig(image_size=16, episode_length=5, cameras=("front", "wrist"))), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        episodes = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert episodes.features["image_wrist.npy.gz"].shape == (None, 16, 16, 3)
    row, episode = episodes.with_format("numpy", dtype=None)[1], list(iter_episodes(out))[1]
    assert np.array_equal(row["image_wrist.npy.gz"], episode[schema.IMAGE_WRIST])
    assert np.array_equal(row["image.npy.gz"], episode[schema.IMAGE])


def test_the_store_imports_no_torch():
    code = (
        "import importlib, pkgutil, sys\n"
        "import lamp_data.store\n"
        "names = [module.name for module in pkgutil.iter_modules(lamp_data.store.__path__, 'lamp_data.store.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names), 'torch' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(output[0]) >= 5 and output[1] == "False"


def test_the_store_modules_import_each_other_without_a_loop():
    import ast
    import graphlib
    from pathlib import Path

    import lamp_data.store

    folder = Path(lamp_data.store.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lamp_data.store"):
                parts = node.module.split(".")
                names = [parts[2]] if len(parts) > 2 else [alias.name for alias in node.names]
                imported.update(name for name in names if (folder / f"{name}.py").is_file())
        graph[path.stem] = imported - {path.stem}
    graph.pop("__init__")
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a loop
    assert order.index("layout") < order.index("reader") < order.index("card") < order.index("writer") < order.index("verify")
