"""Workers on this machine: one in this process, or several spawned worker processes.

Worker processes take units from a shared queue, one at a time, and send their progress events
and results back through another. When the driver dies, its workers die with it: on Linux the
kernel kills them at once (``PR_SET_PDEATHSIG``; the pool is started from the driver's main
thread, whose end it follows), and everywhere a worker checks before each event that the
process that started it is still there, so they never commit anything more (a resumed stage
must not race orphans; what they were writing is a temporary file the resume removes).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lamp_data.errors import LampError
from lamp_data.pipeline.executors.base import Emit, Worker, WorkerReady

POLL_SECONDS = 0.5
"""How often the driver looks for dead workers while it waits for their messages."""


class InProcessWorkers:
    """One worker, run in this process (no pickling: its factory may hold live objects).

    Args:
        worker_factory: Builds the worker.
    """

    def __init__(self, worker_factory: Callable[[], Worker]):
        self.worker_factory = worker_factory
        self.worker: Worker | None = None

    def __enter__(self) -> "InProcessWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self, on_event: Emit) -> None:
        """Build and start the worker."""
        self.worker = self.worker_factory()
        self.worker.start(on_event)
        on_event(WorkerReady(1))

    def run(self, units: list[Any], on_event: Emit) -> Iterator[tuple[Any, Any]]:
        """Do the units in order, yielding ``(unit, result)``."""
        for unit in units:
            yield unit, self.worker.do(unit, on_event)

    def close(self) -> None:
        """Close the worker."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None


@dataclass(frozen=True)
class _Event:
    event: Any


@dataclass(frozen=True)
class _Ready:
    pass


@dataclass(frozen=True)
class _Result:
    index: int
    result: Any


@dataclass(frozen=True)
class _Failed:
    message: str
    lamp_error: bool


@dataclass(frozen=True)
class _Stopped:
    pass


class ProcessWorkers:
    """``count`` spawned worker processes, each holding one worker built by ``worker_factory``.

    Args:
        worker_factory: A picklable zero-argument callable building a worker.
        count: Worker processes.
        name: The stage, for error messages (``collect worker failed: ...``).
    """

    def __init__(self, worker_factory: Callable[[], Worker], count: int, name: str):
        self.worker_factory, self.count, self.name = worker_factory, count, name
        context = multiprocessing.get_context("spawn")
        self._units = context.Queue()
        self._messages = context.Queue()
        self._processes = [
            context.Process(target=_worker_main, args=(worker_factory, self._units, self._messages, os.getpid()), daemon=True)
            for _ in range(count)
        ]
        self._stopped = 0

    def __enter__(self) -> "ProcessWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self, on_event: Emit) -> None:
        """Start the processes and wait until each has built its worker."""
        for process in self._processes:
            process.start()
        ready = 0
        while ready < self.count:
            message = self._receive()
            if isinstance(message, _Ready):
                ready += 1
                on_event(WorkerReady(self.count))
            elif isinstance(message, _Event):
                on_event(message.event)

    def run(self, units: list[Any], on_event: Emit) -> Iterator[tuple[Any, Any]]:
        """Queue the units, then yield ``(unit, result)`` as the workers finish them."""
        for index, unit in enumerate(units):
            self._units.put((index, unit))
        for _ in range(self.count):
            self._units.put(None)
        while self._stopped < self.count:
            message = self._receive()
            if isinstance(message, _Event):
                on_event(message.event)
            elif isinstance(message, _Result):
                yield units[message.index], message.result
            elif isinstance(message, _Stopped):
                self._stopped += 1

    def close(self) -> None:
        """Stop workers that are still running (after a failure) and wait for them."""
        for process in self._processes:
            if process.is_alive() and self._stopped < self.count:
                process.terminate()
        for process in self._processes:
            if process.pid is not None:
                process.join(timeout=10)

    def _receive(self) -> Any:
        """The next message of any worker; a failure or a dead worker raises."""
        while True:
            try:
                message = self._messages.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [process for process in self._processes if process.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a {self.name} worker died with exit code {dead[0].exitcode}") from None
                continue
            if isinstance(message, _Failed):
                raise (LampError if message.lamp_error else RuntimeError)(f"{self.name} worker failed: {message.message}")
            return message


def _worker_main(worker_factory: Callable[[], Worker], units: Any, messages: Any, parent_pid: int) -> None:
    """Entry point of a worker process: take units until a ``None``, report events and results."""

    def alive() -> bool:
        return os.getppid() == parent_pid

    _die_with_parent()
    if not alive():  # the driver died before the line above
        return

    def emit(event: Any) -> None:
        if not alive():
            raise SystemExit(1)
        messages.put(_Event(event))

    try:
        worker = worker_factory()
        try:
            worker.start(emit)
            messages.put(_Ready())
            while alive():
                item = units.get()
                if item is None:
                    break
                index, unit = item
                messages.put(_Result(index, worker.do(unit, emit)))
        finally:
            worker.close()
    except LampError as error:
        messages.put(_Failed(str(error), True))
        return
    except BaseException as error:  # report anything else to the driver, then die
        messages.put(_Failed(f"{type(error).__name__}: {error}", False))
        raise
    messages.put(_Stopped())


def _die_with_parent() -> None:
    """Ask the kernel to kill this process the moment the thread that started it ends (Linux
    only; elsewhere the worker notices at its next event)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    set_parent_death_signal = 1  # PR_SET_PDEATHSIG in <linux/prctl.h>
    try:
        ctypes.CDLL(None, use_errno=True).prctl(set_parent_death_signal, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
