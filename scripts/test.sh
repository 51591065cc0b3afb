#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the tests. Extra arguments go to pytest, e.g. -m slow.
# Tests against a real ComfyUI run when COMFYUI_DIR and COMFYUI_PYTHON are set (see README).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi
exit "$rc"
