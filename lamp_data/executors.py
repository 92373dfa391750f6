"""Where ``collect`` and ``relabel`` run their work: local processes, or actors on a Ray cluster.

Both stages cut their work into units that commit whole files under the dataset folder (a data
shard, a reward shard), so scheduling is the only thing that differs between back-ends:

* ``local`` (the default): worker processes on this machine (see :mod:`lamp_data.collect`)
  or the relabel loop in this process.
* ``ray``: one Ray actor per worker slot of a Ray cluster. A collect actor holds one env (and
  an inline reward model, if any) and records whole shards; a relabel actor holds the reward
  model and scores whole shards. The driver hands out one unit at a time per actor, shows one
  progress bar for all of them and does every write that is not a shard (``meta/info.json``,
  reward-set records), under the dataset's writer lock.

A worker process that dies is restarted by Ray (``max_restarts``) and its unit retried
(``max_task_retries``). A shard's episodes and its name are fixed by the plan and every episode
depends only on ``(seed, index)``, so a retried unit writes the same bytes under the same name:
nothing is lost or duplicated. Leftovers of killed attempts are removed when the run ends.

The dataset folder must be visible under the same path from every node (a local disk on a
one-node cluster, NFS or a mounted bucket on several); object-store URLs are refused.

Ray is imported only when ``kind="ray"`` is asked for; without it that raises
:class:`~lamp_data.errors.MissingExtraError` naming the ``ray`` extra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamp_data.errors import EnvironmentFailure, LampError, MissingExtraError, check_number

EXECUTORS = ("local", "ray")
"""Scheduling back-ends: processes on this machine, or actors on a Ray cluster."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ExecutorConfig:
    """How a stage schedules its work."""

    kind: str = "local"
    """local | ray."""
    address: str | None = None
    """Ray cluster address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None: ``RAY_ADDRESS``
    if set, else a new Ray instance on this machine."""
    workers: int | None = None
    """Ray actors working at once; None: one per CPU slot of the cluster (per GPU for a relabel
    on ``cuda``). The local collect executor uses ``CollectConfig.workers`` instead."""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each actor."""
    max_retries: int = 3
    """Times Ray restarts a dead actor and retries its unit before the run fails."""

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise LampError(f"unknown executor '{self.kind}' (known: {', '.join(EXECUTORS)})")
        if self.workers is not None and self.workers < 1:
            raise LampError(f"workers must be at least 1, got {self.workers}")
        check_number("CPUs per worker", self.cpus_per_worker)
        if self.cpus_per_worker <= 0:
            raise LampError(f"CPUs per worker must be positive, got {self.cpus_per_worker}")
        if self.max_retries < 0:
            raise LampError(f"max retries must be non-negative, got {self.max_retries}")
        if self.kind == "local" and self.address is not None:
            raise LampError("--address is for --executor ray")

    @property
    def is_ray(self) -> bool:
        """True for the Ray back-end."""
        return self.kind == "ray"


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


def import_ray() -> Any:
    """The ``ray`` module, or :class:`MissingExtraError` naming the ``ray`` extra."""
    try:
        import ray
    except ImportError as error:
        raise MissingExtraError("--executor ray", "ray", error) from error
    return ray


@contextlib.contextmanager
def session(executor: ExecutorConfig) -> Iterator[None]:
    """Connect to the executor for the duration of a stage (a no-op for ``local``).

    For ``ray``: reuse a connection the caller already opened; otherwise connect to
    ``executor.address`` (or start a local instance) and disconnect at the end.

    Raises:
        LampError: no Ray cluster at the address, or fewer CPUs in it than one actor asks for
            (Ray would wait for them forever).
    """
    if not executor.is_ray:
        yield
        return
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


def worker_slots(executor: ExecutorConfig, gpus: bool = False) -> int:
    """Actors to start: ``executor.workers``, else one per CPU slot (or GPU) of the cluster.

    Raises:
        LampError: no GPU in the cluster for ``gpus`` (Ray would wait for one forever).
    """
    resources = import_ray().cluster_resources()
    cpus = resources.get("CPU", 0.0)
    gpu_count = int(resources.get("GPU", 0))
    if gpus and gpu_count < 1:
        raise LampError("the Ray cluster has no GPUs; use --device cpu or add GPU nodes")
    if executor.workers is not None:
        return executor.workers
    return gpu_count if gpus else max(1, int(cpus // executor.cpus_per_worker))


def _actor_options(executor: ExecutorConfig, **resources: Any) -> dict[str, Any]:
    return {
        "num_cpus": executor.cpus_per_worker,
        "max_restarts": executor.max_retries,
        "max_task_retries": executor.max_retries,
        **resources,
    }


def _task_error(ray: Any, error: Exception, what: str) -> Exception:
    """A LampError raised inside an actor comes back as itself; a death as one clear error."""
    if isinstance(error, ray.exceptions.RayTaskError) and isinstance(error.cause, LampError):
        return error.cause
    if isinstance(error, ray.exceptions.RayActorError):
        return RuntimeError(f"a Ray {what} worker died and its retries are used up: {error}")
    return error


def _check_visible(out: str) -> None:
    """LampError unless the dataset folder is visible from the node this actor runs on."""
    from lamp_data.store import layout

    if not (Path(out) / layout.META_DIR / layout.INFO_FILE).is_file():
        raise LampError(f"dataset folder {out} is not visible from Ray node {os.uname().nodename}; put it on a shared filesystem")


class _ProgressBox:
    """A Ray actor collecting progress events from the workers until the driver takes them."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def put(self, event: Any) -> None:
        """Keep one event."""
        self.events.append(event)

    def take(self) -> list[Any]:
        """Every event kept since the last call."""
        events, self.events = self.events, []
        return events


class _CollectActor:
    """A Ray actor holding one collect recorder (env, policy, inline scorer)."""

    def __init__(self, out: str, config: Any, scorer_factory: Any):
        from lamp_data.collect import _Recorder

        self.recorder = None
        self.start_events: list[tuple] = []
        self.error: LampError | None = None
        try:
            _check_visible(out)
            self.recorder = _Recorder(out, config, None, scorer_factory)
            self.recorder.open_reward_set(self.start_events.append)
        except LampError as error:  # raised by start(), so the driver gets it as a LampError
            self.error = error

    def start(self) -> list[tuple]:
        """Events of opening the reward set (the prompt record), once the env is built."""
        if self.error is not None:
            raise self.error
        return self.start_events

    def do(self, unit: Any, progress: Any) -> list[tuple]:
        """Record (or score) one unit; send episode events to ``progress``, return the others."""
        import ray

        finished: list[tuple] = []
        sent: list[Any] = []

        def emit(event: tuple) -> None:
            if event[0] == "episode":
                sent.append(progress.put.remote((unit.name, len(sent), event)))
            else:
                finished.append(event)

        self.recorder.do(unit, emit, lambda: True)
        ray.get(sent[-1:])  # calls run in order: once the last is in, all are
        return finished

    def close(self) -> None:
        """Close the env."""
        if self.recorder is not None:
            self.recorder.close()


def run_collect(dataset: Any, config: Any, units: list, scorer_factory: Any, tally: Callable[[tuple], None], executor: ExecutorConfig) -> None:
    """Record ``units`` with Ray actors, feeding progress events to ``tally``.

    Episode events are counted once per (shard, position), so a retried unit does not count
    its episodes twice. Called by :func:`lamp_data.collect.collect` inside :func:`session`,
    holding the dataset's writer lock.
    """
    ray = import_ray()
    from lamp_data.store.writer import recover_orphans

    count = min(worker_slots(executor), len(units))
    progress = ray.remote(num_cpus=0)(_ProgressBox).remote()
    actor_class = ray.remote(**_actor_options(executor))(_CollectActor)
    out = str(Path(dataset.path).resolve())
    actors = [actor_class.remote(out, config, scorer_factory) for _ in range(count)]
    counted: set[tuple[str, int]] = set()

    def drain() -> None:
        for name, position, event in ray.get(progress.take.remote()):
            if (name, position) not in counted:
                counted.add((name, position))
                tally(event)

    try:
        tally.waiting = count  # type: ignore[attr-defined]
        starting = {actor.start.remote(): actor for actor in actors}
        todo = deque(units)
        running: dict[Any, Any] = {}
        idle: list[Any] = []
        while todo or running or starting:
            while idle and todo:
                actor = idle.pop()
                running[actor.do.remote(todo.popleft(), progress)] = actor
            done, _ = ray.wait([*starting, *running], num_returns=1, timeout=_POLL_SECONDS)
            drain()
            for ref in done:
                started = ref in starting
                actor = starting.pop(ref) if started else running.pop(ref)
                idle.append(actor)
                try:
                    events = ray.get(ref)
                except ray.exceptions.RayError as error:
                    raise _task_error(ray, error, "collect") from error
                for event in events:
                    tally(event)
                if started:
                    tally(("ready",))
        drain()
        ray.get([actor.close.remote() for actor in actors])
        recover_orphans(dataset)
    finally:
        for actor in actors:
            ray.kill(actor)
        ray.kill(progress)


class _ScoreActor:
    """A Ray actor holding a reward model with its prompt set embedded; scores whole shards."""

    def __init__(self, out: str, vlm: str, prompt_set: Any, device: str, batch_size: int):
        from lamp_data.vlm.scoring import make_scorer

        self.out = out
        self.scorer = None
        self.error: LampError | None = None
        try:
            _check_visible(out)
            self.scorer = make_scorer(vlm, prompt_set, device=device, batch_size=batch_size)
        except LampError as error:  # raised by describe(), so the driver gets it as a LampError
            self.error = error

    def describe(self) -> tuple[str, dict[str, Any], list[str]]:
        """The reward set's fingerprint, info and prompts."""
        if self.error is not None:
            raise self.error
        return self.scorer.fingerprint, self.scorer.info, self.scorer.prompts

    def score(self, shard: Any) -> dict[str, Any]:
        """Rewards of every episode of one committed data shard (see :func:`lamp_data.relabel.score_shard`)."""
        from lamp_data.relabel import score_shard

        return score_shard(self.scorer, self.out, shard)


class RayScorers:
    """Reward-model actors on a Ray cluster, one per GPU (``device`` cuda) or per CPU slot.

    Opens a :func:`session` that :meth:`close` ends. ``fingerprint``, ``info`` and ``prompts``
    describe the reward set as :class:`lamp_data.vlm.scoring.EpisodeScorer` does;
    :meth:`score_shards` hands shards out one at a time per actor and yields their rewards as
    they finish, for the driver to write.

    Args:
        executor: The Ray executor settings.
        dataset: The dataset folder (same path on every node).
        vlm: Reward model spec.
        prompt_set: The prompt set.
        device: ``cpu`` or ``cuda`` (each actor gets one GPU of its own and sees it as ``cuda``).
        batch_size: Frames per forward pass.
    """

    def __init__(self, executor: ExecutorConfig, dataset: str | Path, vlm: str, prompt_set: Any, device: str, batch_size: int):
        self.ray = ray = import_ray()
        self.actors: list[Any] = []
        self._session = contextlib.ExitStack()
        self._session.enter_context(session(executor))
        try:
            gpu = device.startswith("cuda")
            count = worker_slots(executor, gpus=gpu)
            actor_class = ray.remote(**_actor_options(executor, num_gpus=1 if gpu else 0))(_ScoreActor)
            out = str(Path(dataset).resolve())
            self.actors = [actor_class.remote(out, vlm, prompt_set, "cuda" if gpu else device, batch_size) for _ in range(count)]
            self.fingerprint, info, self.prompts = ray.get(self.actors[0].describe.remote())
        except ray.exceptions.RayError as error:
            self.close()
            raise _task_error(ray, error, "relabel") from error
        except BaseException:
            self.close()
            raise
        self.info = {**info, "provenance": {**info["provenance"], "argv": list(sys.argv)}}

    def score_shards(self, shards: list, advance: Callable[[int], None]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yield ``(shard, rewards)`` for every shard as they finish, calling ``advance(frames)``."""
        ray = self.ray
        todo = deque(shards)
        running: dict[Any, tuple[Any, Any]] = {}
        idle = list(self.actors)
        while todo or running:
            while idle and todo:
                actor, shard = idle.pop(), todo.popleft()
                running[actor.score.remote(shard)] = (actor, shard)
            done, _ = ray.wait(list(running), num_returns=1)
            actor, shard = running.pop(done[0])
            idle.append(actor)
            try:
                rewards = ray.get(done[0])
            except ray.exceptions.RayError as error:
                raise _task_error(ray, error, "relabel") from error
            advance(sum(len(values) for values in rewards.values()))
            yield shard, rewards

    def close(self) -> None:
        """Stop the actors and end the session."""
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        self._session.close()
