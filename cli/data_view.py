"""``lamp-data view``: one episode's frames over its reward curves, as a PNG or a GIF.

Examples::

    lamp-data view data/mw                                       # the first episode: episode-0.png here
    lamp-data view data/mw --out episode.png                     # the first episode, task reward
    lamp-data view data/mw --episode 12 --out episode.gif        # an animation with a moving cursor
    lamp-data view data/mw --episode 12 --reward-set r3m-1a2b3c4d --out episode.png   # + the instruction's VLM reward
    lamp-data view data/mw --episode 12 --reward-set r3m-1a2b3c4d \\
        --prompt "pick up the cup" --prompt "open the drawer" --out episode.png
"""

from __future__ import annotations

import click

from lamp_data.display.view import FRAMES_ON_SHEET, GIF_FPS, MAX_FPS, MAX_FRAMES_ON_SHEET


@click.command()
@click.argument("path", type=click.Path())
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="File to write: .png (contact sheet) or .gif (default: episode-<K>.png in the current folder).")
@click.option("--episode", type=click.IntRange(min=0), default=None, help="Episode number (default: the first stored).")
@click.option("--reward-set", default=None, help="Fingerprint of a reward set to draw VLM rewards from (lamp-data info lists them).")
@click.option("--prompt", "prompts", multiple=True, help="A prompt of the reward set, repeatable (default: the episode's instruction).")
@click.option("--frames", type=click.IntRange(1, MAX_FRAMES_ON_SHEET), default=FRAMES_ON_SHEET, show_default=True, help="Frames on a contact sheet.")
@click.option("--fps", type=click.IntRange(1, MAX_FPS), default=GIF_FPS, show_default=True, help="Episode frames per second of a GIF.")
def view(path, out, episode, reward_set, prompts, frames, fps) -> None:
    """Draw an episode's frames with its task reward and VLM reward curves under them."""
    from lamp_data.display.view import view_episode

    result = view_episode(path, out, episode=episode, reward_set=reward_set, prompts=prompts, frames=frames, fps=fps)
    curves = f"; VLM reward of {len(result.prompts)} prompts from {result.reward_set}" if result.prompts else ""
    click.echo(
        f"{result.path}: {result.key} ({result.task}, {result.steps} steps, "
        f"{'success' if result.success else 'no success'}){curves}"
    )
