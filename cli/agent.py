"""``lamp-agent``: pretrain the language-conditioned world-model agent.

Example::

    lamp-agent pretrain --data data/mw --rewards <fingerprint> --steps 1000 --preset tiny --out runs/pre
"""

import click

from lamp_cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={"pretrain": "lamp_cli.agent_pretrain:pretrain"})
@click.version_option(package_name="lamp-toolkit")
def main() -> None:
    """Pretrain agents on stored trajectories and VLM rewards."""
