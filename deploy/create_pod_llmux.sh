#!/usr/bin/env bash
# Create the llmux pod and enable it as a systemd user service (ARCH-002, ARCH-004,
# ARCH-005, CFG-002, INT-006), following the Kischdle pattern:
#   1. create the pod, 2. create the container, 3. generate systemd units, 4. enable.
#
# Run as the user llm (rootless). Installed at /home/llm/bin/create_pod_llmux.sh by
# deploy/install.sh. Idempotent: an existing llmux_pod is stopped and removed, then created
# again from the current image and settings, so running it again applies changes.
#
# This is the `podman generate systemd` path (deprecated by podman, kept for the Kischdle
# pattern). The recommended path is the Quadlet units in deploy/quadlet/; use one of the
# two, not both (docs/deploy.md, "Quadlet or create_pod_llmux.sh").
#
# Environment:
#   LLMUX_IMAGE     image to run (default localhost/llmux:latest)
#   LLMUX_DATA_DIR  host directory with models/ and config/
#                   (default $HOME/.local/share/llmux_pod, i.e. /home/llm/.local/share/llmux_pod)
#   LLMUX_NO_START  set to 1 to only enable the unit, not (re)start it now
set -euo pipefail

POD=llmux_pod
CTR=llmux_ctr
SERVICE="pod-${POD}.service"
IMAGE="${LLMUX_IMAGE:-localhost/llmux:latest}"
DATA_DIR="${LLMUX_DATA_DIR:-$HOME/.local/share/llmux_pod}"
MODELS_DIR="$DATA_DIR/models"
CONFIG_DIR="$DATA_DIR/config"
UNIT_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
QUADLET_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/containers/systemd"
HEALTH_CMD="python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=5)\""

die() {
    printf 'create_pod_llmux: %s\n' "$*" >&2
    exit 1
}

say() {
    printf 'create_pod_llmux: %s\n' "$*"
}

# ------------------------------------------------------------------ preconditions
[[ "$(id -u)" -ne 0 ]] || die "run this as the user llm, not as root (the pod is rootless)"
command -v podman >/dev/null 2>&1 || die "podman is not installed"
if [[ -e "$QUADLET_DIR/llmux.pod" || -e "$QUADLET_DIR/llmux.container" ]]; then
    die "the Quadlet units are installed in $QUADLET_DIR and define $SERVICE too.
Use one path: keep Quadlet (systemctl --user start $SERVICE), or remove
$QUADLET_DIR/llmux.pod and llmux.container, run systemctl --user daemon-reload, and run this again."
fi
podman image exists "$IMAGE" || die "image $IMAGE not found; build it first:
  podman build -f deploy/Containerfile --ignorefile deploy/containerignore -t $IMAGE ."
[[ -d "$MODELS_DIR" ]] || die "$MODELS_DIR does not exist; run scripts/download_models.sh first (DL-001)"
for file in models.yaml api_keys.yaml; do
    [[ -f "$CONFIG_DIR/$file" ]] || die "$CONFIG_DIR/$file is missing (see docs/deploy.md: configuration)"
done
if [[ -n "$(find "$CONFIG_DIR/api_keys.yaml" -perm /077 2>/dev/null)" ]]; then
    say "warning: $CONFIG_DIR/api_keys.yaml is readable by others; fix with: chmod 600 $CONFIG_DIR/api_keys.yaml"
fi

# ------------------------------------------------------------------ idempotence
if podman pod exists "$POD"; then
    say "pod $POD exists: stopping $SERVICE and removing the pod to create it again"
    systemctl --user stop "$SERVICE" || true
    podman pod rm --force --ignore "$POD"
fi

# ------------------------------------------------------------------ 1. pod
# --userns=keep-id: the host user llm keeps its UID inside, so the container reads the
# 0600 key file; the API is published on the host's loopback only (API-001).
podman pod create \
    --name "$POD" \
    --userns=keep-id \
    --publish 127.0.0.1:8081:8081

# ------------------------------------------------------------------ 2. container
podman create \
    --pod "$POD" \
    --name "$CTR" \
    --device nvidia.com/gpu=all \
    --volume "$MODELS_DIR:/models:ro" \
    --volume "$CONFIG_DIR:/config:ro" \
    --health-cmd "$HEALTH_CMD" \
    --health-interval 30s \
    --health-timeout 10s \
    --health-retries 3 \
    --health-start-period 10m \
    "$IMAGE"

# ------------------------------------------------------------------ 3. systemd units
mkdir -p "$UNIT_DIR"
(
    cd "$UNIT_DIR"
    podman generate systemd --new --files --name "$POD"
)
# Never a restart loop (the same settings as deploy/quadlet/llmux.container): a crash is
# restarted after 30 s, at most 5 starts in 10 minutes, and an invalid configuration
# (the entry point's exit status 78) not at all.
dropin="$UNIT_DIR/container-$CTR.service.d"
mkdir -p "$dropin"
printf '%s\n' "[Unit]" "StartLimitIntervalSec=600" "StartLimitBurst=5" "" \
    "[Service]" "Restart=on-failure" "RestartSec=30" "RestartPreventExitStatus=78" \
    >"$dropin/10-llmux-restart.conf"
systemctl --user daemon-reload

# ------------------------------------------------------------------ 4. enable (and start)
systemctl --user enable "$SERVICE"
if [[ "${LLMUX_NO_START:-0}" != "1" ]]; then
    # The unit recreates the pod (--new, --replace) from the generated definition.
    systemctl --user restart "$SERVICE"
    say "started $SERVICE; follow the log with: journalctl --user -u container-$CTR.service -f"
fi

# ------------------------------------------------------------------ reboot survival
user="$(id -un)"
if [[ "$(loginctl show-user "$user" --property=Linger 2>/dev/null || true)" != "Linger=yes" ]]; then
    say "warning: lingering is off for $user: the pod stops at logout and does not start at boot (INT-006).
Enable it once, as root: loginctl enable-linger $user"
else
    say "lingering is on for $user: the pod starts at boot"
fi
say "done: $SERVICE enabled; check with deploy/verify.sh"
