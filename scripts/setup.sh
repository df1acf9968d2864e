#!/usr/bin/env bash
# Set up llmux on a fresh machine: a virtual environment with the core, every runtime plugin
# under plugins/ and, with --test, the test tools. Safe to run again (pip skips what is there).
#
#   scripts/setup.sh            the server
#   scripts/setup.sh --test     the server and everything the test suite needs
#
# Environment:
#   LLMUX_VENV=DIR      where the virtual environment goes (default .venv); "none" installs
#                       into the current Python (the container image does this)
#   LLMUX_TORCH=image   keep the torch that is already installed (the production image's CUDA
#                       build) instead of pinning the CPU torch of scripts/constraints.txt
#   LLMUX_DEV=0         regular (not editable) installs of the runtime packages only (the
#                       container image); pip honours PIP_FIND_LINKS for a prebuilt
#                       llama-cpp-python wheel
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
  esac
done

venv=${LLMUX_VENV:-.venv}
if [ "$venv" = none ]; then
  py=${PYTHON:-python3}
else
  if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating virtual environment $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  py="$venv/bin/python"
fi

constraints=scripts/constraints.txt
if [ "${LLMUX_TORCH:-}" = image ]; then
  constraints=$(mktemp)
  grep -v '^torch==' scripts/constraints.txt > "$constraints"
fi

editable=-e
[ "${LLMUX_DEV:-1}" = 0 ] && editable=

core="."
[ "$want_test" = 1 ] && core=".[test]"
targets=("$editable" "$core")
for plugin in plugins/llmux_*/; do
  [ -f "$plugin/pyproject.toml" ] && targets+=("$editable" "${plugin%/}")
done
# Drop empty words left by a non-editable install.
args=()
for word in "${targets[@]}"; do [ -n "$word" ] && args+=("$word"); done

echo "setup: installing ${args[*]} (constraints: scripts/constraints.txt)"
# One pip call, so llama-cpp-python (compiled from source, minutes) is built at most once;
# pip's wheel cache keeps the result for the next run.
"$py" -m pip install --disable-pip-version-check -q -c "$constraints" "${args[@]}"

# Chatterbox pins old transformers/torch; its plugin installs it without those pins.
if [ -x plugins/llmux_chatterbox/install-chatterbox.sh ]; then
  PY="$py" CONSTRAINTS="$constraints" plugins/llmux_chatterbox/install-chatterbox.sh
fi

# torchaudio (a chatterbox need) exists on PyPI only as builds linked against CUDA torch of its
# own release; beside the CPU torch pinned for development its compiled extension cannot load,
# and transformers imports torchaudio whenever it is installed, which then breaks every model.
# Without the compiled extension torchaudio runs its pure-Python parts, the only ones
# chatterbox uses (kaldi fbank, Resample). The production image has a matching torchaudio:
# nothing is changed where the import works.
"$py" - <<'PY'
import importlib.util
import pathlib

spec = importlib.util.find_spec("torchaudio")
if spec is not None:
    try:
        import torchaudio  # noqa: F401
    except OSError as exc:
        libs = sorted(pathlib.Path(spec.origin).parent.joinpath("lib").glob("*.so"))
        for lib in libs:
            lib.unlink()
        print(f"setup: torchaudio's compiled extension does not fit this torch ({exc}); "
              f"removed {len(libs)} library files so torchaudio runs in pure Python")
PY

if [ "$want_test" = 1 ] && [ -x scripts/setup-test-system.sh ]; then
  scripts/setup-test-system.sh
fi
echo "setup: done ($("$py" -c 'import llmux, sys; print("llmux", llmux.__version__, "on Python", sys.version.split()[0])'))"
