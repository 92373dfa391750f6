"""``lamp-data tasks`` and ``lamp-data render``, in-process and as a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from lamp_cli.data import main
from lamp_data.display.showcase import render_showcase
from lamp_data.envs.tasks import list_tasks


def test_tasks_lists_every_task_as_json():
    result = CliRunner().invoke(main, ["tasks", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == len(list_tasks())
    finetune = {row["name"] for row in rows if row["finetune"]}
    assert {"pick-place", "door-close", "pick_up_cup"} <= finetune
    assert all(row["split"] == "heldout" for row in rows if row["finetune"])
    goals = {row["name"]: row["goal_visible"] for row in rows}
    assert goals["pick-place"] is False and goals["door-close"] is True and goals["pick_up_cup"] is None


def test_tasks_table_piped_fits_80_columns_one_line_per_task_mostly():
    executable = Path(sys.executable).parent / "lamp-data"
    completed = subprocess.run([str(executable), "tasks"], capture_output=True, text=True, check=True)  # stdout is a pipe
    lines = completed.stdout.splitlines()
    assert lines[0] == f"{len(list_tasks())} tasks" and lines[1].split() == ["task", "split", "instruction"]
    assert max(len(line) for line in lines) <= 80
    assert len(lines) < 1.25 * len(list_tasks())  # prose wraps, names never do
    assert "left out to fit 80 columns: backend, finetune, family, goal, objects" in " ".join(lines[-2:])
    assert any(line.startswith("button-press-topdown-wall  heldout") for line in lines)


def test_fitted_tables_keep_important_columns_wrap_prose_and_name_what_they_leave_out():
    from lamp_data.tables import Column, fit_table

    columns = [Column("name"), Column("note", wrap=True, min_width=10), Column("extra", priority=1), Column("x", priority=2)]
    rows = [("alpha", "a rather long note that has to wrap", "e1", "1"), ("beta", "short", "e2", "2")]
    wide, dropped = fit_table(columns, rows, width=120)
    assert dropped == [] and wide[2].split() == ["alpha", "a", "rather", "long", "note", "that", "has", "to", "wrap", "e1", "1"]
    narrow, dropped = fit_table(columns, rows, width=22)
    assert dropped == ["extra"] and max(map(len, narrow)) <= 22  # the narrow column x fits again once extra is out
    assert narrow[0].split() == ["name", "note", "x"] and [line.strip() for line in narrow[3:6]] == ["long note", "that has to", "wrap"]


def test_tasks_table_filters_by_split():
    result = CliRunner().invoke(main, ["tasks", "--split", "heldout", "--backend", "metaworld"])
    assert result.exit_code == 0
    assert "faucet-open" in result.output and "drawer-open" not in result.output


def test_render_writes_contact_sheet_and_gif(tmp_path):
    result = CliRunner().invoke(
        main, ["render", "--out", str(tmp_path), "--tasks", "reach,door-close", "--steps", "8", "--image-size", "24"]
    )
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(tmp_path / "showcase.png") as sheet:
        assert sheet.size[1] == 2 * 24
        pixels = np.asarray(sheet.convert("RGB"))
    assert pixels[:, -24:].std() > 5
    with Image.open(tmp_path / "showcase.gif") as animation:
        assert animation.n_frames == 5
    record = json.loads((tmp_path / "showcase.json").read_text())
    assert [row["task"] for row in record["tasks"]] == ["reach", "door-close"]
    assert record["tasks"][0]["randomization"]


def test_render_rejects_bad_input_without_writing(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", "--out", str(out), "--tasks", "pick-plase"])
    assert result.exit_code == 2 and "did you mean pick-place" in result.output
    result = CliRunner().invoke(main, ["render", "--out", str(out), "--tasks", "reach", "--image-size", "8"])
    assert result.exit_code == 2 and "image size" in result.output
    assert not out.exists()


def test_showcase_default_tasks_cover_every_family(tmp_path):
    from lamp_data.display.showcase import showcase_tasks

    families = {task.family for task in list_tasks(backend="metaworld")}
    chosen = showcase_tasks()
    assert len(chosen) == len(families)
    result = render_showcase(tmp_path, tasks=["reach"], steps=7, image_size=16, seed=2)
    assert Path(result["contact_sheet"]).exists() and Path(result["animation"]).exists()


def test_tasks_as_a_real_subprocess():
    executable = Path(sys.executable).parent / "lamp-data"
    completed = subprocess.run([str(executable), "tasks", "--json", "--backend", "rlbench"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert {row["name"] for row in json.loads(completed.stdout)} == {task.name for task in list_tasks(backend="rlbench")}
