#!/usr/bin/env bash
# Create .venv and install the project with its dev tools. torch goes in first, and only when absent:
# on a machine without an NVIDIA GPU the CPU build is preferred, so a fresh install never pulls multi-GB CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
CPU_TORCH_INDEX=${CPU_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "bootstrap: NVIDIA GPU found, installing $TORCH_SPEC (CUDA build)"
    "${PIP[@]}" "$TORCH_SPEC"
  else
    echo "bootstrap: no NVIDIA GPU, installing $TORCH_SPEC (CPU build)"
    # The CPU index for torch alone (an unreachable index costs one quick failure, not one per dependency);
    # torch's dependencies then come from the default index.
    "${PIP[@]}" --no-deps --retries 0 --timeout 15 "$TORCH_SPEC" --extra-index-url "$CPU_TORCH_INDEX"
    "${PIP[@]}" "$TORCH_SPEC"
  fi
fi

stamp=.venv/.medmcqa-ft-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "${PIP[@]}" -e ".[dev]"
  touch "$stamp"
fi
