"""The leaderboard as the console shows it (lamp-eval leaderboard, the demo's last table): the
table fits 80 columns when piped, names what it leaves out, and points at the full table."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lamp_data.display.headless import find_browser, render_page
from lamp_eval.board_table import leaderboard_lines
from lamp_eval.report import ReportConfig, leaderboard
from lamp_eval.runs import EpisodeResult, Evaluation, RunConfig, RunWriter, eval_episode_seeds, finetune_env

BASELINES = {
    "format_version": 1, "env": "mw-door-close", "env_config": {}, "seeds": eval_episode_seeds(4),
    "random": {"return_mean": -10.0, "success_rate": 0.0, "returns": [-10.0] * 4, "successes": [False] * 4},
    "expert": {"return_mean": 10.0, "success_rate": 1.0, "returns": [10.0] * 4, "successes": [True] * 4},
}
"""Random policy at -10, expert at +10."""


def _run(out, method: str, seed: int, returns: list[float], successes: list[float], task: str = "door-close") -> None:
    config = RunConfig(task=task, env=f"mw-{task}", init="scratch" if method == "scratch" else "ckpt", method=method,
                       seed=seed, steps=400, eval_every=100, eval_episodes=4, instruction="",
                       env_config=finetune_env(episode_length=100), preset="tiny")
    writer = RunWriter(out, config)
    writer.begin({"baselines": {**BASELINES, "env": f"mw-{task}"}})
    for index, (value, rate) in enumerate(zip(returns, successes)):
        episodes = [EpisodeResult(s, float(value), position < rate * 4, 100) for position, s in enumerate(eval_episode_seeds(4))]
        writer.log(Evaluation.from_episodes(100 * index, episodes))
    writer.finish({})


def test_the_console_leaderboard_fits_80_columns_and_points_at_the_full_table(tmp_path):
    rng = np.random.default_rng(3)
    for method, level in (("lamp[r3m-3780029252d1,lamp-metaworld]", 6.0), ("p2e[r3m-3780029252d1,lamp-metaworld]", 2.0), ("scratch", -6.0)):
        for seed in range(3):
            returns = list(np.linspace(-10.0, level, 5) + rng.normal(0, 0.5, 5))
            _run(tmp_path / "runs", method, seed, returns, [0.0, 0.0, 0.25, 0.5, 0.5] if level > 0 else [0.0] * 5)
    report = leaderboard([tmp_path / "runs"], tmp_path / "report", ReportConfig(reps=200, gifs=False))
    lines = leaderboard_lines(report.leaderboard, report.out / "leaderboard.md", width=80)
    header = next(index for index, line in enumerate(lines) if line.startswith("rank"))
    end = next(index for index in range(header + 2, len(lines)) if not lines[index].startswith(" "))
    table = lines[header:end]
    assert max(len(line) for line in table) <= 80 and len(table) == 2 + 5  # two long method names wrap at their comma
    assert table[0].split() == ["rank", "method", "runs", "success", "final", "norm.", "return", "final"] and set(table[1]) <= {"-", " "}
    ranked = [line.split()[1] for line in table[2:] if line.split()[0].isdigit()]
    assert ranked == [row.method.split(",")[0] + ("," if "," in row.method else "") for row in report.leaderboard.rows]
    assert table[3].strip() == "lamp-metaworld]"
    assert lines[0].startswith("Ranked by the mean of the final success rate")
    assert lines[-1] == (f"Every column (IQM and mean, final and AUC, per task) (P(>scratch), P(>scratch) norm. left out here): "
                         f"{report.out / 'leaderboard.md'}")
    wide = leaderboard_lines(report.leaderboard, width=200)
    assert "P(>scratch) norm." in wide[1] and not wide[-1].startswith("Every column")


@pytest.mark.skipif(find_browser() is None, reason="no Chromium installed (apt-get install chromium) to lay the page out in")
def test_the_leaderboard_page_fits_a_1024_px_window(tmp_path):
    rng = np.random.default_rng(5)
    tasks = ("door-close", "button-press-topdown", "drawer-close", "faucet-open", "pick-place")
    for method, level in (("lamp[r3m-3780029252d1,lamp-metaworld]", 6.0), ("p2e[r3m-3780029252d1,lamp-metaworld]", 2.0), ("scratch", -6.0)):
        for task in tasks:
            for seed in range(4):
                _run(tmp_path / "runs", method, seed, list(np.linspace(-10.0, level, 5) + rng.normal(0, 0.5, 5)), [0.0] * 5, task)
    report = leaderboard([tmp_path / "runs"], tmp_path / "report", ReportConfig(reps=200, gifs=False))
    page = (report.out / "leaderboard.html").read_text()
    probe = "<script>document.body.dataset.pageWidth = document.documentElement.scrollWidth;" \
            "document.body.dataset.tableWidth = document.querySelector('table').scrollWidth;</script></body>"
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    rendered = render_page(tmp_path / "probe.html", window=(1024, 768))
    page_width = int(re.search(r'data-page-width="(\d+)"', rendered.dom).group(1))
    table_width = int(re.search(r'data-table-width="(\d+)"', rendered.dom).group(1))
    assert page_width <= 1024 < table_width, (page_width, table_width)  # the wide table scrolls inside its box
    assert rendered.console == ()
