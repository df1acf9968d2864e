"""scripts/download_models.sh against a fake `hf`, and `llmux sources` that feeds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, FakeBin

SCRIPT = REPO / "scripts" / "download_models.sh"
KEY = "sk-test-0000000000000000"

HF = r"""
if argv[:1] == ["download"] and "--help" in argv:
    print("--type, --repo-type [model|dataset|space|kernel]"); sys.exit(0)
repo = argv[1]
if repo == os.environ.get("FAKE_HF_DENY"):
    print(f"403 Client Error. Cannot access gated repo for url https://huggingface.co/{repo}."
          " Access to model is restricted.", file=sys.stderr)
    sys.exit(1)
options, i = {}, 2
while i < len(argv):
    options.setdefault(argv[i], []).append(argv[i + 1]); i += 2
if "--local-dir" in options:
    target = options["--local-dir"][0]
    for name in options.get("--include", ["config.json", "model.safetensors"]):
        with open(os.path.join(target, name), "w") as f:
            f.write(repo)
else:
    cache = options["--cache-dir"][0]
    folder = os.path.join(cache, "kernels--" + repo.replace("/", "--"), "refs")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, options["--revision"][0]), "w") as f:
        f.write("0" * 40)
"""


def physical(path: str, source: dict) -> dict:
    return {"type": "tts", "backend": "echo", "path": path, "vram_gb": 1, "source": source}


MODELS = {
    "physical": {
        "whole": physical("whole-dir", {"repo": "org/whole", "revision": "main"}),
        "some": physical("some-dir", {"repo": "org/many-quants", "revision": "abc123",
                                      "include": ["a-Q8_0.gguf", "mmproj-BF16.gguf"]}),
        "gated": physical("gated-dir", {"repo": "org/gated", "revision": "main", "gated": True}),
        "local": {"type": "tts", "backend": "echo", "path": "local", "vram_gb": 1},
    },
    "virtual": {"v": {"physical": "whole"}},
}


@pytest.fixture
def setup(tmp_path: Path, fakebin: FakeBin):
    fakebin.add("hf", HF)
    home = tmp_path / "home"
    token = home / ".cache/huggingface/token"
    token.parent.mkdir(parents=True)
    token.write_text("hf_" + "x" * 30)
    config = tmp_path / "config"
    config.mkdir()
    (config / "models.yaml").write_text(yaml.safe_dump(MODELS, sort_keys=False))
    (config / "api_keys.yaml").write_text(yaml.safe_dump({"keys": [{"name": "t", "key": KEY}]}))
    models = tmp_path / "models"

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        base = {"HOME": str(home), "LLMUX_PYTHON": sys.executable, "LLMUX_MIN_FREE_GB": "0"}
        return subprocess.run(
            ["bash", str(SCRIPT), "--config", str(config), "--models-dir", str(models), *args],
            check=False, capture_output=True, text=True, cwd=REPO, env=fakebin.env(**{**base, **env}))

    return run, models, config, token


def downloads(fakebin: FakeBin) -> list[list[str]]:
    return [c for c in fakebin.calls("hf") if "--help" not in c]


def test_fresh_download_fetches_every_source(setup, fakebin):
    run, models, _, _ = setup
    result = run()
    assert result.returncode == 0, result.stderr
    assert downloads(fakebin) == [
        ["hf", "download", "org/whole", "--revision", "main", "--local-dir", f"{models}/whole-dir"],
        ["hf", "download", "org/many-quants", "--revision", "abc123",
         "--local-dir", f"{models}/some-dir",
         "--include", "a-Q8_0.gguf", "--include", "mmproj-BF16.gguf"],
        ["hf", "download", "org/gated", "--revision", "main", "--local-dir", f"{models}/gated-dir"],
        ["hf", "download", "kernels-community/gpt-oss-triton-kernels", "--repo-type", "kernel",
         "--revision", "v1", "--cache-dir", f"{models}/hf-cache"],
        ["hf", "download", "kernels-community/finegrained-fp8", "--repo-type", "kernel",
         "--revision", "v4", "--cache-dir", f"{models}/hf-cache"],
    ]
    # only the included files of the GGUF repo
    assert sorted(p.name for p in (models / "some-dir").iterdir()) == [
        ".llmux-download-complete", "a-Q8_0.gguf", "mmproj-BF16.gguf"]
    for path in ("whole-dir", "some-dir", "gated-dir"):
        assert (models / path / ".llmux-download-complete").exists()
    assert (models / "hf-cache/kernels--kernels-community--gpt-oss-triton-kernels/refs/v1").exists()
    assert (models / "hf-cache/kernels--kernels-community--finegrained-fp8/refs/v4").exists()
    assert "[1/5] whole: org/whole@main" in result.stdout
    assert "[4/5] kernel kernels-community/gpt-oss-triton-kernels: complete" in result.stdout
    assert "[5/5] kernel kernels-community/finegrained-fp8: complete" in result.stdout
    assert f"Hub kernels are in {models}/hf-cache" in result.stdout


def test_kernels_dir_moves_the_kernels_cache(setup, fakebin, tmp_path):
    run, models, _, _ = setup
    elsewhere = tmp_path / "kernels"
    result = run("--kernels-dir", str(elsewhere))
    assert result.returncode == 0, result.stderr
    caches = [c[c.index("--cache-dir") + 1] for c in downloads(fakebin) if "--cache-dir" in c]
    assert caches == [str(elsewhere)] * 2
    assert not (models / "hf-cache").exists()
    fakebin.reset()
    assert run(LLMUX_KERNELS_DIR=str(elsewhere)).returncode == 0  # the same, from the env
    assert fakebin.calls("hf") == []


def test_an_old_hf_is_told_to_upgrade(setup, fakebin):
    run, _, _, _ = setup
    fakebin.add("hf", HF.replace("[model|dataset|space|kernel]", "[model|dataset|space]"))
    result = run()
    assert result.returncode == 0, result.stderr
    assert "knows no --repo-type kernel" in result.stdout
    assert all(c[c.index("--repo-type") + 1] == "model"
               for c in downloads(fakebin) if "--repo-type" in c)


def test_second_run_skips_complete_models(setup, fakebin):
    run, _, _, _ = setup
    assert run().returncode == 0
    fakebin.reset()
    result = run()
    assert result.returncode == 0, result.stderr
    assert fakebin.calls("hf") == []
    assert "nothing to do" in result.stdout


def test_partial_download_is_resumed_alone(setup, fakebin):
    run, models, _, _ = setup
    assert run().returncode == 0
    (models / "some-dir/.llmux-download-complete").unlink()  # interrupted before the marker
    (models / "some-dir/mmproj-BF16.gguf").unlink()
    fakebin.reset()
    result = run()
    assert result.returncode == 0, result.stderr
    assert [c[2] for c in downloads(fakebin)] == ["org/many-quants"]
    assert (models / "some-dir/mmproj-BF16.gguf").exists()


def test_a_changed_source_downloads_again(setup, fakebin):
    run, _, config, _ = setup
    assert run().returncode == 0
    changed = yaml.safe_load((config / "models.yaml").read_text())
    changed["physical"]["whole"]["source"]["revision"] = "v2"
    (config / "models.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    fakebin.reset()
    assert run().returncode == 0
    assert downloads(fakebin) == [["hf", "download", "org/whole", "--revision", "v2",
                                   "--local-dir", str(setup[1] / "whole-dir")]]


def test_missing_token_fails_before_any_download(setup, fakebin):
    run, _, _, token = setup
    token.unlink()
    result = run()
    assert result.returncode == 1
    assert "no Hugging Face token found" in result.stderr
    assert "gated (org/gated)" in result.stderr
    assert "hf auth login" in result.stderr
    assert fakebin.calls("hf") == []


def test_token_from_the_environment_is_enough(setup, fakebin):
    run, _, _, token = setup
    token.unlink()
    assert run(HF_TOKEN="hf_" + "y" * 30).returncode == 0


def test_no_token_needed_when_the_gated_model_is_complete(setup, fakebin):
    run, models, _, token = setup
    assert run().returncode == 0
    token.unlink()
    (models / "whole-dir/.llmux-download-complete").unlink()
    fakebin.reset()
    assert run().returncode == 0
    assert [c[2] for c in downloads(fakebin)] == ["org/whole"]


def test_terms_not_accepted_is_explained(setup, fakebin):
    run, models, _, _ = setup
    result = run(FAKE_HF_DENY="org/gated")
    assert result.returncode == 1
    assert "access to org/gated was refused" in result.stderr
    assert "https://huggingface.co/org/gated" in result.stderr
    assert not (models / "gated-dir/.llmux-download-complete").exists()
    assert (models / "whole-dir/.llmux-download-complete").exists()  # earlier ones stay done


def test_not_enough_space_fails_before_any_download(setup, fakebin):
    run, _, _, _ = setup
    result = run(LLMUX_MIN_FREE_GB="999999999")
    assert result.returncode == 1
    assert "GB free" in result.stderr and "--min-free-gb" in result.stderr
    assert fakebin.calls("hf") == []


def test_no_kernels_flag_and_dry_run(setup, fakebin):
    run, models, _, _ = setup
    result = run("--no-kernels", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run: hf download org/whole" in result.stdout
    assert fakebin.calls("hf") == []
    assert not (models / "whole-dir/.llmux-download-complete").exists()


def test_missing_hf_cli_is_explained(setup, fakebin):
    run, _, _, _ = setup
    result = run(HF_CLI="hf-not-installed")
    assert result.returncode == 1
    assert "pip install --user 'huggingface_hub" in result.stderr


def test_broken_models_yaml_stops_the_script(setup, fakebin):
    run, _, config, _ = setup
    (config / "models.yaml").write_text("physical: [\n")
    result = run()
    assert result.returncode == 1
    assert "invalid YAML" in result.stderr
    assert fakebin.calls("hf") == []


# --------------------------------------------------------------------------- llmux sources


def sources(config: Path, fmt: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmux.cli.sources", "--config", str(config),
                           "--format", fmt], check=False, capture_output=True, text=True, cwd=REPO)


def test_sources_tsv(setup):
    _, _, config, _ = setup
    result = sources(config, "tsv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "whole\torg/whole\tmain\twhole-dir\t-\tfalse",
        "some\torg/many-quants\tabc123\tsome-dir\ta-Q8_0.gguf,mmproj-BF16.gguf\tfalse",
        "gated\torg/gated\tmain\tgated-dir\t-\ttrue",
    ]


def test_sources_json(setup):
    _, _, config, _ = setup
    entries = json.loads(sources(config, "json").stdout)
    assert [e["name"] for e in entries] == ["whole", "some", "gated"]
    assert entries[1]["include"] == ["a-Q8_0.gguf", "mmproj-BF16.gguf"]
    assert entries[2]["gated"] is True


def test_sources_rejects_a_path_outside_models_dir(setup):
    _, _, config, _ = setup
    bad = yaml.safe_load((config / "models.yaml").read_text())
    bad["physical"]["whole"]["path"] = "../elsewhere"
    (config / "models.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    result = sources(config, "tsv")
    assert result.returncode == 1
    assert "must stay inside models_dir" in result.stderr


def test_sources_of_the_production_config():
    result = sources(REPO / "config", "json")
    assert result.returncode == 0, result.stderr
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert len(entries) == 9
    gguf = entries["qwen3.5-9b-fp8-uncensored"]
    assert gguf["include"] == [
        "Qwen3.5-9B-Uncensored-HauhauCS-Aggressive-Q8_0.gguf",
        "mmproj-Qwen3.5-9B-Uncensored-HauhauCS-Aggressive-BF16.gguf"]
    assert [n for n, e in entries.items() if e["gated"]] == ["cohere-transcribe"]
