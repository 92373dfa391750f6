"""An experiment that accumulates until it is done: tasks × methods × seeds of finetuning runs.

A grid file (YAML) names the held-out tasks, the run seeds, the finetuning settings every run
shares and the methods, each a label with its ``init`` (``scratch`` or a pretrained checkpoint)
and, for scratch runs, its agent ``preset``::

    format_version: 1
    tasks: [door-close, button-press-topdown]
    seeds: [0, 1, 2, 3, 4]
    settings: {steps: 16000, eval_every: 2000, eval_episodes: 10}   # lamp-eval finetune options
    methods:
      scratch: {preset: cpu}
      p2e: {init: pretraining/p2e}            # paths relative to the grid file's folder
      lamp: {init: pretraining/lamp}
      lamp-full-critic: {init: pretraining/lamp, settings: {finetune_critic: full}}   # this method's own

A method's ``settings`` apply to its runs alone, over the grid's; runs whose settings are the same
are the same runs, so grids that share a runs folder share them.

:func:`run_grid` starts the missing runs, ``workers`` at a time, each a ``lamp-eval finetune``
process of its own (one torch thread, lowered CPU priority, output in ``<out>/logs/``);
``lamp-eval finetune`` continues an interrupted run from its last checkpoint and skips a
finished one, so running the same command again is how the experiment continues, however often
it was stopped. After every run that ends, the report (:mod:`lamp_eval.grid_report`) is
rewritten from the runs finished so far, marking what is still missing.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lamp_agent.config import load_preset
from lamp_data.atomic import exclusive_lock
from lamp_data.errors import LampError
from lamp_eval.runs import (
    DEFAULT_ENV_PREFIX,
    FINETUNE_ENV_FIELDS,
    INIT_ENV_FIELDS,
    RESUME_DIR,
    RUN_INFO,
    STATUS_FINISHED,
    FinetuneConfig,
    RunConfig,
    RunSettings,
    finetune_env,
    read_run_info,
    run_folder,
    staging_folder,
    with_finetune_env,
)

GRID_FORMAT_VERSION = 1
"""Version of the grid file format."""
RUNS_DIR = "runs"
"""Folder of the run folders under a grid's ``--out`` (unless the grid file names another: ``runs``)."""
LOGS_DIR = "logs"
"""Folder of every run process's output under a grid's ``--out``."""
LOCK_FILE = ".grid.lock"
"""Held by the ``lamp-eval grid`` process that runs a grid's ``--out``."""
SCRATCH = "scratch"
_NOT_SETTINGS = ("preset", "gif_frames", "env_given")
"""RunSettings fields a grid's ``settings`` may not set (the preset is per method; the env's
fields are set flat, which makes them given)."""


@dataclass(frozen=True)
class GridMethod:
    """One method of a grid: a leaderboard label, what its runs start from, and its preset."""

    name: str
    """Leaderboard label (``--method``)."""
    init: str = SCRATCH
    """``scratch`` or a pretrained checkpoint (or pretraining run) folder."""
    preset: str = "cpu"
    """Agent preset of scratch runs (a bundled name or a YAML file); a checkpoint keeps its own."""
    settings: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    """``lamp-eval finetune`` settings of this method's runs alone, over the grid's."""


@dataclass(frozen=True)
class Grid:
    """A grid file, read and checked (paths resolved relative to the working folder)."""

    path: Path
    """The grid file."""
    tasks: tuple[str, ...]
    """Held-out tasks."""
    seeds: tuple[int, ...]
    """Run seeds."""
    methods: tuple[GridMethod, ...]
    """The methods, in the file's order (the report's order)."""
    settings: dict[str, Any]
    """``lamp-eval finetune`` settings every run shares (``RunSettings`` fields, ``env``, ``env_prefix``)."""
    description: str = ""
    """Title of the report."""
    compare: tuple[tuple[str, str], ...] = ()
    """Pairs ``(a, b)`` the report gives P(a > b) for; empty: every method against the first."""
    runs: str | None = None
    """Folder of the run folders (grids that share one share their common runs); None: ``<out>/runs``."""

    def runs_folder(self, out: str | os.PathLike) -> Path:
        """Where this grid's run folders are, for the experiment folder ``out``."""
        return Path(self.runs) if self.runs else Path(out) / RUNS_DIR

    def finetune_config(self, method: GridMethod, out: str | os.PathLike, seeds: tuple[int, ...] | None = None) -> FinetuneConfig:
        """The finetuning queue of ``method``'s runs (all tasks, ``seeds`` or every seed) into ``out``."""
        return FinetuneConfig(
            tasks=self.tasks, inits=(method.init,), out=str(out), seeds=seeds or self.seeds, preset=method.preset,
            method=method.name, **with_finetune_env({**self.settings, **method.settings}),
        )


@dataclass(frozen=True)
class GridRun:
    """One run of a grid and where it stands."""

    method: GridMethod
    """Its method."""
    config: RunConfig
    """Its finetuning config."""
    status: str
    """``finished``, ``partial`` (interrupted; continues from a checkpoint) or ``missing``."""
    folder: Path
    """Its final run folder (exists once finished)."""

    @property
    def name(self) -> str:
        """``<method> · <task> · seed <k>``."""
        return f"{self.method.name} · {self.config.task} · seed {self.config.seed}"

    @property
    def log_name(self) -> str:
        """File name of its process's output under ``<out>/logs``."""
        return f"{self.method.name}_{self.config.task}_seed-{self.config.seed}.log".replace("/", "_")


def _resolve(value: str, folder: Path) -> str:
    """A path written in a grid file, relative to its folder, as a path relative to the working folder
    (absolute when the grid file was given absolutely and lies outside it)."""
    path = Path(value)
    if path.is_absolute():
        return str(path)
    joined = folder / path
    try:
        return os.path.relpath(joined)
    except ValueError:
        return str(joined.resolve())


def load_grid(path: str | os.PathLike) -> Grid:
    """Read a grid file and check its methods, tasks, seeds and settings.

    Raises:
        LampError: the file is missing, not YAML, of an unknown version, or asks for anything
            ``lamp-eval finetune`` would refuse.
    """
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LampError(f"cannot read grid file {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise LampError(f"grid file {path} must hold a mapping (tasks, seeds, settings, methods)")
    version = values.get("format_version", GRID_FORMAT_VERSION)
    if version != GRID_FORMAT_VERSION:
        raise LampError(f"grid file {path} has format version {version}; this toolkit reads {GRID_FORMAT_VERSION}")
    unknown = sorted(set(values) - {"format_version", "tasks", "seeds", "settings", "methods", "description", "compare", "runs"})
    if unknown:
        raise LampError(f"grid file {path}: unknown keys {', '.join(unknown)}")
    tasks, seeds = values.get("tasks"), values.get("seeds")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(task, str) for task in tasks):
        raise LampError(f"grid file {path}: 'tasks' must be a list of task names")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise LampError(f"grid file {path}: 'seeds' must be a list of whole numbers")
    settings = _check_settings(values.get("settings") or {}, f"grid file {path}: settings")
    methods_in = values.get("methods")
    if not isinstance(methods_in, dict) or not methods_in:
        raise LampError(f"grid file {path}: 'methods' must map method labels to {{init, preset, settings}}")
    folder = path.parent
    methods = []
    for name, method in methods_in.items():
        method = method or {}
        if not isinstance(method, dict) or set(method) - {"init", "preset", "settings"}:
            raise LampError(f"grid file {path}: method {name!r} takes 'init', 'preset' and 'settings' only")
        init = str(method.get("init", SCRATCH))
        preset = str(method.get("preset", "cpu"))
        methods.append(GridMethod(
            name=str(name),
            init=init if init == SCRATCH else _resolve(init, folder),
            preset=_resolve(preset, folder) if preset.endswith((".yaml", ".yml")) else preset,
            settings=_check_settings(method.get("settings") or {}, f"grid file {path}: method {name!r} settings"),
        ))
    names = [method.name for method in methods]
    compare = values.get("compare") or []
    if not isinstance(compare, list) or not all(isinstance(pair, list) and len(pair) == 2 and set(map(str, pair)) <= set(names) for pair in compare):
        raise LampError(f"grid file {path}: 'compare' must list pairs [a, b] of method labels ({', '.join(names)})")
    grid = Grid(path=path, tasks=tuple(tasks), seeds=tuple(seeds), methods=tuple(methods), settings=dict(settings),
                description=str(values.get("description") or ""), compare=tuple((str(a), str(b)) for a, b in compare),
                runs=_resolve(str(values["runs"]), folder) if values.get("runs") else None)
    for method in grid.methods:
        grid.finetune_config(method, "unused")  # refuses bad settings and seeds
        if method.init == SCRATCH:
            load_preset(method.preset)  # refuses an unknown or bad preset
    return grid


def _check_settings(settings: Any, where: str) -> dict[str, Any]:
    """``settings`` as a dict of ``lamp-eval finetune`` settings, or a LampError naming ``where``."""
    allowed = ({item.name for item in dataclasses.fields(RunSettings)} | {"env", "env_prefix", *FINETUNE_ENV_FIELDS}) - set(_NOT_SETTINGS)
    if not isinstance(settings, dict) or set(settings) - allowed:
        bad = sorted(set(settings) - allowed) if isinstance(settings, dict) else ["(not a mapping)"]
        raise LampError(f"{where} {', '.join(bad)} are not lamp-eval finetune settings (known: {', '.join(sorted(allowed))})")
    return dict(settings)


def plan_grid(grid: Grid, out: str | os.PathLike) -> list[GridRun]:
    """Every run of the grid with its status, method by method, then task, then seed (the report's order).

    A run whose pretrained checkpoint does not exist yet is ``missing`` (it waits for it).
    """
    from lamp_eval.finetune import plan_runs

    runs_folder = grid.runs_folder(out)
    planned = []
    for method in grid.methods:
        config = grid.finetune_config(method, runs_folder)
        if method.init != SCRATCH and not Path(method.init).exists():
            configs = [RunConfig(task=task, env=config.env_name(task), init=method.init, method=method.name, seed=seed,
                                 **config.run_settings()) for task in grid.tasks for seed in grid.seeds]
        else:
            configs = plan_runs(config)
        for run in sorted(configs, key=lambda run: (grid.tasks.index(run.task), grid.seeds.index(run.seed))):
            planned.append(GridRun(method, run, _status(runs_folder, run), run_folder(runs_folder, run)))
    return planned


def _run_order(grid: Grid, pending: list[GridRun]) -> list[GridRun]:
    """The order runs start in: interrupted runs first, then seed by seed, each seed's tasks and
    methods together, so a grid stopped anywhere has every method at nearly the same seeds."""
    methods = [method.name for method in grid.methods]
    return sorted(pending, key=lambda item: (item.status != "partial", grid.seeds.index(item.config.seed),
                                             grid.tasks.index(item.config.task), methods.index(item.method.name)))


def _status(runs_folder: Path, run: RunConfig) -> str:
    final = run_folder(runs_folder, run)
    if (final / RUN_INFO).is_file():
        info = read_run_info(final / RUN_INFO)
        if info.get("identity") != run.identity():
            raise LampError(f"{final} holds a run made with a different config than the grid asks for; "
                            "give the grid another --out or remove that folder")
        if info.get("status") == STATUS_FINISHED:
            return "finished"
    if (staging_folder(final) / RESUME_DIR).is_dir():
        return "partial"
    return "missing"


def run_command(grid_run: GridRun, runs_folder: Path, threads: int) -> list[str]:
    """The ``lamp-eval finetune`` command line of one run."""
    run = grid_run.config
    command = [
        sys.executable, "-m", "lamp_cli.eval", "finetune", "--task", run.task, "--init", run.init, "--preset", run.preset,
        "--method", run.method, "--seeds", str(run.seed), "--out", str(runs_folder), "--threads", str(threads), "--no-progress",
    ]
    if run.env != f"{DEFAULT_ENV_PREFIX}{run.task}":
        command += ["--env", run.env]
    for name, value in sorted(grid_run_settings(run).items()):
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if value:
                command.append(option)
        else:
            command += [option, str(value)]
    return command


def grid_run_settings(run: RunConfig) -> dict[str, Any]:
    """The settings of ``run`` that differ from ``lamp-eval finetune``'s defaults (its options;
    the env's as its flat options)."""
    defaults = {item.name: item.default for item in dataclasses.fields(RunSettings) if item.name != "env_config"}
    changed = {name: getattr(run, name) for name in defaults if name not in _NOT_SETTINGS and getattr(run, name) != defaults[name]}
    default_env = finetune_env()
    changed.update({name: getattr(run.env_config, name) for name in FINETUNE_ENV_FIELDS
                    if getattr(run.env_config, name) != getattr(default_env, name) or (name in INIT_ENV_FIELDS and name in run.env_given)})
    return changed


@dataclass(frozen=True)
class GridResult:
    """What :func:`run_grid` did."""

    runs: tuple[GridRun, ...]
    """Every run of the grid, with its status after this call."""
    started: tuple[str, ...]
    """Runs this call started (or continued)."""
    failed: tuple[str, ...]
    """Runs whose process failed; their log under ``<out>/logs`` says why."""
    report: Path | None
    """The report written (None when nothing has finished yet)."""


def run_grid(grid: Grid, out: str | os.PathLike, *, workers: int = 2, threads: int = 1, niceness: int = 10,
             run: bool = True, echo: Any = print) -> GridResult:
    """Run every missing or interrupted run of ``grid`` into ``out``, then report.

    Args:
        grid: The grid (:func:`load_grid`).
        out: Experiment folder: ``runs/``, ``logs/`` and the report.
        workers: Runs at once (each one process).
        threads: Torch threads per run.
        niceness: CPU priority increment of the run processes (``nice``).
        run: False writes the report from the finished runs and runs nothing.
        echo: Called with a line per event (a run started, finished or failed).

    Returns:
        The runs with their statuses, what was started and what failed, and the report's path.

    Raises:
        LampError: bad grid, a run folder holding another config, or another ``lamp-eval grid``
            already running into ``out``.
    """
    from lamp_eval.grid_report import write_grid_report

    if workers < 1 or threads < 1:
        raise LampError("workers and threads must be at least 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LampError(f"--out {out} is a file; give a folder for the experiment")
    planned = plan_grid(grid, out)
    started, failed = [], []
    if run:
        with exclusive_lock(out / LOCK_FILE, f"another lamp-eval grid is running into {out}; wait for it to finish"):
            pending = _run_order(grid, [item for item in planned if item.status != "finished" and _ready(item)])
            waiting = [item for item in planned if item.status != "finished" and not _ready(item)]
            for item in waiting:
                echo(f"waiting  {item.name}: checkpoint {item.method.init} does not exist yet")
            failed = _run_processes(pending, out, grid.runs_folder(out), workers, threads, niceness, echo,
                                    lambda: write_grid_report(grid, out))
            started = [item.name for item in pending]
        planned = plan_grid(grid, out)
    report = write_grid_report(grid, out)
    return GridResult(tuple(planned), tuple(started), tuple(failed), report)


def _child_setup(niceness: int, parent: int) -> None:
    """In a run process before it starts: lower its priority, and on Linux have the kernel kill it
    when the grid process dies (a killed grid leaves no run working on behind it; the next
    ``lamp-eval grid`` continues that run from its checkpoint)."""
    if niceness:
        os.nice(niceness)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the grid died before the line above took effect
            os._exit(1)


def _ready(item: GridRun) -> bool:
    return item.method.init == SCRATCH or Path(item.method.init).exists()


def _run_processes(pending: list[GridRun], out: Path, runs_folder: Path, workers: int, threads: int, niceness: int, echo: Any,
                   on_finish: Any) -> list[str]:
    """Run ``pending`` as ``lamp-eval finetune`` processes, ``workers`` at a time; the names of those that failed."""
    logs = out / LOGS_DIR
    logs.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                   "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    queue, running, failed = list(pending), {}, []
    total, done = len(pending), 0
    try:
        while queue or running:
            while queue and len(running) < workers:
                item = queue.pop(0)
                log = open(logs / item.log_name, "a")
                process = subprocess.Popen(run_command(item, runs_folder, threads), stdout=log, stderr=subprocess.STDOUT, env=environment,
                                           preexec_fn=functools.partial(_child_setup, niceness, os.getpid()))
                running[item.name] = (process, time.monotonic(), log, item)
                echo(f"started  {item.name} ({'continues' if item.status == 'partial' else 'from step 0'})")
            time.sleep(1.0)
            for name, (process, began, log, item) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                del running[name]
                done += 1
                minutes = (time.monotonic() - began) / 60
                if process.returncode == 0:
                    echo(f"finished {name} in {minutes:.1f} min [{done}/{total}]")
                else:
                    failed.append(name)
                    echo(f"FAILED   {name} after {minutes:.1f} min (exit {process.returncode}); see {logs / item.log_name}")
                on_finish()
    finally:
        for process, _, log, _ in running.values():
            process.terminate()
            process.wait()
            log.close()
    return failed
