#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
venv=${LLMUX_VENV:-.venv}
py="$venv/bin/python"
[ "$venv" = none ] && py=${PYTHON:-python3}
exec "$py" -m pytest "$@"
