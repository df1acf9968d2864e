#!/usr/bin/env bash
# Download every physical model of models.yaml for llmux (DL-001..003).
#
#   scripts/download_models.sh [--config DIR] [--models-dir DIR] [--min-free-gb N]
#                              [--kernels-dir DIR] [--no-kernels] [--dry-run]
#
# What is fetched comes from `llmux sources` (the `source` of each physical model:
# hub repo, revision, include patterns), never from YAML parsed in bash. Each model goes to
# MODELS_DIR/<path> through huggingface_hub's own CLI (`hf download`). A model is complete
# once its marker file MODELS_DIR/<path>/.llmux-download-complete exists and matches its
# source; complete models are skipped, partial ones are resumed (hf keeps its download state
# in <path>/.cache/huggingface and fetches only what is missing).
#
# For offline running (the container sets HF_HUB_OFFLINE=1) it also fetches the hub kernels
# that transformers runs on CUDA: kernels-community/gpt-oss-triton-kernels, version 1
# (branch v1; gpt-oss's MXFP4 experts, fetched at load) and kernels-community/finegrained-fp8,
# version 4 (FP8 checkpoints such as Qwen3.5 FP8, fetched at the first forward), the versions
# transformers 5.x asks for. They go to the kernels cache, in the Hugging Face cache layout:
# KERNELS_DIR = MODELS_DIR/hf-cache. The container mounts MODELS_DIR at /models, and the image
# sets LLMUX_KERNELS_DIR and KERNELS_CACHE to /models/hf-cache, where the transformers plugin
# and `kernels.get_kernel()` look; `llmux-selfcheck kernels` in the container (run at every
# start and by deploy/verify.sh) says whether they load offline.
#
# Environment (flags win):
#   LLMUX_MODELS_DIR   target directory (default /home/llm/.local/share/llmux_pod/models,
#                      i.e. $HOME/.local/share/llmux_pod/models for the user llm)
#   LLMUX_CONFIG_DIR   config directory holding models.yaml (default ./config)
#   LLMUX_MIN_FREE_GB  free space demanded before downloading (default 60, DL-003; 0: no check)
#   LLMUX_KERNELS      space-separated REPO@REVISION hub kernels to cache (default
#                      kernels-community/gpt-oss-triton-kernels@v1 kernels-community/finegrained-fp8@v4)
#   LLMUX_KERNELS_DIR  the kernels cache (default MODELS_DIR/hf-cache). Keep the default for
#                      the container, which sees only MODELS_DIR; another directory is for llmux
#                      run outside it, with the same LLMUX_KERNELS_DIR
#   LLMUX_KERNEL_REPO_TYPE  kernel or model: the Hub repo type for them (default kernel
#                      when the installed hf knows it, else model)
#   LLMUX_PYTHON       interpreter with llmux installed, used when `llmux` is not on PATH
#   HF_TOKEN / HF_TOKEN_PATH / HF_HOME  where the token is found, as huggingface_hub does;
#                      default ~/.cache/huggingface/token (DL-002)
#   HF_CLI             the hf command (default hf)
set -euo pipefail

MARKER=".llmux-download-complete"
models_dir="${LLMUX_MODELS_DIR:-$HOME/.local/share/llmux_pod/models}"
config_dir="${LLMUX_CONFIG_DIR:-}"
min_free_gb="${LLMUX_MIN_FREE_GB:-60}"
kernels="${LLMUX_KERNELS-kernels-community/gpt-oss-triton-kernels@v1 kernels-community/finegrained-fp8@v4}"
kernels_dir="${LLMUX_KERNELS_DIR:-}"
kernel_repo_type="${LLMUX_KERNEL_REPO_TYPE:-}"
hf_cli="${HF_CLI:-hf}"
dry_run=0

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    printf 'download_models: %s\n' "$*" >&2
    exit 1
}

log() {
    printf '%s\n' "$*"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --config) config_dir="${2:?--config needs a directory}"; shift 2 ;;
        --models-dir) models_dir="${2:?--models-dir needs a directory}"; shift 2 ;;
        --min-free-gb) min_free_gb="${2:?--min-free-gb needs a number}"; shift 2 ;;
        --kernels-dir) kernels_dir="${2:?--kernels-dir needs a directory}"; shift 2 ;;
        --no-kernels) kernels=""; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ "$min_free_gb" =~ ^[0-9]+$ ]] || die "--min-free-gb must be a whole number of GB, not '$min_free_gb'"
kernels_dir="${kernels_dir:-$models_dir/hf-cache}"

# ------------------------------------------------------------------ the plan
sources_cmd=()
if command -v llmux >/dev/null 2>&1; then
    sources_cmd=(llmux sources --format tsv)
elif "${LLMUX_PYTHON:-python3}" -c 'import llmux.cli.sources' >/dev/null 2>&1; then
    sources_cmd=("${LLMUX_PYTHON:-python3}" -m llmux.cli.sources --format tsv)
else
    die "cannot list the models: neither \`llmux\` nor a Python with llmux installed was found.
Install llmux first (scripts/setup.sh), or set LLMUX_PYTHON to the venv's python."
fi
if [[ -n "$config_dir" ]]; then
    sources_cmd+=(--config "$config_dir")
fi
plan="$("${sources_cmd[@]}")" || die "\`${sources_cmd[*]}\` failed (see above): fix models.yaml first"
[[ -n "$plan" ]] || die "models.yaml names no physical model with a source: nothing to download"

command -v "$hf_cli" >/dev/null 2>&1 || die "the Hugging Face CLI '$hf_cli' is not installed.
Install it for this user, e.g.: python3 -m pip install --user 'huggingface_hub>=1.0'
(or pipx install huggingface_hub), then run this script again."

# The signature a complete download's marker must hold: changing the repo, revision or
# include list in models.yaml makes the model incomplete again.
signature() {  # repo revision include
    printf 'repo=%s\nrevision=%s\ninclude=%s\n' "$1" "$2" "$3"
}

is_complete() {  # dir repo revision include
    local marker="$1/$MARKER"
    [[ -f "$marker" ]] && [[ "$(cat "$marker")" == "$(signature "$2" "$3" "$4")" ]]
}

# ------------------------------------------------------------------ what is missing
declare -a todo=()
needs_token=""
total=0
while IFS=$'\t' read -r name repo revision path include gated; do
    [[ -n "$name" ]] || continue
    total=$((total + 1))
    if is_complete "$models_dir/$path" "$repo" "$revision" "$include"; then
        continue
    fi
    todo+=("$name"$'\t'"$repo"$'\t'"$revision"$'\t'"$path"$'\t'"$include"$'\t'"$gated")
    if [[ "$gated" == "true" ]]; then
        needs_token+="${needs_token:+, }$name ($repo)"
    fi
done <<<"$plan"

declare -a kernels_todo=()
for kernel in $kernels; do
    krepo="${kernel%@*}"
    krev="main"
    if [[ "$kernel" == *@* ]]; then
        krev="${kernel##*@}"
    fi
    if ! is_complete "$kernels_dir/.kernels/${krepo//\//--}@$krev" "$krepo" "$krev" "-"; then
        kernels_todo+=("$krepo"$'\t'"$krev")
    fi
done

log "llmux models: $total in models.yaml, ${#todo[@]} to download, into $models_dir"
if [[ ${#todo[@]} -eq 0 && ${#kernels_todo[@]} -eq 0 ]]; then
    log "All models are complete; nothing to do."
    exit 0
fi

# ------------------------------------------------------------------ token (DL-002)
token_file="${HF_TOKEN_PATH:-${HF_HOME:-$HOME/.cache/huggingface}/token}"
if [[ -n "$needs_token" && -z "${HF_TOKEN:-}" && ! -s "$token_file" ]]; then
    die "no Hugging Face token found, and these gated models need one: $needs_token.
  1. Log in at https://huggingface.co as the account that accepted the model's terms
     (open the model page and accept them if not done yet).
  2. Create a read token at https://huggingface.co/settings/tokens.
  3. As user $(id -un): hf auth login   (or write the token to $token_file, mode 0600).
Then run this script again."
fi

# ------------------------------------------------------------------ free space (DL-003)
mkdir -p "$models_dir"
if [[ "$min_free_gb" -gt 0 ]]; then
    free_kb="$(df -Pk "$models_dir" | awk 'NR == 2 {print $4}')"
    free_gb=$((free_kb / 1024 / 1024))
    if [[ "$free_gb" -lt "$min_free_gb" ]]; then
        die "only $free_gb GB free on the file system of $models_dir; the models need about $min_free_gb GB (DL-003).
Free some space, choose another --models-dir, or lower the check with --min-free-gb N
(LLMUX_MIN_FREE_GB) if most models are already there."
    fi
    log "Free space: $free_gb GB (need about $min_free_gb GB)"
fi

# ------------------------------------------------------------------ download
run_hf() {  # log-file, hf arguments...: progress goes to the terminal and to the log
    local logfile="$1"
    shift
    if [[ "$dry_run" -eq 1 ]]; then
        log "  dry run: $hf_cli $*"
        return 0
    fi
    set +e
    "$hf_cli" "$@" 2>&1 | tee "$logfile"
    local status="${PIPESTATUS[0]}"
    set -e
    return "$status"
}

explain_failure() {  # name repo gated logfile
    local name="$1" repo="$2" gated="$3" logfile="$4"
    if grep -qiE 'gated|restricted|403|401|not in the authorized list|awaiting a review' "$logfile" 2>/dev/null; then
        die "$name: access to $repo was refused by the Hub.
Accept the model's terms at https://huggingface.co/$repo while logged in as the token's
account, and check that the token ($token_file) is valid: hf auth whoami"
    fi
    if [[ "$gated" == "true" ]]; then
        die "$name: downloading the gated repo $repo failed (log: $logfile). If the log mentions
access, accept the terms at https://huggingface.co/$repo and check the token: hf auth whoami"
    fi
    die "$name: downloading $repo failed (log: $logfile). Run the script again to resume."
}

step=0
count=$((${#todo[@]} + ${#kernels_todo[@]}))
for row in "${todo[@]}"; do
    IFS=$'\t' read -r name repo revision path include gated <<<"$row"
    step=$((step + 1))
    target="$models_dir/$path"
    mkdir -p "$target"
    args=(download "$repo" --revision "$revision" --local-dir "$target")
    what="all files"
    if [[ "$include" != "-" ]]; then
        IFS=',' read -r -a patterns <<<"$include"
        for pattern in "${patterns[@]}"; do
            args+=(--include "$pattern")  # hf >= 1.0 takes one pattern per flag
        done
        what="${#patterns[@]} pattern(s): $include"
    fi
    log "[$step/$count] $name: $repo@$revision ($what) -> $target"
    logfile="$target/.llmux-download.log"
    run_hf "$logfile" "${args[@]}" || explain_failure "$name" "$repo" "$gated" "$logfile"
    if [[ "$dry_run" -eq 0 ]]; then
        signature "$repo" "$revision" "$include" >"$target/$MARKER"
        rm -f "$logfile"
    fi
    log "[$step/$count] $name: complete"
done

if [[ ${#kernels_todo[@]} -gt 0 && -z "$kernel_repo_type" ]]; then
    kernel_repo_type=model
    if "$hf_cli" download --help 2>/dev/null | grep -q 'kernel'; then
        kernel_repo_type=kernel
    else
        log "warning: this hf knows no --repo-type kernel; caching the kernels in the old model
layout, which recent \`kernels\` releases do not read offline. Better: upgrade it
(python3 -m pip install --user 'huggingface_hub>=1.10') and run this again."
    fi
fi
for row in "${kernels_todo[@]}"; do
    IFS=$'\t' read -r krepo krev <<<"$row"
    step=$((step + 1))
    cache="$kernels_dir"
    state="$cache/.kernels/${krepo//\//--}@$krev"
    mkdir -p "$state"
    log "[$step/$count] kernel $krepo@$krev -> $cache (Hugging Face cache layout, for offline use)"
    logfile="$state/download.log"
    run_hf "$logfile" download "$krepo" --repo-type "$kernel_repo_type" --revision "$krev" --cache-dir "$cache" \
        || explain_failure "kernel $krepo" "$krepo" false "$logfile"
    if [[ "$dry_run" -eq 0 ]]; then
        signature "$krepo" "$krev" "-" >"$state/$MARKER"
        rm -f "$logfile"
    fi
    log "[$step/$count] kernel $krepo: complete"
done

log "Done: all models are in $models_dir."
if [[ -n "$kernels" ]]; then
    log "Hub kernels are in $kernels_dir (in the container: /models/hf-cache = LLMUX_KERNELS_DIR)."
fi
