#!/usr/bin/env bash
# Install the llmux deployment files for the user llm (ARCH-005, CFG-002).
#
#   deploy/install.sh [--quadlet]
#
# - create_pod_llmux.sh and verify_llmux.sh into ~/bin (/home/llm/bin; LLMUX_BIN_DIR overrides);
# - the data directories ~/.local/share/llmux_pod/{models,config} (LLMUX_DATA_DIR overrides),
#   config/ with mode 0700, and config/models.yaml from this checkout if none is there yet
#   (an existing one is never overwritten);
# - with --quadlet: the Quadlet units into ~/.config/containers/systemd/ (the recommended
#   path), then systemctl --user daemon-reload.
# Run it as the user llm, from anywhere; it finds the checkout from its own location.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bin_dir="${LLMUX_BIN_DIR:-$HOME/bin}"
data_dir="${LLMUX_DATA_DIR:-$HOME/.local/share/llmux_pod}"
quadlet_dir="${XDG_CONFIG_HOME:-$HOME/.config}/containers/systemd"
unit_dir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
quadlet=0

case "${1:-}" in
    "") ;;
    --quadlet) quadlet=1 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument $1" >&2; exit 2 ;;
esac

[[ "$(id -u)" -ne 0 ]] || { echo "install: run this as the user llm, not as root" >&2; exit 1; }
if [[ "$(id -un)" != "llm" ]]; then
    echo "install: note: running as $(id -un), not llm; installing for $(id -un)"
fi

install -d -m 0755 "$bin_dir"
install -m 0755 "$here/create_pod_llmux.sh" "$bin_dir/create_pod_llmux.sh"
install -m 0755 "$here/verify.sh" "$bin_dir/verify_llmux.sh"
echo "install: $bin_dir/create_pod_llmux.sh, $bin_dir/verify_llmux.sh"

install -d -m 0755 "$data_dir" "$data_dir/models"
install -d -m 0700 "$data_dir/config"
if [[ ! -e "$data_dir/config/models.yaml" ]]; then
    install -m 0644 "$repo/config/models.yaml" "$data_dir/config/models.yaml"
    echo "install: $data_dir/config/models.yaml (from the checkout)"
else
    echo "install: keeping the existing $data_dir/config/models.yaml"
fi
if [[ ! -e "$data_dir/config/api_keys.yaml" ]]; then
    echo "install: no API keys yet; create them with:"
    echo "  llmux keys add open-webui --config $data_dir/config"
fi

if [[ "$quadlet" -eq 1 ]]; then
    if [[ -e "$unit_dir/pod-llmux_pod.service" ]]; then
        echo "install: $unit_dir/pod-llmux_pod.service (from create_pod_llmux.sh) would hide the" >&2
        echo "  Quadlet unit: systemctl --user disable pod-llmux_pod.service, remove it," >&2
        echo "  $unit_dir/container-llmux_ctr.service and its .service.d/, then run this again." >&2
        exit 1
    fi
    install -d -m 0755 "$quadlet_dir"
    install -m 0644 "$here/quadlet/llmux.pod" "$here/quadlet/llmux.container" "$quadlet_dir/"
    systemctl --user daemon-reload
    echo "install: Quadlet units in $quadlet_dir; start with: systemctl --user start pod-llmux_pod.service"
fi
