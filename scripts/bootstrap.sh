#!/usr/bin/env bash
# Create .venv and install sluice with its dev tools. Idempotent; safe to run again.
# TORCH_SPEC picks the torch build (default: the CPU build this machine class has on disk;
# installing it first keeps pip from pulling a multi-GB CUDA build for `torch>=...`).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
# The client is its own distribution (client/pyproject.toml), which sluice depends on.
.venv/bin/python -m pip install -q -e ./client
.venv/bin/python -m pip install -q -e '.[dev]'
echo "sluice installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
