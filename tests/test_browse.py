"""``lamp-data browse``: one self-contained page (card, filterable episode table with thumbnails and
returns per reward set, an episode's frames over its reward curves), rendered in headless Chromium
without a console message where Chromium is installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamp_cli.data import main
from lamp_data import schema
from lamp_data.display.browse import browse_dataset
from lamp_data.display.headless import find_browser, render_page
from lamp_data.envs import EnvConfig
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.store import RewardSetWriter, iter_episodes, open_dataset

COMPLETE, PARTIAL = "fake-0001", "fake-0002"
LAMP_DATA = str(Path(sys.executable).with_name("lamp-data"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four 6-step dummy episodes in two shards; one reward set for every shard, one for the first only."""
    out = tmp_path_factory.mktemp("browse") / "tiny"
    collect(out, CollectConfig(env="dummy", episodes=4, shard_episodes=2, seed=2, policy="expert", env_config=EnvConfig(image_size=16, episode_length=6)),
            progress=False)
    instructions = sorted({episode["meta"]["instruction"] for episode in iter_episodes(out)})
    rng = np.random.default_rng(0)
    for fingerprint, shards in ((COMPLETE, None), (PARTIAL, 1)):
        prompts = instructions + ["open the door"]
        writer = RewardSetWriter(out, fingerprint, {"model": {"family": "fake"}}, prompts)
        for shard in open_dataset(out).shards()[:shards]:
            writer.write_shard(shard.name, {e["__key__"]: rng.normal(size=(7, len(prompts))) for e in iter_episodes(out, shards=[shard.name])})
    return out


def embedded(page: Path) -> dict:
    text = page.read_text()
    return json.loads(re.search(r'<script type="application/json" id="lamp-data">(.*?)</script>', text, re.S).group(1).replace("<\\/", "</"))


def test_page_holds_the_card_every_episode_and_returns_for_each_episodes_own_instruction(dataset, tmp_path):
    result = CliRunner().invoke(main, ["browse", str(dataset), "--out", str(tmp_path / "tiny.html"), "--prompt", "open the door", "--frames", "4"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith(f"{tmp_path / 'tiny.html'}: 4 of 4 episodes, 2 reward sets")
    page = (tmp_path / "tiny.html").read_text()
    assert not re.search(r'(src|href)="https?:|url\(https?:|<link ', page), "the page must not reach the network"
    assert "success rate" in page and "collect: 4 (expert)" in page
    data = embedded(tmp_path / "tiny.html")
    assert data["format_version"] == 1 and data["reward_sets"] == [COMPLETE, PARTIAL] and data["total"] == 4
    prompts = open_dataset(dataset).reward_set_prompts(COMPLETE)
    for stored, shown in zip(iter_episodes(dataset, reward_set=COMPLETE), data["episodes"]):
        own = stored[schema.VLM_REWARD][1:, prompts.index(stored["meta"]["instruction"])].astype(np.float32).sum()
        assert shown["key"] == stored["__key__"] and shown["steps"] == 6 and shown["success"] == bool(stored[schema.SUCCESS].any())
        assert shown["returns"][COMPLETE] == pytest.approx(float(own), rel=1e-3)
        assert shown["policy"] == "expert" and shown["frames"] == [0, 2, 4, 6] and shown["sprite"].startswith("data:image/jpeg;base64,")
        assert set(shown["curves"][COMPLETE]) == {"own instruction", "open the door"} and len(shown["curves"][COMPLETE]["open the door"]) == 7
    assert [episode["returns"][PARTIAL] is None for episode in data["episodes"]] == [False, False, True, True]  # not relabelled yet


def test_large_datasets_are_thinned_and_the_default_page_lands_here(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["browse", str(dataset), "--max-episodes", "2", "--reward-set", COMPLETE])
    assert result.exit_code == 0, result.output
    page = tmp_path / "tiny.html"
    assert [e["key"] for e in embedded(page)["episodes"]] == ["ep00000000", "ep00000003"]
    assert "Showing 2 of 4 episodes, evenly spaced." in page.read_text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--out", "{tmp}/page.png"], "must end in .html"),
        (["--reward-set", "nope-0000"], "has no reward set 'nope-0000'"),
        (["--reward-set", PARTIAL, "--prompt", "juggle"], "no chosen reward set has the prompt 'juggle'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(dataset, tmp_path, arguments, message):
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]
    if "--out" not in arguments:
        arguments += ["--out", str(tmp_path / "page.html")]
    result = CliRunner().invoke(main, ["browse", str(dataset), *arguments])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and message in result.output, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(find_browser() is None, reason="no Chromium installed (apt-get install chromium) to render the page in")
def test_headless_chromium_renders_the_page_without_a_console_message(dataset, tmp_path):
    run = subprocess.run([LAMP_DATA, "browse", str(dataset), "--out", str(tmp_path / "tiny.html"), "--check"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ": 0 console messages" in run.stdout and "console:" not in run.stderr
    rendered = render_page(tmp_path / "tiny.html", fragment="ep00000002", screenshot=tmp_path / "tiny.png", window=(1024, 900))
    assert rendered.console == ()
    dom = rendered.dom
    assert 'id="count">4 of 4 episodes shown<' in dom and len(re.findall(r'<tr data-key="ep\d{8}"', dom)) == 4
    assert 'id="d-title">ep00000002' in dom and '<section id="detail" hidden' not in dom
    assert len(re.findall(r"<polyline ", dom)) == 2  # task reward and the complete set's own instruction (the partial set lacks this shard)
    assert rendered.screenshot.stat().st_size > 10_000
