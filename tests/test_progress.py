"""The one progress bar: a live bar in a terminal, plain lines at a steady interval when output is
a file or a pipe, nothing when disabled."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

from rich.console import Console

from lamp_data import progress as progress_module
from lamp_data.progress import progress_bar


def test_disabled_or_empty_bar_accepts_every_call_and_draws_nothing(capsys):
    for bar in (progress_bar("x", total=10, enabled=False), progress_bar("x", total=0)):
        with bar:
            bar.advance(3, status="s")
            bar.update(completed=5, status="t", description="y")
        assert bar._progress is None
    assert capsys.readouterr().out == ""


def test_in_a_terminal_the_live_bar_shows_description_counts_unit_and_status(monkeypatch):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=160)
    import rich.progress

    original = rich.progress.Progress
    monkeypatch.setattr(progress_module, "interactive", lambda: True)
    monkeypatch.setattr(rich.progress, "Progress", lambda *columns, **kwargs: original(*columns, console=console, **kwargs))
    with progress_module.progress_bar("relabel r3m-1", total=10, unit="frames", completed=2) as bar:
        bar.advance(3)
        bar.update(status="12.5 frames/s")
    text = buffer.getvalue()
    assert "relabel r3m-1" in text and "5/10" in text and "frames" in text and "12.5 frames/s" in text


def test_without_a_terminal_plain_lines_come_at_a_steady_interval_and_at_the_end(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "PLAIN_INTERVAL_SECONDS", 0.1)
    with progress_bar("finetune", total=2000, unit="env steps") as bar:
        bar.update(description="lamp · door-close · seed 0")
        bar.advance(500, status="eval 0.40")
        time.sleep(0.35)  # nothing advances: the timer still prints
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 3
    assert re.fullmatch(r"lamp · door-close · seed 0: 500/2,000 env steps \(25%\), 0:00 elapsed, ~0:0\d left; eval 0\.40", lines[0])
    assert lines[-1].startswith("lamp · door-close · seed 0: 500/2,000 env steps (25%)")


def test_a_collect_piped_to_a_file_prints_progress_before_it_ends(tmp_path):
    code = (
        "import sys\n"
        "from lamp_data import progress\n"
        "progress.PLAIN_INTERVAL_SECONDS = 0.2\n"
        "from lamp_cli.data import main\n"
        "main(sys.argv[1:])\n"
    )
    command = [sys.executable, "-c", code, "collect", "--env", "dummy", "--episodes", "60", "--episode-length", "5",
               "--image-size", "16", "--shard-episodes", "5", "--out", str(tmp_path / "data")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    running = process.poll() is None
    rest, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors
    assert first.startswith("collect: ") and " episodes (" in first and running
    lines = [first, *rest.splitlines()]
    assert lines[-1].startswith(f"{tmp_path / 'data'}: 60 episodes") and any(line.startswith("collect: 60/60 episodes") for line in lines)
