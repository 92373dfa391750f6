"""The one progress bar every long stage shows: a rich bar, or nothing when disabled.

    with progress_bar("relabel r3m-1234", total=frames, unit="frames", enabled=show) as bar:
        bar.advance(len(batch))
        bar.update(completed=done, status="rate 120 steps/s")

Extra fields (``status``) are free text shown after the bar; a disabled bar, or one with nothing
to count, accepts the same calls and draws nothing, so stages never branch on whether it is shown.
"""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A rich progress bar over ``total`` units with a free-text status, or a silent stand-in."""

    def __init__(self, description: str, total: int, unit: str = "", completed: int = 0, enabled: bool = True, transient: bool = False):
        self.description, self.total, self.unit, self.completed = description, int(total), unit, int(completed)
        self.enabled = bool(enabled) and self.total > 0
        self.transient = transient
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "ProgressBar":
        if self.enabled:
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
        if self._progress is not None:
            fields = {} if status is None else {"status": status}
            self._progress.update(self._task, advance=count, **fields)

    def update(self, completed: int | None = None, status: str | None = None, description: str | None = None) -> None:
        """Set the units done, the status text or the description."""
        if self._progress is not None:
            fields: dict[str, Any] = {}
            if completed is not None:
                fields["completed"] = completed
            if status is not None:
                fields["status"] = status
            if description is not None:
                fields["description"] = description
            self._progress.update(self._task, **fields)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def progress_bar(description: str, total: int, unit: str = "", completed: int = 0, enabled: bool = True, transient: bool = False) -> ProgressBar:
    """A progress bar over ``total`` units (``unit`` names them), drawn only when ``enabled``."""
    return ProgressBar(description, total, unit=unit, completed=completed, enabled=enabled, transient=transient)
