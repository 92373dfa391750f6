"""``lamp-data``: simulators, collection, verification and VLM rewards.

Examples::

    lamp-data tasks --json
    lamp-data collect --episodes 100 --out data/mw --workers 2 --policy noisy-expert --seed 0
    lamp-data verify data/mw
    lamp-data info data/mw
    lamp-data view data/mw --episode 3 --reward-set r3m-1a2b3c4d --out episode.png
    lamp-data browse data/mw --out mw.html
    lamp-data export data/mw --format lerobot --out exports/mw-lerobot --reward-set r3m-1a2b3c4d
    lamp-data import --format minari exports/mw-minari --out data/mw-again
    lamp-data relabel data/mw --vlm r3m:/path/model.pt --prompts lamp-metaworld
    lamp-data train-reward-model --data data/experts --out models/rm
"""

import click

from lamp_cli.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_commands={
        "tasks": "lamp_cli.data_envs:tasks",
        "render": "lamp_cli.data_envs:render",
        "collect": "lamp_cli.data_store:collect",
        "verify": "lamp_cli.data_store:verify",
        "info": "lamp_cli.data_store:info",
        "view": "lamp_cli.data_view:view",
        "browse": "lamp_cli.data_browse:browse",
        "export": "lamp_cli.data_formats:export",
        "import": "lamp_cli.data_formats:import_",
        "prompts": "lamp_cli.data_rewards:prompts",
        "relabel": "lamp_cli.data_rewards:relabel",
        "train-reward-model": "lamp_cli.data_reward_model:train_reward_model",
    },
)
@click.version_option(package_name="lamp-toolkit")
def main() -> None:
    """Record, verify and score robot trajectories."""
