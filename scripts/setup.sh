#!/usr/bin/env bash
# Set up a virtual environment in .venv with the library, its test tools and a CPU torch.
# Usage: scripts/setup.sh   (re-running is cheap: pip skips what is installed)
# TORCH_SPEC overrides the torch to install when the venv has none (default: torch 2.14.1 with
# torchvision 0.29.1, which face restoration through spandrel needs). Inside an existing ComfyUI environment do NOT use this script: run
# `pip install -r requirements.txt` there, which never touches the host's torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086  # TORCH_SPEC may name several packages
  .venv/bin/pip install -q ${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
fi
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -c "import torch, av, cv2, lipsync; print('ready: torch', torch.__version__, '| av', av.__version__, '| opencv', cv2.__version__)"
