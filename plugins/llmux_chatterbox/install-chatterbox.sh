#!/usr/bin/env bash
# Install Resemble AI's chatterbox-tts beside llmux's own torch and transformers.
#
# chatterbox-tts 0.1.7 hard-pins torch==2.6.0, torchaudio==2.6.0, transformers==5.2.0,
# numpy<2, gradio, ... A plain `pip install chatterbox-tts` would downgrade transformers below
# what the chat models need and pull a CUDA torch 2.6. So it goes in with --no-deps; what it
# really imports is declared by this plugin's pyproject.toml, installed before this runs.
#
# Called by scripts/setup.sh after the plugin is installed, with
#   PY=<python of the environment>  CONSTRAINTS=<pip constraints file>
# Safe to run again: pip does nothing when the pinned version is already there.
set -euo pipefail

PY=${PY:-python3}
VERSION=0.1.7
args=(--disable-pip-version-check -q --no-deps)
[ -n "${CONSTRAINTS:-}" ] && args+=(-c "$CONSTRAINTS")

if [ "$("$PY" -c 'import importlib.metadata as m
try: print(m.version("chatterbox-tts"))
except m.PackageNotFoundError: print("")')" = "$VERSION" ]; then
  echo "install-chatterbox: chatterbox-tts $VERSION already installed"
  exit 0
fi
echo "install-chatterbox: installing chatterbox-tts==$VERSION without its pins"
"$PY" -m pip install "${args[@]}" "chatterbox-tts==$VERSION"
