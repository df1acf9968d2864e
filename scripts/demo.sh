#!/usr/bin/env bash
# Set up llmux and serve the self-contained demo (config/demo: the 16 models on the built-in
# echo runtime) on http://127.0.0.1:8081. Arguments go to `llmux serve`. The echo demo needs
# only the core (scripts/setup.sh --core: seconds), not the runtime plugins.
#
# --tiny: install every runtime plugin too (scripts/setup.sh: minutes, llama.cpp is compiled)
# and serve config/demo-tiny instead, the same 16 models on the real runtimes
# (transformers, llama.cpp, Chatterbox) with tiny random-weight models of the real
# architectures, built once into .demo-models/ (or $LLMUX_MODELS_DIR) by
# scripts/make_tiny_models.py (~25 s, ~4.2 GB). Answers are random tokens and noise.
set -euo pipefail
cd "$(dirname "$0")/.."
config=config/demo
tiny=false
args=()
for arg in "$@"; do
  if [[ $arg == --tiny ]]; then
    tiny=true
  else
    args+=("$arg")
  fi
done
if [[ $tiny == true ]]; then
  scripts/setup.sh
else
  scripts/setup.sh --core
fi
export HF_HUB_OFFLINE=1
venv=${LLMUX_VENV:-.venv}
if [[ $tiny == true ]]; then
  models=${LLMUX_MODELS_DIR:-.demo-models}
  "$venv/bin/python" scripts/make_tiny_models.py "$models"
  config=config/demo-tiny
fi
exec "$venv/bin/llmux" serve --config "$config" ${args[@]+"${args[@]}"}
