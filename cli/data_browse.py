"""``lamp-data browse``: one self-contained HTML page to browse a dataset's episodes.

Examples::

    lamp-data browse data/mw                         # mw.html here: card, episodes, rewards
    lamp-data browse data/mw --out pages/mw.html --reward-set r3m-1a2b3c4d --prompt "open the drawer"
    lamp-data browse data/mw --out mw.html --check   # and render it in headless Chromium
"""

from __future__ import annotations

import click

from lamp_cli.defaults import parameter_default
from lamp_data.display.browse import browse_dataset


@click.command()
@click.argument("path", type=click.Path())
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="The page (.html; default: <dataset name>.html here).")
@click.option("--reward-set", "reward_sets", multiple=True, help="A reward set to show (repeatable; default: every one).")
@click.option("--prompt", "prompts", multiple=True, help="A prompt whose VLM reward curve the episode view also draws (repeatable).")
@click.option("--frames", type=click.IntRange(min=1), default=parameter_default(browse_dataset, "frames"), show_default=True,
              help="Frames per episode on the page.")
@click.option("--max-episodes", type=click.IntRange(min=1), default=parameter_default(browse_dataset, "max_episodes"),
              show_default=True, help="Most episodes on the page (more are thinned evenly).")
@click.option("--check", is_flag=True, help="Render the page in headless Chromium and report its console messages.")
@click.option("--screenshot", default=None, type=click.Path(dir_okay=False), help="With --check: also save a screenshot (.png).")
def browse(path, out, reward_sets, prompts, frames, max_episodes, check, screenshot) -> None:
    """Write one self-contained HTML page: the dataset card, a filterable table of episodes with
    thumbnails, returns per reward set, and each episode's frames over its reward curves."""
    page = browse_dataset(path, out, reward_sets=reward_sets or None, prompts=prompts, frames=frames, max_episodes=max_episodes)
    click.echo(f"{page.path}: {page.episodes} of {page.total} episodes, {len(page.reward_sets)} reward sets, {page.bytes / 1e6:.1f} MB")
    if check or screenshot:
        import sys

        from lamp_data.display.headless import render_page

        rendered = render_page(page.path, screenshot=screenshot, fragment=None)
        for message in rendered.console:
            click.echo(f"console: {message}", err=True)
        click.echo(f"rendered in {rendered.browser}: {len(rendered.console)} console messages"
                   + (f", screenshot {rendered.screenshot}" if rendered.screenshot else ""))
        if rendered.console:
            sys.exit(1)
