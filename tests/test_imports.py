"""The library's import graph: no loops inside lamp_data, the framework never imports the method,
configs import without torch."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"lamp_data": ROOT / "lamp_data", "lamp_agent": ROOT / "lamp_agent"}


def _modules(package: str) -> dict[str, Path]:
    folder = PACKAGES[package]
    modules = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([package, *parts])] = path
    return modules


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules that ``path`` imports anywhere (top level or inside functions), but not under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for body in node.body for child in ast.walk(body))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                # "from package import x" runs the package's __init__ too, whatever x is
                found.add(base)
                if f"{base}.{alias.name}" in known:
                    found.add(f"{base}.{alias.name}")
    return {module for module in found if module in known and module != name}


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    return {name: _imports(path, name, set(modules)) for name, path in modules.items()}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_loop_between_modules(package):
    graph = _graph(package)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import loop in {package}: {' -> '.join(error.args[1])}")


ROOMS = {"envs": 1, "store": 1, "rewards": 2, "pipeline": 3, "formats": 4, "display": 4}
"""lamp_data's rooms by floor; the kernel (errors, registry, atomic, schema, provenance, progress,
tables, prefetch, devices) is floor 0. A room imports only rooms on lower floors."""


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else "kernel"


def test_the_data_rooms_import_only_downward():
    for module, imported in _graph("lamp_data").items():
        room = _room(module)
        floor = ROOMS.get(room, 0)
        for other in imported:
            if _room(other) != room:
                assert ROOMS.get(_room(other), 0) < floor, f"{module} ({room}) imports {other} ({_room(other)})"


def test_every_data_module_lives_in_a_room_or_the_kernel():
    kernel = {"lamp_data", "lamp_data.atomic", "lamp_data.devices", "lamp_data.errors", "lamp_data.prefetch",
              "lamp_data.progress", "lamp_data.provenance", "lamp_data.registry", "lamp_data.schema", "lamp_data.tables"}
    homeless = sorted(set(_modules("lamp_data")) - kernel - {m for m in _modules("lamp_data") if _room(m) != "kernel"})
    assert homeless == []


def test_the_data_wing_never_imports_the_agent_or_the_cli():
    for path in PACKAGES["lamp_data"].rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in {"lamp_agent", "lamp_eval", "lamp_cli"}], path


def test_the_loop_finder_finds_a_loop(tmp_path):
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("def f():\n    from pkg import second\n")
    second.write_text("from pkg.first import f\n")
    graph = {"pkg.first": _imports(first, "pkg.first", {"pkg.first", "pkg.second"}),
             "pkg.second": _imports(second, "pkg.second", {"pkg.first", "pkg.second"})}
    assert graph == {"pkg.first": {"pkg.second"}, "pkg.second": {"pkg.first"}}
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter(graph).static_order())


def test_configs_import_without_torch_and_the_torch_backed_names_on_first_use():
    code = (
        "import sys\n"
        "from lamp_agent import AgentConfig, PretrainConfig\n"
        "from lamp_data.rewards.training import RewardModelTrainConfig\n"
        "from lamp_eval.runs import FinetuneConfig\n"
        "assert 'torch' not in sys.modules, 'a config imported torch'\n"
        "from lamp_agent import Agent\n"
        "from lamp_agent.pretrain import PretrainSummary, pretrain\n"
        "from lamp_data.rewards.training import train_reward_model\n"
        "from lamp_eval.finetune import FinetuneConfig as reexported\n"
        "assert callable(pretrain)\n"
        "assert Agent.__module__ == 'lamp_agent.agent' and PretrainSummary.__module__ == 'lamp_agent.pretrain'\n"
        "assert callable(train_reward_model) and reexported is FinetuneConfig\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["ok"], result.stderr
