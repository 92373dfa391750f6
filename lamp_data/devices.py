"""Torch device names checked before any work starts: ``cpu``, ``cuda``, ``cuda:1``, ``mps``."""

from __future__ import annotations

from lamp_data.errors import LampError

DEVICE_TYPES = ("cpu", "cuda", "mps")
"""Device types the toolkit runs on."""


def check_device_name(name: str) -> str:
    """``name`` if it names a device type the toolkit runs on (``cpu``, ``cuda``, ``cuda:1``,
    ``mps``), without importing torch or asking whether this machine has it.

    Raises:
        LampError: any other name.
    """
    import re

    if not isinstance(name, str) or not re.fullmatch(rf"(?:{'|'.join(DEVICE_TYPES)})(?::\d+)?", name):
        raise LampError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps")
    return name


def check_device(name: str) -> str:
    """``name`` if torch can use that device on this machine, else :class:`LampError` saying why.

    Raises:
        LampError: an unknown device name, a device type the toolkit does not run on, or a
            device this machine or this torch build lacks (``cuda`` on a CPU-only build).
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise LampError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from None
    if device.type not in DEVICE_TYPES:
        raise LampError(f"device {name!r} is not supported: use cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise LampError(f"device {name!r} needs a CUDA build of torch; this one ({torch.__version__}) is CPU-only: use --device cpu")
        if not torch.cuda.is_available():
            raise LampError(f"device {name!r}: no CUDA GPU is visible to torch; use --device cpu or check the driver")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LampError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LampError(f"device {name!r}: MPS is not available on this machine; use --device cpu")
    return name
