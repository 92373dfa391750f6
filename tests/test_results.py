"""The committed results can be regenerated from a clone: no path of the machine that made them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABSOLUTE = re.compile(r"""(?:^|[\s"'=(\[,])(/(?:work|tmp|home|root|mnt|opt|srv|usr|var|Users|private)/[^\s"',)\]]*)""")
"""An absolute path under a folder that exists on some machine and not in a clone."""
TEXT = {".md", ".json", ".jsonl", ".yaml", ".yml", ".csv", ".txt"}
NOT_COMMITTED = {"runs", "logs", "report", "pretraining"}
"""Folders the experiments write beside their results and .gitignore keeps out of the repository."""


def test_the_finder_finds_absolute_paths():
    assert ABSOLUTE.findall('"argv": ["/work/main/.venv/bin/lamp-eval", "--out", "/tmp/x"]') == ["/work/main/.venv/bin/lamp-eval", "/tmp/x"]
    assert not ABSOLUTE.findall("results/reference/grid.yaml, 1/2 of runs, http://example.org/work/x")


def test_no_committed_result_names_an_absolute_path():
    found = {}
    for path in sorted((ROOT / "results").rglob("*")):
        parts = set(path.relative_to(ROOT / "results").parts[:-1])
        if parts & NOT_COMMITTED or any(part.startswith(".") for part in parts):
            continue
        if path.suffix in TEXT and path.is_file():
            hits = ABSOLUTE.findall(path.read_text(errors="replace"))
            if hits:
                found[str(path.relative_to(ROOT))] = sorted(set(hits))[:3]
    assert not found, found
