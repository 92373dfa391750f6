"""Faults and hostile input on real files: each gets one line and the right exit code, and no
episode that was complete before the fault is lost.

Exit codes: 2 for bad input, 1 for damaged data or a failing environment (disk full).
"""

import errno
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamp_agent import PretrainConfig
from lamp_agent.checkpoint import latest_checkpoint
from lamp_agent.pretrain import pretrain
from lamp_cli.agent import main as agent_cli
from lamp_cli.data import main as data_cli
from lamp_data.envs import EnvConfig
from lamp_data.errors import DamagedDataError, LampError, StorageError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.rewards.text import embedding_cache_path
from lamp_data.store import iter_episodes, layout, open_dataset, verify_dataset
from lamp_data.store.writer import RewardSetWriter
from test_agent_pretrain import FINGERPRINT, PROMPTS, ColourScorer

TINY = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5))


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def episode_files(folder: Path) -> dict[str, bytes]:
    """Every committed episode's raw sample files, ``key.extension`` -> bytes."""
    files = {}
    for shard in open_dataset(folder).shards():
        with tarfile.open(shard.tar_path) as archive:
            for member in archive.getmembers():
                files[member.name] = archive.extractfile(member).read()
    return files


def one_line_error(result, code: int, pattern: str) -> str:
    """Assert ``result`` failed with ``code`` and one ``Error:`` line on stderr matching ``pattern``."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A dataset of five 5-step episodes in shards of two, with a colour reward set."""
    out = tmp_path_factory.mktemp("faults") / "data"
    collect(out, CollectConfig(episodes=5, shard_episodes=2, seed=1, **TINY), scorer_factory=ColourScorer, progress=False)
    return out


@pytest.fixture
def data(made, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(made, copy)
    return copy


COLLECT = ["collect", "--env", "dummy", "--episode-length", "5", "--image-size", "16", "--shard-episodes", "2"]


# ---------------------------------------------------------------- values that poison a dataset


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--episodes", "5", "--noise", "nan"], "noise must be a finite number"),
        (["--episodes", "5", "--noise", "inf"], "noise must be a finite number"),
        (["--episodes", "5", "--noise", "-0.1"], r"noise must be in \[0.0, inf\]"),
        (["--episodes", str(10**12)], "episodes must be at most 10,000,000"),
        (["--episodes", "5", "--episode-length", str(10**8)], "episode length must be at most 10,000"),
        (["--episodes", "5", "--image-size", "100000"], "image size must be at most 512"),
        (["--episodes", "5", "--workers", "100000"], "workers must be at most 1,024"),
        (["--episodes", "5", "--seed", str(2**64)], "seed must be a whole number"),
        (["--episodes", "5", "--vlm", "r3m:x", "--prompts", "p", "--device", "bogus"], "unknown device 'bogus'"),
    ],
)
def test_poisonous_collect_values_are_refused_before_anything_is_written(data, extra, message):
    before = tree(data)
    one_line_error(CliRunner().invoke(data_cli, COLLECT + ["--out", str(data)] + extra), 2, message)
    assert tree(data) == before
    new = data.parent / "new"
    one_line_error(CliRunner().invoke(data_cli, COLLECT + ["--out", str(new)] + extra), 2, message)
    assert not new.exists()


def test_cuda_on_a_cpu_only_torch_is_one_line(data, monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    result = CliRunner().invoke(data_cli, COLLECT + ["--out", str(data), "--episodes", "5", "--vlm", "r3m:x",
                                                     "--prompts", "p", "--device", "cuda"])
    one_line_error(result, 2, "CPU-only: use --device cpu")


def pretrain_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--data", str(data), "--rewards", FINGERPRINT, "--steps", "2", "--preset", "tiny",
            "--out", str(out), "--quiet", *extra]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--alpha", "nan"], "alpha"),
        (["--own-prompt", "nan"], "own.prompt"),
        (["--device", "bogus"], "unknown device 'bogus'"),
        (["--device", "cuda:99"], "device .cuda:99."),
        (["--resume"], "holds no pretraining run to continue"),
    ],
)
def test_bad_pretrain_input_is_one_line_and_writes_nothing(data, tmp_path, extra, message):
    out = tmp_path / "run"
    before = tree(data)
    one_line_error(CliRunner().invoke(agent_cli, pretrain_args(data, out, *extra)), 2, message)
    assert not out.exists() and tree(data) == before
    out.mkdir()
    one_line_error(CliRunner().invoke(agent_cli, pretrain_args(data, out, *extra)), 2, message)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("line", ["model_lr: .nan", "actor_lr: -1.0e-4", "critic_lr: '3e-5'", "batch_size: 2.5"])
def test_a_preset_file_with_bad_numbers_is_one_line(data, tmp_path, line):
    preset = tmp_path / "preset.yaml"
    preset.write_text(f"base: tiny\n{line}\n")
    args = pretrain_args(data, tmp_path / "run")
    args[args.index("tiny")] = str(preset)
    one_line_error(CliRunner().invoke(agent_cli, args), 2, line.split(":")[0])
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_one_line(data, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    one_line_error(CliRunner().invoke(agent_cli, pretrain_args(data, a_file)), 2, "is a file")
    one_line_error(CliRunner().invoke(data_cli, COLLECT + ["--episodes", "2", "--out", str(a_file)]), 2, "is a file")
    assert a_file.read_text() == "mine"


# ---------------------------------------------------------------- disk full


def test_disk_full_mid_shard_is_one_line_and_loses_nothing(data, monkeypatch):
    from lamp_data.store import writer

    before = episode_files(data)
    real_add = writer.ShardWriter.add
    calls = {"n": 0}

    def add(self, sample, summary):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_add(self, sample, summary)

    monkeypatch.setattr(writer.ShardWriter, "add", add)
    result = CliRunner().invoke(data_cli, COLLECT + ["--episodes", "9", "--out", str(data)])
    line = one_line_error(result, 1, r"cannot write .*collect-0000000[46]\.tar: No space left on device; free some space")
    assert str(data) in line
    after_fault = episode_files(data)
    assert {name: after_fault[name] for name in before} == before  # every complete episode is still there
    assert not [p for p in (data / "shards").iterdir() if layout.is_temporary(p)]
    assert verify_dataset(data).ok

    monkeypatch.setattr(writer.ShardWriter, "add", real_add)
    resumed = CliRunner().invoke(data_cli, COLLECT + ["--episodes", "9", "--out", str(data)])
    assert resumed.exit_code == 0, resumed.output
    after = episode_files(data)
    assert {name: after[name] for name in before} == before and len({n.split(".")[0] for n in after}) == 9


def test_disk_full_while_writing_a_sidecar_keeps_the_shard_and_the_next_collect_recovers_it(data, monkeypatch):
    from lamp_data import atomic

    before = episode_files(data)
    real = atomic.atomic_write_json

    def failing(path, value):
        if Path(path).parent.name == "shards" and Path(path).name.startswith("collect-00000006"):
            with atomic.atomic_open(path, "w") as handle:
                handle.write("{")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, value)

    monkeypatch.setattr(layout, "atomic_write_json", failing)
    result = CliRunner().invoke(data_cli, COLLECT + ["--episodes", "7", "--out", str(data)])
    one_line_error(result, 1, r"cannot write .*collect-00000006\.json: No space left on device")
    assert (data / "shards" / "collect-00000006.tar").is_file() and not (data / "shards" / "collect-00000006.json").exists()
    monkeypatch.setattr(layout, "atomic_write_json", real)

    verify = CliRunner().invoke(data_cli, ["verify", str(data)])
    assert verify.exit_code == 1 and "shards/collect-00000006.tar: tar without its sidecar; it decodes completely" in verify.output
    resumed = CliRunner().invoke(data_cli, COLLECT + ["--episodes", "7", "--out", str(data)])
    assert resumed.exit_code == 0 and f"recovered {data}/shards/collect-00000006.tar" in resumed.output
    after = episode_files(data)
    assert {name: after[name] for name in before} == before and len({n.split(".")[0] for n in after}) == 7
    assert verify_dataset(data).ok


def test_write_errors_name_the_path_and_leave_the_target(tmp_path, monkeypatch):
    from lamp_data import atomic

    target = tmp_path / "info.json"
    target.write_text('{"old": true}')
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system")))
    with pytest.raises(StorageError, match=f"cannot write {re.escape(str(target))}: Read-only file system") as caught:
        atomic.atomic_write_json(target, {"new": True})
    assert caught.value.exit_code == 1
    assert target.read_text() == '{"old": true}' and [p.name for p in tmp_path.iterdir()] == ["info.json"]


# ---------------------------------------------------------------- data loss: tars without a sidecar


def test_a_complete_shard_that_lost_its_sidecar_is_recovered_not_deleted(data):
    shard = data / "shards" / "collect-00000002.tar"
    stored = shard.read_bytes()
    before = episode_files(data)
    shard.with_suffix(".json").unlink()
    verify = CliRunner().invoke(data_cli, ["verify", str(data)])
    assert verify.exit_code == 1 and "collect-00000002.tar: tar without its sidecar; it decodes completely" in verify.output
    repaired = CliRunner().invoke(data_cli, ["verify", str(data), "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert f"recovered {data}/shards/collect-00000002.tar" in repaired.output
    assert shard.read_bytes() == stored and episode_files(data) == before


def test_an_incomplete_shard_without_sidecar_is_quarantined_and_named(data):
    shard = data / "shards" / "collect-00000002.tar"
    shard.with_suffix(".json").unlink()
    shard.write_bytes(shard.read_bytes()[:3000])
    truncated = shard.read_bytes()
    verify = CliRunner().invoke(data_cli, ["verify", str(data)])
    assert verify.exit_code == 1 and "moves it to quarantine/shards/collect-00000002.tar" in verify.output
    result = CliRunner().invoke(data_cli, COLLECT + ["--episodes", "5", "--out", str(data)])
    assert result.exit_code == 0, result.output
    assert f"moved {data}/shards/collect-00000002.tar to {data}/quarantine/shards/collect-00000002.tar" in result.output
    assert (data / "quarantine" / "shards" / "collect-00000002.tar").read_bytes() == truncated
    report = verify_dataset(data)
    assert report.ok and report.episodes == 5
    assert ("quarantine/shards/collect-00000002.tar", report.warnings[-1][1]) in report.warnings


def test_a_sidecar_deleted_without_a_reward_set_fails_verify(tmp_path):
    out = tmp_path / "plain"
    collect(out, CollectConfig(episodes=2, shard_episodes=1, **TINY), progress=False)
    (out / "shards" / "collect-00000001.json").unlink()
    result = CliRunner().invoke(data_cli, ["verify", str(out)])
    assert result.exit_code == 1 and "BAD shards/collect-00000001.tar" in result.output


# ---------------------------------------------------------------- integrity


def test_a_reward_set_copied_from_another_dataset_is_refused(data, tmp_path):
    other = tmp_path / "other"
    collect(other, CollectConfig(episodes=5, shard_episodes=2, seed=2, **TINY), progress=False)
    shutil.copytree(data / "rewards", other / "rewards")
    report = verify_dataset(other)
    assert len(report.problems) == 3 and all("scores another data shard" in reason for _, reason in report.problems)
    with pytest.raises(DamagedDataError, match="rewards/colour-000001/collect-00000000.tar: it scores another data shard"):
        list(iter_episodes(other, reward_set=FINGERPRINT))
    with pytest.raises(DamagedDataError, match="scores another data shard"):
        open_dataset(other).check_reward_set(FINGERPRINT)
    assert verify_dataset(data).ok


@pytest.mark.parametrize("command", [["verify"], ["info"], ["info", "--json"]])
def test_a_hand_edited_info_json_is_damaged_data(data, command):
    info_path = data / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["collection"]["image_size"] = 32
    info_path.write_text(json.dumps(info))
    one_line_error(CliRunner().invoke(data_cli, command + [str(data)]), 1, "damaged .*info.json: .*checksum")
    info_path.write_text("{ not json")
    one_line_error(CliRunner().invoke(data_cli, command + [str(data)]), 1, "damaged .*info.json: not valid JSON")


def test_info_files_without_a_checksum_are_refused_until_repair_seals_them(data):
    info_path = data / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    del info["checksum"]
    info["collection"]["image_size"] = 32  # an edit that removing the checksum would let through
    info_path.write_text(json.dumps(info))
    one_line_error(CliRunner().invoke(data_cli, ["verify", str(data)]), 1, "info.json: it has no checksum .*--repair")
    one_line_error(CliRunner().invoke(data_cli, COLLECT + ["--episodes", "7", "--out", str(data)]), 1, "no checksum")
    one_line_error(CliRunner().invoke(data_cli, ["verify", str(data), "--repair"]), 1, "frames of 16x16 px, not 32; nothing was changed")
    info["collection"]["image_size"] = 16
    info_path.write_text(json.dumps(info))
    reward_info = data / "rewards" / FINGERPRINT / "info.json"
    value = json.loads(reward_info.read_text())
    del value["checksum"]
    reward_info.write_text(json.dumps(value))
    for sidecar_path in (data / "rewards" / FINGERPRINT).glob("collect-*.json"):
        sidecar = json.loads(sidecar_path.read_text())
        del sidecar["data_sha256"]
        sidecar_path.write_text(json.dumps(sidecar))
    repaired = CliRunner().invoke(data_cli, ["verify", str(data), "--repair"])
    assert repaired.exit_code == 0 and f"sealed {data}/meta/info.json" in repaired.output, repaired.output
    assert f"sealed {data}/rewards/{FINGERPRINT}/info.json" in repaired.output
    report = verify_dataset(data)
    assert report.ok and len(list(iter_episodes(data, reward_set=FINGERPRINT))) == 5
    assert sum("data shard it scores" in note for _, note in report.warnings) == 3


def test_a_renamed_shard_is_detected(data):
    for suffix in (".tar", ".json"):
        (data / "shards" / f"collect-00000002{suffix}").rename(data / "shards" / f"collect-00000008{suffix}")
    result = CliRunner().invoke(data_cli, ["verify", str(data)])
    assert result.exit_code == 1 and "records shard 'collect-00000002': the shard was renamed" in result.output
    with pytest.raises(DamagedDataError, match="renamed"):
        list(iter_episodes(data))


# ---------------------------------------------------------------- hostile shards and checkpoints


def rewrite_shard(data: Path, name: str, change) -> Path:
    """Rebuild shard ``name`` with ``change(member_name, bytes) -> (tarinfo, bytes) | None`` applied
    to each member, and give it a matching sidecar, as an attacker with write access could."""
    tar_path = data / "shards" / f"{name}.tar"
    sidecar = json.loads(tar_path.with_suffix(".json").read_text())
    with tarfile.open(tar_path) as archive:
        members = [(member.name, archive.extractfile(member).read()) for member in archive.getmembers()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member_name, payload in members:
            changed = change(member_name, payload)
            info, payload = changed if changed is not None else (tarfile.TarInfo(member_name), payload)
            info.size = len(payload) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(payload) if info.isreg() else None)
    tar_path.write_bytes(buffer.getvalue())
    layout.write_sidecar(tar_path, sidecar["samples"], run=sidecar["run"])
    return tar_path


def npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def header_claiming(shape) -> bytes:
    """A .npy header for uint8 ``shape`` followed by a few bytes only."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return stream.getvalue() + b"\0" * 16


HOSTILE = {
    "gzip bomb": (lambda name, payload: (tarfile.TarInfo(name), gzip.compress(npy(np.zeros((6, 1024, 1024, 3), np.uint8)), 9))
                  if name == "ep00000002.image.npy.gz" else None, "decompresses to more than"),
    "frames of another size": (lambda name, payload: (tarfile.TarInfo(name), gzip.compress(npy(np.zeros((6, 32, 32, 3), np.uint8))))
                               if name == "ep00000002.image.npy.gz" else None, "frames are 32x32 px, the dataset records 16 px"),
    "header claiming terabytes": (lambda name, payload: (tarfile.TarInfo(name), header_claiming((10**6, 10**6)))
                                  if name == "ep00000002.state.npy" else None, "array header says"),
    "symlink member": (lambda name, payload: (_symlink(name), b"") if name == "ep00000002.meta.json" else None,
                       "is not a regular file"),
    "path outside the folder": (lambda name, payload: (tarfile.TarInfo("../" + name), payload)
                                if name == "ep00000002.meta.json" else None, "is not <key>.<field>"),
}


def _symlink(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_hostile_shards_with_matching_sidecars_are_refused_and_named(data, attack):
    import resource

    change, message = HOSTILE[attack]
    tar_path = rewrite_shard(data, "collect-00000002", change)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DamagedDataError, match=f"collect-00000002.tar: .*{message}"):
        list(iter_episodes(data))
    result = CliRunner().invoke(data_cli, ["verify", str(data)])
    assert result.exit_code == 1 and "BAD shards/collect-00000002.tar" in result.output and message in result.output
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 40_000  # kB: nothing near the bomb's 75 MB
    assert tar_path.is_file()


def gzip_npy(shape, dtype="<f2") -> bytes:
    """A gzip member holding a ``.npy`` of zeros of ``shape``, compressed a MiB at a time (a bomb
    of a few hundred MiB costs a second to build and a few hundred kB to store)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(header.getvalue())]
    remaining = int(np.prod(shape)) * np.dtype(dtype).itemsize
    chunk = bytes(1 << 20)
    while remaining:
        parts.append(compressor.compress(chunk[: min(len(chunk), remaining)]))
        remaining -= min(len(chunk), remaining)
    return b"".join(parts) + compressor.flush()


def rewrite_reward_shard(data: Path, name: str, members) -> Path:
    """Replace reward shard ``name`` by ``members`` (``[(member name, bytes)]``) and give it a
    matching sidecar, as an attacker with write access could."""
    tar_path = layout.reward_shard_path(data, FINGERPRINT, name)
    sidecar = json.loads(tar_path.with_suffix(".json").read_text())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member_name, payload in members:
            info = tarfile.TarInfo(member_name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    tar_path.write_bytes(buffer.getvalue())
    layout.write_sidecar(tar_path, sidecar["samples"], fingerprint=sidecar["fingerprint"], data_sha256=sidecar["data_sha256"])
    return tar_path


PEAK_RSS = (
    "import atexit, os, sys\n"
    "def record():\n"
    "    peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
    "    open(os.environ['LAMP_TEST_PEAK'], 'w').write(peak.split()[1])\n"
    "atexit.register(record)\n"
    "from lamp_cli.data import main\n"
    "main(sys.argv[1:], prog_name='lamp-data')\n"
)
"""Runs ``lamp-data`` and writes its peak resident memory in kB (``VmHWM``, its own: a child's
``ru_maxrss`` starts from its parent's, a test process of a gigabyte or more) to ``$LAMP_TEST_PEAK``."""


def peak_rss_mb(*args: str) -> tuple[int, float, str]:
    """Exit code, peak resident memory (MB) and stderr of ``lamp-data ARGS`` run as a child process."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        peak = Path(folder) / "peak"
        result = subprocess.run([sys.executable, "-c", PEAK_RSS, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "LAMP_TEST_PEAK": str(peak)}, timeout=300)
        return result.returncode, int(peak.read_text()) / 1024, result.stderr.decode()


def test_a_reward_shard_bomb_is_refused_in_bounded_memory(data, tmp_path):
    bomb = gzip_npy(((256 << 20) // 6, 3))  # two members of 256 MiB each, from about 0.25 MB each
    tar_path = rewrite_reward_shard(data, "collect-00000002", [("ep00000002.vlm_reward.npy.gz", bomb), ("ep00000003.vlm_reward.npy.gz", bomb)])
    assert tar_path.stat().st_size < 1 << 20
    named = "collect-00000002.tar: member ep00000002.vlm_reward.npy.gz is not a field of a rewards shard"
    code, peak, stderr = peak_rss_mb("verify", str(data))
    assert code == 1 and peak < 300, (code, peak, stderr)
    code, peak, stderr = peak_rss_mb("view", str(data), "--episode", "2", "--reward-set", FINGERPRINT, "--prompt", PROMPTS[0],
                                     "--out", str(tmp_path / "episode.png"))
    assert code == 1 and peak < 300 and named in stderr and len(stderr.strip().splitlines()) == 1, (code, peak, stderr)
    assert not (tmp_path / "episode.png").exists()
    with pytest.raises(DamagedDataError, match=re.escape(named)):
        open_dataset(data).check_reward_set(FINGERPRINT)
        list(iter_episodes(data, reward_set=FINGERPRINT))


@pytest.mark.parametrize(
    "member, payload, message",
    [
        ("ep00000002.vlm_reward.npy", header_claiming((10**9, 3)), "array header says"),
        ("ep00000002.vlm_reward.npy", npy(np.zeros((10**5, 3), np.float16)), "more than the 65,572 its episode allows"),
        ("ep00000002.vlm_reward.json", b"[" * 10**5, "not a field of a rewards shard"),
    ],
)
def test_reward_members_are_decoded_within_their_declared_shape(data, member, payload, message):
    rewrite_reward_shard(data, "collect-00000002", [(member, payload), ("ep00000003.vlm_reward.npy", npy(np.zeros((6, 3), np.float16)))])
    report = verify_dataset(data)
    assert [file for file, _ in report.problems] == [f"rewards/{FINGERPRINT}/collect-00000002.tar"]
    assert message in report.problems[0][1]
    with pytest.raises(DamagedDataError, match=message):
        list(iter_episodes(data, reward_set=FINGERPRINT))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda name, payload: (tarfile.TarInfo(name), b" " * (2 << 20) + payload) if name == "ep00000002.meta.json" else None,
         "cannot decode ep00000002.meta.json: it holds 2,097,369 bytes, more than the 1,048,576 its episode allows"),
        (lambda name, payload: (tarfile.TarInfo(name + ".gz"), gzip.compress(payload)) if name == "ep00000003.state.npy" else None,
         "member ep00000003.state.npy.gz is not a field of a data shard"),
    ],
)
def test_episode_metadata_and_stray_members_are_bounded(data, change, message):
    rewrite_shard(data, "collect-00000002", change)
    problems = verify_dataset(data).problems
    assert problems[0][0] == "shards/collect-00000002.tar" and message in problems[0][1]


def test_a_checkpoint_whose_state_archive_is_compressed_is_refused(tmp_path):
    import zipfile

    from lamp_agent.agent import Agent
    from lamp_agent.config import load_preset
    from lamp_data.provenance import file_sha256

    agent = Agent(load_preset("tiny", batch_size=2, seq_len=8), image_size=16, state_dim=4, action_dim=4, lang_dim=8)
    folder = tmp_path / "agent"
    agent.save(folder)
    state = folder / "state.pt"
    with zipfile.ZipFile(state) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(state, "w") as archive:
        for info, payload in members:
            archive.writestr(info.filename, payload, compress_type=zipfile.ZIP_DEFLATED)
    meta = json.loads((folder / "config.json").read_text())
    meta["sha256"]["state.pt"] = file_sha256(state)
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DamagedDataError, match="state.pt member .* is compressed"):
        Agent.load(folder)


def test_latest_json_pointing_outside_its_run_folder_is_refused(tmp_path):
    pointer = tmp_path / "run" / "checkpoints" / "latest.json"
    pointer.parent.mkdir(parents=True)
    for name in ("../../elsewhere", "/tmp", "..", ""):
        pointer.write_text(json.dumps({"format_version": 1, "checkpoint": name, "step": 1}))
        with pytest.raises(DamagedDataError, match="latest.json: it names .* not a checkpoint folder inside"):
            latest_checkpoint(tmp_path / "run")


def test_a_checkpoint_with_a_pickle_payload_is_refused_without_running_it(tmp_path):
    import pickle

    from lamp_agent.agent import Agent
    from lamp_agent.config import load_preset
    from lamp_data.provenance import file_sha256

    agent = Agent(load_preset("tiny", batch_size=2, seq_len=8), image_size=16, state_dim=4, action_dim=4, lang_dim=8)
    folder = tmp_path / "agent"
    agent.save(folder)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "state.pt").write_bytes(pickle.dumps({"optimizers": Payload()}))
    meta = json.loads((folder / "config.json").read_text())
    meta["sha256"]["state.pt"] = file_sha256(folder / "state.pt")
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DamagedDataError, match="state.pt does not load as tensors and numbers only") as caught:
        Agent.load(folder)
    assert caught.value.exit_code == 1 and len(str(caught.value).splitlines()) == 1
    assert not marker.exists()


# ---------------------------------------------------------------- pretraining over damaged shards


def pretrain_run(data: Path, out: Path, **options):
    embeddings = np.random.default_rng(0).normal(size=(len(PROMPTS), 384)).astype(np.float32)
    path = embedding_cache_path(PROMPTS, "minilm", out / "lang")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, embeddings)
    config = PretrainConfig(data=str(data), rewards=FINGERPRINT, out=str(out), steps=2, preset="tiny",
                            agent_overrides={"batch_size": 2, "seq_len": 4}, **options)
    return pretrain(config, progress=False, scorer_factory=ColourScorer)


def test_pretrain_fails_on_a_damaged_shard_by_default_and_skips_it_when_told(data, tmp_path):
    shard = data / "shards" / "collect-00000002.tar"
    payload = bytearray(shard.read_bytes())
    payload[2000] ^= 0x01
    shard.write_bytes(bytes(payload))
    with pytest.raises(DamagedDataError, match="collect-00000002.tar: sha256 does not match"):
        pretrain_run(data, tmp_path / "fail")
    summary = pretrain_run(data, tmp_path / "skip", on_damage="skip")
    assert summary.step == 2 and list(summary.skipped_shards) == ["collect-00000002"]
    recorded = json.loads((tmp_path / "skip" / "skipped_shards.json").read_text())
    assert list(recorded["skipped"]) == ["collect-00000002"] and "sha256" in recorded["skipped"]["collect-00000002"]


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_pretrain_names_a_damaged_shard_that_its_first_updates_would_not_read(data, tmp_path, damage):
    shard = data / "shards" / "collect-00000004.tar"  # the last shard: a 2-update run need not read it
    payload = bytearray(shard.read_bytes())
    if damage == "truncated":
        del payload[4000:]
    else:
        payload[1500] ^= 0x01
    shard.write_bytes(bytes(payload))
    with pytest.raises(DamagedDataError, match="1 damaged shard.*collect-00000004.*--repair.*--on-damage skip"):
        pretrain_run(data, tmp_path / "fail")
    assert not (tmp_path / "fail" / "checkpoints").exists()
    summary = pretrain_run(data, tmp_path / "skip", on_damage="skip")
    assert summary.step == 2 and list(summary.skipped_shards) == ["collect-00000004"]
    assert list(json.loads((tmp_path / "skip" / "skipped_shards.json").read_text())["skipped"]) == ["collect-00000004"]


def test_a_ray_start_up_time_out_is_one_line_exit_1(data, monkeypatch):
    from lamp_data.pipeline.executors import ray as ray_executor

    class StuckRay:
        def is_initialized(self):
            return False

        def init(self, **options):
            raise TimeoutError("The current node timed out during startup.\nSee the logs for more")

    monkeypatch.setattr(ray_executor, "import_ray", lambda: StuckRay())
    before = tree(data)
    result = CliRunner().invoke(data_cli, COLLECT + ["--episodes", "7", "--out", str(data), "--executor", "ray"])
    one_line_error(result, 1, "cannot start a local Ray instance: The current node timed out during startup.; check")
    assert tree(data) == before


# ---------------------------------------------------------------- concurrency: writers and readers


def _spawned_workers(parent: int) -> list[int]:
    """Pids of the worker processes ``parent`` spawned (multiprocessing's ``spawn_main``)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in command:
            pids.append(int(stat.parent.name))
    return pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_collect_whose_main_process_is_killed(tmp_path):
    import signal
    import time

    out = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-c", "from lamp_cli.data import main; main()", "collect", "--env", "dummy", "--episodes", "8",
         "--shard-episodes", "4", "--episode-length", "10000", "--image-size", "16", "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            writing = [path for path in (out / "shards").glob(".*.tmp")] if (out / "shards").is_dir() else []
            if len(writing) == 2:
                break
            time.sleep(0.05)
        workers = _spawned_workers(process.pid)
        assert len(workers) == 2 and process.poll() is None, "the workers never started writing"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(1.0)  # an episode of 10,000 steps takes longer than this
        assert not [pid for pid in workers if _running(pid)]
        listing = sorted(path.name for path in (out / "shards").iterdir())
        time.sleep(1.0)
        assert sorted(path.name for path in (out / "shards").iterdir()) == listing and not list((out / "shards").glob("*.json"))
    finally:
        if process.poll() is None:
            process.kill()
        for pid in _spawned_workers(process.pid):
            os.kill(pid, signal.SIGKILL)


def test_verify_tells_a_shard_being_committed_from_a_damaged_one(data):
    from lamp_data.store.writer import writer_lock

    (data / "shards" / "collect-00000002.json").unlink()  # as between a writer's tar and its sidecar
    for suffix in (".tar", ".json"):  # whose rewards come after it
        (data / "rewards" / FINGERPRINT / f"collect-00000002{suffix}").unlink()
    with writer_lock(data):
        report = verify_dataset(data)
        assert report.ok and ("shards/collect-00000002.tar", report.warnings[0][1]) in report.warnings
        assert "being written" in report.warnings[0][1]
    assert not verify_dataset(data).ok  # no writer: a tar without its sidecar is a problem


def test_a_disk_full_collect_prints_one_line_and_nothing_else(tmp_path):
    script = (
        "import errno, sys\n"
        "from lamp_data.store import writer\n"
        "real, calls = writer.ShardWriter.add, []\n"
        "def add(self, sample, summary):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    real(self, sample, summary)\n"
        "writer.ShardWriter.add = add\n"
        "from lamp_cli.data import main\n"
        "main(sys.argv[1:], prog_name='lamp-data')\n"
    )
    result = subprocess.run([sys.executable, "-c", script, *COLLECT, "--episodes", "4", "--out", str(tmp_path / "data")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: cannot write") and "No space left on device" in result.stderr
