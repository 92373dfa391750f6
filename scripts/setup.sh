#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install the toolkit with its test extras.
# PyTorch is pinned to the CPU wheel torch==2.13.0; set LAMP_EXTRAS to change the extras.
# Nothing is installed when pyproject.toml, this script and the extras are unchanged since the last
# install that finished (their checksum is kept in .venv/.lamp-setup); delete that file to reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
extras=${LAMP_EXTRAS:-dev}
stamp=.venv/.lamp-setup
wanted="$(cat pyproject.toml scripts/setup.sh | cksum) extras=$extras"
if [ -x .venv/bin/lamp-eval ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    exit 0
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q "torch==2.13.0"
# setuptools notes every editable install that maps folders to other package names (cli/ is
# lamp_cli) with an "Editable installation." message; it is information, not a problem.
PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q -e ".[$extras]"
echo "$wanted" > "$stamp"
