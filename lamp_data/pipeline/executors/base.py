"""What every executor shares: its config, the worker contract and the events it adds."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lamp_data.errors import LampError, MissingExtraError, check_number
from lamp_data.store import layout

EXECUTORS = ("local", "ray")
"""Scheduling back-ends: processes on this machine, or actors on a Ray cluster."""

MAX_WORKERS = 1024
"""Most workers one stage may run at once."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

Emit = Callable[[Any], None]
"""Hands one progress event to the driver."""


@dataclass(frozen=True)
class ExecutorConfig:
    """How a stage schedules its work."""

    kind: str = "local"
    """local | ray."""
    address: str | None = None
    """Ray cluster address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None: ``RAY_ADDRESS``
    if set, else a new Ray instance on this machine."""
    workers: int | None = None
    """Workers at once. Local: processes (None: one, in this process). Ray: actors (None: one
    per CPU slot of the cluster, or per GPU for work that asks for GPUs)."""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each actor."""
    gpus_per_worker: float = 0.0
    """GPUs Ray reserves for each actor of a stage that takes them from here (finetuning's
    ``--gpus-per-run``; a relabel on ``cuda`` reserves one GPU per actor by itself)."""
    max_retries: int = 3
    """Times Ray restarts a dead actor and retries its unit before the run fails."""

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise LampError(f"unknown executor '{self.kind}' (known: {', '.join(EXECUTORS)})")
        if self.workers is not None:
            if isinstance(self.workers, bool) or not isinstance(self.workers, int):
                raise LampError(f"workers must be a whole number, got {self.workers!r}")
            if self.workers < 1:
                raise LampError(f"workers must be at least 1, got {self.workers}")
            if self.workers > MAX_WORKERS:
                raise LampError(f"workers must be at most {MAX_WORKERS:,}, got {self.workers:,}")
        check_number("CPUs per worker", self.cpus_per_worker)
        if self.cpus_per_worker <= 0:
            raise LampError(f"CPUs per worker must be positive, got {self.cpus_per_worker}")
        check_number("GPUs per worker", self.gpus_per_worker, low=0.0)
        if self.max_retries < 0:
            raise LampError(f"max retries must be non-negative, got {self.max_retries}")
        if self.kind == "local" and self.address is not None:
            raise LampError("--address is for --executor ray")
        if self.kind == "local" and self.gpus_per_worker:
            raise LampError("GPUs per worker are for --executor ray")

    @property
    def is_ray(self) -> bool:
        """True for the Ray back-end."""
        return self.kind == "ray"


class Worker(Protocol):
    """What an executor runs: built by a factory where it runs, it then takes units one at a time."""

    def start(self, emit: Emit) -> None:
        """Get ready for units (the heavy parts, an env or a model, are built by then)."""

    def do(self, unit: Any, emit: Emit) -> Any:
        """Do one unit, reporting progress through ``emit``, and return its result for the driver.

        ``emit`` raises ``SystemExit`` in a worker process whose driver has gone away: a unit
        must then stop without committing anything.
        """

    def close(self) -> None:
        """Free what the worker holds."""


class WorkerPool(Protocol):
    """Workers started from one factory; a context manager that closes them."""

    def start(self, on_event: Emit) -> None:
        """Start every worker; their start events and one :class:`WorkerReady` each go to ``on_event``."""

    def run(self, units: list[Any], on_event: Emit) -> Iterator[tuple[Any, Any]]:
        """Hand out ``units`` and yield ``(unit, result)`` as they finish, in any order."""

    def close(self) -> None:
        """Stop the workers."""


@dataclass(frozen=True)
class WorkerReady:
    """One worker has built what it holds and takes units now."""

    workers: int
    """How many workers the pool started."""


def check_local_path(path: str | Path) -> None:
    """Refuse object-store URLs (``s3://...``): the store writes through the local filesystem.

    Raises:
        LampError: naming the URL and what to use instead.
    """
    if _URL.match(str(path)):
        raise LampError(
            f"{path} is a URL; datasets live in folders: use a local path, or on a cluster a shared "
            "filesystem (NFS, or the bucket mounted with e.g. s3fs / gcsfuse) at the same path on every node"
        )


def check_visible(dataset: str | Path) -> None:
    """Refuse to work on a dataset folder this node cannot see (a worker on another node of a cluster).

    Raises:
        LampError: naming the folder and the node.
    """
    if not layout.is_dataset(dataset):
        raise LampError(f"dataset folder {dataset} is not visible from node {os.uname().nodename}; put it on a shared filesystem")


def import_ray() -> Any:
    """The ``ray`` module, or :class:`MissingExtraError` naming the ``ray`` extra."""
    try:
        import ray
    except ImportError as error:
        raise MissingExtraError("--executor ray", "ray", error) from error
    return ray
