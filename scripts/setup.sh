#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install the toolkit with its test extras.
# PyTorch is pinned to the CPU wheel torch==2.13.0; set LAMP_EXTRAS to change the extras.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[${LAMP_EXTRAS:-dev}]"
