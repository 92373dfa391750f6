"""Every damage verify names has a way back: ``lamp-data verify --repair``, then the commands it
prints, bring the dataset back to ``verify`` ok with every intact episode and reward as it was
(episodes set aside are recorded again byte for byte, rewards scored again to the same bytes)."""

import json
import shlex
import shutil
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from lamp_cli.data import main as data_cli
from lamp_data.envs import EnvConfig
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.store import iter_episodes, layout, open_dataset, verify_dataset
from tiny_models import save_tiny_distilbert, save_tiny_r3m
from test_faults import HOSTILE, episode_files, rewrite_shard, tree

PROMPTS = "reach the red block\npush the red block\nopen the drawer\n"
CONFIG = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5), shard_episodes=2, seed=1)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Five episodes in shards of two, with a reward set scored inline by a tiny R3M, and another
    dataset (another seed) scored by the same model."""
    root = tmp_path_factory.mktemp("repair")
    (root / "prompts.txt").write_text(PROMPTS)
    spec = f"r3m:{save_tiny_r3m(root / 'r3m.pt', text_encoder=str(save_tiny_distilbert(root / 'distilbert')))}"
    for name, seed in (("data", 1), ("other", 2)):
        collect(root / name, CollectConfig(**{**CONFIG, "seed": seed, "episodes": 5, "vlm": spec, "prompts": str(root / "prompts.txt")}),
                progress=False)
    fingerprint = open_dataset(root / "data").reward_sets()[0]
    return {"root": root, "fingerprint": fingerprint}


@pytest.fixture
def data(made, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(made["root"] / "data", copy)
    return copy


def rewards(data: Path, fingerprint: str) -> dict[str, bytes]:
    return {episode["__key__"]: episode["vlm_reward"].tobytes() for episode in iter_episodes(data, reward_set=fingerprint)}


def flip(path: Path, offset: int = 1500) -> None:
    payload = bytearray(path.read_bytes())
    payload[offset] ^= 0x01
    path.write_bytes(bytes(payload))


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def duplicate_shard(data: Path, fingerprint: str) -> None:
    """Shard collect-00000000 copied as collect-00000006: its episodes then are in two shards."""
    folder = data / "shards"
    shutil.copy(folder / "collect-00000000.tar", folder / "collect-00000006.tar")
    sidecar = json.loads((folder / "collect-00000000.json").read_text())
    sidecar["name"] = "collect-00000006"
    (folder / "collect-00000006.json").write_text(json.dumps(sidecar))


def copy_rewards_from(made, data: Path, fingerprint: str) -> None:
    shutil.rmtree(data / "rewards" / fingerprint)
    shutil.copytree(made["root"] / "other" / "rewards" / fingerprint, data / "rewards" / fingerprint)


def reward_bomb(data: Path, fingerprint: str) -> None:
    from test_faults import gzip_npy

    tar_path = layout.reward_shard_path(data, fingerprint, "collect-00000002")
    sidecar = json.loads(tar_path.with_suffix(".json").read_text())
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for key in ("ep00000002", "ep00000003"):
            payload = gzip_npy((8 << 20, 3))
            info = tarfile.TarInfo(f"{key}.vlm_reward.npy.gz")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    tar_path.write_bytes(buffer.getvalue())
    layout.write_sidecar(tar_path, sidecar["samples"], fingerprint=fingerprint, data_sha256=sidecar["data_sha256"])


S2 = "shards/collect-00000002"
DAMAGES = {
    "info.json without its checksum": lambda d, fp, made: edit_json(d / "meta/info.json", lambda v: v.pop("checksum")),
    "info.json edited where the shards agree": lambda d, fp, made: edit_json(d / "meta/info.json", lambda v: v.update(notes="mine")),
    "reward set info.json without its checksum": lambda d, fp, made: edit_json(d / "rewards" / fp / "info.json", lambda v: v.pop("checksum")),
    "truncated sidecar": lambda d, fp, made: (d / f"{S2}.json").write_text((d / f"{S2}.json").read_text()[:40]),
    "truncated reward sidecar": lambda d, fp, made: (d / "rewards" / fp / "collect-00000002.json").write_text("{"),
    "sidecar without its tar": lambda d, fp, made: (d / f"{S2}.tar").unlink(),
    "complete tar without its sidecar": lambda d, fp, made: (d / f"{S2}.json").unlink(),
    "truncated tar without its sidecar": lambda d, fp, made: ((d / f"{S2}.json").unlink(),
                                                              (d / f"{S2}.tar").write_bytes((d / f"{S2}.tar").read_bytes()[:3000])),
    "bit-flipped data shard": lambda d, fp, made: flip(d / f"{S2}.tar"),
    "truncated data shard": lambda d, fp, made: (d / f"{S2}.tar").write_bytes((d / f"{S2}.tar").read_bytes()[:5000]),
    "crafted data shard (gzip bomb)": lambda d, fp, made: rewrite_shard(d, "collect-00000002", HOSTILE["gzip bomb"][0]),
    "renamed shard": lambda d, fp, made: [(d / f"{S2}{suffix}").rename(d / f"shards/collect-00000008{suffix}") for suffix in (".tar", ".json")],
    "episodes in two shards": lambda d, fp, made: duplicate_shard(d, fp),
    "bit-flipped reward shard": lambda d, fp, made: flip(d / "rewards" / fp / "collect-00000002.tar", 700),
    "reward set copied from another dataset": lambda d, fp, made: copy_rewards_from(made, d, fp),
    "reward shard without its data shard": lambda d, fp, made: [(d / f"{S2}{suffix}").unlink() for suffix in (".json", ".tar")],
    "reward shard bomb": lambda d, fp, made: reward_bomb(d, fp),
}


def run_printed_commands(line: str) -> list[str]:
    """Run the commands a repair's summary line names (``...; then run A && B``)."""
    commands = line.partition("; then run ")[2].split(" && ") if "; then run " in line else []
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "lamp-data", command
        result = CliRunner().invoke(data_cli, words[1:], prog_name="lamp-data")
        assert result.exit_code == 0, (command, result.output)
    return commands


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_every_damage_verify_names_has_a_way_back(made, data, damage):
    fingerprint = made["fingerprint"]
    episodes, scores = episode_files(data), rewards(data, fingerprint)
    DAMAGES[damage](data, fingerprint, made)
    broken = CliRunner().invoke(data_cli, ["verify", str(data)], prog_name="lamp-data")
    assert broken.exit_code == 1 and ("BAD " in broken.output or broken.stderr.startswith("Error: damaged")), broken.output
    assert "--repair" in broken.output + broken.stderr

    repaired = CliRunner().invoke(data_cli, ["verify", str(data), "--repair"], prog_name="lamp-data")
    assert repaired.exception is None or isinstance(repaired.exception, SystemExit), repaired.exception
    summary = next(line for line in repaired.output.splitlines() if line.startswith("repaired "))
    commands = run_printed_commands(summary)
    report = verify_dataset(data)
    assert report.ok, (damage, summary, report.problems)
    assert episode_files(data) == episodes and rewards(data, fingerprint) == scores, (damage, commands)
    kept = [path for path in (data / "quarantine").rglob("*") if path.is_file()] if (data / "quarantine").exists() else []
    assert all(not path.name.startswith(".") for path in kept)  # set aside, never deleted: listed by verify
    assert len([warning for warning in report.warnings if warning[0].startswith("quarantine/")]) == len(kept)


def test_an_info_json_the_shards_contradict_or_that_is_not_json_is_left_for_a_copy(data):
    info_path = data / "meta" / "info.json"
    edit_json(info_path, lambda value: value["collection"].update(seed=5))
    before = tree(data)
    result = CliRunner().invoke(data_cli, ["verify", str(data), "--repair"], prog_name="lamp-data")
    assert result.exit_code == 1 and "collect-00000000.tar holds ep00000000 of env dummy, seed 1" in result.stderr
    assert "nothing was changed: restore it from a copy" in result.stderr and len(result.stderr.splitlines()) == 1
    assert tree(data) == before
    info_path.write_text("{ not json")
    before = tree(data)
    result = CliRunner().invoke(data_cli, ["verify", str(data), "--repair"], prog_name="lamp-data")
    assert result.exit_code == 1 and "not valid JSON" in result.stderr and tree(data) == before


def test_a_collect_without_the_checksum_is_refused_and_says_how_to_repair(made, data):
    edit_json(data / "meta" / "info.json", lambda value: value.pop("checksum"))
    result = CliRunner().invoke(data_cli, ["collect", "--episodes", "7", "--out", str(data)], prog_name="lamp-data")
    assert result.exit_code == 1 and "it has no checksum" in result.stderr and "--repair" in result.stderr
    assert not any(name.startswith("collect-00000006") for name in (path.name for path in (data / "shards").iterdir()))


def test_relabel_scores_damaged_and_foreign_reward_shards_again_and_force_scores_all(made, data):
    fingerprint = made["fingerprint"]
    scores = rewards(data, fingerprint)
    flip(data / "rewards" / fingerprint / "collect-00000002.tar", 700)
    copied = made["root"] / "other" / "rewards" / fingerprint / "collect-00000004"
    for suffix in (".tar", ".json"):
        shutil.copy(copied.with_suffix(suffix), data / "rewards" / fingerprint / f"collect-00000004{suffix}")
    assert len(verify_dataset(data).problems) == 2
    result = CliRunner().invoke(data_cli, ["relabel", str(data), "--rewards", fingerprint], prog_name="lamp-data")
    assert result.exit_code == 0 and "2 shards written (2 of them replacing damaged or forced ones), 1 already present" in result.output
    assert verify_dataset(data).ok and rewards(data, fingerprint) == scores
    assert sorted(path.name for path in (data / "quarantine" / "rewards" / fingerprint).iterdir()) == [
        "collect-00000002.json", "collect-00000002.tar", "collect-00000004.json", "collect-00000004.tar"]
    before = {path.name: path.stat().st_mtime_ns for path in (data / "rewards" / fingerprint).glob("*.tar")}
    forced = CliRunner().invoke(data_cli, ["relabel", str(data), "--rewards", fingerprint, "--force"], prog_name="lamp-data")
    assert forced.exit_code == 0 and "3 shards written (3 of them" in forced.output
    assert verify_dataset(data).ok and rewards(data, fingerprint) == scores
    assert all(path.stat().st_mtime_ns != before[path.name] for path in (data / "rewards" / fingerprint).glob("*.tar"))


def test_collect_refuses_to_extend_a_damaged_dataset_unless_told_to_skip(made, data):
    flip(data / f"{S2}.tar")
    before = tree(data)
    args = ["collect", "--episodes", "7", "--out", str(data)]
    refused = CliRunner().invoke(data_cli, args, prog_name="lamp-data")
    assert refused.exit_code == 1 and len(refused.stderr.splitlines()) == 1, refused.output
    assert "1 damaged shard(s), collect-00000002" in refused.stderr and "--on-damage skip" in refused.stderr
    assert tree(data) == before
    skipped = CliRunner().invoke(data_cli, [*args, "--on-damage", "skip"], prog_name="lamp-data")
    assert skipped.exit_code == 0 and "left damaged shard collect-00000002 as it is" in skipped.stderr
    report = verify_dataset(data)
    assert report.episodes == 5 and [file for file, _ in report.problems][0] == f"{S2}.tar"
    keys = {entry["key"] for sidecar in open_dataset(data).shard_sidecars().values() for entry in sidecar["samples"]}
    assert {"ep00000005", "ep00000006"} <= keys
