"""deploy/selfcheck.py (llmux-selfcheck) and deploy/entrypoint.sh, without a container engine.

The self-check runs here against fake `kernels`, `triton` and `compressed_tensors` packages
put first on PYTHONPATH: the fake `kernels.get_kernel` resolves a version from the cache
the way the real one does offline (``refs/v<N>`` -> ``snapshots/<commit>``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, FakeBin

SELFCHECK = REPO / "deploy" / "selfcheck.py"
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
MXFP4 = "kernels-community/gpt-oss-triton-kernels"
FP8 = "kernels-community/finegrained-fp8"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

FAKE_KERNELS = r'''
import os, types
from pathlib import Path

CACHE_DIR = os.environ.get("KERNELS_CACHE")  # read once, at import, like the real package


def get_kernel(repo_id, revision=None, version=None, **kwargs):
    if os.environ.get("FAKE_KERNELS_ONLINE") or os.environ.get("HF_HUB_OFFLINE") != "1":
        raise ConnectionError(f"would fetch {repo_id} from the Hub")
    folder = Path(CACHE_DIR) / ("kernels--" + repo_id.replace("/", "--"))
    ref = folder / "refs" / f"v{version}"
    if not ref.is_file():
        raise ValueError(f"Version {version} of '{repo_id}' is not available in the local "
                         "cache and Hugging Face Hub is in offline mode.")
    snapshot = folder / "snapshots" / ref.read_text().strip()
    if not (snapshot / "build").is_dir():
        raise FileNotFoundError(f"Cannot find a local snapshot for {repo_id}")
    module = types.ModuleType(repo_id)
    module.__file__ = str(snapshot / "build" / "__init__.py")
    return module


class _Stub:
    """What transformers' hub_kernels imports from `kernels` besides get_kernel."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return self


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Stub
'''


def transformers_kernels_window() -> tuple[str, str]:
    from transformers.utils import import_utils

    return import_utils.KERNELS_MIN_VERSION, getattr(import_utils, "KERNELS_MAX_VERSION", "99")


def dist_info(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def make_site(root: Path, *, kernels_version: str | None = None, broken: tuple = ()) -> Path:
    """A directory of fake packages. ``broken`` modules raise ModuleNotFoundError on import
    (whatever the environment has); the others are minimal stand-ins with metadata."""
    site = root / "site"
    site.mkdir()
    kernels_version = kernels_version or transformers_kernels_window()[0]
    fakes = {"kernels": (kernels_version, FAKE_KERNELS), "triton": ("3.6.0", ""),
             "compressed_tensors": ("0.20.1", "")}
    for module, (version, body) in fakes.items():
        package = site / module
        package.mkdir()
        if module in broken:
            body = f'raise ModuleNotFoundError("No module named {module!r}")\n'
        else:
            dist_info(site, module.replace("_", "-"), version)
        (package / "__init__.py").write_text(body)
    return site


def run_selfcheck(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("LLMUX_", "HF_", "KERNELS_", "FAKE_"))}
    base.update(PYTHONPATH=str(site), **env)
    return subprocess.run([sys.executable, str(SELFCHECK), *args], check=False,
                          capture_output=True, text=True, env=base, timeout=300)


def fill_cache(cache: Path, repo: str, version: int = 1, *, build: bool = True) -> None:
    """The Hugging Face cache layout `hf download --repo-type kernel --cache-dir` leaves."""
    folder = cache / ("kernels--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / f"v{version}").write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    if build:
        (snapshot / "build").mkdir()


# --------------------------------------------------------------------------- build


def test_build_fails_clearly_without_the_plugin_extras(tmp_path):
    site = make_site(tmp_path, broken=("kernels", "triton", "compressed_tensors"))
    result = run_selfcheck(site, "build")
    assert result.returncode == 1, result.stdout + result.stderr
    fails = [line for line in result.stdout.splitlines() if ": FAIL: " in line]
    assert [line.split("`")[1] for line in fails] == [
        "import triton", "import kernels", "import compressed_tensors"]
    assert all("LLMUX_EXTRAS in deploy/Containerfile" in line for line in fails)


def test_build_passes_when_the_stack_fits_together(tmp_path):
    result = run_selfcheck(make_site(tmp_path), "build")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "(sees kernels and triton)" in out and "triton 3.6.0" in out
    assert f"looking up the MXFP4 kernels {MXFP4} (version 1) runs offline" in out
    assert f"looking up the fine-grained FP8 kernels {FP8} (version 4) runs offline" in out
    assert "FAIL" not in out


def test_build_names_a_kernels_release_transformers_refuses(tmp_path):
    low, high = transformers_kernels_window()
    result = run_selfcheck(make_site(tmp_path, kernels_version=high), "build")
    assert result.returncode == 1
    assert (f"does not accept kernels {high} (it wants >={low},<{high}): install "
            "transformers[kernels]") in result.stdout


def test_build_fails_when_the_lookup_would_go_online(tmp_path):
    result = run_selfcheck(make_site(tmp_path), "build", FAKE_KERNELS_ONLINE="1")
    assert result.returncode == 1
    assert "offline in an empty cache answered 'online' instead of 'not cached'" in result.stdout


def test_build_can_demand_a_cuda_torch(tmp_path):
    import torch

    result = run_selfcheck(make_site(tmp_path), "build", "--require-cuda-torch")
    if torch.version.cuda:
        assert result.returncode == 0, result.stdout
    else:
        assert result.returncode == 1
        assert "is a CPU build: the image's CUDA torch was replaced" in result.stdout


@pytest.fixture(scope="module")
def selfcheck_module():
    spec = importlib.util.spec_from_file_location("llmux_selfcheck", SELFCHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("pins, installed, ok", [
    (['triton==3.6.0; python_version >= "3"'], "3.6.0", True),
    (['triton==3.6.0; python_version >= "3"'], "3.7.0", False),
    (['triton==3.6.0'], None, False),
    (['triton==3.6.0; platform_system == "Nowhere"'], "3.7.0", True),  # marker not for here
    (['triton>=3.0; extra == "triton"'], "2.0.0", True),  # an extra's pin, not torch's own
    ([], "3.7.0", True),  # the CPU torch of development pins none
])
def test_triton_must_match_the_torch_pin(selfcheck_module, monkeypatch, pins, installed, ok):
    monkeypatch.setattr(selfcheck_module.md, "requires", lambda name: ["filelock", *pins])
    problems = selfcheck_module.check_triton_pin("2.11.0+cu128", installed)
    assert (problems == []) is ok
    if not ok:
        assert problems == [f"triton {installed} does not match torch 2.11.0+cu128, which pins "
                            "triton==3.6.0: keep the image's triton (scripts/setup.sh pins it "
                            "under LLMUX_TORCH=image)"]


# --------------------------------------------------------------------------- kernels


def test_kernels_found_offline_in_the_cache(tmp_path):
    cache = tmp_path / "hf-cache"
    fill_cache(cache, MXFP4, 1)
    fill_cache(cache, FP8, 4)
    result = run_selfcheck(make_site(tmp_path), "kernels", LLMUX_KERNELS_DIR=str(cache))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"llmux-selfcheck: ok: the MXFP4 kernels {MXFP4} (version 1) load offline from {cache} "
        f"({cache}/kernels--{MXFP4.replace('/', '--')}/snapshots/{COMMIT}/build/__init__.py), "
        "for MXFP4 models (gpt-oss)",
        f"llmux-selfcheck: ok: the fine-grained FP8 kernels {FP8} (version 4) load offline from "
        f"{cache} ({cache}/kernels--{FP8.replace('/', '--')}/snapshots/{COMMIT}/build/"
        "__init__.py), for FP8 models (Qwen3.5 FP8)",
    ]


def test_missing_kernels_name_the_download_script(tmp_path):
    cache = tmp_path / "hf-cache"
    fill_cache(cache, FP8, 4)
    site = make_site(tmp_path)
    result = run_selfcheck(site, "kernels", "--kernels-dir", str(cache))
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        f"llmux-selfcheck: FAIL: the MXFP4 kernels {MXFP4} (version 1) are not in {cache} and "
        "the hub is offline, so MXFP4 models (gpt-oss) will not load as configured: fetch them "
        "on the host with scripts/download_models.sh (it writes MODELS_DIR/hf-cache, mounted "
        "in the container as /models/hf-cache), then restart the service")
    assert ": ok: the fine-grained FP8 kernels" in result.stdout
    warned = run_selfcheck(site, "kernels", "--kernels-dir", str(cache), "--warn-only")
    assert warned.returncode == 0
    assert warned.stdout.startswith("llmux-selfcheck: WARNING: the MXFP4 kernels")


def test_kernels_present_but_not_loadable(tmp_path):
    cache = tmp_path / "hf-cache"
    fill_cache(cache, MXFP4, 1, build=False)
    result = run_selfcheck(make_site(tmp_path), "kernels", KERNELS_CACHE=str(cache))
    assert result.returncode == 1
    assert (f"FAIL: the MXFP4 kernels {MXFP4} (version 1) are in {cache} but do not load "
            f"offline (FileNotFoundError: Cannot find a local snapshot for {MXFP4})"
            ) in result.stdout


def test_kernels_in_the_old_model_layout(tmp_path):
    cache = tmp_path / "hf-cache"
    (cache / f"models--{MXFP4.replace('/', '--')}/refs").mkdir(parents=True)
    result = run_selfcheck(make_site(tmp_path), "kernels", LLMUX_KERNELS_DIR=str(cache))
    assert result.returncode == 1
    assert "in the Hub's old model layout" in result.stdout
    assert "'huggingface_hub>=1.10'" in result.stdout


def test_kernels_without_the_kernels_package(tmp_path):
    site = make_site(tmp_path, broken=("kernels",))
    result = run_selfcheck(site, "kernels", LLMUX_KERNELS_DIR=str(tmp_path))
    assert result.returncode == 1
    assert ("FAIL: the MXFP4 kernels cannot be looked up: ModuleNotFoundError: No module named "
            "'kernels', so MXFP4 models (gpt-oss) will not load as configured; the image "
            "installs `kernels` with the plugin extras") in result.stdout


def write_config(tmp_path: Path, physical: dict) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    models = {"models_dir": str(tmp_path / "models"), "physical": physical,
              "virtual": {f"v-{name}": {"physical": name} for name in physical}}
    (config / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    (config / "api_keys.yaml").write_text(yaml.safe_dump(
        {"keys": [{"name": "t", "key": "sk-test-" + "0" * 24}]}))
    return config


def checkpoint(tmp_path: Path, path: str, quant_method: str | None) -> None:
    folder = tmp_path / "models" / path
    folder.mkdir(parents=True)
    config = {"model_type": "x"}
    if quant_method:
        config["quantization_config"] = {"quant_method": quant_method}
    (folder / "config.json").write_text(json.dumps(config))


def llm(path: str, **options) -> dict:
    return {"type": "llm", "backend": "transformers", "path": path, "vram_gb": 1,
            "chat_format": "plain", "options": options}


def test_with_a_config_only_what_the_models_need_is_checked(tmp_path):
    own = tmp_path / "own-kernels"
    fill_cache(own, MXFP4, 1)
    checkpoint(tmp_path, "gpt-oss", "mxfp4")
    checkpoint(tmp_path, "plain", None)
    config = write_config(tmp_path, {
        "gpt-oss": llm("gpt-oss", kernels_dir=str(own)),  # a model's own cache wins
        "plain": llm("plain"),
        "absent": llm("absent"),
        "tts": {"type": "tts", "backend": "echo", "path": "tts", "vram_gb": 1},
    })
    result = run_selfcheck(make_site(tmp_path), "kernels", "--config", str(config),
                           LLMUX_KERNELS_DIR=str(tmp_path / "empty"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"llmux-selfcheck: note: absent: {tmp_path}/models/absent/config.json "
                        "is not readable (not downloaded yet?), so its kernels are not checked")
    assert lines[1].startswith(f"llmux-selfcheck: ok: the MXFP4 kernels {MXFP4} (version 1) "
                               f"load offline from {own} ")
    assert lines[1].endswith("for gpt-oss")
    assert len(lines) == 2  # nothing needs the FP8 kernels


def test_with_a_config_quantise_on_load_needs_kernels_too(tmp_path):
    checkpoint(tmp_path, "qwen", None)
    config = write_config(tmp_path, {"qwen": llm("qwen", quantize="fp8")})
    result = run_selfcheck(make_site(tmp_path), "kernels", "--config", str(config),
                           LLMUX_KERNELS_DIR=str(tmp_path / "empty"))
    assert result.returncode == 1
    assert f"the fine-grained FP8 kernels {FP8} (version 4) are not in" in result.stdout
    assert "so qwen will not load as configured" in result.stdout


def test_with_a_config_that_needs_no_kernels(tmp_path):
    checkpoint(tmp_path, "plain", None)
    config = write_config(tmp_path, {"plain": llm("plain")})
    result = run_selfcheck(make_site(tmp_path), "kernels", "--config", str(config))
    assert result.returncode == 0
    assert result.stdout == (f"llmux-selfcheck: ok: no model in {config}/models.yaml needs "
                             "hub kernels\n")


def test_download_script_fills_the_cache_the_selfcheck_reads(tmp_path, fakebin):
    """End to end on the host side: download_models.sh -> MODELS/hf-cache -> the lookup."""
    from .test_deploy_download import HF

    fakebin.add("hf", HF + SNAPSHOT)
    models = tmp_path / "models"
    config = write_config(tmp_path, {"t": {"type": "tts", "backend": "echo", "path": "t",
                                           "vram_gb": 1, "source": {"repo": "o/t"}}})
    env = fakebin.env(HOME=str(tmp_path), LLMUX_PYTHON=sys.executable, LLMUX_MIN_FREE_GB="0")
    result = subprocess.run(["bash", str(REPO / "scripts/download_models.sh"), "--config",
                             str(config), "--models-dir", str(models)], check=False,
                            capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    assert f"Hub kernels are in {models}/hf-cache" in result.stdout
    # the image's ENV points the lookup at the models volume's hf-cache
    check = run_selfcheck(make_site(tmp_path), "kernels",
                          LLMUX_KERNELS_DIR=str(models / "hf-cache"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": ok: ") == 2


# The fake hf of test_deploy_download writes refs/<revision>; a snapshot completes the layout.
SNAPSHOT = r"""
if "--cache-dir" in options:
    folder = os.path.join(options["--cache-dir"][0], "kernels--" + repo.replace("/", "--"))
    os.makedirs(os.path.join(folder, "snapshots", "0" * 40, "build"), exist_ok=True)
"""


# --------------------------------------------------------------------------- entry point

LLMUX = r"""
if argv[:1] == ["check-config"]:
    sys.exit(int(os.environ.get("FAKE_CHECK_STATUS", "0")))
if argv[:1] == ["serve"]:
    sys.exit(int(os.environ.get("FAKE_SERVE_STATUS", "0")))
"""


@pytest.fixture
def entry(fakebin: FakeBin):
    fakebin.add("llmux", LLMUX)
    fakebin.add("llmux-selfcheck")

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", str(ENTRYPOINT), *args], check=False, capture_output=True,
                              text=True, env=fakebin.env(**env))

    return run


def test_entrypoint_checks_then_serves(entry, fakebin):
    result = entry("--log-level", "debug")
    assert result.returncode == 0, result.stderr
    assert fakebin.calls() == [
        ["llmux", "check-config", "/config"],
        ["llmux-selfcheck", "kernels", "--config", "/config", "--warn-only"],
        ["llmux", "serve", "--config", "/config", "--host", "0.0.0.0", "--port", "8081",
         "--log-level", "debug"],
    ]


def test_entrypoint_stops_with_78_on_an_invalid_configuration(entry, fakebin):
    result = entry(FAKE_CHECK_STATUS="1", LLMUX_CONFIG_DIR="/etc/llmux")
    assert result.returncode == 78
    assert fakebin.calls() == [["llmux", "check-config", "/etc/llmux"]]
    assert "llmux-entrypoint: the configuration in /etc/llmux is invalid" in result.stderr
    assert "reset-failed container-llmux_ctr.service" in result.stderr
    assert "the service is not restarted for this" in result.stderr


def test_entrypoint_passes_serves_status_on_and_can_skip_the_kernels_check(entry, fakebin):
    result = entry(FAKE_SERVE_STATUS="3", LLMUX_SKIP_KERNELS_CHECK="1")
    assert result.returncode == 3
    assert [c[:2] for c in fakebin.calls()] == [["llmux", "check-config"], ["llmux", "serve"]]
