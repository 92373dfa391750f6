"""A click group whose commands are imported on first use, and the project's error policy.

Commands live in their own modules and are named here as ``"module:attribute"``, so
``lamp-data --help`` does not import torch or MuJoCo. Any :class:`LampError` (bad input,
a missing extra, a damaged file) is printed as one line on stderr with its exit code: 2 for
bad input, 1 for damaged data or a failing environment (see :mod:`lamp_data.errors`). An
``OSError`` that no stage turned into a :class:`~lamp_data.errors.StorageError` (disk full,
permissions) and a ``MemoryError`` get one line and exit code 1 as well. A usage error (an
unknown option, a missing one, a value of the wrong type or out of range) is one line too,
pointing to the command's ``--help``, with exit code 2 rather than click's usage block.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from lamp_data.errors import BAD_INPUT, DAMAGED, LampError


_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
"""What click raises to show a command's help when it is called without arguments (click >= 8.2)."""


class LazyGroup(click.Group):
    """A group that imports each command's module only when the command is run or listed."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            module_name, _, attribute = self._lazy[name].partition(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, name)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as error:
            if isinstance(error, _HELP):
                raise
            _fail_usage(error, info_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            if isinstance(error, _HELP):
                raise
            _fail_usage(error, ctx.command_path)
        except LampError as error:
            _fail(str(error), error.exit_code)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            _fail(f"{where}{error.strerror or error}", DAMAGED)
        except MemoryError:
            _fail("out of memory; use smaller sizes (--episodes, --episode-length, --image-size) or a larger machine", DAMAGED)


def _fail_usage(error: click.ClickException, command: str | None) -> None:
    """One line for a usage error (click's own message), pointing to the command's help."""
    context = getattr(error, "ctx", None)
    where = context.command_path if context is not None else command
    hint = f"; see '{where} --help'" if where and isinstance(error, click.UsageError) else ""
    _fail(error.format_message().rstrip(".") + hint, error.exit_code if not isinstance(error, click.UsageError) else BAD_INPUT)


def _fail(message: str, code: int) -> None:
    """Print ``message`` as one line on stderr and exit with ``code``."""
    click.echo("Error: " + " ".join(message.split()), err=True)
    sys.exit(code)
