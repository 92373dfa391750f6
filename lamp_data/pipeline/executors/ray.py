"""Workers as actors on a Ray cluster, one per worker slot.

The driver starts every actor (each builds its worker from the factory), hands out one unit at
a time per actor and yields results as they come. Progress events travel through a small
progress actor that the driver drains while it waits, each tagged with its unit and position,
so a retried unit's events are counted once.

An actor that dies is restarted by Ray (``max_restarts``: it builds its worker again) and its
unit retried (``max_task_retries``); stages make a unit's output depend only on the unit, so a
retry writes the same bytes under the same names. Ray is imported only when a pool or a session
is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from lamp_data.errors import EnvironmentFailure, LampError
from lamp_data.pipeline.executors.base import Emit, ExecutorConfig, Worker, WorkerReady, import_ray

POLL_SECONDS = 0.2
"""How often the driver drains progress events while units run."""


@contextlib.contextmanager
def session(executor: ExecutorConfig) -> Iterator[None]:
    """Be connected to a Ray cluster for the duration of a stage.

    Reuse a connection the caller already opened; otherwise connect to ``executor.address``
    (or start a local instance) and disconnect at the end.

    Raises:
        LampError: no Ray cluster at the address, or fewer CPUs in it than one actor asks for
            (Ray would wait for them forever).
    """
    ray = import_ray()
    if ray.is_initialized():
        _check_cpus(ray, executor)
        yield
        return
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    address = executor.address or os.environ.get("RAY_ADDRESS")
    if address is None:
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except Exception as error:  # Ray raises ConnectionError, TimeoutError, RuntimeError, plain Exception...
        where = f"connect to a Ray cluster at {address}" if address else "start a local Ray instance"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise EnvironmentFailure(f"cannot {where}: {first}; check the address, or run `ray stop` and try again") from error
    try:
        _check_cpus(ray, executor)
        yield
    finally:
        ray.shutdown()


def _check_cpus(ray: Any, executor: ExecutorConfig) -> None:
    cpus = ray.cluster_resources().get("CPU", 0.0)
    if executor.cpus_per_worker > cpus:
        raise LampError(f"each worker asks for {executor.cpus_per_worker:g} CPUs; the Ray cluster has {cpus:g}")


def worker_slots(executor: ExecutorConfig, gpus_per_worker: float = 0.0) -> int:
    """Actors to start: ``executor.workers``, else as many as the cluster's CPUs (or GPUs) hold.

    Raises:
        LampError: a worker asks for more GPUs than the cluster has (Ray would wait forever).
    """
    resources = import_ray().cluster_resources()
    cpus = resources.get("CPU", 0.0)
    gpus = resources.get("GPU", 0.0)
    if gpus_per_worker > 0 and gpus < gpus_per_worker:
        raise LampError("the Ray cluster has no GPUs; use --device cpu or add GPU nodes")
    if executor.workers is not None:
        return executor.workers
    if gpus_per_worker > 0:
        return max(1, int(gpus // gpus_per_worker))
    return max(1, int(cpus // executor.cpus_per_worker))


def _task_error(ray: Any, error: Exception, name: str) -> Exception:
    """A LampError raised inside an actor comes back as itself; a death as one clear error."""
    if isinstance(error, ray.exceptions.RayTaskError) and isinstance(error.cause, LampError):
        return error.cause
    if isinstance(error, ray.exceptions.RayActorError):
        return RuntimeError(f"a Ray {name} worker died and its retries are used up: {error}")
    return error


class _ProgressBox:
    """A Ray actor keeping progress events from the workers until the driver takes them."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def put(self, event: Any) -> None:
        """Keep one event."""
        self.events.append(event)

    def take(self) -> list[Any]:
        """Every event kept since the last call."""
        events, self.events = self.events, []
        return events


class _WorkerActor:
    """A Ray actor holding one worker; built again from the factory when Ray restarts it."""

    def __init__(self, worker_factory: Callable[[], Worker]):
        self.worker: Worker | None = None
        self.start_events: list[Any] = []
        self.error: LampError | None = None
        try:
            self.worker = worker_factory()
            self.worker.start(self.start_events.append)
        except LampError as error:  # raised by start(), so the driver gets it as a LampError
            self.error = error

    def start(self) -> list[Any]:
        """The events of starting the worker."""
        if self.error is not None:
            raise self.error
        return self.start_events

    def do(self, index: int, unit: Any, progress: Any) -> Any:
        """Do unit ``index``; its events go to ``progress`` tagged ``(index, position)``."""
        import ray

        sent: list[Any] = []

        def emit(event: Any) -> None:
            sent.append(progress.put.remote((index, len(sent), event)))

        result = self.worker.do(unit, emit)
        ray.get(sent[-1:])  # calls run in order: once the last is in, all are
        return result

    def close(self) -> None:
        """Close the worker."""
        if self.worker is not None:
            self.worker.close()


class RayWorkers:
    """``count`` actors on the Ray cluster this process is connected to (see :func:`session`).

    Args:
        executor: The Ray executor settings (CPUs per actor, retries).
        worker_factory: A picklable zero-argument callable building a worker.
        count: Actors.
        name: The stage, for error messages.
        gpus_per_worker: GPUs Ray reserves for each actor.
    """

    def __init__(self, executor: ExecutorConfig, worker_factory: Callable[[], Worker], count: int, name: str,
                 gpus_per_worker: float = 0.0):
        self.executor, self.worker_factory, self.count, self.name = executor, worker_factory, count, name
        self.gpus_per_worker = gpus_per_worker
        self.ray = import_ray()
        self.actors: list[Any] = []
        self.progress: Any = None

    def __enter__(self) -> "RayWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self, on_event: Emit) -> None:
        """Start the actors and wait until each has built its worker."""
        ray = self.ray
        self.progress = ray.remote(num_cpus=0)(_ProgressBox).remote()
        options = {
            "num_cpus": self.executor.cpus_per_worker,
            "max_restarts": self.executor.max_retries,
            "max_task_retries": self.executor.max_retries,
        }
        if self.gpus_per_worker:
            options["num_gpus"] = self.gpus_per_worker
        actor_class = ray.remote(**options)(_WorkerActor)
        self.actors = [actor_class.remote(self.worker_factory) for _ in range(self.count)]
        starting = [actor.start.remote() for actor in self.actors]
        while starting:
            done, starting = ray.wait(starting, num_returns=1)
            for event in self._get(done[0]):
                on_event(event)
            on_event(WorkerReady(self.count))

    def run(self, units: list[Any], on_event: Emit) -> Iterator[tuple[Any, Any]]:
        """Hand out the units one at a time per actor; yield ``(unit, result)`` as they finish."""
        ray = self.ray
        counted: set[tuple[int, int]] = set()

        def drain() -> None:
            for index, position, event in ray.get(self.progress.take.remote()):
                if (index, position) not in counted:
                    counted.add((index, position))
                    on_event(event)

        todo = deque(enumerate(units))
        running: dict[Any, tuple[Any, int]] = {}
        idle = list(self.actors)
        while todo or running:
            while idle and todo:
                actor = idle.pop()
                index, unit = todo.popleft()
                running[actor.do.remote(index, unit, self.progress)] = (actor, index)
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            drain()
            for ref in done:
                actor, index = running.pop(ref)
                idle.append(actor)
                yield units[index], self._get(ref)
        drain()
        ray.get([actor.close.remote() for actor in self.actors])

    def close(self) -> None:
        """Stop the actors."""
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.progress is not None:
            self.ray.kill(self.progress)
            self.progress = None

    def _get(self, ref: Any) -> Any:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            raise _task_error(self.ray, error, self.name) from error
