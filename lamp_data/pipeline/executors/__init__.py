"""Where a stage runs its work: processes on this machine, or actors on a Ray cluster.

Executors know no stage. A stage (``collect``, ``relabel``, ``finetune``) cuts its work into
units whose output depends only on the unit (a data shard, a reward shard, a run) and hands
them over with a *worker factory*: a picklable zero-argument callable that builds a
:class:`Worker` where it runs (an env and a policy, a reward model...). The executor starts the
workers (:meth:`WorkerPool.start`), hands out the units one at a time per worker and yields
their results as they finish (:meth:`WorkerPool.run`), passing on the progress events the
workers emit, small dataclasses that each stage defines for itself, plus :class:`WorkerReady`.

* ``local`` (the default): one worker in this process, or ``workers`` spawned processes
  (:mod:`lamp_data.pipeline.executors.local`).
* ``ray``: one actor per worker slot of a Ray cluster (:mod:`lamp_data.pipeline.executors.ray`). A dead
  actor is restarted and its unit retried; a retried unit writes the same bytes under the same
  names, so nothing is lost or duplicated.

Files a stage writes must be visible under the same path from every node (a local disk on a
one-node cluster, NFS or a mounted bucket on several); object-store URLs are refused
(:func:`check_local_path`).

Ray is imported only when ``kind="ray"`` is asked for; without it that raises
:class:`~lamp_data.errors.MissingExtraError` naming the ``ray`` extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from lamp_data.pipeline.executors.base import (
    EXECUTORS,
    MAX_WORKERS,
    Emit,
    ExecutorConfig,
    Worker,
    WorkerPool,
    WorkerReady,
    check_local_path,
    check_visible,
    import_ray,
)
from lamp_data.pipeline.executors.local import InProcessWorkers, ProcessWorkers
from lamp_data.pipeline.executors.ray import RayWorkers, worker_slots
from lamp_data.pipeline.executors.ray import session as ray_session

__all__ = [
    "EXECUTORS", "MAX_WORKERS", "Emit", "ExecutorConfig", "Worker", "WorkerPool", "WorkerReady", "check_local_path", "check_visible",
    "import_ray", "session", "worker_count", "worker_pool",
]


@contextlib.contextmanager
def session(executor: ExecutorConfig) -> Iterator[None]:
    """Be connected to the executor for the duration of a stage (a no-op for ``local``).

    Raises:
        LampError: no Ray cluster at the address, or one too small for a single worker.
    """
    if not executor.is_ray:
        yield
        return
    with ray_session(executor):
        yield


def worker_count(executor: ExecutorConfig, units: int, gpus_per_worker: float = 0.0) -> int:
    """Workers to start for ``units`` units: ``executor.workers`` (local default one; Ray default
    one per CPU or GPU slot of the cluster, inside :func:`session`), never more than the units."""
    wanted = worker_slots(executor, gpus_per_worker) if executor.is_ray else executor.workers or 1
    return max(1, min(wanted, units))


def worker_pool(executor: ExecutorConfig, worker_factory: Callable[[], Worker], count: int, name: str,
                gpus_per_worker: float = 0.0) -> WorkerPool:
    """The pool that runs ``count`` workers built by ``worker_factory`` for the stage ``name``.

    Local: one worker in this process (the factory may then hold live objects), or ``count``
    spawned processes. Ray: ``count`` actors, each reserving ``executor.cpus_per_worker`` CPUs
    and ``gpus_per_worker`` GPUs (open a :func:`session` first).
    """
    if executor.is_ray:
        return RayWorkers(executor, worker_factory, count, name, gpus_per_worker)
    if count == 1:
        return InProcessWorkers(worker_factory)
    return ProcessWorkers(worker_factory, count, name)
