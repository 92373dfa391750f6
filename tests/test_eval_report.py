"""Run logs and leaderboards built from synthetic runs whose ranking is known."""

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

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
    read_run,
    train_episode_seed,
)

TASKS = ("pick-place", "door-close", "faucet-open")


def _config(method, task, seed, steps=400):
    return RunConfig(
        task=task, env=f"mw-{task}", init="scratch" if method == "scratch" else "ckpt", method=method,
        seed=seed, steps=steps, eval_every=100, eval_episodes=10, instruction="", image_size=64,
        episode_length=100, preset="tiny",
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
    from lamp_data.collect import CollectConfig, collect
    from lamp_data.store import iter_episodes
    from lamp_data.store.writer import RewardSetWriter

    data = tmp_path / "data"
    common = dict(env="dummy", image_size=16, episode_length=5, shard_episodes=4, seed=1)
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
    header, _, line = (tmp_path / "rq.md").read_text().strip().splitlines()
    assert header.startswith("| fingerprint | model |") and line.startswith("| distance | synthetic:distance |")
    as_json = runner.invoke(main, ["reward-quality", str(data / "rewards" / "distance"), "--json", "--out", str(tmp_path / "rq.csv")])
    [row] = json.loads(as_json.output)
    assert row["episodes"] == 10 and row["failures"] > 0 and row["success_auroc"] > 0.5
    assert f"| {row['episodes']} | {row['successes']} | {row['failures']} |" in line
    assert (tmp_path / "rq.csv").read_text().splitlines()[1].startswith("distance,synthetic:distance,")
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
    from lamp_eval.report import build_leaderboard, competition_ranks, find_runs, leaderboard_records, markdown_table

    rng = np.random.default_rng(5)
    for method in ("scratch", "p2e"):
        for seed in range(3):
            write_synthetic_run(tmp_path, method, "pick-place", seed, 0.0, rng)
    board = build_leaderboard(find_runs([tmp_path]))
    assert competition_ranks(board) == [1, 1]
    assert [record["rank"] for record in leaderboard_records(board)] == [1, 1]
    assert markdown_table(board).count("| 1 | `") == 2
