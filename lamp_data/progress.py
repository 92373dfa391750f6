"""The one progress bar every long stage shows: a live rich bar in a terminal, plain lines when
the output goes to a file or a pipe, or nothing when disabled.

    with progress_bar("relabel r3m-1234", total=frames, unit="frames", enabled=show) as bar:
        bar.advance(len(batch))
        bar.update(completed=done, status="rate 120 steps/s")

Extra fields (``status``) are free text shown after the bar; a disabled bar, or one with nothing
to count, accepts the same calls and draws nothing, so stages never branch on whether it is shown.

When standard output is not a terminal (``lamp-eval demo > log``, ``| tee``), a live bar would
only be printed once its stage ends; the bar then prints one plain line every
:data:`PLAIN_INTERVAL_SECONDS` (from a timer, so a line comes even while nothing advances) and one
when its stage ends instead::

    lamp · door-close · seed 0: 1,200/4,800 env steps (25%), 2:41 elapsed, ~8:03 left; eval 0.40
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

PLAIN_INTERVAL_SECONDS = 10.0
"""Seconds between the plain progress lines printed when output is not a terminal."""


def interactive() -> bool:
    """True when standard output is a terminal (or a notebook) a live bar can redraw in place."""
    from rich.console import Console

    console = Console()
    return console.is_terminal or console.is_jupyter


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """A rich progress bar over ``total`` units with a free-text status, plain lines when output
    is not a terminal, or a silent stand-in."""

    def __init__(self, description: str, total: int, unit: str = "", completed: int = 0, enabled: bool = True, transient: bool = False):
        self.description, self.total, self.unit, self.completed = description, int(total), unit, int(completed)
        self.enabled = bool(enabled) and self.total > 0
        self.transient = transient
        self.status = ""
        self._progress: Any = None
        self._task: Any = None
        self._plain = False
        self._started = self._printed = 0.0
        self._start_count = self.completed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def __enter__(self) -> "ProgressBar":
        if self.enabled and not interactive():
            self._plain = True
            self._started = self._printed = time.monotonic()
            self._stop.clear()
            self._timer = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self._timer.start()
        elif self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = [TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn()]
            if self.unit:
                columns.append(TextColumn(self.unit, markup=False))
            columns += [TimeRemainingColumn(elapsed_when_finished=True), TextColumn("{task.fields[status]}", markup=False)]
            self._progress = Progress(*columns, transient=self.transient)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, completed=self.completed, status="")
        return self

    def advance(self, count: int = 1, status: str | None = None) -> None:
        """Count ``count`` more units done, and show ``status`` when given."""
        self.completed += int(count)
        if status is not None:
            self.status = status
        if self._progress is not None:
            fields = {} if status is None else {"status": status}
            self._progress.update(self._task, advance=count, **fields)
        self._maybe_print()

    def update(self, completed: int | None = None, status: str | None = None, description: str | None = None) -> None:
        """Set the units done, the status text or the description."""
        if completed is not None:
            self.completed = int(completed)
        if status is not None:
            self.status = status
        if description is not None:
            self.description = description
        if self._progress is not None:
            fields: dict[str, Any] = {}
            if completed is not None:
                fields["completed"] = completed
            if status is not None:
                fields["status"] = status
            if description is not None:
                fields["description"] = description
            self._progress.update(self._task, **fields)
        self._maybe_print()

    def line(self) -> str:
        """The plain progress line: counts, percentage, elapsed and remaining time, status."""
        elapsed = time.monotonic() - self._started
        unit = f" {self.unit}" if self.unit else ""
        text = f"{self.description}: {self.completed:,}/{self.total:,}{unit} ({self.completed / self.total:.0%}), {_clock(elapsed)} elapsed"
        done = self.completed - self._start_count
        if 0 < done and self.completed < self.total:
            text += f", ~{_clock(elapsed / done * (self.total - self.completed))} left"
        return text + (f"; {self.status.strip()}" if self.status.strip() else "")

    def _maybe_print(self) -> None:
        with self._lock:
            if self._plain and time.monotonic() - self._printed >= PLAIN_INTERVAL_SECONDS:
                self._print_unlocked()

    def _tick(self) -> None:
        """The timer: a line whenever :data:`PLAIN_INTERVAL_SECONDS` pass without one."""
        while not self._stop.wait(max(0.05, self._printed + PLAIN_INTERVAL_SECONDS - time.monotonic())):
            self._maybe_print()

    def _print(self) -> None:
        with self._lock:
            self._print_unlocked()

    def _print_unlocked(self) -> None:
        print(self.line(), file=sys.stdout, flush=True)
        self._printed = time.monotonic()

    def __exit__(self, *exc: Any) -> None:
        if self._plain:
            self._stop.set()
            if self._timer is not None:
                self._timer.join()
                self._timer = None
            self._print()
            self._plain = False
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def progress_bar(description: str, total: int, unit: str = "", completed: int = 0, enabled: bool = True, transient: bool = False) -> ProgressBar:
    """A progress bar over ``total`` units (``unit`` names them), drawn only when ``enabled``: live
    in a terminal, else as a plain line every :data:`PLAIN_INTERVAL_SECONDS` and one at the end."""
    return ProgressBar(description, total, unit=unit, completed=completed, enabled=enabled, transient=transient)
