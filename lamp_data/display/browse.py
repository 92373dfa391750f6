"""Browse a dataset: one self-contained HTML page with its card, a filterable table of episodes
and, for a chosen episode, its frames over its reward curves.

:func:`browse_dataset` reads every episode once and writes ``PAGE.html`` (no file beside it, no
network: frames are embedded as images, the data as JSON, the code as a short script):

- the card: env, cameras, episodes, steps, success rate, tasks, runs, reward sets;
- a table of episodes, one row each: thumbnails (first and last frame), key, task, split
  (pretrain / heldout), policy, success, length, and per reward set the return for the episode's
  own instruction (the sum of its VLM reward over frames 1..T, what an agent acting on that
  instruction collects; blank when the instruction is not a prompt of the set), filtered by
  text, task, split, policy and success, and sorted by any column;
- for the episode chosen (a click, or ``PAGE.html#ep00000012``): a strip of evenly spaced frames
  with a slider, over its task reward (success shaded) and VLM reward curves (its own instruction
  in every reward set, plus any ``prompts`` chosen), a cursor following the slider.

A dataset of more than ``max_episodes`` episodes is shown by an evenly spaced selection of them,
and the page says so. The page appears only whole (atomic rename).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_write_bytes
from lamp_data.errors import LampError
from lamp_data.progress import progress_bar
from lamp_data.store import dataset_card, layout, open_dataset
from lamp_data.store.reader import iter_episodes, iter_shard_rewards

PAGE_FORMAT_VERSION = 1
"""Version of the data a browse page embeds (``<script id="lamp-data">``)."""
FRAMES_PER_EPISODE = 12
"""Frames shown per episode (evenly spaced, first and last included)."""
MAX_EPISODES = 1000
"""Most episodes one page shows."""
MAX_FRAME_SIDE = 96
"""Frames larger than this are shrunk on the page (the table's thumbnails are smaller still)."""
OWN_INSTRUCTION = "own instruction"


@dataclass(frozen=True)
class BrowsePage:
    """What :func:`browse_dataset` wrote."""

    path: Path
    """The page."""
    episodes: int
    """Episodes shown."""
    total: int
    """Episodes in the dataset."""
    reward_sets: tuple[str, ...]
    """Reward sets whose returns and curves it shows."""
    bytes: int
    """Size of the page."""


def browse_dataset(
    dataset: str | Path,
    out: str | Path | None = None,
    *,
    reward_sets: Sequence[str] | None = None,
    prompts: Sequence[str] = (),
    frames: int = FRAMES_PER_EPISODE,
    max_episodes: int = MAX_EPISODES,
    progress: bool = True,
) -> BrowsePage:
    """Write a page to browse ``dataset`` (see the module docstring).

    Args:
        dataset: A dataset folder.
        out: The ``.html`` page; default: ``<dataset name>.html`` in the current folder.
        reward_sets: Reward sets to show (default: every one the dataset has).
        prompts: More prompts whose VLM reward curves the episode view draws (from each set holding them).
        frames: Frames per episode on the page.
        max_episodes: Most episodes shown.
        progress: Show a progress bar.

    Raises:
        LampError: not a dataset, an unknown reward set, a prompt no chosen set holds, an output
            not ending in ``.html``, or sizes below 1; nothing is written then.
    """
    source = open_dataset(dataset)
    out = Path(out) if out is not None else Path(f"{source.path.resolve().name}.html")
    if out.suffix.lower() not in (".html", ".htm"):
        raise LampError(f"the page must end in .html, got '{out.name}'")
    if frames < 1 or max_episodes < 1:
        raise LampError(f"frames and max episodes must be at least 1, got {frames} and {max_episodes}")
    chosen_sets = list(source.reward_sets()) if reward_sets is None else list(dict.fromkeys(reward_sets))
    set_prompts = {fingerprint: source.reward_set_prompts(fingerprint) for fingerprint in chosen_sets}
    unknown = [prompt for prompt in prompts if not any(prompt in available for available in set_prompts.values())]
    if unknown:
        raise LampError(f"no chosen reward set has the prompt {', '.join(repr(p) for p in unknown)}")
    card = dataset_card(source.path)
    total = card["episodes"]
    shown = set(np.unique(np.linspace(0, total - 1, min(total, max_episodes)).round().astype(int)).tolist()) if total else set()
    splits = {task: split for split in ("pretrain", "heldout") for task in (source.info.get("task_split") or {}).get(split, [])}
    columns = {fingerprint: {prompt: index for index, prompt in enumerate(available)} for fingerprint, available in set_prompts.items()}
    rewards = {fingerprint: iter_shard_rewards(source, fingerprint, missing="skip") for fingerprint in chosen_sets}
    episodes: list[dict[str, Any]] = []
    current: str | None = None
    shard_rewards: dict[str, dict[str, np.ndarray] | None] = {}
    with progress_bar("browse", total, unit="episodes", enabled=progress) as bar:
        for position, episode in enumerate(iter_episodes(source)):
            if episode["__shard__"] != current:
                current = episode["__shard__"]
                shard_rewards = {fingerprint: next(shards)[1] for fingerprint, shards in rewards.items()}
            if position in shown:
                episodes.append(_episode_record(episode, splits, columns, shard_rewards, prompts, frames))
            bar.advance(1)
    data = {
        "format_version": PAGE_FORMAT_VERSION,
        "name": source.path.resolve().name,
        "reward_sets": chosen_sets,
        "prompts": list(dict.fromkeys(prompts)),
        "episodes": episodes,
        "total": total,
    }
    page = _page(card, source.info, data, set_infos={fp: source.reward_set_info(fp) for fp in chosen_sets})
    atomic_write_bytes(out, page.encode())
    return BrowsePage(path=out, episodes=len(episodes), total=total, reward_sets=tuple(chosen_sets), bytes=len(page.encode()))


def _rounded(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(value) else float(f"{value:.4g}") for value in np.asarray(values, np.float64)]


def _sprite(images: np.ndarray, count: int) -> tuple[str, list[int], int]:
    """A JPEG strip of ``count`` evenly spaced frames (data URI), their indices and their side in px."""
    from PIL import Image

    indices = np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)).tolist()
    side = images.shape[1]
    tiles = [Image.fromarray(images[index]) for index in indices]
    if side > MAX_FRAME_SIDE:
        tiles = [tile.resize((MAX_FRAME_SIDE, MAX_FRAME_SIDE), Image.Resampling.BOX) for tile in tiles]
        side = MAX_FRAME_SIDE
    strip = Image.new("RGB", (side * len(tiles), side))
    for offset, tile in enumerate(tiles):
        strip.paste(tile.convert("RGB"), (offset * side, 0))
    stream = io.BytesIO()
    strip.save(stream, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(stream.getvalue()).decode(), indices, side


def _episode_record(
    episode: dict[str, Any], splits: dict[str, str], columns: dict[str, dict[str, int]],
    shard_rewards: dict[str, dict[str, np.ndarray] | None], prompts: Sequence[str], frames: int,
) -> dict[str, Any]:
    meta = episode[layout.META]
    key = episode["__key__"]
    instruction = meta.get("instruction")
    returns: dict[str, float | None] = {}
    curves: dict[str, dict[str, list[float | None]]] = {}
    for fingerprint, column_of in columns.items():
        values = (shard_rewards.get(fingerprint) or {}).get(key)
        if values is None:
            returns[fingerprint] = None
            continue
        values = values.astype(np.float32)
        own = column_of.get(instruction)
        returns[fingerprint] = float(f"{values[1:, own].sum():.4g}") if own is not None else None
        chosen = {OWN_INSTRUCTION: own} if own is not None else {}
        chosen.update({prompt: column_of[prompt] for prompt in prompts if prompt in column_of and prompt != instruction})
        curves[fingerprint] = {label: _rounded(values[:, column]) for label, column in chosen.items()}
    sprite, shown, side = _sprite(episode[schema.IMAGE], frames)
    task = meta.get("task")
    return {
        "key": key,
        "task": task,
        "instruction": instruction,
        "split": splits.get(task, ""),
        "policy": meta.get("policy") or meta.get("run"),
        "run": meta.get("run"),
        "success": bool(episode[schema.SUCCESS].any()),
        "steps": int(len(episode[schema.ACTION])),
        "returns": returns,
        "task_return": float(f"{float(episode[schema.REWARD].sum()):.4g}"),
        "reward": _rounded(episode[schema.REWARD]),
        "successes": [int(flag) for flag in episode[schema.SUCCESS]],
        "curves": curves,
        "sprite": sprite,
        "frames": shown,
        "side": side,
    }


def _describe_set(set_info: dict[str, Any]) -> str:
    """``lamp-r3m-metaworld (r3m), 234 prompts of 'instructions'``: a reward set's model and prompts."""
    from lamp_data.store.reader import prompt_set_name

    provenance = set_info.get("provenance") if isinstance(set_info.get("provenance"), dict) else {}
    model = set_info.get("model") if isinstance(set_info.get("model"), dict) else {}
    spec = set_info.get("model_spec") or provenance.get("model_spec") or model.get("spec")
    family = model.get("family")
    named = " ".join(str(part) for part in (spec, f"({family})" if family else None) if part) or "unnamed model"
    prompts = f"{set_info.get('prompt_count')} prompts"
    name = prompt_set_name(set_info)
    return f"{named}, {prompts}" + (f" of '{name}'" if name else "")


def _card_rows(card: dict[str, Any], info: dict[str, Any], set_infos: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    tasks = ", ".join(f"{task} ({count})" for task, count in card["tasks"].items()) or "–"
    runs = ", ".join(f"{run}: {record['episodes']} ({record.get('policy', '?')})" for run, record in card["runs"].items()) or "–"
    sets = "; ".join(f"{fingerprint}: {_describe_set(set_info)}" for fingerprint, set_info in set_infos.items()) \
        or "none (lamp-data relabel adds one)"
    rows = [
        ("dataset", card["path"]),
        ("env", f"{card['env']} ({card['image_size']} px, {card['episode_length']}-step episodes, seed {card['seed']})"),
        ("cameras", ", ".join(card["cameras"])),
        ("episodes", f"{card['episodes']:,} in {card['shards']} shards, {card['steps']:,} steps, success rate {card['success_rate']:.1%}"),
        ("tasks", tasks),
        ("runs", runs),
        ("reward sets", sets),
        ("created", str(card.get("created") or "–")),
    ]
    imported = info.get("imported")
    if isinstance(imported, dict):
        rows.append(("imported", f"from {imported.get('format')} {imported.get('source')}"))
    return rows


def _page(card: dict[str, Any], info: dict[str, Any], data: dict[str, Any], set_infos: dict[str, dict[str, Any]]) -> str:
    name = html.escape(data["name"])
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>" for label, text in _card_rows(card, info, set_infos))
    sampled = (
        f"<p class=note>Showing {len(data['episodes']):,} of {data['total']:,} episodes, evenly spaced.</p>"
        if len(data["episodes"]) < data["total"] else ""
    )
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="lamp-browse-format-version" content="{PAGE_FORMAT_VERSION}">
<title>{name}: episodes</title>
<style>{_STYLE}</style></head><body>
<h1>{name}</h1>
<table class=card><tbody>{rows}</tbody></table>
<h2>Episodes</h2>
{sampled}
<div id=filters>
<input id=search type=search placeholder="filter: key, task, instruction" aria-label="filter">
<select id=f-task aria-label="task"><option value="">every task</option></select>
<select id=f-split aria-label="split"><option value="">every split</option></select>
<select id=f-policy aria-label="policy"><option value="">every policy</option></select>
<select id=f-success aria-label="success"><option value="">success or not</option><option value="yes">succeeded</option><option value="no">did not succeed</option></select>
<span id=count></span>
</div>
<div class=scroll><table id=episodes><thead><tr id=head></tr></thead><tbody id=rows></tbody></table></div>
<section id=detail hidden>
<h2 id=d-title></h2>
<p id=d-meta></p>
<div id=d-view><canvas id=d-frame width=192 height=192></canvas>
<div id=d-side><input id=d-slider type=range min=0 max=0 value=0 aria-label="frame"><span id=d-label></span>
<div id=d-strip></div></div></div>
<svg id=d-chart role=img aria-label="reward curves"></svg>
<div id=d-legend></div>
</section>
<script type="application/json" id="lamp-data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { margin: 0 0 0.5em; font-size: 1.5em; } h2 { font-size: 1.15em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; font-size: 0.88em; vertical-align: middle; }
th { background: #f3f3f3; }
table.card th { width: 8em; } table.card td { max-width: 60em; }
.scroll { max-width: 100%; max-height: 32em; overflow: auto; border: 1px solid #ddd; }
#episodes thead th { position: sticky; top: 0; cursor: pointer; user-select: none; white-space: nowrap; }
#episodes th.sorted-up::after { content: " \\25B2"; } #episodes th.sorted-down::after { content: " \\25BC"; }
#episodes tbody tr { cursor: pointer; } #episodes tbody tr:hover { background: #f6f9ff; }
#episodes tbody tr.chosen { background: #e5efff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.yes { color: #176317; font-weight: 600; } td.no { color: #888; }
.thumb { display: inline-block; width: 40px; height: 40px; background-repeat: no-repeat; image-rendering: pixelated; margin-right: 2px; }
#filters { display: flex; flex-wrap: wrap; gap: 0.5em; align-items: center; margin: 0.5em 0; }
#filters input { width: 18em; } #count { color: #555; font-size: 0.9em; }
.note { color: #555; font-size: 0.9em; }
#detail { border-top: 2px solid #ccc; margin-top: 1em; }
#d-view { display: flex; gap: 1em; align-items: flex-start; }
#d-frame { width: 192px; height: 192px; image-rendering: pixelated; border: 1px solid #ccc; }
#d-side { flex: 1; min-width: 0; } #d-slider { width: 100%; max-width: 40em; display: block; }
#d-strip { display: flex; flex-wrap: wrap; gap: 2px; margin-top: 0.5em; }
#d-strip canvas { width: 56px; height: 56px; image-rendering: pixelated; border: 2px solid transparent; cursor: pointer; }
#d-strip canvas.on { border-color: #d33; }
#d-chart { width: 100%; max-width: 60em; height: 300px; display: block; margin-top: 0.8em; }
#d-legend { font-size: 0.85em; } #d-legend span { display: inline-block; margin-right: 1.2em; }
#d-legend i { display: inline-block; width: 1.2em; height: 3px; vertical-align: middle; margin-right: 0.3em; }
"""

_SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("lamp-data").textContent);
  const sets = data.reward_sets;
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const columns = [
    {key: "thumb", label: "frames", sort: null},
    {key: "key", label: "episode", sort: e => e.key},
    {key: "task", label: "task", sort: e => e.task || ""},
    {key: "split", label: "split", sort: e => e.split},
    {key: "policy", label: "policy", sort: e => e.policy || ""},
    {key: "success", label: "success", sort: e => e.success ? 1 : 0},
    {key: "steps", label: "length", sort: e => e.steps, num: true},
    {key: "task_return", label: "task return", sort: e => e.task_return, num: true},
  ].concat(sets.map(fp => ({key: "r:" + fp, label: "return " + fp, sort: e => e.returns[fp], num: true, set: fp})));
  const format = v => v === null || v === undefined ? "" : (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  const text = (tag, value, cls) => { const node = document.createElement(tag); node.textContent = value; if (cls) node.className = cls; return node; };
  let order = {column: "key", up: true};
  let chosen = null;

  const head = document.getElementById("head");
  columns.forEach(column => {
    const cell = text("th", column.label);
    if (column.set) cell.title = "sum of this reward set's VLM reward over the episode for its own instruction";
    if (column.sort) cell.addEventListener("click", () => {
      order = {column: column.key, up: order.column === column.key ? !order.up : true};
      render();
    });
    cell.dataset.key = column.key;
    head.appendChild(cell);
  });
  const fill = (id, values) => {
    const select = document.getElementById(id);
    [...new Set(values.filter(v => v))].sort().forEach(v => select.appendChild(new Option(v, v)));
  };
  fill("f-task", data.episodes.map(e => e.task));
  fill("f-split", data.episodes.map(e => e.split));
  fill("f-policy", data.episodes.map(e => e.policy));

  function thumb(episode, index) {
    const cell = document.createElement("span");
    cell.className = "thumb";
    const scale = 40 / episode.side;
    cell.style.backgroundImage = "url(" + episode.sprite + ")";
    cell.style.backgroundSize = (episode.frames.length * 40) + "px 40px";
    cell.style.backgroundPosition = (-index * 40) + "px 0";
    cell.title = "t=" + episode.frames[index] + " (x" + scale.toFixed(2) + ")";
    return cell;
  }

  function visible() {
    const query = document.getElementById("search").value.trim().toLowerCase();
    const want = id => document.getElementById(id).value;
    return data.episodes.filter(e =>
      (!query || [e.key, e.task, e.instruction].join(" ").toLowerCase().includes(query)) &&
      (!want("f-task") || e.task === want("f-task")) && (!want("f-split") || e.split === want("f-split")) &&
      (!want("f-policy") || e.policy === want("f-policy")) &&
      (!want("f-success") || (want("f-success") === "yes") === e.success));
  }

  function render() {
    const column = columns.find(c => c.key === order.column);
    const rows = visible().slice().sort((a, b) => {
      const x = column.sort(a), y = column.sort(b);
      const missing = (x === null || x === undefined) - (y === null || y === undefined);
      if (missing) return missing;
      return (x < y ? -1 : x > y ? 1 : 0) * (order.up ? 1 : -1);
    });
    [...head.children].forEach(cell => cell.className = cell.dataset.key === order.column ? (order.up ? "sorted-up" : "sorted-down") : "");
    const body = document.getElementById("rows");
    body.replaceChildren(...rows.map(e => {
      const row = document.createElement("tr");
      row.dataset.key = e.key;
      if (chosen && chosen.key === e.key) row.className = "chosen";
      const frames = document.createElement("td");
      frames.append(thumb(e, 0), thumb(e, e.frames.length - 1));
      row.append(frames, text("td", e.key), text("td", e.task || ""), text("td", e.split), text("td", e.policy || ""),
                 text("td", e.success ? "yes" : "no", e.success ? "yes" : "no"), text("td", e.steps, "num"),
                 text("td", format(e.task_return), "num"));
      sets.forEach(fp => row.appendChild(text("td", format(e.returns[fp]), "num")));
      row.addEventListener("click", () => { location.hash = e.key; });
      return row;
    }));
    document.getElementById("count").textContent = rows.length + " of " + data.episodes.length + " episodes shown";
  }
  ["search", "f-task", "f-split", "f-policy", "f-success"].forEach(id =>
    document.getElementById(id).addEventListener("input", render));

  const sprites = {};
  function frameOf(episode, index, canvas) {
    const draw = image => {
      const side = episode.side;
      const context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.drawImage(image, index * side, 0, side, side, 0, 0, canvas.width, canvas.height);
    };
    const image = sprites[episode.key];
    if (image && image.complete) draw(image);
    else {
      const loading = image || (sprites[episode.key] = Object.assign(new Image(), {src: episode.sprite}));
      loading.addEventListener("load", () => draw(loading), {once: true});
    }
  }

  function chart(episode) {
    const svg = document.getElementById("d-chart");
    const width = svg.clientWidth || 800, height = 300, left = 48, right = 12;
    const panels = [{top: 16, bottom: 124}, {top: 158, bottom: 280}];
    const x = t => left + (width - left - right) * t / Math.max(1, episode.steps);
    const ns = "http://www.w3.org/2000/svg";
    const add = (name, attributes, content) => {
      const node = document.createElementNS(ns, name);
      Object.entries(attributes).forEach(([k, v]) => node.setAttribute(k, v));
      if (content !== undefined) node.textContent = content;
      svg.appendChild(node);
      return node;
    };
    svg.replaceChildren();
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const series = [{label: "task reward", colour: "#222", panel: 0, points: episode.reward.map((v, i) => [i + 1, v])}];
    let n = 0;
    sets.forEach(fp => Object.entries(episode.curves[fp] || {}).forEach(([prompt, values]) => {
      series.push({label: fp + ": " + prompt, colour: colours[n++ % colours.length], panel: 1, points: values.map((v, i) => [i, v])});
    }));
    panels.forEach((panel, index) => {
      const shown = series.filter(s => s.panel === index);
      const values = shown.flatMap(s => s.points.map(p => p[1])).filter(v => v !== null);
      add("rect", {x: left, y: panel.top, width: width - left - right, height: panel.bottom - panel.top, fill: "none", stroke: "#ccc"});
      add("text", {x: left, y: panel.top - 4, "font-size": 11, fill: "#555"}, index ? "VLM reward" : "task reward (success shaded)");
      if (!values.length) {
        if (index) add("text", {x: left + 8, y: (panel.top + panel.bottom) / 2, "font-size": 12, fill: "#888"},
                       sets.length ? "no VLM reward of this episode's instruction" : "no reward set: lamp-data relabel adds one");
        return;
      }
      let low = Math.min(...values), high = Math.max(...values);
      if (high - low < 1e-9) { low -= 0.5; high += 0.5; }
      const y = v => panel.bottom - (panel.bottom - panel.top) * (v - low) / (high - low);
      add("text", {x: left - 4, y: panel.top + 10, "font-size": 10, "text-anchor": "end", fill: "#555"}, format(high));
      add("text", {x: left - 4, y: panel.bottom, "font-size": 10, "text-anchor": "end", fill: "#555"}, format(low));
      if (index === 0) {
        episode.successes.forEach((flag, t) => {
          if (flag) add("rect", {x: x(t - 0.5), y: panel.top, width: Math.max(1, x(1) - x(0)), height: panel.bottom - panel.top, fill: "#2ca02c", opacity: 0.15});
        });
      }
      shown.forEach(s => add("polyline", {fill: "none", stroke: s.colour, "stroke-width": 1.5,
        points: s.points.filter(p => p[1] !== null).map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ")}));
    });
    add("text", {x: width - right, y: height - 4, "font-size": 10, "text-anchor": "end", fill: "#555"}, "frame (step) 0.." + episode.steps);
    const cursor = add("line", {x1: x(0), x2: x(0), y1: 0, y2: height - 14, stroke: "#d33", "stroke-width": 1});
    document.getElementById("d-legend").replaceChildren(...series.map(s => {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = s.colour;
      item.append(swatch, s.label);
      return item;
    }), ...(episode.successes.some(f => f) ? [text("span", "green: success")] : []));
    return t => { cursor.setAttribute("x1", x(t)); cursor.setAttribute("x2", x(t)); };
  }

  function show(key) {
    const episode = data.episodes.find(e => e.key === key);
    const panel = document.getElementById("detail");
    if (!episode) { panel.hidden = true; chosen = null; render(); return; }
    chosen = episode;
    panel.hidden = false;
    document.getElementById("d-title").textContent = episode.key + "  " + (episode.task || "");
    document.getElementById("d-meta").textContent = "\u201c" + (episode.instruction || "no instruction") + "\u201d, " + episode.steps +
      " steps, " + (episode.success ? "success" : "no success") + ", policy " + (episode.policy || "?") + ", split " + (episode.split || "-");
    const move = chart(episode);
    const slider = document.getElementById("d-slider");
    const strip = document.getElementById("d-strip");
    slider.max = episode.frames.length - 1;
    const select = index => {
      slider.value = index;
      frameOf(episode, index, document.getElementById("d-frame"));
      document.getElementById("d-label").textContent = "t = " + episode.frames[index] + " (frame " + (index + 1) + " of " + episode.frames.length + " shown)";
      [...strip.children].forEach((canvas, i) => canvas.className = i === index ? "on" : "");
      move(episode.frames[index]);
    };
    strip.replaceChildren(...episode.frames.map((t, index) => {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = episode.side;
      canvas.title = "t = " + t;
      frameOf(episode, index, canvas);
      canvas.addEventListener("click", () => select(index));
      return canvas;
    }));
    slider.oninput = () => select(Number(slider.value));
    select(0);
    render();
  }
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  render();
  if (location.hash) show(location.hash.slice(1));
})();
"""
