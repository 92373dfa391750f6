"""Plain-text tables that fit the console: the one table printer of the command line.

A table is laid out for a width (the terminal's, or 80 columns when output is a file or a pipe):
columns keep their full width, prose columns wrap, and when even that does not fit, the least
important columns are left out and named, so the full table is asked for elsewhere (``--json``,
a report file)::

    lines, dropped = fit_table([Column("task"), Column("instruction", wrap=True, min_width=30)], rows)
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

NARROW = 80
"""The width tables are laid out for when output is not a terminal."""
GAP = 2
"""Spaces between columns."""


@dataclass(frozen=True)
class Column:
    """A column of a console table."""

    name: str
    """Its header."""
    wrap: bool = False
    """Prose that may wrap onto more lines (names and numbers never wrap)."""
    min_width: int = 12
    """The narrowest a wrapping column may get."""
    priority: int = 0
    """Columns with a higher number are left out first when the table does not fit."""
    align: str = "<"
    """``<`` left or ``>`` right (numbers)."""


def console_width() -> int:
    """The terminal's width, or :data:`NARROW` when output is a file or a pipe."""
    if sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((NARROW, 24)).columns)
    return NARROW


def fit_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None = None) -> tuple[list[str], list[str]]:
    """The table's lines, at most ``width`` characters each, and the names of the columns left out.

    Args:
        columns: The columns, in display order.
        rows: One sequence of cell texts per row, in column order.
        width: Characters per line (default: :func:`console_width`).
    """
    width = width or console_width()
    natural = [max([len(column.name)] + [len(str(row[index])) for row in rows]) for index, column in enumerate(columns)]
    least = [min(natural[index], max(column.min_width, len(column.name))) if column.wrap else natural[index]
             for index, column in enumerate(columns)]
    kept = set(range(len(columns)))

    def total(indices: set[int]) -> int:
        return sum(least[i] for i in indices) + GAP * (len(indices) - 1)

    dropped_order = []
    for index in sorted(kept, key=lambda i: (-columns[i].priority, -i)):
        if total(kept) <= width or columns[index].priority <= 0:
            break
        kept.discard(index)
        dropped_order.append(index)
    for index in reversed(dropped_order):  # a narrow column left out before a wide one may fit again
        if total(kept | {index}) <= width:
            kept.add(index)
    kept = sorted(kept)
    widths = {i: natural[i] if not columns[i].wrap else least[i] for i in kept}
    spare = width - sum(widths.values()) - GAP * (len(kept) - 1)
    wrapping = [i for i in kept if columns[i].wrap]
    while spare > 0 and any(widths[i] < natural[i] for i in wrapping):
        for i in wrapping:
            if spare > 0 and widths[i] < natural[i]:
                widths[i] += 1
                spare -= 1
    lines = [_line([columns[i].name for i in kept], [widths[i] for i in kept], [columns[i].align for i in kept])]
    lines.append(_line(["-" * widths[i] for i in kept], [widths[i] for i in kept], ["<"] * len(kept)))
    for row in rows:
        cells = [wrap(str(row[i]), widths[i]) if columns[i].wrap else [str(row[i])] for i in kept]
        for depth in range(max(len(cell) for cell in cells)):
            lines.append(_line([cell[depth] if depth < len(cell) else "" for cell in cells], [widths[i] for i in kept],
                               [columns[i].align for i in kept]))
    dropped = [columns[i].name for i in range(len(columns)) if i not in kept]
    return lines, dropped


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken after spaces and commas (so a
    label like ``lamp[r3m-1a2b,lamp-metaworld]`` breaks at its comma), a longer word cut."""
    lines: list[str] = []
    current = ""
    for piece in (part for part in re.split(r"(?<=[\s,])", text) if part):
        if current and len((current + piece).rstrip()) > width:
            lines.append(current.rstrip())
            current = ""
        while len(piece.rstrip()) > width:
            lines.append(piece[:width])
            piece = piece[width:]
        current += piece if current or piece.strip() else ""
    if current.strip():
        lines.append(current.rstrip())
    return lines or [""]


def _line(cells: list[str], widths: list[int], aligns: list[str]) -> str:
    return (" " * GAP).join(f"{cell:{align}{width}}" for cell, width, align in zip(cells, widths, aligns)).rstrip()
