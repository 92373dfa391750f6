"""The self-contained HTML page of a report: tables, figures and GIFs embedded, and its "about" block."""

from __future__ import annotations

import base64
import html
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamp_data.atomic import atomic_path
from lamp_eval.runs import Run, safe_name
from lamp_eval.report.notes import curves_note, statistic_name, success_note, table_notes
from lamp_eval.report.scores import RANKED_BY, Leaderboard, competition_ranks, time_form
from lamp_eval.report.tables import table_cells, table_header


def copy_gifs(grouped: dict[str, dict[str, list[Run]]], out: Path) -> dict[tuple[str, str], Path]:
    """One rollout GIF per task and method, from its lowest seed that saved one, named
    ``gifs/<task>__<method>__seed-<k>.gif`` so the file says which run it shows."""
    copied = {}
    for method, task_runs in grouped.items():
        for task, runs in task_runs.items():
            run = next((run for run in runs if run.gif is not None), None)
            if run is None:
                continue
            target = out / "gifs" / f"{safe_name(task)}__{safe_name(method)}__seed-{run.seed}.gif"
            with atomic_path(target) as temporary:
                shutil.copyfile(run.gif, temporary)
            copied[(task, method)] = target
    return copied


def _gif_caption(task: str, method: str, path: Path) -> str:
    """``task · method · seed k`` of a GIF :func:`copy_gifs` wrote."""
    return f"{task} · {method} · seed {path.stem.rpartition('__seed-')[2]}"


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def about_block(paths: list[str | os.PathLike], runs: list[Run], record: dict[str, Any]) -> dict[str, str]:
    """The provenance every report states: when, with which versions, from which run folders.

    Args:
        paths: The runs folders the report was asked for.
        runs: The finished runs found under them.
        record: A :func:`lamp_data.provenance.provenance` record.
    """
    return {
        "runs": f"{len(runs)} finished runs from " + ", ".join(str(Path(path).resolve()) for path in paths),
        "generated": str(record["created"]),
        "versions": ", ".join(f"{name} {version}" for name, version in record["versions"].items()),
        "platform": str(record["platform"]),
    }


def html_page(
    board: Leaderboard,
    curves: list[Path],
    gifs: dict[tuple[str, str], Path],
    about: Mapping[str, str] | None = None,
) -> str:
    """A self-contained HTML page: table, notes, curves, rollout GIFs and an "about this report"
    block (label -> text, e.g. budget, preset, versions), images inline as base64."""
    level = f"{board.config.confidence:.0%}"
    head = table_header(board, escape=True)
    body_rows = []
    for rank, row in zip(competition_ranks(board), board.rows):
        cells = table_cells(board, rank, row, f"<code>{html.escape(row.method)}</code>")
        body_rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    table = (
        "<table><thead><tr>" + "".join(f"<th>{cell}</th>" for cell in head) + "</tr></thead><tbody>"
        + "".join(body_rows) + "</tbody></table>"
    )
    images = "".join(
        f'<figure id="{html.escape(path.stem)}"><img alt="{html.escape(path.stem)}" src="{_data_uri(path, "image/png")}"></figure>'
        for path in curves if path.suffix == ".png"
    )
    gif_rows = []
    methods = [row.method for row in board.rows]
    for task in board.tasks:
        cells = []
        for method in methods:
            path = gifs.get((task, method))
            caption = html.escape(_gif_caption(task, method, path)) if path else ""
            cells.append(
                f'<td><figure><img class="gif" alt="{caption}" src="{_data_uri(path, "image/gif")}">'
                f"<figcaption>{caption}</figcaption></figure></td>"
                if path else "<td>–</td>"
            )
        gif_rows.append(f"<tr><th>{html.escape(task)}</th>{''.join(cells)}</tr>")
    gif_table = (
        "<table><thead><tr><th>task</th>" + "".join(f"<th><code>{html.escape(m)}</code></th>" for m in methods)
        + "</tr></thead><tbody>" + "".join(gif_rows) + "</tbody></table>"
    ) if gifs else "<p>No rollout GIFs were saved with these runs.</p>"
    opening = success_note(board)
    pointer = curves_note(board, lambda stem: f'<a href="#{stem}">{stem}</a>')
    notes = "".join(f"<p><strong>{html.escape(note)}</strong></p>\n" for note in table_notes(board))
    about_section = ""
    if about:
        about_rows = "".join(
            f"<tr><th>{html.escape(str(label))}</th><td>{html.escape(str(text))}</td></tr>" for label, text in about.items()
        )
        about_section = f'<h2>About this report</h2>\n<table class="about"><tbody>{about_rows}</tbody></table>'
    form = "final evaluation" if time_form(board.score) == "final" else "area under the curve"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LAMP finetuning leaderboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; display: block; max-width: 100%; overflow-x: auto; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; font-size: 0.9em; }}
th {{ background: #f3f3f3; }}
table.about th {{ width: 10em; }}
figure {{ display: inline-block; margin: 0.5em; max-width: calc(100% - 1em); }}
img {{ max-width: 100%; }}
img.gif {{ width: 128px; image-rendering: pixelated; }}
</style></head><body>
<h1>Finetuning on held-out tasks</h1>
{f'<p><strong>{html.escape(opening)}</strong> {pointer}</p>' if opening else ''}
<p>Ranked by the {statistic_name(board)} of the {RANKED_BY[board.score]} over all runs of all tasks (methods whose
intervals overlap share a rank); intervals are {level} stratified
bootstrap confidence intervals ({board.config.reps} replicates, runs resampled within tasks).
Expert-normalised return is the mean dense return on the evaluation seeds, scaled so that a uniform random
policy scores 0 and the task's scripted expert scores 1 on the same seeds.
P(&gt; {html.escape(board.config.baseline)}) is the probability that a run of the method beats a run of
{html.escape(board.config.baseline)} on a random task (Mann–Whitney, averaged over tasks), on the {form}.</p>
{table}
{notes}
{about_section}
<h2>Sample efficiency</h2>
{images}
<h2>Evaluation rollouts</h2>
{gif_table}
</body></html>
"""
