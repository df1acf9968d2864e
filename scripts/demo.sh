#!/usr/bin/env bash
# Set up llmux and serve the self-contained demo (config/demo: the 16 models on the built-in
# echo runtime) on http://127.0.0.1:8081. Arguments go to `llmux serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
venv=${LLMUX_VENV:-.venv}
exec "$venv/bin/llmux" serve --config config/demo "$@"
