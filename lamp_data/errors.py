"""Errors that the command line reports as one line, with an exit code chosen by their kind.

* :class:`LampError` (exit 2): bad input, a missing extra, a file the user pointed at that is
  not what the command needs.
* :class:`DamagedDataError` (exit 1): a file the project wrote is damaged, hand-edited or does
  not match its record (checksum, sidecar, the data shard a reward shard scores).
* :class:`EnvironmentFailure` (exit 1): something the command needs failed: a Ray cluster
  that does not start or answer, and, as :class:`StorageError`, the operating system refusing a
  read or write (disk full, permissions, a vanished mount).
"""

from __future__ import annotations

import os

BAD_INPUT = 2
"""Exit code for bad input."""
DAMAGED = 1
"""Exit code for damaged data or a failing environment (disk, devices)."""


class LampError(Exception):
    """A problem with the user's input or files, reported without a traceback.

    Raise it with a message that says what is wrong and, where possible, what to do.
    """

    exit_code = BAD_INPUT


class DamagedDataError(LampError):
    """A file the project wrote is damaged or does not match its record."""

    exit_code = DAMAGED


class EnvironmentFailure(LampError):
    """A service the command needs failed (a Ray cluster that does not start or answer)."""

    exit_code = DAMAGED


class StorageError(EnvironmentFailure):
    """The operating system refused to read or write a file (disk full, permissions, ...).

    Args:
        path: The file or folder being read or written.
        error: The ``OSError`` raised.
        action: ``"write"`` or ``"read"``.
    """

    def __init__(self, path: str | os.PathLike, error: OSError, action: str = "write"):
        reason = error.strerror or str(error) or type(error).__name__
        hint = "; free some space and run the command again" if error.errno == 28 else ""
        super().__init__(f"cannot {action} {os.fspath(path)}: {reason}{hint}")
        self.path = path
        self.errno = error.errno


class MissingExtraError(LampError):
    """An optional backend was asked for but its extra is not installed."""

    def __init__(self, what: str, extra: str, cause: BaseException | None = None):
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"{what} needs the '{extra}' extra: pip install 'lamp-toolkit[{extra}]'{detail}"
        )
        self.extra = extra


ON_DAMAGE = ("fail", "skip")
"""What a stage does with a damaged shard: stop with an error naming it, or go on without it (a
stream leaves it out and records it; collect extends a dataset as it is)."""


def check_on_damage(value: str) -> str:
    """``value`` if it is one of :data:`ON_DAMAGE`; LampError otherwise."""
    if value not in ON_DAMAGE:
        raise LampError(f"on_damage must be one of {', '.join(ON_DAMAGE)}, got {value!r}")
    return value


def check_number(name: str, value: object, *, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a float if it is a finite real number within ``[low, high]``; LampError otherwise.

    ``NaN`` and infinities are refused everywhere: written into a config or ``meta/info.json``
    they are not standard JSON, and every later command that reads them would fail.
    """
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LampError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise LampError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise LampError(f"{name} must be in {bounds}, got {value!r}")
    return number


def check_count(name: str, value: object, limit: int) -> int:
    """``value`` if it is a whole number in ``[1, limit]``; a LampError naming ``name`` (its
    underscores read as spaces) otherwise."""
    words = name.replace("_", " ")
    if isinstance(value, bool) or not isinstance(value, int):
        raise LampError(f"{words} must be a whole number, got {value!r}")
    if value < 1:
        raise LampError(f"{words} must be at least 1, got {value}")
    if value > limit:
        raise LampError(f"{words} must be at most {limit:,}, got {value:,}")
    return value


def check_path_text(name: str, path: str | os.PathLike) -> str:
    """``path`` as text if it is valid UTF-8, the only paths lamp can record in its JSON files.

    A name with bytes that are not UTF-8 (Python carries them as lone surrogates) would fail
    only when the first record is written, half-way through a command; it is refused up front.

    Raises:
        LampError: naming the path with its odd bytes escaped.
    """
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(text).decode("utf-8", "backslashreplace")
        raise LampError(f"{name} {shown} is not valid UTF-8; lamp records its paths as text: rename it or choose another") from None
    return text
