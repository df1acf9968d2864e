#!/usr/bin/env python3
"""llmux-selfcheck: can this environment run every model? Installed in the image as
/usr/local/bin/llmux-selfcheck (deploy/Containerfile).

    llmux-selfcheck build [--require-cuda-torch]
        At image build time: triton, kernels and compressed-tensors import; transformers
        accepts the kernels and triton it finds (its MXFP4 CUDA path refuses gpt-oss
        otherwise); triton is the one the installed torch pins; and the hub kernels lookup
        runs offline: against an empty cache it must answer "not cached", never go online.

    llmux-selfcheck kernels [--config DIR] [--kernels-dir DIR] [--warn-only]
        At container start (deploy/entrypoint.sh) and in deploy/verify.sh: the hub kernels
        that transformers runs on CUDA (MXFP4: kernels-community/gpt-oss-triton-kernels for
        gpt-oss; fine-grained FP8: kernels-community/finegrained-fp8 for FP8 checkpoints)
        load with HF_HUB_OFFLINE=1 from the kernels cache, the way the transformers plugin
        loads them. The cache is options.kernels_dir of the model, else --kernels-dir, else
        $LLMUX_KERNELS_DIR, else $KERNELS_CACHE, else the Hugging Face cache; in the image
        it is /models/hf-cache, which scripts/download_models.sh fills on the host
        (MODELS_DIR/hf-cache). With --config only what the transformers models of
        models.yaml need is checked (nothing needed: nothing to check).

Exit status: 0 when everything is in place (always with --warn-only), 1 when a check
failed, 2 for a usage error. Every problem is one line that says what to do.

This lives beside the deployment files, not in llmux/: the core never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PROG = "llmux-selfcheck"
TRITON_MIN = "3.4.0"  # what transformers' MXFP4 integration asks for (is_triton_available)
LOOKUP_TIMEOUT_S = 300
DOWNLOAD_HINT = ("fetch them on the host with scripts/download_models.sh (it writes "
                 "MODELS_DIR/hf-cache, mounted in the container as /models/hf-cache), "
                 "then restart the service")


def say(status: str, text: str) -> None:
    print(f"{PROG}: {status}: {text}", flush=True)


def dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- build


def check_imports(require_cuda_torch: bool) -> list[str]:
    """Problems with the MXFP4 and compressed-tensors stack; prints what is fine."""
    problems = []
    for module in ("torch", "transformers", "triton", "kernels", "compressed_tensors",
                   "llmux_transformers"):
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import that fails in any way is the finding
            problems.append(f"`import {module}` fails ({type(exc).__name__}: {exc}); install "
                            "the plugin extras: LLMUX_EXTRAS in deploy/Containerfile")
    if problems:
        return problems

    import torch
    from transformers.utils import import_utils

    versions = {name: dist_version(name) for name in
                ("transformers", "kernels", "triton", "compressed-tensors")}
    if require_cuda_torch and torch.version.cuda is None:
        problems.append(f"torch {torch.__version__} is a CPU build: the image's CUDA torch was "
                        "replaced (scripts/setup.sh must run with LLMUX_TORCH=image)")
    if not import_utils.is_kernels_available():
        low = getattr(import_utils, "KERNELS_MIN_VERSION", "?")
        high = getattr(import_utils, "KERNELS_MAX_VERSION", "?")
        problems.append(f"transformers {versions['transformers']} does not accept kernels "
                        f"{versions['kernels']} (it wants >={low},<{high}): install "
                        "transformers[kernels] in the same pip call so pip picks a matching pair")
    if not import_utils.is_triton_available(TRITON_MIN):
        problems.append(f"transformers sees no triton >= {TRITON_MIN} (found "
                        f"{versions['triton']}): gpt-oss would not run quantised")
    problems += check_triton_pin(torch.__version__, versions["triton"])
    if not problems:
        cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
        say("ok", f"torch {torch.__version__} ({cuda}), triton {versions['triton']}, kernels "
                  f"{versions['kernels']}, compressed-tensors {versions['compressed-tensors']}, "
                  f"transformers {versions['transformers']} (sees kernels and triton)")
    return problems


def check_triton_pin(torch_version: str, triton_version: str | None) -> list[str]:
    """Triton must be the version the installed torch was released with."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = [Requirement(r) for r in md.requires("torch") or [] if re.match(r"triton\b", r)]
    pins = [r for r in pins if r.marker is None or r.marker.evaluate({"extra": ""})]
    if not pins:
        say("ok", f"torch {torch_version} pins no triton here; triton {triton_version} kept")
        return []
    if triton_version is None or not all(Version(triton_version) in r.specifier for r in pins):
        wanted = ", ".join(str(r.specifier) for r in pins)
        return [f"triton {triton_version} does not match torch {torch_version}, which pins "
                f"triton{wanted}: keep the image's triton (scripts/setup.sh pins it under "
                "LLMUX_TORCH=image)"]
    return []


def build(args: argparse.Namespace) -> int:
    problems = check_imports(args.require_cuda_torch)
    for kind in KERNEL_USES:
        if problems:
            break
        with tempfile.TemporaryDirectory(prefix="llmux-empty-kernels-") as empty:
            verdict, what, detail = lookup(kind, Path(empty))
        if verdict == "missing":
            say("ok", f"looking up {what} runs offline (an empty cache answers: not cached)")
        else:
            problems.append(f"looking up {what} offline in an empty cache answered {verdict!r} "
                            f"instead of 'not cached': {detail}")
    for line in problems:
        say("FAIL", line)
    return 1 if problems else 0


# --------------------------------------------------------------------------- kernels

# The hub kernels transformers runs on CUDA and fetches at load or first use, by the
# quantisation that needs them. Each is looked up the way the transformers plugin does.
KERNEL_USES = {
    "mxfp4": "MXFP4 kernels",  # gpt-oss's experts, at load
    "fp8": "fine-grained FP8 kernels",  # FP8 linears (Qwen3.5 FP8), at the first forward
}


def kernel_spec(kind: str) -> tuple[str, int | None]:
    """(repo, version) of a hub kernel, named as the transformers plugin names them."""
    if kind == "mxfp4":
        from llmux_transformers.cuda_kernels import MXFP4_KERNELS

        return MXFP4_KERNELS, 1
    from transformers.integrations.hub_kernels import _HUB_KERNEL_MAPPING

    entry = _HUB_KERNEL_MAPPING["finegrained-fp8"]
    return entry["repo_id"], entry.get("version")


def default_cache() -> Path:
    """Where the plugin looks when a model sets no options.kernels_dir."""
    for name in ("LLMUX_KERNELS_DIR", "KERNELS_CACHE", "HF_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(hf_home) / "hub"


def lookup(kind: str, cache: Path) -> tuple[str, str, str]:
    """Look the ``kind`` kernels up in ``cache``, offline, in a fresh interpreter.

    ``kernels`` reads its cache directory once, at import, so each lookup gets its own
    process. Returns (verdict, what, detail): verdict "ok" or "missing", "old-layout",
    "online", "no-package", "unusable"; what names the repository and version.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KERNELS_CACHE": str(cache),
           "LLMUX_KERNELS_DIR": str(cache)}
    what = f"the {KERNEL_USES[kind]}"
    try:
        proc = subprocess.run([sys.executable, __file__, "_lookup", kind], env=env, text=True,
                              capture_output=True, timeout=LOOKUP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return "unusable", what, f"the lookup took longer than {LOOKUP_TIMEOUT_S} s"
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return "unusable", what, f"the lookup process failed (status {proc.returncode}): {tail}"
    if result.get("repo"):
        what = f"the {KERNEL_USES[kind]} {result['repo']} (version {result['version']})"
    if result["ok"]:
        return "ok", what, result["where"]
    error = f"{result['type']}: {result['message']}"
    if not result["package"]:
        return "no-package", what, error
    if result["online"]:
        return "online", what, error
    folder = result["repo"].replace("/", "--")
    if (cache / f"kernels--{folder}").is_dir():
        return "unusable", what, error
    if (cache / f"models--{folder}").is_dir():
        return "old-layout", what, error
    return "missing", what, error


def _lookup_here(kind: str) -> int:
    """The child of :func:`lookup`: the plugin's call, one JSON line on stdout."""
    repo = version = None

    def report(exc: BaseException, package: bool) -> int:
        online = isinstance(exc, ConnectionError) or "offline" in type(exc).__name__.lower()
        print(json.dumps({"ok": False, "repo": repo, "version": version, "type": type(exc).__name__,
                          "online": online, "package": package,
                          "message": " ".join(str(exc).split())[:500]}))
        return 0

    try:
        from kernels import get_kernel

        repo, version = kernel_spec(kind)
    except Exception as exc:  # no `kernels`, or a transformers that names no such kernel
        return report(exc, package=False)
    try:
        module = get_kernel(repo, version=version)
    except Exception as exc:  # every failure is reported, classified by the parent
        return report(exc, package=True)
    print(json.dumps({"ok": True, "repo": repo, "version": version,
                      "where": str(getattr(module, "__file__", module))}))
    return 0


def kernel_needs(config_dir: Path) -> tuple[dict[tuple[str, Path | None], list[str]], list[str]]:
    """(kind, options.kernels_dir) -> the transformers models of models.yaml that need
    those kernels (stored in MXFP4/FP8, or quantised on load); and notes."""
    from llmux.config import load_config
    from llmux.errors import ConfigError

    try:
        config = load_config(config_dir)
    except ConfigError as exc:
        raise SystemExit(f"{PROG}: {config_dir} is invalid; run llmux check-config first:\n  "
                         + "\n  ".join(exc.errors)) from None
    needs: dict[tuple[str, Path | None], list[str]] = {}
    notes = []
    for model in config.physical.values():
        if model.backend != "transformers":
            continue
        try:
            quant = json.loads((model.location / "config.json").read_text()).get(
                "quantization_config") or {}
        except (OSError, ValueError):
            notes.append(f"{model.name}: {model.location}/config.json is not readable (not "
                         "downloaded yet?), so its kernels are not checked")
            continue
        kernels_dir = model.options.get("kernels_dir")
        for kind in KERNEL_USES:
            if kind in (quant.get("quant_method"), model.options.get("quantize")):
                needs.setdefault((kind, Path(kernels_dir) if kernels_dir else None),
                                 []).append(model.name)
    return needs, notes


def explain(verdict: str, what: str, cache: Path, who: str, detail: str) -> str:
    if verdict == "missing":
        return (f"{what} are not in {cache} and the hub is offline, so {who} will not load "
                f"as configured: {DOWNLOAD_HINT}")
    if verdict == "old-layout":
        return (f"{cache} holds {what} in the Hub's old model layout, which this `kernels` "
                f"does not read offline ({detail}); upgrade huggingface_hub on the host "
                "(python3 -m pip install --user 'huggingface_hub>=1.10'), remove "
                f"{cache}/.kernels and run scripts/download_models.sh again")
    if verdict == "no-package":
        return (f"{what} cannot be looked up: {detail}, so {who} will not load as configured; "
                "the image installs `kernels` with the plugin extras (LLMUX_EXTRAS in "
                "deploy/Containerfile) and checks it with llmux-selfcheck build")
    if verdict == "online":
        return (f"looking up {what} tried the network although HF_HUB_OFFLINE=1 ({detail}): "
                "this `kernels` cannot resolve a version from a local cache")
    return (f"{what} are in {cache} but do not load offline ({detail}), so {who} will not "
            "load as configured. Run scripts/download_models.sh again; if that does not help, "
            "see docs/deploy.md, 'Offline kernels'")


def kernels(args: argparse.Namespace) -> int:
    fallback = Path(args.kernels_dir) if args.kernels_dir else default_cache()
    if args.config:
        needs, notes = kernel_needs(Path(args.config))
        for note in notes:
            say("note", note)
        if not needs:
            which = "downloaded model" if notes else "model"
            say("ok", f"no {which} in {args.config}/models.yaml needs hub kernels")
            return 0
    else:
        needs = {("mxfp4", None): ["MXFP4 models (gpt-oss)"],
                 ("fp8", None): ["FP8 models (Qwen3.5 FP8)"]}

    failed = False
    for (kind, kernels_dir), names in needs.items():
        cache = kernels_dir or fallback
        verdict, what, detail = lookup(kind, cache)
        if verdict == "ok":
            say("ok", f"{what} load offline from {cache} ({detail}), for {', '.join(names)}")
            continue
        failed = True
        say("WARNING" if args.warn_only else "FAIL",
            explain(verdict, what, cache, ", ".join(names), detail))
    return 1 if failed and not args.warn_only else 0


# --------------------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="image build: the packages import and fit together")
    b.add_argument("--require-cuda-torch", action="store_true",
                   help="fail when torch is a CPU build")
    b.set_defaults(func=build)
    k = sub.add_parser("kernels", help="container start: the hub kernels load offline")
    k.add_argument("--config", metavar="DIR",
                   help="check only what the models of DIR/models.yaml need")
    k.add_argument("--kernels-dir", metavar="DIR",
                   help="the cache for models without options.kernels_dir "
                        "(default: $LLMUX_KERNELS_DIR, $KERNELS_CACHE, the HF cache)")
    k.add_argument("--warn-only", action="store_true", help="report, but exit 0")
    k.set_defaults(func=kernels)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "_lookup":
        return _lookup_here(argv[1])
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
