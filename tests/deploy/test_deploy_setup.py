"""scripts/setup.sh as the image runs it (LLMUX_TORCH=image, LLMUX_EXTRAS), against a fake
python that records the pip call and the constraints it was given."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
from pathlib import Path

import pytest

from .helpers import REPO, FakeBin

SCRIPT = REPO / "scripts" / "setup.sh"
IMAGE_EXTRAS = "llmux_transformers[mxfp4,compressed-tensors] transformers[kernels]"
#: Every runtime plugin setup.sh installs: each folder under plugins/ with a pyproject.toml.
PLUGINS = sorted(p.name for p in (REPO / "plugins").glob("llmux_*")
                 if (p / "pyproject.toml").is_file())

# pip: record; "-": the pin script runs for real (this interpreter's installed packages
# stand in for the image's), the torchaudio repair does nothing; "-c": the version probes.
PYTHON = r"""
if argv[:2] == ["-m", "pip"]:
    with open(os.path.join(STATE, "constraints.txt"), "w") as out:
        out.write(open(argv[argv.index("-c") + 1]).read())
    sys.exit(0)
if argv == ["-"]:
    source = sys.stdin.read()
    if "torchaudio" in source and "find_spec" in source:
        sys.exit(0)
    exec(compile(source, "<stdin>", "exec"))
    sys.exit(0)
if argv[:1] == ["-c"]:
    print("0.1.7" if "chatterbox-tts" in argv[1] else "llmux 0.1.0 on Python 3")
"""


@pytest.fixture
def setup(fakebin: FakeBin):
    fakebin.add("python", PYTHON)

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        base = {"PYTHON": str(fakebin.dir / "python"), "LLMUX_VENV": "none"}
        return subprocess.run(["bash", str(SCRIPT), *args], check=False, capture_output=True,
                              text=True, env=fakebin.env(**{**base, **env}))

    return run


def pip_calls(fakebin: FakeBin) -> list[list[str]]:
    return [c[1:] for c in fakebin.calls("python") if c[1:3] == ["-m", "pip"]]


def without_constraints_path(call: list[str]) -> list[str]:
    i = call.index("-c")
    return call[:i + 1] + ["<constraints>"] + call[i + 2:]


def installed_pins() -> list[str]:
    pins = []
    for name in ("torch", "torchaudio", "torchvision", "triton"):
        try:
            pins.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            pass
    return pins


def test_the_image_install_adds_the_plugin_extras_and_keeps_the_torch_stack(setup, fakebin):
    result = setup(LLMUX_TORCH="image", LLMUX_DEV="0", LLMUX_EXTRAS=IMAGE_EXTRAS)
    assert result.returncode == 0, result.stderr
    assert [without_constraints_path(c) for c in pip_calls(fakebin)] == [[
        "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c", "<constraints>",
        ".", *(f"plugins/{name}" + ("[mxfp4,compressed-tensors]"
                                   if name == "llmux_transformers" else "")
               for name in PLUGINS),
        "transformers[kernels]",
    ]]
    constraints = (fakebin.state / "constraints.txt").read_text().splitlines()
    source = (REPO / "scripts/constraints.txt").read_text().splitlines()
    assert constraints[:len(source) - 1] == [line for line in source
                                             if not line.startswith("torch==")]
    assert constraints[len(source) - 1:] == installed_pins()
    assert f"setup: keeping the image's {' '.join(installed_pins())}" in result.stdout


def test_development_installs_are_unchanged(setup, fakebin):
    result = setup()
    assert result.returncode == 0, result.stderr
    call = pip_calls(fakebin)[0]
    assert call[call.index("-c") + 2:] == [
        "-e", ".", *(arg for name in PLUGINS for arg in ("-e", f"plugins/{name}"))]
    assert {"llmux_chatterbox", "llmux_llamacpp", "llmux_transformers"} <= set(PLUGINS)
    assert (fakebin.state / "constraints.txt").read_text() == (
        REPO / "scripts/constraints.txt").read_text()


def test_extras_on_an_editable_plugin(setup, fakebin):
    assert setup(LLMUX_EXTRAS="llmux_transformers[mxfp4]").returncode == 0
    call = pip_calls(fakebin)[0]
    assert "plugins/llmux_transformers[mxfp4]" in call
    assert "plugins/llmux_transformers" not in call


@pytest.mark.parametrize("extras, message", [
    ("llmux_transfomers[mxfp4]",
     "setup: LLMUX_EXTRAS: 'llmux_transfomers[mxfp4]' names no plugin under plugins/ "
     f"({' '.join(PLUGINS)})"),
    ("llmux_transformers",
     "setup: LLMUX_EXTRAS: 'llmux_transformers' should be llmux_transformers[extra,...]"),
    ("llmux_transformers[mxfp4", "should be llmux_transformers[extra,...]"),
])
def test_a_wrong_extra_stops_before_pip(setup, fakebin, extras, message):
    result = setup(LLMUX_EXTRAS=extras)
    assert result.returncode == 2
    assert message in result.stderr
    assert pip_calls(fakebin) == []


def test_the_containerfile_passes_what_this_test_checks():
    text = (REPO / "deploy/Containerfile").read_text()
    assert f'LLMUX_EXTRAS="{IMAGE_EXTRAS}"' in text
    assert Path(SCRIPT).stat().st_mode & 0o111
