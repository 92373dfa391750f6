"""Feeding the learner: hindsight prompt choice and a background prefetcher.

The prefetcher is a thread rather than a DataLoader worker process: reading shards spends its
time in zlib and numpy, which release the GIL, and a thread keeps the batch order exactly
reproducible and costs no process start-up per chunk of training.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np


class HindsightPrompts:
    """Prompt chooser for ``SequenceDataset``: pair a sequence with its own prompt or any other.

    Rewards exist for every prompt of the set, so any sequence can be relabelled with any
    prompt. With probability ``own_fraction`` a sequence keeps its episode's instruction (if
    that instruction is in the set); otherwise the prompt is drawn uniformly from the set.

    Args:
        prompts: The reward set's prompts, in column order.
        own_fraction: Chance of keeping the episode's own prompt.
    """

    def __init__(self, prompts: list[str], own_fraction: float):
        self.index = {prompt: i for i, prompt in enumerate(prompts)}
        self.own_fraction = own_fraction

    def __call__(self, meta: dict[str, Any], num_prompts: int, rng: np.random.Generator) -> int:
        own = self.index.get(meta.get("instruction"))
        if own is not None and rng.random() < self.own_fraction:
            return int(own)
        return int(rng.integers(num_prompts))


class Prefetcher:
    """Iterates ``source`` on a background thread, ``depth`` items ahead, and times the waits.

    Args:
        source: Any iterable (e.g. a ``SequenceDataset``).
        depth: Items held ready.
    """

    _DONE = object()

    def __init__(self, source: Iterable[Any], depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.wait_seconds = 0.0
        """Total time :meth:`__next__` spent waiting for the thread."""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._fill, args=(source,), daemon=True)
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

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread (it finishes the item it is reading) and wait up to ``timeout`` seconds."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
