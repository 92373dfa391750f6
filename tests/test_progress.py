"""The one progress bar: draws counts and status when enabled, nothing when disabled."""

from __future__ import annotations

import io

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


def test_enabled_bar_shows_description_counts_unit_and_status(monkeypatch):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=160)
    import rich.progress

    original = rich.progress.Progress
    monkeypatch.setattr(rich.progress, "Progress", lambda *columns, **kwargs: original(*columns, console=console, **kwargs))
    with progress_module.progress_bar("relabel r3m-1", total=10, unit="frames", completed=2) as bar:
        bar.advance(3)
        bar.update(status="12.5 frames/s")
    text = buffer.getvalue()
    assert "relabel r3m-1" in text and "5/10" in text and "frames" in text and "12.5 frames/s" in text
