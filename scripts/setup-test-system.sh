#!/usr/bin/env bash
# System tools the test suite uses: espeak-ng and sox make real speech for the ASR tests.
# Installed with apt when missing (CI and the developer machines run as root).
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup: the speech tests need ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "setup: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
