#!/usr/bin/env bash
# Set up, get the Wav2Lip weights (internet) and re-sync a demo clip:  scripts/demo.sh [VIDEO AUDIO]
# Writes out/demo.mp4. Offline without weights it says which file is missing and where it goes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
video=${1:-}; audio=${2:-}
if [ -z "$video" ]; then
  shared=${LIPSYNC_SHARED:-../shared}
  if [ -f "$shared/media/astronaut_closeup_5s_silent.mp4" ]; then
    video=$shared/media/astronaut_closeup_5s_silent.mp4; audio=$shared/media/speech_piper_16k_5s.wav
  else
    .venv/bin/pip install -q scikit-image
    $PY scripts/make_demo_media.py demo
    video=demo/face.mp4; audio=demo/speech.wav
  fi
fi
if ! compgen -G "models/wav2lip/*.pth" >/dev/null && ! compgen -G "models/wav2lip/*.safetensors" >/dev/null; then
  $PY -m lipsync download wav2lip_gan --models-dir models || exit 1
fi
mkdir -p out
$PY -m lipsync "$video" "$audio" -o out/demo.mp4 --models-dir models
echo "done: out/demo.mp4"
