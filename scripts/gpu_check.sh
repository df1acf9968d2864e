#!/usr/bin/env bash
# A self-contained check for a GPU machine with no network and minutes to spare
# (docs/benchmarks.md, ../shared/notes/gpu-machine.md), in two parts:
#   fit    (benchmarks.gpu_fit) the production models at their published shapes (Qwen3.5-4B
#          with FP8 on load, Qwen3.5-9B-FP8 with vision, gpt-oss-20b, Cohere Transcribe,
#          Chatterbox) on an emulated 16 GB card: llmux's estimate against the allocator's
#          peak of a prefill at the fitted context. Within --fit-budget-s (default 480).
#   speed  (benchmarks.gpu_check) random-weight Qwen3.5-4B and gpt-oss-20b served through
#          llmux: GPU-vs-CPU speed-up, measured vs estimated VRAM, VRAM returned on unload.
# It says plainly what it could not measure.
#
#   scripts/gpu_check.sh                 on the GPU machine (about 10 minutes)
#   scripts/gpu_check.sh --part fit      the production fit only (at most 8 minutes)
#   scripts/gpu_check.sh --cpu-only      the dry run on the CPU (fit: bfloat16, short context;
#                                        speed: tiny shapes)
#
# Options:
#   --out DIR        where models, config, logs, gpu_fit.json and gpu_check.json go
#                    (default: $OUT if set, else /tmp/llmux-gpu-check)
#   --part P         fit, speed or all (default all)
#   --kernels-dir D  the hub kernels' cache (FP8, MXFP4; scripts/download_models.sh fills
#                    one): without it FP8 and MXFP4 models are sized but not loaded
#   --fit-only LIST  comma-separated production models for the fit part
#   --fit-budget-s N start no new model in the fit part after N seconds (default 480)
#   --only LIST      speed part, comma-separated: qwen3.5-4b,gpt-oss-20b (default both)
#   --budget-s N     speed part: start no new step after N seconds (default 270)
#   --wheels DIR     wheels to install offline when a package is missing
#                    (default: shared/wheels, then wheels/)
#   --cpu-half-20b   also measure gpt-oss-20b on the CPU (minutes more)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

cpu_only=0
part=all
kernels=
fit_only=
fit_budget=480
out=${OUT:-/tmp/llmux-gpu-check}
only=qwen3.5-4b,gpt-oss-20b
budget=270
wheels=
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-only) cpu_only=1 ;;
    --out) out=$2; shift ;;
    --part) part=$2; shift ;;
    --kernels-dir) kernels=$2; shift ;;
    --fit-only) fit_only=$2; shift ;;
    --fit-budget-s) fit_budget=$2; shift ;;
    --only) only=$2; shift ;;
    --budget-s) budget=$2; shift ;;
    --wheels) wheels=$2; shift ;;
    --cpu-half-20b) extra+=(--cpu-half-20b) ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$wheels" ]; then
  for dir in shared/wheels wheels; do
    if [ -d "$dir" ]; then wheels=$dir; break; fi
  done
fi
mkdir -p "$out"
started=$(date +%s)
say() { printf '[gpu_check %3ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }

# ---------------------------------------------------------------- what is here
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader \
    | while read -r line; do say "GPU: $line"; done
elif [ "$cpu_only" = 0 ]; then
  say "no nvidia-smi: no GPU here. Run with --cpu-only for the dry run."
  exit 1
fi

# A Python that has torch: the repo's venv if it has one, else the machine's.
py=${PYTHON:-}
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch' 2>/dev/null; then
    py=.venv/bin/python
  else
    py=$(command -v python3)
  fi
fi
say "python: $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
"$py" - <<'EOF'
import importlib.util as u
for m in ("torch", "transformers", "safetensors", "tokenizers", "aiohttp", "pluggy", "yaml",
          "jsonschema", "prometheus_client", "llama_cpp", "gguf"):
    print(f"  {m:18} {'ok' if u.find_spec(m) else 'MISSING'}")
import torch
print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPU visible: {torch.cuda.is_available()}")
EOF

# ---------------------------------------------------------------- llmux, offline
# A venv that sees the machine's packages (its CUDA torch), with llmux and the plugins
# installed from this tree without the network.
venv=$out/venv
if ! "$py" -c 'import llmux, llmux_transformers' 2>/dev/null; then
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv (system site packages: keeps the machine's torch)"
    "$py" -m venv --system-site-packages "$venv"
  fi
  py=$venv/bin/python
  pip_offline=("$py" -m pip install --disable-pip-version-check -q --no-index)
  if [ -n "$wheels" ]; then
    pip_offline+=(--find-links "$wheels")
  fi
  for need in jsonschema pluggy aiohttp yaml:pyyaml prometheus_client:prometheus-client; do
    module=${need%%:*}
    dist=${need#*:}
    if ! "$py" -c "import $module" 2>/dev/null; then
      if [ -n "$wheels" ] && "${pip_offline[@]}" "$dist"; then
        say "installed $dist from $wheels"
      else
        say "cannot install $dist offline (no wheel in ${wheels:-shared/wheels}): llmux cannot run"
        exit 1
      fi
    fi
  done
  if [ -n "$wheels" ] && ! "$py" -c 'import gguf' 2>/dev/null; then
    "${pip_offline[@]}" gguf || say "no gguf wheel: the llama.cpp part is not measured"
  fi
  "${pip_offline[@]}" --no-deps --no-build-isolation -e . -e plugins/llmux_transformers
  if [ -f plugins/llmux_llamacpp/pyproject.toml ]; then
    "${pip_offline[@]}" --no-deps --no-build-isolation -e plugins/llmux_llamacpp \
      || say "llmux-llamacpp not installed: the llama.cpp part is not measured"
  fi
fi

# ---------------------------------------------------------------- the check
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
status=0
case "$part" in all|fit|speed) ;; *) say "--part is fit, speed or all, not $part"; exit 2 ;; esac
if [ "$part" != speed ]; then
  fit=(--out "$out" --budget-s "$fit_budget")
  [ "$cpu_only" = 1 ] && fit+=(--cpu-only)
  [ -n "$kernels" ] && fit+=(--kernels-dir "$kernels")
  [ -n "$fit_only" ] && fit+=(--only "$fit_only")
  say "running benchmarks.gpu_fit ${fit[*]}"
  "$py" -m benchmarks.gpu_fit "${fit[@]}" || status=$?
fi
if [ "$part" != fit ]; then
  args=(--out "$out" --only "$only" --budget-s "$budget")
  if [ "$cpu_only" = 1 ]; then
    args+=(--cpu-only)
  fi
  [ -n "$kernels" ] && export LLMUX_KERNELS_DIR=$kernels
  say "running benchmarks.gpu_check ${args[*]} ${extra[*]}"
  "$py" -m benchmarks.gpu_check "${args[@]}" "${extra[@]}" || status=$?
fi
# The models are large and rebuilt in seconds: only the report and logs are kept.
rm -rf "$out/models"
say "done (exit $status); reports: $out/gpu_fit.json, $out/gpu_check.json"
exit "$status"
