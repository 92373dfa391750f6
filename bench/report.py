"""What a bench script's ``--report REPORT`` writes: ``REPORT.md`` (a title, the command that
regenerates it, the script's Markdown) and ``REPORT.json`` (that command, the script's data and the
provenance of the run), each atomically."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that reruns ``bench/<script>`` with ``argv`` (this process's arguments by default)."""
    return f"python bench/{script} " + " ".join(shlex.quote(part) for part in (argv or sys.argv[1:]))


def write_report(report: Path, title: str, command: str, markdown: str, data: dict[str, Any]) -> None:
    """Write ``report`` with suffixes ``.md`` and ``.json``, creating its folder."""
    from lamp_data.atomic import atomic_open, atomic_write_json
    from lamp_data.provenance import provenance

    report.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(report.with_suffix(".md")) as handle:
        handle.write(f"# {title}\n\nRegenerate:\n\n    {command}\n\n{markdown}")
    atomic_write_json(report.with_suffix(".json"), {"command": command, **data, "provenance": provenance()})
