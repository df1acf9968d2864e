#!/usr/bin/env bash
# Phase 1 system integration checks on the host (TST-002..TST-007), each PASS, FAIL or SKIP.
# Run as the user llm after create_pod_llmux.sh (or the Quadlet units) started the pod:
#
#   deploy/verify.sh [--key KEY] [--no-lifecycle] [--traefik-url URL]
#
#   --key KEY         an API key from api_keys.yaml (or LLMUX_KEY) for the model list check
#   --no-lifecycle    skip TST-007's stop/start/restart (they interrupt the service)
#   --traefik-url URL TST-006 target (or LLMUX_TRAEFIK_URL); run from a machine on the
#                     WireGuard VPN once DNS is set up (INT-005). Default: the URL the route
#                     serves, from install.sh's ~/.local/share/llmux_pod/traefik/route.env
#                     (LLMUX_ROUTE_ENV overrides), else from LLMUX_TRAEFIK_TLS/HOST/PORT with
#                     install.sh's defaults: https://kidirekt.kischdle.com
#   --resolve IP      reach the Traefik host name at IP without DNS (curl --resolve)
# Exit status 1 if any check fails.
set -uo pipefail

CTR=llmux_ctr
SERVICE=pod-llmux_pod.service
URL="${LLMUX_URL:-http://127.0.0.1:8081}"
KEY="${LLMUX_KEY:-}"
GPU_NAME="${LLMUX_GPU_NAME:-5070 Ti}"
START_TIMEOUT="${LLMUX_START_TIMEOUT:-900}"
TRAEFIK_URL="${LLMUX_TRAEFIK_URL:-}"
ROUTE_ENV="${LLMUX_ROUTE_ENV:-${LLMUX_DATA_DIR:-$HOME/.local/share/llmux_pod}/traefik/route.env}"
ENTRYPOINT="${LLMUX_TRAEFIK_ENTRYPOINT:-wireguard}"
RESOLVE_IP=""
LIFECYCLE=1
EXPECTED_MODELS=16

while [[ $# -gt 0 ]]; do
    case "$1" in
        --key) KEY="${2:?}"; shift 2 ;;
        --no-lifecycle) LIFECYCLE=0; shift ;;
        --traefik-url) TRAEFIK_URL="${2:?}"; shift 2 ;;
        --resolve) RESOLVE_IP="${2:?}"; shift 2 ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "verify: unknown argument $1" >&2; exit 2 ;;
    esac
done

# The route's URL as install.sh derived it (scheme from the entry point's TLS, host, port).
if [[ -z "$TRAEFIK_URL" && -r "$ROUTE_ENV" ]]; then
    while IFS='=' read -r name value; do
        case "$name" in
            LLMUX_TRAEFIK_URL) TRAEFIK_URL="$value" ;;
            LLMUX_TRAEFIK_ENTRYPOINT) ENTRYPOINT="$value" ;;
        esac
    done <"$ROUTE_ENV"
fi
if [[ -z "$TRAEFIK_URL" ]]; then  # no install.sh route: the same rule and defaults
    case "${LLMUX_TRAEFIK_TLS:-1}" in
        0 | no | false | off) scheme=http default_port=80 ;;
        *) scheme=https default_port=443 ;;
    esac
    port="${LLMUX_TRAEFIK_PORT:-$default_port}"
    TRAEFIK_URL="$scheme://${LLMUX_TRAEFIK_HOST:-kidirekt.kischdle.com}"
    if [[ "$port" != "$default_port" ]]; then
        TRAEFIK_URL="$TRAEFIK_URL:$port"
    fi
fi

declare -a results=()
failures=0

record() {  # status id text
    results+=("$(printf '%-4s  %-7s  %s' "$1" "$2" "$3")")
    printf '%-4s  %-7s  %s\n' "$1" "$2" "$3"
    if [[ "$1" == "FAIL" ]]; then
        failures=$((failures + 1))
    fi
}

http_get() {  # url [bearer-key]: body on stdout, fails on HTTP >= 400
    local url="$1" key="${2:-}"
    local -a header=()
    if [[ -n "$key" ]]; then
        header=(-H "Authorization: Bearer $key")
    fi
    curl -fsS --max-time 20 "${header[@]}" "$url"
}

wait_healthy() {  # seconds
    local deadline=$((SECONDS + $1))
    while [[ $SECONDS -lt $deadline ]]; do
        if http_get "$URL/health" >/dev/null 2>&1; then
            return 0
        fi
        sleep 5
    done
    return 1
}

count_models() {  # JSON of /v1/models on stdin -> number of entries
    python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("data", [])))'
}

command -v curl >/dev/null 2>&1 || { echo "verify: curl is needed" >&2; exit 2; }

# TST-002: the GPU inside the container
if out="$(podman exec "$CTR" nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1)"; then
    if grep -q "$GPU_NAME" <<<"$out"; then
        record PASS TST-002 "GPU in the container: $out"
    else
        record FAIL TST-002 "nvidia-smi runs but shows no '$GPU_NAME': $out"
    fi
else
    record FAIL TST-002 "nvidia-smi failed in $CTR (CDI spec? nvidia-ctk cdi list): ${out//$'\n'/ }"
fi

# TST-003: model weights (and config) readable through the read-only mounts
# shellcheck disable=SC2016  # expanded inside the container
read_models='set -e
n=$(find /models -mindepth 2 -maxdepth 2 -name .llmux-download-complete | wc -l)
f=$(find /models -mindepth 2 -maxdepth 2 -type f \( -name "*.safetensors" -o -name "*.gguf" -o -name "*.pt" \) | head -n 1)
test -n "$f"
head -c 1048576 "$f" | wc -c >/dev/null
test -r /config/models.yaml && test -r /config/api_keys.yaml
if touch /models/.llmux-write-test 2>/dev/null; then echo "WRITABLE"; fi
echo "$n complete model folders, read $f"'
if out="$(podman exec "$CTR" sh -c "$read_models" 2>&1)"; then
    if grep -q WRITABLE <<<"$out"; then
        record FAIL TST-003 "/models is writable: mount it :ro (CFG-002)"
    else
        record PASS TST-003 "${out##*$'\n'}"
    fi
else
    record FAIL TST-003 "cannot read /models or /config in $CTR: ${out//$'\n'/ }"
fi
# The gpt-oss MXFP4 kernels must load offline from the kernels cache (/models/hf-cache,
# filled by scripts/download_models.sh): the image's llmux-selfcheck makes the plugin's call
# (kernels.get_kernel) with HF_HUB_OFFLINE=1 for each MXFP4 model of /config/models.yaml.
if out="$(podman exec "$CTR" llmux-selfcheck kernels --config /config 2>&1)"; then
    record PASS TST-003 "${out##*$'\n'}"
else
    record FAIL TST-003 "${out##*$'\n'}"
fi

# TST-004: the service answers on the host's loopback
if wait_healthy 60 && body="$(http_get "$URL/health")"; then
    record PASS TST-004 "$URL/health: ${body:0:120}"
else
    record FAIL TST-004 "$URL/health unreachable (podman ps; journalctl --user -u container-$CTR.service)"
fi

# TST-005: the model list Open WebUI reads
if [[ -z "$KEY" ]]; then
    record SKIP TST-005 "no --key/LLMUX_KEY given; then also check Open WebUI's model dropdown"
elif models="$(http_get "$URL/v1/models" "$KEY")"; then
    n="$(count_models <<<"$models")"
    if [[ "$n" -eq "$EXPECTED_MODELS" ]]; then
        record PASS TST-005 "/v1/models lists $n models; confirm they show in Open WebUI's dropdown"
    else
        record FAIL TST-005 "/v1/models lists $n models, expected $EXPECTED_MODELS"
    fi
else
    record FAIL TST-005 "/v1/models refused the key or failed"
fi

# TST-006: Traefik over the WireGuard VPN (needs DNS, INT-005)
host="${TRAEFIK_URL#*://}"
host="${host%%/*}"
if [[ "$host" == *:* ]]; then
    port="${host##*:}"
    host="${host%:*}"
elif [[ "$TRAEFIK_URL" == https://* ]]; then
    port=443
else
    port=80
fi
resolve=()
if [[ -n "$RESOLVE_IP" ]]; then
    resolve=(--resolve "$host:$port:$RESOLVE_IP")
fi
if [[ -z "$RESOLVE_IP" ]] && ! getent hosts "$host" >/dev/null 2>&1; then
    record SKIP TST-006 "$host does not resolve yet (DNS is a manual step, INT-005)"
elif out="$(curl -fsS --max-time 20 "${resolve[@]}" "$TRAEFIK_URL/health" 2>&1)"; then
    record PASS TST-006 "$TRAEFIK_URL/health through Traefik: ${out:0:80}"
else
    record FAIL TST-006 "$TRAEFIK_URL/health failed (on the VPN? Traefik's llmux.yml? entry point $ENTRYPOINT?): $out"
fi

# TST-007: systemd lifecycle and reboot survival
state="$(systemctl --user is-enabled "$SERVICE" 2>&1)"
case "$state" in
    enabled | generated) record PASS TST-007 "$SERVICE is $state (starts at boot)" ;;
    *) record FAIL TST-007 "$SERVICE is '$state', not enabled (create_pod_llmux.sh or Quadlet)" ;;
esac
if [[ "$(loginctl show-user "$(id -un)" --property=Linger 2>/dev/null)" == "Linger=yes" ]]; then
    record PASS TST-007 "lingering is on for $(id -un): the service survives reboot and logout"
else
    record FAIL TST-007 "lingering is off: as root run loginctl enable-linger $(id -un)"
fi
if [[ "$LIFECYCLE" -eq 1 ]]; then
    if systemctl --user stop "$SERVICE" && sleep 2 && ! http_get "$URL/health" >/dev/null 2>&1; then
        record PASS TST-007 "systemctl --user stop: the port is closed"
    else
        record FAIL TST-007 "systemctl --user stop did not stop the service"
    fi
    if systemctl --user start "$SERVICE" && wait_healthy "$START_TIMEOUT"; then
        record PASS TST-007 "systemctl --user start: healthy again"
    else
        record FAIL TST-007 "systemctl --user start: not healthy within ${START_TIMEOUT}s"
    fi
    if systemctl --user restart "$SERVICE" && wait_healthy "$START_TIMEOUT"; then
        record PASS TST-007 "systemctl --user restart: healthy again"
    else
        record FAIL TST-007 "systemctl --user restart: not healthy within ${START_TIMEOUT}s"
    fi
else
    record SKIP TST-007 "stop/start/restart skipped (--no-lifecycle)"
fi

echo
echo "Summary (phase 1):"
printf '%s\n' "${results[@]}"
if [[ "$failures" -gt 0 ]]; then
    echo "$failures check(s) failed."
    exit 1
fi
echo "All phase 1 checks passed (SKIPs need a manual look)."
