"""Run logs and leaderboards built from synthetic runs whose ranking is known."""

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from lamp_data.envs import EnvConfig
from lamp_data.errors import LampError
from lamp_eval.report import ReportConfig, build_leaderboard, leaderboard
from lamp_eval.runs import (
    RUN_LOG,
    EpisodeResult,
    Evaluation,
    RunConfig,
    RunWriter,
    eval_episode_seeds,
    find_runs,
    finetune_env,
    read_run,
    train_episode_seed,
)

TASKS = ("pick-place", "door-close", "faucet-open")


def _config(method, task, seed, steps=400):
    return RunConfig(
        task=task, env=f"mw-{task}", init="scratch" if method == "scratch" else "ckpt", method=method,
        seed=seed, steps=steps, eval_every=100, eval_episodes=10, instruction="", env_config=finetune_env(episode_length=100),
        preset="tiny",
    )


def write_synthetic_run(out, method, task, seed, final_rate, rng, gif=False):
    writer = RunWriter(out, _config(method, task, seed))
    writer.begin({"instruction_used": "do it"})
    seeds = eval_episode_seeds(10)
    for step in range(0, 401, 100):
        rate = final_rate * step / 400
        successes = rng.random(10) < rate
        writer.log(Evaluation.from_episodes(
            step, [EpisodeResult(s, float(ok), bool(ok), 100) for s, ok in zip(seeds, successes)]
        ))
    if gif:
        frames = np.zeros((4, 16, 16, 3), np.uint8)
        frames[:, 4:8, 4:8] = 255
        iio.imwrite(writer.folder / "rollout.gif", frames, extension=".gif", duration=100, loop=0)
    return writer.finish({"final_success_rate": writer.evaluations[-1].success_rate})


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    quality = {"lamp[r3m-abc123]": (0.8, 1.0), "p2e": (0.3, 0.6), "scratch": (0.0, 0.3)}
    for method, (low, high) in quality.items():
        for task in TASKS:
            for seed in range(5):
                write_synthetic_run(out, method, task, seed, rng.uniform(low, high), rng, gif=(seed == 0))
    return out


def test_run_round_trip_and_seeds_are_disjoint(tmp_path):
    folder = write_synthetic_run(tmp_path, "p2e", "pick-place", 3, 0.5, np.random.default_rng(1))
    assert folder == tmp_path / "p2e" / "pick-place" / "seed-3"
    run = read_run(folder)
    assert run.method == "p2e" and run.task == "pick-place" and run.seed == 3
    assert run.steps == [0, 100, 200, 300, 400]
    assert run.info["format_version"] == 1 and "versions" in run.info["provenance"]
    lines = (folder / RUN_LOG).read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["episodes"][0]["seed"] == eval_episode_seeds(1)[0] for line in lines)
    train = {train_episode_seed(seed, episode) for seed in range(1000) for episode in (0, 999_999)}
    assert not train & set(eval_episode_seeds(1000))
    # a finished run is recognised; one made with another config is refused
    assert RunWriter(tmp_path, _config("p2e", "pick-place", 3)).finished()
    with pytest.raises(LampError, match="different config"):
        RunWriter(tmp_path, _config("p2e", "pick-place", 3, steps=800)).finished()


def test_unfinished_runs_are_invisible_and_damage_is_reported(tmp_path):
    writer = RunWriter(tmp_path, _config("scratch", "pick-place", 0))
    writer.begin({})
    writer.log(Evaluation.from_episodes(0, [EpisodeResult(1, 0.0, False, 5)]))
    with pytest.raises(LampError, match="no finished runs"):
        find_runs([tmp_path])
    write_synthetic_run(tmp_path, "scratch", "door-close", 0, 0.5, np.random.default_rng(2))
    assert [run.task for run in find_runs([tmp_path])] == ["door-close"]
    log = tmp_path / "scratch" / "door-close" / "seed-0" / RUN_LOG
    log.write_text(log.read_text() + '{"step": 5, "succ')
    with pytest.raises(LampError, match="damaged run log .* line 6"):
        find_runs([tmp_path])
    with pytest.raises(LampError, match="does not exist"):
        find_runs([tmp_path / "missing"])


def test_known_better_method_ranks_first_with_separated_ci(synthetic_runs):
    board = build_leaderboard(find_runs([synthetic_runs]), ReportConfig(reps=1000))
    assert [row.method for row in board.rows] == ["lamp[r3m-abc123]", "p2e", "scratch"]
    best, second, scratch = board.rows
    assert best.final_iqm.excludes(second.final_iqm) and best.final_iqm.low > second.final_iqm.high
    assert best.runs == 15 and best.tasks == tuple(sorted(TASKS)) and best.budget == (400,)
    assert best.improvement.value > 0.9 and best.improvement.low > 0.5
    assert scratch.improvement is None
    by_auc = build_leaderboard(find_runs([synthetic_runs]), ReportConfig(reps=1000, score="auc"))
    assert by_auc.rows[0].method == "lamp[r3m-abc123]"


def test_leaderboard_writes_every_artifact(synthetic_runs, tmp_path):
    out = tmp_path / "report"
    result = leaderboard([synthetic_runs], out, ReportConfig(reps=300))
    names = {path.relative_to(out).as_posix() for path in result.files}
    for expected in ("leaderboard.csv", "leaderboard.md", "leaderboard.html", "leaderboard.json", "per_task.csv",
                     "curves.png", "curves.svg", "curves_per_task.png", "curves_per_task.svg",
                     "returns_per_task.png", "returns_per_task.svg"):
        assert expected in names
    assert len([name for name in names if name.startswith("gifs/")]) == len(TASKS) * 3
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert rows[0]["method"] == "lamp[r3m-abc123]" and rows[0]["rank"] == "1"
    assert float(rows[0]["final_iqm_low"]) <= float(rows[0]["final_iqm"]) <= float(rows[0]["final_iqm_high"])
    page = (out / "leaderboard.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and page.count("data:image/gif;base64,") == 9
    assert 'src="curves' not in page and "lamp[r3m-abc123]" in page
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "curves.svg").read_text()
    assert json.loads((out / "leaderboard.json").read_text())["format_version"] == 1
    assert "| 1 | `lamp[r3m-abc123]` |" in (out / "leaderboard.md").read_text()


def test_leaderboard_cli_in_process(synthetic_runs, tmp_path):
    from lamp_cli.eval import main

    runner = CliRunner()
    result = runner.invoke(main, ["leaderboard", str(synthetic_runs), "--out", str(tmp_path / "r"), "--reps", "200"])
    assert result.exit_code == 0, result.output
    assert "lamp[r3m-abc123]" in result.output and (tmp_path / "r" / "leaderboard.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["leaderboard", str(empty), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and result.output.strip().startswith("Error: no finished runs")
    assert len(result.output.strip().splitlines()) == 1


def test_reward_quality_cli(tmp_path):
    from lamp_cli.eval import main
    from lamp_data.pipeline.collect import CollectConfig, collect
    from lamp_data.store import iter_episodes
    from lamp_data.store.writer import RewardSetWriter

    data = tmp_path / "data"
    common = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5), shard_episodes=4, seed=1)
    collect(data, CollectConfig(episodes=4, policy="expert", run="expert", **common), progress=False)
    collect(data, CollectConfig(episodes=10, policy="random", run="random", **common), progress=False)
    prompts = ["reach the red block", "push the red block"]
    writer = RewardSetWriter(data, "distance", {"model_spec": "synthetic:distance"}, prompts)
    by_shard = {}
    for episode in iter_episodes(data):
        state = episode["state"]
        own = -np.linalg.norm(state[:, :2] - state[:, 2:], axis=1)
        rewards = np.full((len(state), 2), -0.5, np.float32)
        rewards[:, prompts.index(episode["meta"]["instruction"])] = own
        by_shard.setdefault(episode["__shard__"], {})[episode["__key__"]] = rewards
    for shard, rewards in by_shard.items():
        writer.write_shard(shard, rewards)

    runner = CliRunner()
    result = runner.invoke(main, ["reward-quality", "--rewards", str(data / "rewards" / "distance"), "--out", str(tmp_path / "rq.md")])
    assert result.exit_code == 0, result.output
    assert "Reward quality on held-out tasks" in result.output and "synthetic:distance" in result.output
    header, _, line, *rest = (tmp_path / "rq.md").read_text().strip().splitlines()
    assert header.startswith("| fingerprint | model |") and line.startswith("| distance | synthetic:distance |")
    assert "Per task" in result.output and rest[-1].startswith("| reach-dummy | distance |")
    as_json = runner.invoke(main, ["reward-quality", str(data / "rewards" / "distance"), "--json", "--out", str(tmp_path / "rq.csv")])
    [row] = json.loads(as_json.output)
    assert row["episodes"] == 10 and row["failures"] > 0 and row["success_auroc"] > 0.5
    assert f"| {row['episodes']} | {row['successes']} | {row['failures']} |" in line
    macro, *tasks = (tmp_path / "rq.csv").read_text().splitlines()[1:]
    assert macro.startswith("distance,synthetic:distance,macro,")
    assert len(tasks) == row["tasks"] and all(line.startswith("distance,synthetic:distance,") for line in tasks)
    bad = runner.invoke(main, ["reward-quality", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    wrong_suffix = runner.invoke(main, ["reward-quality", str(data / "rewards" / "distance"), "--out", str(tmp_path / "rq.txt")])
    assert wrong_suffix.exit_code == 2 and "--out must end in" in wrong_suffix.output
    assert not (tmp_path / "rq.txt").exists()
    nothing = runner.invoke(main, ["reward-quality"])
    assert nothing.exit_code == 2 and "at least one reward set" in nothing.output


def test_different_budgets_are_flagged(tmp_path):
    rng = np.random.default_rng(3)
    write_synthetic_run(tmp_path, "scratch", "pick-place", 0, 0.2, rng)
    writer = RunWriter(tmp_path, _config("p2e", "pick-place", 0, steps=200))
    writer.begin({})
    for step in (0, 100, 200):
        writer.log(Evaluation.from_episodes(step, [EpisodeResult(1, 1.0, True, 100)]))
    writer.finish({})
    result = leaderboard([tmp_path], tmp_path / "report", ReportConfig(reps=100, gifs=False))
    assert "different env-step budgets (p2e: 200; scratch: 400)" in (tmp_path / "report" / "leaderboard.md").read_text()
    assert "different env-step budgets" in (tmp_path / "report" / "leaderboard.html").read_text()
    assert {row.method: row.budget for row in result.leaderboard.rows} == {"p2e": (200,), "scratch": (400,)}


def test_tied_methods_share_a_rank(tmp_path):
    from lamp_eval.report import build_leaderboard, markdown_table
    from lamp_eval.report.scores import competition_ranks
    from lamp_eval.report.tables import leaderboard_records
    from lamp_eval.runs import find_runs

    rng = np.random.default_rng(5)
    for method in ("scratch", "p2e"):
        for seed in range(3):
            write_synthetic_run(tmp_path, method, "pick-place", seed, 0.0, rng)
    board = build_leaderboard(find_runs([tmp_path]))
    assert competition_ranks(board) == [1, 1]
    assert [record["rank"] for record in leaderboard_records(board)] == [1, 1]
    assert markdown_table(board).count("| 1 (tie) | `") == 2


def test_methods_whose_intervals_overlap_share_a_rank_and_a_separated_one_ranks_below(tmp_path):
    from lamp_eval.report import markdown_table
    from lamp_eval.report.scores import competition_ranks

    rng = np.random.default_rng(3)
    finals = {"best": [1.0] * 6, "close": [1.0, 1.0, 1.0, 1.0, 0.5, 0.5], "poor": [0.0] * 6}
    for method, rates in finals.items():
        for seed, rate in enumerate(rates):
            write_synthetic_run(tmp_path, method, "pick-place", seed, rate, rng)
    board = build_leaderboard(find_runs([tmp_path]), ReportConfig(score="final", reps=500))
    assert [row.method for row in board.rows] == ["best", "close", "poor"] and board.statistic == "iqm"
    best, close, _ = board.rows
    assert best.final_iqm.value > close.final_iqm.value and not best.final_iqm.excludes(close.final_iqm)
    assert competition_ranks(board) == [1, 1, 3]
    table = markdown_table(board)
    assert "| 1 (tie) | `best` |" in table and "| 1 (tie) | `close` |" in table and "| 3 | `poor` |" in table
    assert "best and close share rank 1" in table and "intervals of the IQM" in table


BASELINES = {
    "format_version": 1, "env": "mw-pick-place", "env_config": {}, "seeds": eval_episode_seeds(4),
    "random": {"return_mean": -10.0, "success_rate": 0.0, "returns": [-10.0] * 4, "successes": [False] * 4},
    "expert": {"return_mean": 10.0, "success_rate": 1.0, "returns": [10.0] * 4, "successes": [True] * 4},
}
"""Random policy at -10, expert at +10: a return r normalises to (r + 10) / 20."""


def write_return_run(out, method, task, seed, returns, baselines=BASELINES, agent_config=None):
    """A run that never succeeds, whose evaluations at steps 0, 100, ... have the given mean returns."""
    writer = RunWriter(out, _config(method, task, seed))
    details = {"baselines": baselines} if baselines else {}
    if agent_config is not None:
        details["agent_config"] = agent_config
    writer.begin(details)
    seeds = eval_episode_seeds(4)
    for index, value in enumerate(returns):
        writer.log(Evaluation.from_episodes(
            100 * index, [EpisodeResult(s, float(value), False, 100) for s in seeds]
        ))
    return writer.finish({})


def _learning(final_return, rng, points=5):
    """Returns rising from the random policy's -10 to about ``final_return``."""
    return list(np.linspace(-10.0, final_return, points) + rng.normal(0.0, 0.1, points))


@pytest.fixture(scope="module")
def unsuccessful_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("unsuccessful")
    rng = np.random.default_rng(7)
    for task in TASKS[:2]:
        for seed in range(5):
            write_return_run(out, "lamp[r3m-abc123]", task, seed, _learning(rng.uniform(4.0, 8.0), rng))  # ~0.7-0.9
            write_return_run(out, "scratch", task, seed, _learning(rng.uniform(-9.0, -5.0), rng))  # ~0.05-0.25
    return out


def test_normalised_scores_by_hand(tmp_path):
    from lamp_eval.report.scores import is_normalisable, run_normalised_returns, run_score

    run = read_run(write_return_run(tmp_path, "p2e", "pick-place", 0, [-10.0, -5.0, 0.0, 5.0, 10.0]))
    # (r + 10) / 20
    assert run_normalised_returns(run) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert run_score(run, "norm-final") == pytest.approx(1.0)
    # trapezoids of 100 steps: (0 + .25) / 2 + (.25 + .5) / 2 + (.5 + .75) / 2 + (.75 + 1) / 2 = 2.0 -> 200 / 400
    assert run_score(run, "norm-auc") == pytest.approx(0.5)
    assert run_score(run, "final") == 0.0 and is_normalisable(run)
    bare = read_run(write_return_run(tmp_path, "scratch", "pick-place", 0, [1.0, 2.0], baselines=None))
    no_expert = read_run(write_return_run(tmp_path, "scratch", "door-close", 0, [1.0, 2.0], baselines={**BASELINES, "expert": None}))
    for unusable in (bare, no_expert):
        assert not is_normalisable(unusable)
        assert np.isnan(run_score(unusable, "norm-final")) and np.isnan(run_score(unusable, "norm-auc"))


def test_without_success_auto_ranks_by_normalised_return(unsuccessful_runs, tmp_path):
    from lamp_eval.report.scores import NO_SUCCESS_NORMALISED

    runs = find_runs([unsuccessful_runs])
    board = build_leaderboard(runs, ReportConfig(reps=1000))
    assert board.score == "norm-final" and not board.any_success
    assert [row.method for row in board.rows] == ["lamp[r3m-abc123]", "scratch"]
    best, scratch = board.rows
    assert best.final_iqm.value == scratch.final_iqm.value == 0.0
    assert best.norm_final_iqm.excludes(scratch.norm_final_iqm) and best.norm_final_iqm.low > scratch.norm_final_iqm.high
    assert 0.6 < best.norm_final_iqm.value < 1.0 and 0.0 < scratch.norm_final_iqm.value < 0.3
    assert best.norm_improvement.value == 1.0 and best.norm_improvement.low == 1.0
    assert best.improvement.value == 0.5  # success: every pair ties
    assert best.norm_runs == 10 and best.norm_auc_iqm.value > scratch.norm_auc_iqm.value
    # asked for success explicitly, the methods tie and the report says nothing succeeded
    by_success = build_leaderboard(runs, ReportConfig(reps=200, score="final"))
    assert by_success.score == "final" and [row.ranking_value("final") for row in by_success.rows] == [0.0, 0.0]

    result = leaderboard([unsuccessful_runs], tmp_path / "report", ReportConfig(reps=300, gifs=False), about={"budget": "400 env steps"})
    out = result.out
    markdown = (out / "leaderboard.md").read_text()
    page = (out / "leaderboard.html").read_text()
    assert NO_SUCCESS_NORMALISED in markdown and NO_SUCCESS_NORMALISED in page
    assert "| 1 | `lamp[r3m-abc123]` |" in markdown and "final expert-normalised return" in markdown
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert rows[0]["method"] == "lamp[r3m-abc123]"
    assert float(rows[0]["norm_final_iqm_low"]) <= float(rows[0]["norm_final_iqm"]) <= float(rows[0]["norm_final_iqm_high"])
    assert float(rows[0]["norm_p_improve_vs_scratch"]) == 1.0
    names = {path.name for path in result.files}
    assert {"normalised_per_task.png", "normalised_per_task.svg"} <= names
    assert page.count("data:image/png;base64,") == 4
    assert "About this report" in page and "400 env steps" in page and "numpy" in page
    assert str(unsuccessful_runs.resolve()) in page
    report = json.loads((out / "leaderboard.json").read_text())
    assert report["score"] == "norm-final" and report["config"]["score"] == "auto"
    assert report["notes"][0] == NO_SUCCESS_NORMALISED and report["about"]["budget"] == "400 env steps"

    from lamp_cli.eval import main

    printed = CliRunner().invoke(main, ["leaderboard", str(unsuccessful_runs), "--out", str(tmp_path / "r"), "--reps", "200", "--no-gifs"])
    assert printed.exit_code == 0, printed.output
    assert NO_SUCCESS_NORMALISED in printed.output
    by_auc = CliRunner().invoke(main, ["leaderboard", str(unsuccessful_runs), "--out", str(tmp_path / "r2"), "--reps", "200", "--no-gifs", "--score", "norm-auc"])
    assert by_auc.exit_code == 0 and "area under the expert-normalised return curve" in by_auc.output


def test_no_success_report_points_at_curves_and_notes_ties_and_single_runs(tmp_path):
    rng = np.random.default_rng(17)
    write_return_run(tmp_path, "lamp[r3m-abc]", "pick-place", 0, _learning(6.0, rng))
    flat = _learning(-6.0, rng)
    for seed in range(3):
        write_return_run(tmp_path, "p2e", "pick-place", seed, flat)
        write_return_run(tmp_path, "scratch", "pick-place", seed, flat)
    out = leaderboard([tmp_path], tmp_path / "report", ReportConfig(reps=200, gifs=False)).out
    markdown = (out / "leaderboard.md").read_text()
    page = (out / "leaderboard.html").read_text()
    # nothing succeeded: the opening sentence links the normalised-return and return curves
    opening = markdown.split("\n\n")[0]
    assert "[normalised_per_task.png](normalised_per_task.png)" in opening
    assert "[returns_per_task.png](returns_per_task.png)" in opening and "[curves.png](curves.png)" in opening
    assert all((out / name).is_file() for name in ("curves.png", "normalised_per_task.png", "returns_per_task.png"))
    for stem in ("curves", "normalised_per_task", "returns_per_task"):
        assert f'<a href="#{stem}">' in page and f'<figure id="{stem}">' in page
    # the tie is marked in the rank column and named in a note
    assert "| 2 (tie) | `p2e` |" in markdown and "| 2 (tie) | `scratch` |" in markdown
    assert "<td>2 (tie)</td><td><code>p2e</code></td>" in page
    assert "p2e and scratch share rank 2" in markdown and "p2e and scratch share rank 2" in page
    # one run per task: the estimates are marked n=1 instead of showing a degenerate interval
    header = markdown.splitlines()[2].split(" | ")
    lamp_cells = next(line for line in markdown.splitlines() if line.startswith("| 1 | `lamp[r3m-abc]`")).split(" | ")
    normalised = header.index("norm. final mean [95% CI]")
    assert lamp_cells[3] == "0.000 (n=1)" and lamp_cells[normalised].endswith("(n=1)") and "[" not in lamp_cells[normalised]
    # fewer than 4 runs per task: the table gives means, not IQMs that would trim nothing
    assert "IQM" not in markdown.splitlines()[2] and "the table gives means" in markdown
    note = "lamp[r3m-abc] has one run per task (n=1)"
    assert note in markdown and note in page
    assert "(n=1) |" not in next(line for line in markdown.splitlines() if "`p2e`" in line)
    report = json.loads((out / "leaderboard.json").read_text())
    assert report["notes"][1].startswith("The learning curves show") and any(note in n for n in report["notes"])


def test_any_success_keeps_success_ranking(tmp_path):
    rng = np.random.default_rng(11)
    for seed in range(3):
        write_return_run(tmp_path, "p2e", "pick-place", seed, _learning(8.0, rng))
    write_synthetic_run(tmp_path, "scratch", "pick-place", 0, 0.5, rng)
    board = build_leaderboard(find_runs([tmp_path]), ReportConfig(reps=200))
    assert board.any_success and board.score == "final" and board.rows[0].method == "scratch"
    from lamp_eval.report import markdown_table
    from lamp_eval.report.scores import NO_SUCCESS_NORMALISED

    assert NO_SUCCESS_NORMALISED not in markdown_table(board)


def test_runs_without_baselines_do_not_crash(tmp_path):
    rng = np.random.default_rng(12)
    for seed in range(3):
        write_return_run(tmp_path, "p2e", "pick-place", seed, _learning(0.0, rng))
        write_return_run(tmp_path, "scratch", "pick-place", seed, _learning(5.0, rng), baselines=None)
    write_return_run(tmp_path, "scratch", "door-close", 0, _learning(5.0, rng), baselines={**BASELINES, "expert": None})
    result = leaderboard([tmp_path], tmp_path / "report", ReportConfig(reps=200, gifs=False))
    board = result.leaderboard
    assert board.score == "norm-final" and board.runs_without_baselines == 4
    assert [row.method for row in board.rows] == ["p2e", "scratch"]
    scratch = board.rows[1]
    assert scratch.norm_final_iqm is None and scratch.norm_improvement is None and scratch.norm_runs == 0
    assert board.rows[0].norm_improvement is None  # the baseline has nothing to compare against
    markdown = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "are left out of the normalised scores: 4 of 7." in markdown and "norm. n/a" in markdown
    report = json.loads((tmp_path / "report" / "leaderboard.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert report["rows"][1]["norm_final_iqm"] is None
    rows = list(csv.DictReader((tmp_path / "report" / "leaderboard.csv").open()))
    assert rows[1]["norm_final_iqm"] == "" and rows[1]["norm-final:pick-place"] == ""
    # old runs only: success still ranks them, and a normalised score is refused in one line
    old = tmp_path / "old"
    write_synthetic_run(old, "scratch", "pick-place", 0, 0.0, rng)
    write_synthetic_run(old, "p2e", "pick-place", 0, 0.0, rng)
    assert build_leaderboard(find_runs([old]), ReportConfig(reps=100)).score == "final"
    assert "no run carries expert baselines" in markdown_of(old)
    with pytest.raises(LampError, match="no run carries expert baselines, so runs cannot be ranked by norm-auc"):
        build_leaderboard(find_runs([old]), ReportConfig(reps=100, score="norm-auc"))


def markdown_of(folder):
    from lamp_eval.report import markdown_table

    return markdown_table(build_leaderboard(find_runs([folder]), ReportConfig(reps=100)))


def test_architecture_mismatch_is_flagged(tmp_path):
    rng = np.random.default_rng(13)
    small = {"frontend": "cnn", "deter": 64, "hidden": 64, "mlp_units": 64, "alpha": 0.9, "mae_width": 32}
    large = {"frontend": "cnn", "deter": 256, "hidden": 256, "mlp_units": 64, "alpha": 1.0}
    for seed in range(2):
        write_return_run(tmp_path, "lamp[r3m-abc123]", "pick-place", seed, _learning(5.0, rng), agent_config=small)
        write_return_run(tmp_path, "scratch", "pick-place", seed, _learning(0.0, rng), agent_config=large)
        write_return_run(tmp_path, "p2e", "pick-place", seed, _learning(0.0, rng), agent_config=dict(small, alpha=1.0))
    result = leaderboard([tmp_path], tmp_path / "report", ReportConfig(reps=100, gifs=False))
    # alpha is not architecture and mae_width is in one config only, so lamp and p2e agree
    first, second = result.leaderboard.architecture_differences
    assert first.methods == ("lamp[r3m-abc123]", "scratch") and second.methods == ("p2e", "scratch")
    assert first.keys == second.keys == ("deter", "hidden") and first.tasks == ("pick-place",)
    expected = "differ in architecture (lamp[r3m-abc123] vs scratch: deter, hidden; p2e vs scratch: deter, hidden)"
    assert expected in (tmp_path / "report" / "leaderboard.md").read_text()
    assert expected in (tmp_path / "report" / "leaderboard.html").read_text()
    assert not any("architecture" in note for note in markdown_of(tmp_path / "lamp[r3m-abc123]").splitlines())


def test_demo_report_states_budget_preset_and_seeds():
    from lamp_eval.demo import DemoConfig, demo_about

    about = demo_about(DemoConfig(finetune_steps=800, eval_every=200, eval_episodes=2, seeds=(0, 1, 2)), "r3m:model.pt", "r3m-abc123")
    assert "800 env steps" in about["budget"] and "2 evaluation episodes" in about["budget"]
    assert f"'{DemoConfig().preset}'" in about["preset"] and "0, 1, 2" in about["seeds"] and "r3m-abc123" in about["reward model"]
