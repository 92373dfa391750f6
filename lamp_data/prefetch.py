"""A background thread that reads the next items of an iterable while the caller works on the current one.

The learner's batches and relabel's decoded shards both come through it. It is a thread rather than
a process: reading shards spends its time in zlib, numpy and tar parsing, which release the GIL,
and a thread keeps the item order exactly reproducible and costs no process start-up.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any


class Prefetcher:
    """Iterates ``source`` on a background thread, ``depth`` items ahead, and times the waits.

    Items come out in the order ``source`` yields them; an error raised by ``source`` is raised
    again by :meth:`__next__` after the items before it. Close it (or use it as a context
    manager) to stop the thread early.

    Args:
        source: Any iterable (the replay's batches, a generator of decoded shards, ...).
        depth: Items held ready.
        name: Name of the thread.
    """

    _DONE = object()

    def __init__(self, source: Iterable[Any], depth: int = 4, name: str = "prefetch"):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.wait_seconds = 0.0
        """Total time :meth:`__next__` spent waiting for the thread."""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._fill, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _fill(self, source: Iterable[Any]) -> None:
        try:
            for item in source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, re-raised there
            self._error = error
        self._queue.put(self._DONE)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        started = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - started
        if item is self._DONE:
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the thread (it finishes the item it is reading) and wait for it.

        Args:
            timeout: Seconds to wait at most; None waits until the thread has ended.
        """
        self._stop.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
