"""Export to and import from Minari, robomimic's HDF5 and LeRobot v3: each read with its own
tools (minari's API, h5py, the LeRobot v3 layout with pyarrow, pandas and PyAV), round trips that
keep every byte (video within codec loss), sources written by others, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamp_cli.data import main
from lamp_data import schema
from lamp_data.display.view import view_episode
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError, MissingExtraError
from lamp_data.formats import FORMATS, ExportOptions, export_dataset, import_dataset
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.pipeline.relabel import relabel
from lamp_data.rewards.vlm.scoring import make_scorer
from lamp_data.store import RewardSetWriter, iter_episodes, open_dataset, verify_dataset

FINGERPRINT = "fake-0001"
OTHER_PROMPTS = ["open the door", "pick up the cup"]
LOSSLESS = {"lerobot": ExportOptions(video=False)}
"""Options that make each format lossless (LeRobot: PNG images instead of mp4)."""
LAMP_DATA = str(Path(sys.executable).with_name("lamp-data"))


def files(folder: Path) -> dict[str, bytes]:
    """Every shard and reward file of a dataset (the parts an import must give back byte for byte)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.parts[len(folder.parts)] in ("shards", "rewards")
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Five 5-step dummy episodes at 32 px from two cameras, in three shards, with a reward set."""
    out = tmp_path_factory.mktemp("formats") / "data"
    collect(out, CollectConfig(env="dummy", episodes=5, shard_episodes=2, seed=4, env_config=EnvConfig(image_size=32, episode_length=5, cameras=("front", "wrist"))), progress=False)
    instructions = sorted({episode["meta"]["instruction"] for episode in iter_episodes(out)})
    prompts = instructions + OTHER_PROMPTS
    writer = RewardSetWriter(out, FINGERPRINT, {"model": {"family": "fake"}, "model_spec": "fake"}, prompts)
    rng = np.random.default_rng(0)
    for shard in open_dataset(out).shards():
        writer.write_shard(shard.name, {
            episode["__key__"]: rng.normal(size=(len(episode[schema.IMAGE]), len(prompts)))
            for episode in iter_episodes(out, shards=[shard.name])
        })
    return out


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> tuple[str, Path]:
    """A tiny R3M-style reward model (spec) and a prompt file, to relabel imported datasets with."""
    from tiny_models import save_tiny_distilbert, save_tiny_r3m

    folder = tmp_path_factory.mktemp("model")
    model = save_tiny_r3m(folder / "r3m.pt", image_size=32, text_encoder=str(save_tiny_distilbert(folder / "bert")))
    prompts = folder / "prompts.txt"
    prompts.write_text("\n".join(["push the red block", *OTHER_PROMPTS]) + "\n")
    return f"r3m:{model}", prompts


def columns_of(dataset: Path, prompts: list[str]) -> dict[str, np.ndarray]:
    """Episode key -> float32 [T+1, len(prompts)] of the reward set's columns for ``prompts``."""
    available = open_dataset(dataset).reward_set_prompts(FINGERPRINT)
    return {
        episode["__key__"]: episode[schema.VLM_REWARD][:, [available.index(p) for p in prompts]].astype(np.float32)
        for episode in iter_episodes(dataset, reward_set=FINGERPRINT)
    }


@pytest.mark.parametrize("format_name", FORMATS.names())
def test_round_trip_gives_back_every_shard_and_reward_byte_and_relabels(dataset, reward_model, tmp_path, format_name):
    out = tmp_path / ("export.hdf5" if format_name == "hdf5" else "export")
    summary = export_dataset(dataset, out, format_name, reward_sets=[FINGERPRINT], all_prompts=True, own_instruction=True,
                             options=LOSSLESS.get(format_name, ExportOptions()), progress=False)
    prompts = open_dataset(dataset).reward_set_prompts(FINGERPRINT)
    assert (summary.episodes, summary.steps) == (5, 25)
    assert summary.columns == tuple(f"{FINGERPRINT}: {p}" for p in prompts) + (f"{FINGERPRINT}: own instruction",)
    assert summary.checks and "read back with" in summary.checks[0]
    back = tmp_path / "back"
    imported = import_dataset(out, back, format_name, progress=False)
    assert imported.lamp_export and imported.reward_sets == (FINGERPRINT,) and imported.shards == 3
    assert "own instruction" in imported.notes[0]
    assert files(back) == files(dataset)
    assert verify_dataset(back).ok
    assert open_dataset(back).info["imported"]["format"] == format_name
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
    spec, prompt_file = reward_model
    relabelled = relabel(back, spec, str(prompt_file), progress=False)
    scorer = make_scorer(spec, str(prompt_file))
    for original, episode in zip(iter_episodes(dataset), iter_episodes(back, reward_set=relabelled.fingerprint)):
        assert np.array_equal(episode[schema.VLM_REWARD], scorer.score(original[schema.IMAGE]))  # the same frames, the same rewards


def test_minari_export_loads_with_minaris_own_api(dataset, tmp_path, monkeypatch):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    prompts = OTHER_PROMPTS[:1]
    result = CliRunner().invoke(main, ["export", str(dataset), "--format", "minari", "--out", str(tmp_path / "minari" / "lamp" / "tiny-v0"),
                                       "--reward-set", FINGERPRINT, "--prompt", prompts[0], "--own-instruction"])
    assert result.exit_code == 0, result.output
    assert "read back with minari" in result.output and "(id lamp/tiny-v0)" in result.output
    loaded = minari.load_dataset("lamp/tiny-v0")
    assert (loaded.total_episodes, loaded.total_steps, loaded.spec.dataset_id) == (5, 25, "lamp/tiny-v0")
    columns = loaded.storage.metadata["lamp"]["reward_columns"]
    assert [column["prompt"] for column in columns] == [prompts[0], None]
    expected = columns_of(dataset, prompts)
    for stored, episode in zip(iter_episodes(dataset, reward_set=FINGERPRINT), loaded.iterate_episodes()):
        assert np.array_equal(episode.observations["image"], stored[schema.IMAGE])
        assert np.array_equal(episode.observations["image_wrist"], stored[schema.IMAGE_WRIST])
        assert np.array_equal(episode.observations["state"], stored[schema.STATE])
        assert np.array_equal(episode.actions, stored[schema.ACTION]) and np.array_equal(episode.rewards, stored[schema.REWARD])
        assert episode.truncations[-1] and not episode.terminations.any()
        assert np.array_equal(episode.infos["success"], stored[schema.SUCCESS])
        own = stored[schema.VLM_REWARD][:, open_dataset(dataset).reward_set_prompts(FINGERPRINT).index(stored["meta"]["instruction"])]
        assert np.array_equal(episode.infos["vlm_reward"], np.stack([expected[stored["__key__"]][:, 0], own], axis=1))
    back = import_dataset("lamp/tiny-v0", tmp_path / "back", "minari", progress=False)  # by id, from the local cache
    assert back.reward_sets[0].startswith("imported-") and verify_dataset(back.out).ok
    imported = open_dataset(back.out).reward_set_prompts(back.reward_sets[0])
    assert imported == prompts and same(columns_of_set(back.out, back.reward_sets[0]), {k: v[:, :1] for k, v in expected.items()})


def columns_of_set(dataset: Path, fingerprint: str) -> dict[str, np.ndarray]:
    return {e["__key__"]: e[schema.VLM_REWARD].astype(np.float32) for e in iter_episodes(dataset, reward_set=fingerprint)}


def same(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> bool:
    return first.keys() == second.keys() and all(np.array_equal(first[key], second[key]) for key in first)


def test_hdf5_export_reads_as_robomimics_layout_with_h5py(dataset, tmp_path):
    import h5py

    out = tmp_path / "tiny.hdf5"
    export_dataset(dataset, out, "hdf5", reward_sets=[FINGERPRINT], prompts=OTHER_PROMPTS, progress=False)
    expected = columns_of(dataset, OTHER_PROMPTS)
    with h5py.File(out, "r") as handle:
        data = handle["data"]
        assert data.attrs["total"] == 25 and json.loads(data.attrs["env_args"])["env_name"] == "dummy"
        assert sorted(data) == [f"demo_{i}" for i in range(5)]
        for index, stored in enumerate(iter_episodes(dataset)):
            demo = data[f"demo_{index}"]
            assert demo.attrs["num_samples"] == 5
            assert np.array_equal(demo["obs/front_image"], stored[schema.IMAGE][:-1])
            assert np.array_equal(demo["next_obs/front_image"], stored[schema.IMAGE][1:])
            assert np.array_equal(demo["obs/wrist_image"], stored[schema.IMAGE_WRIST][:-1])
            assert np.array_equal(demo["obs/state"], stored[schema.STATE][:-1])
            assert np.array_equal(demo["actions"], stored[schema.ACTION]) and np.array_equal(demo["rewards"], stored[schema.REWARD])
            assert list(demo["dones"]) == [0, 0, 0, 0, 1]
            assert np.array_equal(demo["success"], stored[schema.SUCCESS][1:])
            vlm = demo["vlm_rewards"]
            assert json.loads(vlm.attrs["columns"]) == [f"{FINGERPRINT}: {p}" for p in OTHER_PROMPTS]
            assert np.array_equal(vlm[()], expected[stored["__key__"]][1:]) and np.array_equal(vlm.attrs["initial"], expected[stored["__key__"]][0])
            assert json.loads(demo.attrs["lamp"])["meta"] == stored["meta"]
    back = import_dataset(out, tmp_path / "back", "hdf5", progress=False)
    assert back.reward_sets[0].startswith("imported-") and verify_dataset(back.out).ok
    assert {k: v for k, v in files(back.out).items() if k.startswith("shards/")} == {k: v for k, v in files(dataset).items() if k.startswith("shards/")}


def test_lerobot_export_reads_as_the_v3_spec_says_and_comes_back_within_codec_loss(dataset, reward_model, tmp_path):
    import av
    import pandas as pd
    import pyarrow.parquet as pq

    out = tmp_path / "lerobot"
    summary = export_dataset(dataset, out, "lerobot", reward_sets=[FINGERPRINT], prompts=OTHER_PROMPTS, progress=False)
    assert any("lerobot" in check for check in summary.checks)
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 15
    instructions = {episode["meta"]["instruction"] for episode in iter_episodes(dataset)}
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 30, len(instructions))
    assert info["splits"] == {"train": "0:5"}
    features = info["features"]
    for camera in ("front", "wrist"):
        video = features[f"observation.images.{camera}"]
        assert video["dtype"] == "video" and video["shape"] == [32, 32, 3] and video["names"] == ["height", "width", "channels"]
        assert video["info"]["video.codec"] == "h264" and video["info"]["video.pix_fmt"] == "yuv420p"
    assert features["observation.state"] == {"dtype": "float32", "shape": [4], "names": None}
    assert features["vlm_reward"]["names"] == [f"{FINGERPRINT}: {p}" for p in OTHER_PROMPTS]
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index", "action", "next.reward", "next.done"):
        assert name in features
    data = pq.read_table(out / info["data_path"].format(chunk_index=0, file_index=0))
    assert sorted(data.column_names) == sorted(name for name, f in features.items() if f["dtype"] != "video")
    assert data.num_rows == 30 and data.schema.field("action").type.list_size == 4
    rows = data.to_pydict()
    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    stats = json.loads((out / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1) and stats["action"]["count"] == [30]
    expected = columns_of(dataset, OTHER_PROMPTS)
    videos = {camera: av.open(str(out / info["video_path"].format(video_key=f"observation.images.{camera}", chunk_index=0, file_index=0)))
              for camera in ("front", "wrist")}
    decoded = {camera: [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)] for camera, container in videos.items()}
    for container in videos.values():
        container.close()
    errors = []
    for stored, episode in zip(iter_episodes(dataset), episodes):
        start, stop = episode["dataset_from_index"], episode["dataset_to_index"]
        assert stop - start == episode["length"] == 6 and episode["tasks"] == [stored["meta"]["instruction"]]
        assert tasks.loc[stored["meta"]["instruction"], "task_index"] == rows["task_index"][start]
        assert rows["frame_index"][start:stop] == list(range(6)) and rows["index"][start:stop] == list(range(start, stop))
        assert np.array_equal(np.array(rows["action"][start:stop - 1], np.float32), stored[schema.ACTION])
        assert np.array_equal(np.array(rows["next.reward"][start:stop - 1], np.float32), stored[schema.REWARD])
        assert np.array_equal(np.array(rows["vlm_reward"][start:stop], np.float32), expected[stored["__key__"]])
        for camera, key in (("front", schema.IMAGE), ("wrist", schema.IMAGE_WRIST)):
            begin = episode[f"videos/observation.images.{camera}/from_timestamp"]
            for offset, timestamp in enumerate(rows["timestamp"][start:stop]):
                time, frame = min(decoded[camera], key=lambda item: abs(item[0] - (begin + timestamp)))
                assert abs(time - (begin + timestamp)) < 1e-4
                errors.append(np.abs(frame.astype(int) - stored[key][offset].astype(int)).mean())
    assert max(errors) < 12, "frames differ by more than H.264 at crf 18 loses on 32 px frames"
    full_colour = export_dataset(dataset, tmp_path / "yuv444", "lerobot", options=ExportOptions(pixel_format="yuv444p"), progress=False)
    assert json.loads((full_colour.out / "meta/info.json").read_text())["features"]["observation.images.front"]["info"]["video.pix_fmt"] == "yuv444p"
    sharper = import_dataset(full_colour.out, tmp_path / "sharper", "lerobot", progress=False)
    sharper_errors = [np.abs(e[schema.IMAGE].astype(int) - s[schema.IMAGE].astype(int)).mean()
                      for e, s in zip(iter_episodes(sharper.out), iter_episodes(dataset))]
    assert max(sharper_errors) < max(errors) / 2  # full colour resolution: what small colourful frames lose most
    back = import_dataset(out, tmp_path / "back", "lerobot", progress=False)
    assert verify_dataset(back.out).ok
    spec, prompt_file = reward_model
    assert relabel(back.out, spec, str(prompt_file), progress=False).episodes == 5
    for stored, episode in zip(iter_episodes(dataset), iter_episodes(back.out)):
        assert episode["meta"] == stored["meta"] and episode["__key__"] == stored["__key__"]
        for field in (schema.STATE, schema.ACTION, schema.REWARD, schema.SUCCESS, schema.IS_TERMINAL):
            assert np.array_equal(episode[field], stored[field]), field
        assert np.abs(episode[schema.IMAGE].astype(int) - stored[schema.IMAGE].astype(int)).mean() < 12
    assert same(columns_of_set(back.out, back.reward_sets[0]), expected)


def test_an_imported_dataset_is_relabelled_and_viewed(dataset, tmp_path):
    from tiny_models import save_tiny_distilbert, save_tiny_r3m

    out = tmp_path / "lerobot"
    export_dataset(dataset, out, "lerobot", progress=False)
    info = json.loads((out / "meta/info.json").read_text())
    del info["lamp"]  # as a dataset written by another tool: no lamp record
    (out / "meta/info.json").write_text(json.dumps(info))
    back = import_dataset(out, tmp_path / "back", "lerobot", camera="observation.images.wrist", image_size=16, shard_episodes=3,
                          progress=False)
    assert not back.lamp_export and back.image_size == 16 and back.shards == 2
    episodes = list(iter_episodes(back.out))
    assert [e["meta"]["instruction"] for e in episodes] == [e["meta"]["instruction"] for e in iter_episodes(dataset)]
    assert episodes[0][schema.IMAGE].shape == (6, 16, 16, 3) and schema.IMAGE_WRIST not in episodes[0]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join([episodes[0]["meta"]["instruction"], *OTHER_PROMPTS]) + "\n")
    model = save_tiny_r3m(tmp_path / "r3m.pt", image_size=16, text_encoder=str(save_tiny_distilbert(tmp_path / "bert")))
    summary = relabel(back.out, f"r3m:{model}", str(prompts), progress=False)
    assert summary.episodes == 5 and verify_dataset(back.out).ok
    view = view_episode(back.out, tmp_path / "episode.png", episode=4, reward_set=summary.fingerprint)
    assert view.prompts == [episodes[4]["meta"]["instruction"]] and view.path.is_file()


def robomimic_file(path: Path, size: tuple[int, int]) -> Path:
    """A file laid out as robomimic's image datasets are: two demos of 9 and 12 steps, no next_obs."""
    import h5py

    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for index, steps in enumerate((9, 12)):
            demo = data.create_group(f"demo_{index}")
            demo.attrs["num_samples"] = steps
            demo["obs/agentview_image"] = rng.integers(0, 255, (steps, *size, 3), np.uint8)
            demo["obs/robot0_eef_pos"] = rng.normal(size=(steps, 3))
            demo["obs/object"] = rng.normal(size=(steps, 10))
            demo["actions"] = rng.uniform(-1, 1, (steps, 7))
            demo["rewards"] = np.zeros(steps)
            demo["dones"] = np.zeros(steps)
    return path


def test_pretraining_takes_an_imported_dataset(tmp_path):
    from lamp_agent import PretrainConfig
    from lamp_agent.pretrain import pretrain
    from lamp_data.rewards.text import embedding_cache_path

    imported = import_dataset(robomimic_file(tmp_path / "lift.hdf5", (16, 16)), tmp_path / "lift", "hdf5",
                              instruction="lift the cube", progress=False)
    prompts = ["lift the cube", "open the door"]
    writer = RewardSetWriter(imported.out, FINGERPRINT, {"model": {"family": "fake"}}, prompts)
    rng = np.random.default_rng(2)
    for shard in open_dataset(imported.out).shards():
        writer.write_shard(shard.name, {e["__key__"]: rng.normal(size=(len(e[schema.IMAGE]), 2)) for e in iter_episodes(imported.out, shards=[shard.name])})
    cache = embedding_cache_path(prompts, "minilm", tmp_path / "run" / "lang")  # fixed embeddings: no text encoder
    cache.parent.mkdir(parents=True)
    np.save(cache, rng.normal(size=(2, 384)).astype(np.float32))
    summary = pretrain(PretrainConfig(data=str(imported.out), rewards=FINGERPRINT, out=str(tmp_path / "run"), steps=2, preset="tiny",
                                      agent_overrides={"batch_size": 2, "seq_len": 4}), progress=False)
    assert summary.step == 2 and np.isfinite(summary.metrics["model_loss"])


@pytest.mark.filterwarnings("ignore::UserWarning:minari")  # minari asks for an env the hand-made dataset has none of
def test_sources_written_by_others(tmp_path, monkeypatch):
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(1)
    robomimic = robomimic_file(tmp_path / "image.hdf5", (24, 20))
    back = import_dataset(robomimic, tmp_path / "lift", "hdf5", image_size=16, instruction="lift the cube", progress=False)
    episodes = list(iter_episodes(back.out))
    assert [len(e[schema.ACTION]) for e in episodes] == [8, 11]  # no next_obs: the last action has no frame after it
    assert episodes[0][schema.STATE].shape == (9, 13) and episodes[0][schema.IMAGE].shape == (9, 16, 16, 3)
    assert episodes[0]["meta"]["task"] == "Lift" and episodes[0]["meta"]["instruction"] == "lift the cube"
    assert verify_dataset(back.out).ok

    with pytest.raises(LampError, match="give --image-size N"):
        import_dataset(robomimic, tmp_path / "square", "hdf5", progress=False)
    assert not (tmp_path / "square").exists()

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    space = gym.spaces.Dict({"pixels": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), "joints": gym.spaces.Box(-1, 1, (2,), np.float32)})
    buffers = [
        EpisodeBuffer(observations={"pixels": rng.integers(0, 255, (steps + 1, 16, 16, 3), np.uint8),
                                    "joints": rng.uniform(-1, 1, (steps + 1, 2)).astype(np.float32)},
                      actions=rng.uniform(-1, 1, (steps, 2)).astype(np.float32), rewards=rng.normal(size=steps),
                      terminations=np.eye(steps, dtype=bool)[-1], truncations=np.zeros(steps, bool), infos={})
        for steps in (4, 6)
    ]
    minari.create_dataset_from_buffers("others/pixels-v0", buffers, observation_space=space, action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
                                       algorithm_name="random", author="someone", author_email="a@b.c", code_permalink="none",
                                       description="test", jpeg_encoding=False)
    imported = import_dataset("others/pixels-v0", tmp_path / "pixels", "minari", progress=False)
    episodes = list(iter_episodes(imported.out))
    assert [len(e[schema.ACTION]) for e in episodes] == [4, 6] and episodes[1][schema.IS_TERMINAL][-1]
    assert np.array_equal(episodes[0][schema.IMAGE], buffers[0].observations["pixels"])
    assert np.array_equal(episodes[0][schema.STATE], buffers[0].observations["joints"])
    assert episodes[0]["meta"]["task"] == "others/pixels-v0" and imported.cameras == ("pixels",)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--format", "hdf5", "--out", "{tmp}/x.hdf5", "--prompt", "open the door"], "give --reward-set too"),
        (["--format", "hdf5", "--out", "{tmp}/x.hdf5", "--reward-set", "nope-0000"], "has no reward set 'nope-0000'"),
        (["--format", "hdf5", "--out", "{tmp}/x.hdf5", "--reward-set", FINGERPRINT, "--prompt", "juggle"], "has no prompt 'juggle'"),
        (["--format", "hdf5", "--out", "{tmp}/x.zip"], "ending in .hdf5 or .h5"),
        (["--format", "minari", "--out", "{tmp}/full"], "is a non-empty folder"),
    ],
)
def test_bad_export_is_one_line_exit_2_and_writes_nothing(dataset, tmp_path, arguments, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    before = sorted(path.name for path in tmp_path.rglob("*"))
    result = CliRunner().invoke(main, ["export", str(dataset), *(a.replace("{tmp}", str(tmp_path)) for a in arguments)])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(path.name for path in tmp_path.rglob("*")) == before


def test_bad_import_and_a_missing_extra(dataset, tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["import", "--format", "lerobot", str(dataset), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "is not a LeRobot dataset (meta/info.json has no codebase_version)" in result.output
    with pytest.raises(LampError, match="is not a file"):
        import_dataset(dataset, tmp_path / "y", "hdf5", progress=False)
    export_dataset(dataset, tmp_path / "tiny.hdf5", "hdf5", progress=False)
    for options, message in (({"image_size": 16}, "leave out --image-size"), ({"camera": "wrist"}, "leave out --camera")):
        with pytest.raises(LampError, match=message):
            import_dataset(tmp_path / "tiny.hdf5", tmp_path / "y", "hdf5", progress=False, **options)
    assert [path.name for path in tmp_path.iterdir()] == ["tiny.hdf5"]
    monkeypatch.delitem(sys.modules, "lamp_data.formats.robomimic", raising=False)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingExtraError, match=r"format 'hdf5' needs the 'hdf5' extra: pip install 'lamp-toolkit\[hdf5\]'"):
        export_dataset(dataset, tmp_path / "z.hdf5", "hdf5", progress=False)
    assert not (tmp_path / "z.hdf5").exists()


@pytest.mark.parametrize("format_name", FORMATS.names())
def test_relative_paths_work_from_the_current_folder(dataset, tmp_path, monkeypatch, format_name):
    monkeypatch.chdir(tmp_path)
    out = "export.hdf5" if format_name == "hdf5" else "export"
    exported = CliRunner().invoke(main, ["export", str(dataset), "--format", format_name, "--out", out])
    assert exported.exit_code == 0, exported.output
    assert "open it: " in exported.output.splitlines()[-1]
    imported = CliRunner().invoke(main, ["import", "--format", format_name, out, "--out", "back"])
    assert imported.exit_code == 0, imported.output
    assert verify_dataset(tmp_path / "back").ok and sorted(path.name for path in tmp_path.iterdir()) == ["back", out]


def test_export_and_import_as_subprocesses(dataset, tmp_path):
    out = tmp_path / "tiny.h5"
    run = subprocess.run([LAMP_DATA, "export", str(dataset), "--format", "hdf5", "--out", str(out), "--reward-set", FINGERPRINT],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("export hdf5: 5/5 episodes (100%)")  # output is a pipe: progress as plain lines
    assert lines[1].startswith(f"{out}: 5 episodes, 25 steps as hdf5") and f"reward column: {FINGERPRINT}: own instruction" in run.stdout
    run = subprocess.run([LAMP_DATA, "import", "--format", "hdf5", str(out), "--out", str(tmp_path / "back")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "a lamp export, restored as it was" in run.stdout and "not imported as a reward set" in run.stdout
    shutil.rmtree(tmp_path / "back")
