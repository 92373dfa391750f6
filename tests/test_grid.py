"""lamp-eval grid: an experiment that finishes however often it is interrupted, and its report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lamp_cli.eval import main as lamp_eval_cli
from lamp_data.errors import LampError
from lamp_eval.grid import load_grid, plan_grid, run_command

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"steps": 160, "eval_every": 40, "eval_episodes": 2, "image_size": 16, "episode_length": 20, "env": "dummy",
            "prefill": 40, "initial_updates": 2, "replay_ratio": 8.0}


def _write_grid(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wide.yaml").write_text("base: tiny\nhorizon: 6\n")
    values = {
        "format_version": 1, "description": "A test grid", "tasks": ["reach-dummy"], "seeds": [0, 1], "settings": SETTINGS,
        "methods": {"tiny": {"preset": "tiny"}, "wide": {"preset": "wide.yaml"}}, **changes,
    }
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _grid_process(grid: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lamp_cli.eval", "grid", str(grid), "--out", str(out), "--workers", "2", "--nice", "0"],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_grid_killed_and_run_again_finishes_every_run_once_and_reports(tmp_path):
    grid = _write_grid(tmp_path / "exp")
    out = tmp_path / "exp" / "out"
    first = _grid_process(grid, out)
    runs = out / "runs"
    deadline = time.monotonic() + 240
    while not list(runs.glob("*/*/.seed-*.partial/resume/checkpoints/latest.json")):  # a run part-way through
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    first_started = [line for line in first.stdout.read().splitlines() if line.startswith("started")]
    assert len(first_started) >= 2 and all("· seed 0 " in line for line in first_started[:2])  # seed by seed, methods together
    time.sleep(0.5)  # its runs die with it
    assert not any("lamp_cli.eval finetune" in line and str(out) in line
                   for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines())
    statuses = {item.name: item.status for item in plan_grid(load_grid(grid), out)}
    assert "partial" in statuses.values()
    second = _grid_process(grid, out)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    started = [line for line in output.splitlines() if line.startswith("started")]
    assert len(started) == sum(status != "finished" for status in statuses.values())
    assert any("(continues)" in line for line in started)
    continues = ["(continues)" in line for line in started]
    assert continues == sorted(continues, reverse=True)  # interrupted runs go on first
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is False and summary["finished"] == summary["planned"] == 4
    infos = [json.loads(path.read_text()) for path in runs.glob("*/reach-dummy/seed-*/run.json")]
    assert len(infos) == 4 and all(info["summary"]["resumes"] <= 1 for info in infos)
    assert sum(info["summary"]["resumes"] for info in infos) >= 1
    report = (out / "grid.md").read_text()
    assert "All 4 runs finished." in report and "P(wide > tiny)" in report and "(mean)" in report
    cell = summary["cells"][0]
    train_log = [json.loads(line) for line in (runs / cell["method"] / "reach-dummy" / "seed-0" / "train.jsonl").read_text().splitlines()]
    assert set(cell["training"]) == {"first", "last"} and cell["training"]["last"]["actor_entropy"] > 0
    assert "| reach-dummy | tiny | 2 | " in report and "→" in report.split("## Training")[1].split("##")[0]
    assert len(train_log) >= 2 and cell["training"]["first"]["image_loss"] != cell["training"]["last"]["image_loss"]
    assert (out / "curves.png").is_file() and len((out / "curves.jsonl").read_text().splitlines()) == 4 * 5
    third = _grid_process(grid, out)
    output, _ = third.communicate(timeout=120)
    assert third.returncode == 0 and "started" not in output and "4 of 4 runs finished" in output


def test_the_report_marks_what_is_missing_and_names_the_command(tmp_path):
    grid = _write_grid(tmp_path / "exp", seeds=[0])
    out = tmp_path / "exp" / "out"
    result = CliRunner().invoke(lamp_eval_cli, ["grid", str(grid), "--out", str(out), "--report-only"])
    assert result.exit_code == 0, result.output
    report = (out / "grid.md").read_text()
    assert "**Partial: 0 of 2 runs finished.**" in report and f"lamp-eval grid {grid} --out {out}" in report
    summary = json.loads((out / "summary.json").read_text())
    assert [entry["status"] for entry in summary["missing"]] == ["missing", "missing"]
    assert "model" in summary["provenance"]["cpu"] and not summary["provenance"]["argv"][0].startswith("/")


def test_a_pretrained_arm_made_later_waits_and_paths_are_read_relative_to_the_grid_file(tmp_path):
    grid = _write_grid(tmp_path / "exp", methods={"tiny": {"preset": "tiny"}, "lamp": {"init": "pretraining/lamp"}}, runs="../shared-runs")
    spec = load_grid(grid)
    assert spec.methods[1].init == os.path.relpath(tmp_path / "exp" / "pretraining" / "lamp")
    assert spec.runs_folder("anything") == Path(os.path.relpath(tmp_path / "shared-runs"))
    planned = plan_grid(spec, tmp_path / "out")
    assert [item.status for item in planned] == ["missing"] * 4
    command = run_command(planned[0], spec.runs_folder("x"), threads=1)
    assert command[command.index("--steps") + 1] == "160" and command[command.index("--env") + 1] == "dummy"
    assert command[command.index("--method") + 1] == "tiny" and "--eval-episodes" in command


def test_a_methods_own_settings_reach_its_runs_alone(tmp_path):
    methods = {"tiny": {"preset": "tiny"}, "lamp": {"init": "pretraining/lamp"},
               "lamp-full": {"init": "pretraining/lamp", "settings": {"finetune_critic": "full", "steps": 200}}}
    spec = load_grid(_write_grid(tmp_path / "exp", methods=methods))
    planned = {(item.method.name, item.config.seed): item for item in plan_grid(spec, tmp_path / "out")}
    full, probe = planned[("lamp-full", 0)], planned[("lamp", 0)]
    assert (full.config.finetune_critic, full.config.steps) == ("full", 200)
    assert (probe.config.finetune_critic, probe.config.steps) == (None, 160)
    assert "finetune_critic" not in probe.config.to_dict() and full.config.identity() != probe.config.identity()
    command = run_command(full, spec.runs_folder("x"), threads=1)
    assert command[command.index("--finetune-critic") + 1] == "full" and command[command.index("--steps") + 1] == "200"
    assert "--finetune-critic" not in run_command(probe, spec.runs_folder("x"), threads=1)


def test_a_given_action_repeat_reaches_its_command_and_record_and_an_unset_one_stays_the_inits(tmp_path):
    methods = {"tiny": {"preset": "tiny"}, "tiny-ar1": {"preset": "tiny", "settings": {"action_repeat": 1}}}
    spec = load_grid(_write_grid(tmp_path / "exp", methods=methods))
    planned = {(item.method.name, item.config.seed): item for item in plan_grid(spec, tmp_path / "out")}
    unset, given = planned[("tiny", 0)], planned[("tiny-ar1", 0)]
    assert unset.config.to_dict()["action_repeat"] is None and given.config.to_dict()["action_repeat"] == 1
    assert unset.config.identity() != given.config.identity()  # the same repeat, but one follows its init's
    command = run_command(given, spec.runs_folder("x"), threads=1)
    assert command[command.index("--action-repeat") + 1] == "1"
    assert "--action-repeat" not in run_command(unset, spec.runs_folder("x"), threads=1)


def test_runs_evaluated_with_sampled_actions_get_rows_and_a_comparison_of_their_own(tmp_path):
    from lamp_eval.finetune import finetune

    settings = {**SETTINGS, "steps": 40, "eval_every": 20, "prefill": 10}
    grid = _write_grid(tmp_path / "exp", seeds=[0], settings=settings, methods={"tiny": {"preset": "tiny", "settings": {"eval_sampled": True}}})
    spec = load_grid(grid)
    out = tmp_path / "exp" / "out"
    [item] = plan_grid(spec, out)
    assert "--eval-sampled" in run_command(item, spec.runs_folder(out), threads=1)
    finetune(spec.finetune_config(spec.methods[0], spec.runs_folder(out)), progress=False)
    result = CliRunner().invoke(lamp_eval_cli, ["grid", str(grid), "--out", str(out), "--report-only"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [cell["method"] for cell in summary["cells"]] == ["tiny", "tiny, sampled actions"]
    assert [(entry["a"], entry["b"]) for entry in summary["comparisons"]] == [("tiny, sampled actions", "tiny")]
    log = [json.loads(line) for line in (out / "runs" / "tiny" / "reach-dummy" / "seed-0" / "log.jsonl").read_text().splitlines()]
    curves = [json.loads(line) for line in (out / "curves.jsonl").read_text().splitlines()]
    assert [line["success_rate"] for line in curves if line["method"] == "tiny"] == [line["success_rate"] for line in log]
    assert [line["return_mean"] for line in curves if line["method"] == "tiny, sampled actions"] == [
        round(line["sampled"]["return_mean"], 3) for line in log]
    report = (out / "grid.md").read_text()
    assert "| reach-dummy | tiny, sampled actions | 1/1 (mean) |" in report and "P(tiny, sampled actions > tiny)" in report
    assert report.split("## Training")[1].split("##")[0].count("| reach-dummy |") == 1


@pytest.mark.parametrize("changes, message", [
    ({"tasks": []}, "'tasks' must be a list"),
    ({"seeds": ["a"]}, "'seeds' must be a list"),
    ({"settings": {"stepz": 3}}, "stepz are not lamp-eval finetune settings"),
    ({"methods": {"a": {"init": "scratch", "preset": "nosuch"}}}, "unknown agent preset 'nosuch'"),
    ({"compare": [["tiny", "nosuch"]]}, "'compare' must list pairs"),
    ({"format_version": 9}, "format version 9"),
    ({"settings": {"steps": 0}}, "steps must be at least 1"),
    ({"methods": {"a": {"settings": {"stepz": 3}}}}, "method 'a' settings stepz are not lamp-eval finetune settings"),
    ({"methods": {"a": {"settings": {"finetune_critic": "half"}}}}, "finetune-critic must be one of probe, full"),
])
def test_a_bad_grid_file_is_one_line_and_exit_2_before_anything_is_written(tmp_path, changes, message):
    grid = _write_grid(tmp_path / "exp", **changes)
    out = tmp_path / "out"
    result = CliRunner().invoke(lamp_eval_cli, ["grid", str(grid), "--out", str(out)])
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1, result.output
    assert not out.exists()
    with pytest.raises(LampError):
        load_grid(grid)
