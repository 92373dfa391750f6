"""Bad input to every command: one line on stderr, exit 2 (exit 1 for damaged data), no traceback,
no click usage block, and nothing written. Each case is a real command line on real files."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lamp_cli.agent import main as agent_cli
from lamp_cli.data import main as data_cli
from lamp_cli.eval import main as eval_cli
from lamp_data.envs import EnvConfig
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_eval.runs import EpisodeResult, Evaluation, RunConfig, RunWriter, eval_episode_seeds, finetune_env
from test_agent_pretrain import FINGERPRINT, ColourScorer
from test_faults import tree

NOT_UTF8 = os.fsdecode(b"runs-\xff")
PROGRAMS = {data_cli: "lamp-data", agent_cli: "lamp-agent", eval_cli: "lamp-eval"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A dataset with a reward set, a folder of finished runs, a checkpoint, an empty file."""
    root = tmp_path_factory.mktemp("world")
    collect(root / "data", CollectConfig(env="dummy", episodes=4, shard_episodes=2, seed=1, env_config=EnvConfig(image_size=16, episode_length=5)),
            scorer_factory=ColourScorer, progress=False)
    writer = RunWriter(root / "runs", RunConfig(task="reach-dummy", env="dummy", init="scratch", method="scratch", seed=0,
                                                steps=200, eval_every=100, env_config=finetune_env(episode_length=5, image_size=16),
                                                preset="tiny"))
    writer.begin({})
    for step in (0, 100, 200):
        writer.log(Evaluation.from_episodes(step, [EpisodeResult(seed, 1.0, False, 5) for seed in eval_episode_seeds(2)]))
    writer.finish({"final_success_rate": 0.0})
    from lamp_agent.agent import Agent
    from lamp_agent.config import load_preset

    checkpoint = root / "checkpoint"
    Agent(load_preset("tiny"), image_size=16, state_dim=4, action_dim=4, lang_dim=384).save(checkpoint)
    meta = json.loads((checkpoint / "config.json").read_text())
    meta["sha256"] = "abc"
    (checkpoint / "config.json").write_text(json.dumps(meta))
    (root / "empty.pt").write_bytes(b"")
    (root / "report.txt").write_text("mine")
    return root


def damaged_runs(root: Path, name: str, content: bytes) -> str:
    """A copy of the world's runs whose one run.json holds ``content``."""
    folder = root.parent / f"{root.name}-{name}"
    if not folder.exists():
        shutil.copytree(root / "runs", folder)
        next(folder.rglob("run.json")).write_bytes(content)
    return str(folder)


def without_summary(root: Path) -> bytes:
    info = json.loads(next((root / "runs").rglob("run.json")).read_text())
    return json.dumps({key: value for key, value in info.items() if key not in ("summary", "config")}).encode()



FINETUNE = ["finetune", "--task", "reach-dummy", "--env", "dummy", "--init", "scratch", "--steps", "20", "--eval-every", "10",
            "--image-size", "16", "--episode-length", "5", "--preset", "tiny", "--seq-len", "4", "--batch-size", "2"]
COLLECT = ["collect", "--env", "dummy", "--episodes", "6", "--image-size", "16", "--episode-length", "5"]

# (name, cli, arguments given the world folder, exit code, pattern of the one line)
CASES = [
    # tracebacks before
    ("r3m checkpoint that is an empty file", data_cli, lambda w: ["relabel", f"{w}/data", "--vlm", f"r3m:{w}/empty.pt"], 2,
     "cannot read R3M checkpoint .*empty.pt"),
    ("run.json holding []", eval_cli, lambda w: ["leaderboard", damaged_runs(w, "list", b"[]"), "--out", f"{w}/report"], 1,
     "damaged run info .*run.json: it does not hold a JSON object"),
    ("run.json holding byte 0xff", eval_cli, lambda w: ["leaderboard", damaged_runs(w, "binary", b'{"a": "\xff"}'), "--out", f"{w}/report"], 1,
     "damaged run info .*run.json: not valid JSON"),
    ("leaderboard --seed -1", eval_cli, lambda w: ["leaderboard", f"{w}/runs", "--out", f"{w}/report", "--seed", "-1"], 2,
     "Invalid value for '--seed': -1 is not in the range"),
    ("checkpoint whose sha256 is 'abc'", eval_cli, lambda w: [*FINETUNE[:5], "--init", f"{w}/checkpoint", *FINETUNE[7:], "--out", f"{w}/ft"], 1,
     "damaged agent checkpoint .*config.json records no sha256"),
    ("pretrain --out not UTF-8", agent_cli, lambda w: ["pretrain", "--data", f"{w}/data", "--rewards", FINGERPRINT, "--steps", "2",
                                                       "--preset", "tiny", "--out", f"{w}/{NOT_UTF8}"], 2,
     r"--out .*runs-\\xff is not valid UTF-8"),
    ("finetune --out not UTF-8", eval_cli, lambda w: [*FINETUNE, "--out", f"{w}/{NOT_UTF8}"], 2, r"--out .*runs-\\xff is not valid UTF-8"),
    # wrong exit codes and silent acceptance before
    ("leaderboard --reps 10**12", eval_cli, lambda w: ["leaderboard", f"{w}/runs", "--out", f"{w}/report", "--reps", str(10**12)], 2,
     "Invalid value for '--reps'"),
    ("leaderboard --out a file", eval_cli, lambda w: ["leaderboard", f"{w}/runs", "--out", f"{w}/report.txt"], 2, "report.txt is a file"),
    ("collect --episode-length 10 --action-repeat 20", data_cli,
     lambda w: [*COLLECT[:-2], "--episode-length", "10", "--action-repeat", "20", "--out", f"{w}/new"], 2,
     "shorter than one decision at action repeat 20"),
    ("collect --device tpu without --vlm", data_cli, lambda w: [*COLLECT, "--device", "tpu", "--out", f"{w}/new"], 2, "unknown device 'tpu'"),
    ("leaderboard --baseline nosuch", eval_cli, lambda w: ["leaderboard", f"{w}/runs", "--out", f"{w}/report", "--baseline", "nosuch"], 2,
     "--baseline nosuch is not a method of these runs"),
    ("finished run.json without summary and config", eval_cli,
     lambda w: ["leaderboard", damaged_runs(w, "bare", without_summary(w)), "--out", f"{w}/report"], 1, "lacks config, summary"),
    ("pretrain --seed -1", agent_cli, lambda w: ["pretrain", "--data", f"{w}/data", "--rewards", FINGERPRINT, "--steps", "2",
                                                 "--preset", "tiny", "--seed", "-1", "--out", f"{w}/pre"], 2, "seed must be"),
    ("finetune --replay-ratio 1e-300", eval_cli, lambda w: [*FINETUNE, "--replay-ratio", "1e-300", "--out", f"{w}/ft"], 2,
     "replays less than one step over the 20-step budget"),
    ("finetune --eval-every 1000 --steps 20", eval_cli, lambda w: [*FINETUNE, "--eval-every", "1000", "--out", f"{w}/ft"], 2,
     "eval-every 1000 is more than the 20 steps"),
    ("view --fps 10**9", data_cli, lambda w: ["view", f"{w}/data", "--out", f"{w}/e.gif", "--fps", str(10**9)], 2, "Invalid value for '--fps'"),
    ("view --frames 10**6", data_cli, lambda w: ["view", f"{w}/data", "--out", f"{w}/e.png", "--frames", str(10**6)], 2,
     "Invalid value for '--frames'"),
    ("relabel --batch-size 10**12", data_cli, lambda w: ["relabel", f"{w}/data", "--vlm", f"r3m:{w}/empty.pt", "--batch-size", str(10**12)], 2,
     "Invalid value for '--batch-size'"),
    ("prompts --limit -1", data_cli, lambda w: ["prompts", "instructions", "--limit", "-1"], 2, "Invalid value for '--limit'"),
    # click's usage errors, one line each
    ("collect without --episodes", data_cli, lambda w: ["collect", "--out", f"{w}/new"], 2, "Missing option '--episodes'; see 'lamp-data collect --help'"),
    ("collect --episodes x", data_cli, lambda w: ["collect", "--episodes", "x", "--out", f"{w}/new"], 2, "'x' is not a valid integer"),
    ("unknown command", data_cli, lambda w: ["nosuch"], 2, "No such command 'nosuch'; see 'lamp-data --help'"),
    ("unknown group option", data_cli, lambda w: ["--bogus"], 2, "No such option '--bogus'; see 'lamp-data --help'"),
    ("unknown command option", data_cli, lambda w: ["verify", f"{w}/data", "--bogus"], 2, "No such option '--bogus'; see 'lamp-data verify --help'"),
    ("verify without a path", data_cli, lambda w: ["verify"], 2, "Missing argument 'PATH'"),
    ("view --episode -1", data_cli, lambda w: ["view", f"{w}/data", "--out", f"{w}/e.png", "--episode", "-1"], 2, "Invalid value for '--episode'"),
    ("relabel without --vlm or --rewards", data_cli, lambda w: ["relabel", f"{w}/data"], 2, "give the reward model \\(--vlm SPEC\\), or the reward set"),
    ("pretrain without --data", agent_cli, lambda w: ["pretrain", "--rewards", FINGERPRINT, "--steps", "2", "--out", f"{w}/pre"], 2,
     "Missing option '--data'"),
    ("pretrain --on-damage maybe", agent_cli, lambda w: ["pretrain", "--data", f"{w}/data", "--rewards", FINGERPRINT, "--steps", "2",
                                                         "--out", f"{w}/pre", "--on-damage", "maybe"], 2, "Invalid value for '--on-damage'"),
    ("leaderboard without runs", eval_cli, lambda w: ["leaderboard", "--out", f"{w}/report"], 2, "Missing argument 'RUNS...'"),
    ("leaderboard --score best", eval_cli, lambda w: ["leaderboard", f"{w}/runs", "--out", f"{w}/report", "--score", "best"], 2,
     "Invalid value for '--score'"),
    ("finetune without --task", eval_cli, lambda w: ["finetune", "--init", "scratch", "--out", f"{w}/ft"], 2, "Missing option '--task'"),
    ("finetune --keep-checkpoints 0", eval_cli, lambda w: [*FINETUNE, "--keep-checkpoints", "0", "--out", f"{w}/ft"], 2,
     "Invalid value for '--keep-checkpoints'"),
]


@pytest.mark.parametrize("name, cli, arguments, code, pattern", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_and_writes_nothing(world, name, cli, arguments, code, pattern):
    import re

    args = arguments(world)
    before = tree(world)
    result = CliRunner().invoke(cli, args, prog_name=PROGRAMS[cli])
    assert result.exit_code == code, (name, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), (name, result.output)
    assert re.search(pattern, lines[0]), (name, lines[0])
    assert "Traceback" not in result.output and "Usage:" not in result.output
    after = tree(world)
    assert after == before, (name, sorted(set(after) ^ set(before)))


# ---------------------------------------------------------------- nothing written before input is checked

CHECKED_FIRST = [
    (["--vlm", "nosuch:x", "--prompts", "instructions"], 2, "unknown reward model family 'nosuch'"),
    (["--vlm", "r3m:/nonexistent.pt", "--prompts", "instructions"], 2, "/nonexistent.pt does not exist"),
    (["--vlm", "r3m:resnet50", "--prompts", "nosuch"], 2, "unknown prompt set 'nosuch'"),
    (["--vlm", "r3m:{world}/empty.pt", "--prompts", "instructions"], 2, "cannot read R3M checkpoint"),  # fails as the worker starts
]


@pytest.mark.parametrize("extra, code, pattern", CHECKED_FIRST, ids=[case[0][1] for case in CHECKED_FIRST])
def test_collect_checks_its_reward_model_and_prompts_before_it_writes(world, tmp_path, extra, code, pattern):
    import re

    extra = [argument.replace("{world}", str(world)) for argument in extra]
    data = tmp_path / "data"
    shutil.copytree(world / "data", data)
    before = tree(data)
    for out in (data, tmp_path / "new"):  # extending (episodes 4 -> 6) and creating
        result = CliRunner().invoke(data_cli, [*COLLECT, "--out", str(out), *extra], prog_name="lamp-data")
        assert result.exit_code == code and re.search(pattern, result.stderr) and len(result.stderr.splitlines()) == 1, result.output
    assert tree(data) == before  # meta/info.json still records 4 episodes
    assert not (tmp_path / "new").exists()


def test_a_creation_that_fails_leaves_nothing_and_the_same_command_then_works(tmp_path, monkeypatch):
    import errno

    from lamp_data import atomic
    from lamp_data.store import layout, verify_dataset

    real = atomic.atomic_write_json

    def full(path, value):
        if Path(path).name == "info.json":
            raise atomic.StorageError(path, OSError(errno.ENOSPC, "No space left on device"))
        return real(path, value)

    out = tmp_path / "data"
    monkeypatch.setattr("lamp_data.store.writer.atomic_write_json", full)
    result = CliRunner().invoke(data_cli, [*COLLECT, "--out", str(out)], prog_name="lamp-data")
    assert result.exit_code == 1 and "No space left on device" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    CliRunner().invoke(data_cli, [*COLLECT, "--out", str(empty)], prog_name="lamp-data")
    assert [path.relative_to(empty) for path in empty.rglob("*")] == [Path("meta"), Path("meta/.lock")]  # only the lock of a folder it did not make
    monkeypatch.undo()

    for folder in (out, empty):
        result = CliRunner().invoke(data_cli, [*COLLECT, "--out", str(folder)], prog_name="lamp-data")
        assert result.exit_code == 0, result.output
        assert verify_dataset(folder).episodes == 6
    killed = tmp_path / "killed"  # what a collect killed while creating leaves
    (killed / "shards").mkdir(parents=True)
    layout.lock_path(killed).parent.mkdir()
    layout.lock_path(killed).touch()
    (killed / "meta" / ".info.json.x1y2.tmp").write_text("{")
    result = CliRunner().invoke(data_cli, [*COLLECT, "--out", str(killed)], prog_name="lamp-data")
    assert result.exit_code == 0 and verify_dataset(killed).episodes == 6, result.output
    stranger = tmp_path / "stranger"
    (stranger / "shards").mkdir(parents=True)
    (stranger / "notes.txt").write_text("mine")
    result = CliRunner().invoke(data_cli, [*COLLECT, "--out", str(stranger)], prog_name="lamp-data")
    assert result.exit_code == 2 and "not a dataset" in result.stderr and (stranger / "notes.txt").read_text() == "mine"


def test_a_group_called_without_a_command_still_shows_its_help():
    result = CliRunner().invoke(data_cli, [], prog_name="lamp-data")
    assert "Usage: lamp-data [OPTIONS] COMMAND" in result.output and "Error" not in result.output
