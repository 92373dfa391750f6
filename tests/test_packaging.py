"""Packaging: the wheel carries what an installed toolkit needs and finds its reward model by name.

The wheel is built offline from a copy of the sources (so no ``build/`` lands in the checkout)
with the setuptools of this environment, then installed without dependencies into a fresh venv
that borrows this environment's packages (torch, transformers, ...) but not its editable install.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "lamp_data", "lamp_agent", "cli", "eval")
MODEL = "lamp_data/models/lamp-r3m-metaworld"
PRESETS = ("cpu", "cpu-v1", "paper", "small", "tiny")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The built wheel and pip's output while building it."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source)],
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = dist.glob("lamp_toolkit-*.whl")
    return path, built.stdout + built.stderr


def test_wheel_builds_quietly_and_carries_presets_and_the_reward_model(wheel):
    path, output = wheel
    assert "Warning" not in output, output
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        for preset in PRESETS:
            assert f"lamp_agent/presets/{preset}.yaml" in names
        assert {f"{MODEL}/model.pt", f"{MODEL}/model_card.md", f"{MODEL}/README.md"} <= names
        assert not [name for name in names if "train_state" in name or name.endswith(".png")]
        assert _sha256(archive.read(f"{MODEL}/model.pt")) == _sha256((ROOT / MODEL / "model.pt").read_bytes())
        metadata = next(archive.read(name).decode() for name in names if name.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in metadata
    assert path.stat().st_size < 4 * 2**20


def test_wheel_carries_every_module_of_the_sources(wheel):
    installed_as = {"lamp_data": "lamp_data", "lamp_agent": "lamp_agent", "cli": "lamp_cli", "eval": "lamp_eval"}
    with zipfile.ZipFile(wheel[0]) as archive:
        names = set(archive.namelist())
    modules = [
        f"{installed_as[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder in installed_as for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts
    ]
    assert modules and not [module for module in modules if module not in names]


@pytest.mark.slow
def test_installed_wheel_loads_the_reward_model_by_name(wheel, tmp_path):
    from lamp_data.rewards.vlm import load_reward_model

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # A plain path line: this environment's packages become importable, its .pth files (the
    # editable install's finder among them) are not run.
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel[0])],
        capture_output=True, text=True,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    script = (
        "import json, lamp_data, lamp_eval.demo as demo\n"
        "from lamp_data.rewards.vlm import load_reward_model, shipped_model_path\n"
        "model = load_reward_model(demo.DEFAULT_REWARD_MODEL)\n"
        "print(json.dumps({'package': lamp_data.__file__, 'model': str(shipped_model_path(demo.DEFAULT_REWARD_MODEL)),"
        " 'spec': model.spec(), 'name': demo.DEFAULT_REWARD_MODEL}))\n"
    )
    ran = subprocess.run([python, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(site) and Path(found["model"]).is_relative_to(site)
    assert Path(found["model"]).is_file() and found["name"] == "lamp-r3m-metaworld"
    from_checkout = load_reward_model(f"r3m:{ROOT / MODEL / 'model.pt'}")
    assert found["spec"] == json.loads(json.dumps(from_checkout.spec()))

    helped = subprocess.run([venv / "bin" / "lamp-eval", "demo", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert helped.returncode == 0 and "--reward-model" in helped.stdout, helped.stdout + helped.stderr
