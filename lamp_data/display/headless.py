"""Render a page the toolkit wrote in headless Chromium: its DOM after its scripts ran, every
console message it printed (errors included), and optionally a screenshot.

    checked = render_page("mw.html", screenshot="mw.png", fragment="ep00000003")
    assert not checked.console, checked.console

Chromium runs with a fresh profile, no sandbox, no GPU and no background networking, so a check
reaches no network; the page is opened from disk.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lamp_data.errors import LampError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
"""Executables tried, in order."""
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
)
_CONSOLE = re.compile(r":CONSOLE(?::\d+|\(\d+\))\] (.*)$")


@dataclass(frozen=True)
class RenderedPage:
    """What headless Chromium made of a page."""

    dom: str
    """The document after its scripts ran."""
    console: tuple[str, ...]
    """Every console message (log, warning, error, uncaught exception), as Chromium logs them."""
    screenshot: Path | None
    """The screenshot written, if one was asked for."""
    browser: str
    """The browser's executable and version."""


def find_browser() -> str | None:
    """The path of a Chromium (or Chrome) executable, None if there is none."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def render_page(
    page: str | Path, *, screenshot: str | Path | None = None, fragment: str | None = None,
    window: tuple[int, int] = (1280, 900), timeout: float = 120.0,
) -> RenderedPage:
    """Open ``page`` in headless Chromium (``#fragment`` appended) at ``window`` pixels.

    Raises:
        LampError: no Chromium is installed, or it failed or timed out.
    """
    browser = find_browser()
    if browser is None:
        raise LampError("no Chromium found (tried " + ", ".join(BROWSERS) + "); install one, e.g. apt-get install chromium")
    url = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    version = subprocess.run([browser, "--version"], capture_output=True, text=True, timeout=timeout).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="lamp-chromium-") as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"]
        try:
            dumped = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
            if screenshot is not None:
                shot = subprocess.run([*common, f"--screenshot={Path(screenshot).resolve()}", url], capture_output=True,
                                      text=True, timeout=timeout)
                if shot.returncode != 0 or not Path(screenshot).is_file():
                    raise LampError(f"{browser} wrote no screenshot of {page}: {shot.stderr.strip()[-300:]}")
        except subprocess.TimeoutExpired:
            raise LampError(f"{browser} did not finish rendering {page} within {timeout:.0f} s") from None
    if dumped.returncode != 0:
        raise LampError(f"{browser} failed on {page} (exit {dumped.returncode}): {dumped.stderr.strip()[-300:]}")
    console = tuple(match.group(1) for line in dumped.stderr.splitlines() if (match := _CONSOLE.search(line)))
    return RenderedPage(dom=dumped.stdout, console=console, screenshot=Path(screenshot) if screenshot else None, browser=version)
