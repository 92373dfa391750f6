"""``lamp-data export | import``: datasets in and out of Minari, robomimic's HDF5 and LeRobot v3.

Examples::

    lamp-data export data/mw --format lerobot --out exports/mw-lerobot --reward-set r3m-1a2b3c4d
    lamp-data export data/mw --format minari --out ~/.minari/datasets/lamp/mw-v0 \\
        --reward-set r3m-1a2b3c4d --prompt "pick up the cup" --own-instruction
    lamp-data export data/mw --format hdf5 --out exports/mw.hdf5 --reward-set r3m-1a2b3c4d --all-prompts
    lamp-data import --format hdf5 image.hdf5 --out data/lift --camera agentview_image --instruction "lift the cube"
    lamp-data import --format lerobot exports/mw-lerobot --out data/mw-again
    lamp-data import --format minari lamp/mw-v0 --out data/mw-minari   # an id of the local Minari cache
"""

from __future__ import annotations

import click

from lamp_cli.defaults import field_default, parameter_default
from lamp_data.formats import FORMATS, ExportOptions, export_dataset, import_dataset
from lamp_data.formats.base import PIXEL_FORMATS, default_dataset_id

FORMAT_NAMES = FORMATS.names()


@click.command("export")
@click.argument("path", type=click.Path())
@click.option("--format", "format_name", type=click.Choice(FORMAT_NAMES), required=True,
              help="minari (a Minari dataset folder), hdf5 (robomimic's layout, one .hdf5 file), lerobot (LeRobotDataset v3.0 folder).")
@click.option("--out", required=True, type=click.Path(), help="A new folder (minari, lerobot) or .hdf5 file (hdf5).")
@click.option("--reward-set", "reward_sets", multiple=True, help="A reward set whose scores go out as reward columns; repeatable.")
@click.option("--prompt", "prompts", multiple=True, help="A prompt of those sets to write a column for; repeatable.")
@click.option("--own-instruction", is_flag=True,
              help="Also a column scoring each episode against its own instruction (the default when no --prompt is given).")
@click.option("--all-prompts", is_flag=True, help="A column for every prompt of each set (an import then rebuilds the set whole).")
@click.option("--fps", type=click.IntRange(min=1), default=field_default(ExportOptions, "fps"), show_default=True,
              help="Frames per second the export states (LeRobot timestamps and videos).")
@click.option("--images", is_flag=True, help="LeRobot: lossless PNG frames inside the parquet files instead of mp4 videos.")
@click.option("--crf", type=click.IntRange(0, 51), default=field_default(ExportOptions, "crf"), show_default=True,
              help="LeRobot videos: H.264 quality (lower keeps more).")
@click.option("--pix-fmt", "pixel_format", type=click.Choice(PIXEL_FORMATS), default=field_default(ExportOptions, "pixel_format"),
              show_default=True, help="LeRobot videos: yuv420p (LeRobot's own, plays in browsers) or yuv444p (full colour resolution).")
@click.option("--dataset-id", default=field_default(ExportOptions, "dataset_id"),
              help="Minari: the dataset id recorded (default lamp/<out folder name>-v0).")
def export(path, format_name, out, reward_sets, prompts, own_instruction, all_prompts, fps, images, crf, pixel_format, dataset_id) -> None:
    """Write a dataset's episodes (frames, state, actions, success, instructions, chosen VLM reward
    columns) in another robot-learning format."""
    options = ExportOptions(fps=fps, video=not images, crf=crf, pixel_format=pixel_format, dataset_id=dataset_id)
    summary = export_dataset(path, out, format_name, reward_sets=reward_sets, prompts=prompts, own_instruction=own_instruction,
                             all_prompts=all_prompts, options=options)
    click.echo(f"{summary.out}: {summary.episodes} episodes, {summary.steps} steps as {summary.format_name} ({summary.seconds:.1f} s)")
    for label in summary.columns:
        click.echo(f"  reward column: {label}")
    for check in summary.checks:
        click.echo(f"  {check}")
    dataset_id = options.dataset_id or default_dataset_id(summary.out.resolve().name)
    click.echo("  open it: " + OPEN_WITH[summary.format_name].format(out=summary.out, id=dataset_id))


OPEN_WITH = {
    "minari": 'minari.MinariDataset("{out}/data"), or minari.load_dataset("{id}") with the folder at $MINARI_DATASETS_PATH/{id}',
    "hdf5": 'h5py.File("{out}")["data/demo_0/obs/front_image"] (robomimic\'s layout)',
    "lerobot": 'LeRobotDataset("lamp/{out.name}", root="{out}") (lerobot\'s own class, where it is installed)',
}
"""How each format's export is opened with its own tools (the line export prints last)."""


@click.command("import")
@click.argument("src", type=click.Path())
@click.option("--format", "format_name", type=click.Choice(FORMAT_NAMES), required=True, help="The source's format.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="A new (or empty) dataset folder.")
@click.option("--camera", default=None, help="The source camera to store as the front camera (default: its only one, or a lamp export's own).")
@click.option("--instruction", default=None, help="Instruction of every episode whose source states none.")
@click.option("--image-size", type=click.IntRange(min=1), default=None,
              help="Centre-crop frames to a square and resize them to this side (default: keep them; they must be square).")
@click.option("--shard-episodes", type=click.IntRange(min=1), default=parameter_default(import_dataset, "shard_episodes"), show_default=True,
              help="Episodes per shard (a lamp export keeps its own shards).")
def import_(src, format_name, out, camera, instruction, image_size, shard_episodes) -> None:
    """Read Minari, robomimic HDF5 or LeRobot v3 trajectories into a new dataset that relabel,
    view, verify and pretrain take."""
    summary = import_dataset(src, out, format_name, camera=camera, instruction=instruction, image_size=image_size,
                             shard_episodes=shard_episodes)
    origin = "a lamp export, restored as it was" if summary.lamp_export else f"cameras {', '.join(summary.cameras)}"
    click.echo(
        f"{summary.out}: {summary.episodes} episodes, {summary.steps} steps in {summary.shards} shards, "
        f"{summary.image_size} px, from {summary.format_name} ({origin}; {summary.seconds:.1f} s)"
    )
    for fingerprint in summary.reward_sets:
        click.echo(f"  reward set: {fingerprint}")
    for note in summary.notes:
        click.echo(f"  note: {note}")
    click.echo(f"next: lamp-data verify {summary.out}; lamp-data relabel {summary.out} --vlm SPEC --prompts NAME")
