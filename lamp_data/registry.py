"""Name → factory registries whose entries are imported only when asked for."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lamp_data.errors import LampError, MissingExtraError

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    target: str | Callable[..., Any]
    extra: str | None
    description: str


class Registry(Generic[T]):
    """Maps names to factories given as callables or as ``"module:attribute"`` strings.

    A string target is imported on first use, so a heavy backend costs nothing until it is
    asked for; if its import fails with ``ImportError`` and the entry names an extra, the
    error names the extra to install.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, _Entry] = {}

    def register(
        self,
        name: str,
        target: str | Callable[..., T],
        *,
        extra: str | None = None,
        description: str = "",
    ) -> None:
        """Register ``name``; registering the same name twice is an error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = _Entry(target, extra, description)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def description(self, name: str) -> str:
        """The one-line description given at registration."""
        return self._entry(name).description

    def extra(self, name: str) -> str | None:
        """The optional extra an entry needs, if any."""
        return self._entry(name).extra

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise LampError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def get(self, name: str) -> Callable[..., T]:
        """The factory for ``name``, importing it if needed."""
        entry = self._entry(name)
        if callable(entry.target):
            return entry.target
        module_name, _, attribute = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if entry.extra:
                raise MissingExtraError(f"{self.kind} '{name}'", entry.extra, error) from error
            raise
        return getattr(module, attribute)

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build the entry ``name`` with the given arguments."""
        return self.get(name)(*args, **kwargs)
