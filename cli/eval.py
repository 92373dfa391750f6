"""``lamp-eval``: finetune on held-out tasks, leaderboards, reward quality and the demo.

Examples::

    lamp-eval demo --out demo_out
    lamp-eval finetune --task pick-place --init runs/pre/checkpoint --seeds 0,1,2 --steps 5000 --out runs/ft
    lamp-eval leaderboard runs/ft --out report
    lamp-eval reward-quality --rewards data/heldout/rewards/<fingerprint>
"""

import click

from lamp_cli.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_commands={
        "demo": "lamp_cli.eval_demo:demo",
        "finetune": "lamp_cli.eval_finetune:finetune",
        "grid": "lamp_cli.eval_grid:grid",
        "leaderboard": "lamp_cli.eval_report:leaderboard",
        "reward-quality": "lamp_cli.eval_report:reward_quality",
    },
)
@click.version_option(package_name="lamp-toolkit")
def main() -> None:
    """Evaluate pretrained agents and reward models."""


if __name__ == "__main__":
    main()
