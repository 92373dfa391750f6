#!/usr/bin/env bash
# Set up .venv and run the main job on the embedded simulator at tiny scale.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=egl HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/lamp-eval demo --out "${1:-demo_out}"
