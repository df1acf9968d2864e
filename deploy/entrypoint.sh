#!/bin/sh
# The llmux container's entry point (installed as /usr/local/bin/llmux-entrypoint by
# deploy/Containerfile). Arguments are passed on to `llmux serve`.
#
#   1. llmux check-config: an invalid configuration is permanent, so the container exits
#      with 78 (EX_CONFIG), which the units do not restart (RestartPreventExitStatus=78;
#      a model that does not fit the VRAM budget is reported but is not an error);
#   2. llmux-selfcheck kernels: whether the MXFP4 kernels of gpt-oss load offline from the
#      models volume; only a warning (the other models still serve; gpt-oss answers 503
#      with the same hint); LLMUX_SKIP_KERNELS_CHECK=1 skips it;
#   3. exec llmux serve, whose exit status the unit sees.
set -u

config="${LLMUX_CONFIG_DIR:-/config}"
EX_CONFIG=78

if ! llmux check-config "$config"; then
    echo "llmux-entrypoint: the configuration in $config is invalid (errors above); not starting." >&2
    echo "llmux-entrypoint: fix it on the host (~/.local/share/llmux_pod/config), check it with" >&2
    echo "llmux-entrypoint:   llmux check-config ~/.local/share/llmux_pod/config" >&2
    echo "llmux-entrypoint: then: systemctl --user reset-failed container-llmux_ctr.service; systemctl --user restart pod-llmux_pod.service" >&2
    echo "llmux-entrypoint: exit status $EX_CONFIG (EX_CONFIG): the service is not restarted for this" >&2
    exit "$EX_CONFIG"
fi

if [ "${LLMUX_SKIP_KERNELS_CHECK:-0}" != 1 ]; then
    llmux-selfcheck kernels --config "$config" --warn-only
fi

exec llmux serve --config "$config" --host 0.0.0.0 --port 8081 "$@"
