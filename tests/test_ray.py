"""collect and relabel on a local Ray instance: a worker killed mid-shard, equality with local runs, the extra."""

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lamp_cli.data import main as lamp_data_cli
from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError, MissingExtraError
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.pipeline.executors import ExecutorConfig
from lamp_data.pipeline.relabel import relabel
from lamp_data.provenance import portable_argv
from lamp_data.store import iter_episodes, open_dataset, verify_dataset
from lamp_eval.runs import finetune_env
from tiny_models import save_tiny_distilbert, save_tiny_r3m

from test_collect import episode_bytes
from test_relabel import PROMPTS, reward_files

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before importing ray: bind to 127.0.0.1 only
ray = pytest.importorskip("ray")

TINY = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5), policy="noisy-expert", seed=4)
RAY = ExecutorConfig(kind="ray", workers=2)
LAMP_DATA = str(Path(sys.executable).with_name("lamp-data"))


class CrashingScorer:
    """An inline scorer (each prompt scores one colour channel) whose process exits
    (``os._exit(1)``, as a killed node would) when it is handed the frames whose sha256 is
    ``digest``: once, since the marker file it creates first lets the retried unit through."""

    prompts = ["reach the red block", "push the red block", "make the scene blue"]
    fingerprint = "colour-000002"
    info = {"model_spec": "colour:channels", "model": {"family": "colour"}, "prompt_set": {"name": "colours", "count": 3}}

    def __init__(self, marker: str, digest: str):
        self.marker, self.digest = marker, digest

    def score(self, frames):
        if hashlib.sha256(frames.tobytes()).hexdigest() == self.digest:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return (frames.astype("float32") / 255).mean((1, 2)).astype("float16")


@pytest.fixture(scope="module")
def cluster():
    """One Ray instance on loopback for the module; this module's classes travel to its workers by value."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        yield {"address": address}
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def hidden_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob(".*") if path.name != ".lock"]


def test_worker_killed_mid_shard_is_retried_and_dataset_equals_local(cluster, tmp_path):
    config = CollectConfig(episodes=9, shard_episodes=2, **TINY)
    local = tmp_path / "local"
    collect(local, config, progress=False)
    # the actor recording episode 4 (the first of shard collect-00000004) dies while scoring it
    frames = next(episode["image"] for episode in iter_episodes(local) if episode["__key__"] == "ep00000004")
    marker = tmp_path / "crashed"
    crashing = functools.partial(CrashingScorer, str(marker), hashlib.sha256(frames.tobytes()).hexdigest())

    out = tmp_path / "ray"
    collect(out, CollectConfig(**{**config.__dict__, "episodes": 3}), progress=False)  # resume from a local start
    summary = collect(out, config, executor=RAY, scorer_factory=crashing, progress=False)

    assert marker.exists(), "no worker was killed"
    assert (out / "rewards" / CrashingScorer.fingerprint / "info.json").is_file()
    assert (summary.episodes_written, summary.episodes_total, summary.shards_written) == (6, 9, 4)
    assert summary.steps == 6 * 5
    expected = episode_bytes(local)
    assert sorted(expected) == [f"ep{i:08d}" for i in range(9)]
    assert episode_bytes(out) == expected
    assert verify_dataset(out).ok and not hidden_files(out)
    assert open_dataset(out).info["collection"]["episodes"] == 9

    again = collect(out, config, executor=RAY, progress=False)
    assert again.episodes_written == 0 and again.episodes_total == 9


def test_collect_cli_in_process_and_as_subprocess(cluster, tmp_path):
    args = ["collect", "--env", "dummy", "--episodes", "4", "--episode-length", "5", "--image-size", "16",
            "--shard-episodes", "2", "--seed", "4", "--policy", "noisy-expert"]
    result = CliRunner().invoke(lamp_data_cli, [*args, "--out", str(tmp_path / "a"), "--executor", "ray"])
    assert result.exit_code == 0, result.output
    assert "4 episodes (4 new in 2 shards" in " ".join(result.output.split())

    process = subprocess.run(
        [LAMP_DATA, *args, "--out", str(tmp_path / "b"), "--executor", "ray", "--address", cluster["address"],
         "--workers", "1", "--num-cpus-per-worker", "0.5"],
        capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert "4 episodes (4 new in 2 shards" in " ".join(process.stdout.split())
    assert episode_bytes(tmp_path / "a") == episode_bytes(tmp_path / "b")


def test_bad_executor_settings_are_one_line_errors(cluster, tmp_path):
    base = ["collect", "--env", "dummy", "--episodes", "2", "--episode-length", "5", "--image-size", "16",
            "--out", str(tmp_path / "data")]
    for extra, message in [
        (["--address", "auto"], "--address is for --executor ray"),
        (["--executor", "ray", "--num-cpus-per-worker", "0"], "CPUs per worker must be positive, got 0.0"),
        (["--executor", "ray", "--workers", "0"], "workers must be at least 1, got 0"),
        (["--executor", "ray", "--num-cpus-per-worker", "3"], "each worker asks for 3 CPUs; the Ray cluster has 2"),
    ]:
        result = CliRunner().invoke(lamp_data_cli, base + extra)
        assert result.exit_code == 2 and result.output.strip() == f"Error: {message}", result.output
    assert not (tmp_path / "data" / "shards").exists() or not any((tmp_path / "data" / "shards").iterdir())
    with pytest.raises(LampError, match="is a URL; datasets live in folders"):
        collect("s3://bucket/data", CollectConfig(episodes=1, **TINY), executor=RAY, progress=False)
    with pytest.raises(LampError, match="in-process policy collects in this process"):
        collect(tmp_path / "other", CollectConfig(episodes=1, **TINY), policy=object(), executor=RAY, progress=False)
    assert not (tmp_path / "other").exists()


def test_ray_is_imported_only_when_asked_for_and_its_absence_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    message = r"--executor ray needs the 'ray' extra: pip install 'lamp-toolkit\[ray\]'"
    with pytest.raises(MissingExtraError, match=message):
        collect(tmp_path / "data", CollectConfig(episodes=1, **TINY), executor=RAY, progress=False)
    with pytest.raises(MissingExtraError, match=message):
        relabel(tmp_path / "data", "r3m:/no/model.pt", executor=RAY, progress=False)
    assert not (tmp_path / "data").exists()
    code = (
        "import sys\n"
        "from lamp_cli.data import main\n"
        f"args = ['collect', '--env', 'dummy', '--episodes', '1', '--episode-length', '5', '--image-size', '16']\n"
        f"main([*args, '--out', {str(tmp_path / 'local')!r}], standalone_mode=False)\n"
        "assert 'ray' not in sys.modules, 'the local executor imported ray'\n"
        "sys.modules['ray'] = None\n"
        f"main([*args, '--out', {str(tmp_path / 'cli')!r}, '--executor', 'ray'])\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip().splitlines() == [
        "Error: --executor ray needs the 'ray' extra: pip install 'lamp-toolkit[ray]' (import of ray halted; None in sys.modules)"
    ]
    assert (tmp_path / "local" / "meta" / "info.json").is_file() and not (tmp_path / "cli").exists()


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    prompts = root / "prompts.txt"
    prompts.write_text(PROMPTS)
    model = save_tiny_r3m(root / "r3m.pt", text_encoder=str(save_tiny_distilbert(root / "distilbert")))
    return {"spec": f"r3m:{model}", "prompts": str(prompts)}


def test_relabel_on_ray_equals_local_relabel_and_inline_rewards_and_resumes(cluster, reward_model, tmp_path):
    spec, prompts = reward_model["spec"], reward_model["prompts"]
    config = CollectConfig(episodes=6, shard_episodes=2, **{**TINY, "seed": 8})
    collect(tmp_path / "local", config, progress=False)
    shutil.copytree(tmp_path / "local", tmp_path / "ray")
    local = relabel(tmp_path / "local", spec, prompts, progress=False)
    on_ray = relabel(tmp_path / "ray", spec, prompts, executor=RAY, progress=False)
    assert (on_ray.fingerprint, on_ray.shards_written, on_ray.episodes, on_ray.frames) == (local.fingerprint, 3, 6, 36)
    expected = reward_files(tmp_path / "local")
    assert len(expected) == 2 + 2 * 3 and reward_files(tmp_path / "ray") == expected
    info = open_dataset(tmp_path / "ray").reward_set_info(on_ray.fingerprint)
    assert info["provenance"]["model_spec"] == spec and info["provenance"]["argv"] == portable_argv()

    reward_dir = tmp_path / "ray" / "rewards" / on_ray.fingerprint
    (reward_dir / "collect-00000002.json").unlink()  # a run killed between a tar and its sidecar
    (reward_dir / ".collect-00000004.tar.x.tmp").write_bytes(b"half")
    result = CliRunner().invoke(lamp_data_cli, ["relabel", str(tmp_path / "ray"), "--vlm", spec, "--prompts", prompts,
                                                "--executor", "ray", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.output)
    # the complete tar that lost its sidecar gets it back, the same bytes as before: nothing to score again
    assert (resumed["shards_written"], resumed["shards_skipped"], resumed["frames"]) == (0, 3, 0)
    assert reward_files(tmp_path / "ray") == expected and not hidden_files(tmp_path / "ray")

    inline = collect(tmp_path / "inline", CollectConfig(**{**config.__dict__, "vlm": spec, "prompts": prompts}),
                     executor=RAY, progress=False)
    assert inline.reward_shards_written == 3
    assert reward_files(tmp_path / "inline") == expected
    assert open_dataset(tmp_path / "inline").prompts() == PROMPTS.split("\n")[:-1]


def test_relabel_on_ray_reports_a_bad_model_as_one_line_and_writes_nothing(cluster, tmp_path):
    collect(tmp_path / "data", CollectConfig(episodes=2, **TINY), progress=False)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(LampError, match="does not exist"):
        relabel(tmp_path / "data", f"r3m:{tmp_path / 'missing.pt'}", executor=RAY, progress=False)
    assert sorted(tmp_path.rglob("*")) == before


def test_finetune_on_ray_equals_local_and_skips_finished_runs(cluster, tmp_path):
    from lamp_cli.eval import main as lamp_eval_cli
    from lamp_eval.finetune import FinetuneConfig, finetune

    options = dict(tasks=("reach-dummy",), inits=("scratch",), seeds=(0, 1), steps=10, eval_every=5, eval_episodes=2,
                   env="dummy", env_config=finetune_env(image_size=16, episode_length=5), preset="tiny", replay_ratio=2.0,
                   batch_size=2, seq_len=5)
    local = finetune(FinetuneConfig(out=str(tmp_path / "local"), **options), progress=False)
    args = ["finetune", "--task", "reach-dummy", "--init", "scratch", "--seeds", "0,1", "--steps", "10", "--eval-every", "5",
            "--eval-episodes", "2", "--env", "dummy", "--image-size", "16", "--episode-length", "5", "--preset", "tiny",
            "--replay-ratio", "2", "--batch-size", "2", "--seq-len", "5", "--no-progress", "--out", str(tmp_path / "ray"),
            "--executor", "ray"]
    result = CliRunner().invoke(lamp_eval_cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("\tdone\t") == 2

    def recorded(folder: Path) -> dict:
        info = json.loads((folder / "run.json").read_text())
        summary = {key: value for key, value in info["summary"].items() if not key.endswith("_seconds")}
        return {"log": (folder / "log.jsonl").read_text(), "train": (folder / "train.jsonl").read_text(),
                "summary": summary, "identity": info["identity"], "gif": (folder / "rollout.gif").read_bytes()}

    for run in local:
        on_ray = tmp_path / "ray" / run.folder.relative_to(tmp_path / "local")
        assert recorded(on_ray) == recorded(run.folder)
    again = CliRunner().invoke(lamp_eval_cli, args)
    assert again.exit_code == 0 and again.output.count("skipped (finished before)") == 2, again.output
