#!/usr/bin/env bash
# Set up llmux on a fresh machine: a virtual environment with the core, every runtime plugin
# under plugins/ and, with --test, the test tools. Safe to run again (pip skips what is there).
#
#   scripts/setup.sh            the server
#   scripts/setup.sh --test     the server and everything the test suite needs
#   scripts/setup.sh --core     the core alone, with its built-in echo runtime (the demo of
#                               scripts/demo.sh): seconds, where the plugins take minutes
#
# Environment:
#   LLMUX_VENV=DIR      where the virtual environment goes (default .venv); "none" installs
#                       into the current Python (the container image does this)
#   LLMUX_TORCH=image   keep the torch that is already installed (the production image's CUDA
#                       build) instead of pinning the CPU torch of scripts/constraints.txt: the
#                       installed torch, torchaudio, torchvision and triton (else the triton that
#                       torch pins) become the constraints, so pip can replace none of them
#   LLMUX_EXTRAS="REQ ..."  more to install in the same pip call (the image: the plugins'
#                       optional extras). A plugin named by its folder with extras, e.g.
#                       llmux_transformers[mxfp4,compressed-tensors], is installed with them;
#                       any other word is a pip requirement, e.g. transformers[kernels]
#   LLMUX_DEV=0         regular (not editable) installs of the runtime packages only (the
#                       container image); pip honours PIP_FIND_LINKS for a prebuilt
#                       llama-cpp-python wheel
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_plugins=1
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --core) want_plugins=0 ;;
    *) echo "usage: scripts/setup.sh [--test | --core]" >&2; exit 2 ;;
  esac
done
if [ "$want_test" = 1 ] && [ "$want_plugins" = 0 ]; then
  echo "setup: --test needs the plugins; it does not go with --core" >&2
  exit 2
fi

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
  trap 'rm -f "$constraints"' EXIT
  grep -v '^torch==' scripts/constraints.txt > "$constraints"
  # The image's torch stack stays as it is: pin what is installed. Triton must be the one
  # this torch was built with (torch 2.11 pins triton==3.6.0); if the image has none, take
  # torch's own pin, so an extra that asks for triton gets that one.
  "$py" - >>"$constraints" <<'PY'
import importlib.metadata as md
import re

installed = {}
for name in ("torch", "torchaudio", "torchvision", "triton"):
    try:
        installed[name] = md.version(name)
    except md.PackageNotFoundError:
        continue
    print(f"{name}=={installed[name]}")
if "torch" in installed and "triton" not in installed:
    for req in md.requires("torch") or []:
        if re.match(r"triton\b", req) and "extra ==" not in req:
            print(req)
PY
  echo "setup: keeping the image's $(grep -E '^(torch|torchaudio|torchvision|triton)\b' "$constraints" | paste -sd ' ' -)"
fi

# LLMUX_EXTRAS: plugin extras go onto the plugin's own target, the rest is added as is.
declare -A plugin_extras=()
requirements=()
read -r -a extra_words <<<"${LLMUX_EXTRAS:-}"
for word in ${extra_words[@]+"${extra_words[@]}"}; do
  name=${word%%[*}
  if [ -f "plugins/$name/pyproject.toml" ] && [ "$want_plugins" = 0 ]; then
    echo "setup: LLMUX_EXTRAS: '$word' is for a plugin; --core installs none" >&2
    exit 2
  elif [ -f "plugins/$name/pyproject.toml" ]; then
    suffix=${word#"$name"}
    if ! [[ "$suffix" =~ ^\[[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*\]$ ]]; then
      echo "setup: LLMUX_EXTRAS: '$word' should be ${name}[extra,...]" >&2
      exit 2
    fi
    plugin_extras[$name]=$suffix
  elif [[ "$name" == llmux* ]]; then
    echo "setup: LLMUX_EXTRAS: '$word' names no plugin under plugins/ ($(cd plugins && echo llmux_*))" >&2
    exit 2
  else
    requirements+=("$word")
  fi
done

editable=-e
[ "${LLMUX_DEV:-1}" = 0 ] && editable=

core="."
[ "$want_test" = 1 ] && core=".[test]"
targets=("$editable" "$core")
if [ "$want_plugins" = 1 ]; then
  for plugin in plugins/llmux_*/; do
    plugin=${plugin%/}
    [ -f "$plugin/pyproject.toml" ] && targets+=("$editable" "$plugin${plugin_extras[${plugin#plugins/}]:-}")
  done
fi
# Drop empty words left by a non-editable install.
args=()
for word in "${targets[@]}" ${requirements[@]+"${requirements[@]}"}; do [ -n "$word" ] && args+=("$word"); done

echo "setup: installing ${args[*]} (constraints: scripts/constraints.txt)"
# One pip call, so llama-cpp-python (compiled from source, minutes) is built at most once;
# pip's wheel cache keeps the result for the next run.
"$py" -m pip install --disable-pip-version-check -q -c "$constraints" "${args[@]}"

# Chatterbox pins old transformers/torch; its plugin installs it without those pins.
if [ "$want_plugins" = 1 ] && [ -x plugins/llmux_chatterbox/install-chatterbox.sh ]; then
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

echo "setup: done ($("$py" -c 'import llmux, sys; print("llmux", llmux.__version__, "on Python", sys.version.split()[0])'))"
