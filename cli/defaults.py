"""Defaults of the CLI's options, read from the configs and functions the commands call.

A command's option takes its default from the dataclass field (or keyword parameter) it sets,
so every default is written once, in the library::

    @click.option("--steps", type=int, default=field_default(RunSettings, "steps"), show_default=True)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any


def field_default(config_class: type, name: str) -> Any:
    """The default value of the field ``name`` of the dataclass ``config_class``.

    Args:
        config_class: A dataclass.
        name: One of its fields.

    Returns:
        The field's default, or what its ``default_factory`` builds.

    Raises:
        KeyError: ``config_class`` has no field ``name``.
        ValueError: the field has no default.
    """
    for item in dataclasses.fields(config_class):
        if item.name != name:
            continue
        if item.default is not dataclasses.MISSING:
            return item.default
        if item.default_factory is not dataclasses.MISSING:
            return item.default_factory()
        raise ValueError(f"{config_class.__name__}.{name} has no default")
    raise KeyError(f"{config_class.__name__} has no field {name!r}")


def parameter_default(function: Callable[..., Any], name: str) -> Any:
    """The default value of the parameter ``name`` of ``function``.

    Raises:
        KeyError: ``function`` has no parameter ``name``.
        ValueError: the parameter has no default.
    """
    parameter = inspect.signature(function).parameters[name]
    if parameter.default is inspect.Parameter.empty:
        raise ValueError(f"{function.__qualname__}() parameter {name!r} has no default")
    return parameter.default
