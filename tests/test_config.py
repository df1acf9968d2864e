"""models.yaml + api_keys.yaml: load_config and `llmux check-config` report every error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmux.config import load_config
from llmux.errors import ConfigError
from llmux.runtime import Runtimes

from .conftest import DEMO_DIR, REPO, demo_models, write_config

PROD_VIRTUAL = [
    "qwen3.5-9b-fp8-thinking", "qwen3.5-9b-fp8-instruct",
    "qwen3.5-9b-fp8-uncensored-thinking", "qwen3.5-9b-fp8-uncensored-instruct",
    "qwen3.5-4b-thinking", "qwen3.5-4b-instruct",
    "gpt-oss-20b-low", "gpt-oss-20b-medium", "gpt-oss-20b-high",
    "gpt-oss-20b-uncensored-low", "gpt-oss-20b-uncensored-medium", "gpt-oss-20b-uncensored-high",
    "cohere-transcribe", "Chatterbox", "Chatterbox-Turbo", "Chatterbox-Multilingual",
]
PROD_PHYSICAL = [
    "qwen3.5-9b-fp8", "qwen3.5-9b-fp8-uncensored", "qwen3.5-4b", "gpt-oss-20b",
    "gpt-oss-20b-uncensored", "cohere-transcribe", "chatterbox", "chatterbox-turbo",
    "chatterbox-multilingual",
]


def check_config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmux", "check-config", *args],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )


def test_production_config_has_the_16_virtual_and_9_physical_models():
    config = load_config(REPO / "config")  # schema and cross-checks, no runtimes
    assert list(config.virtual) == PROD_VIRTUAL
    assert list(config.physical) == PROD_PHYSICAL
    assert config.virtual["gpt-oss-20b-high"].behaviour.reasoning_effort == "high"
    assert config.virtual["qwen3.5-4b-instruct"].behaviour.thinking is False
    assert config.models_dir.as_posix() == "/models"


def test_check_config_production_passes_and_prints_the_mapping():
    result = check_config("config")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if " -> " in line]
    mapping = {parts[0]: (parts[2], parts[4]) for parts in lines}
    assert list(mapping) == PROD_VIRTUAL
    assert {physical for physical, _ in mapping.values()} == set(PROD_PHYSICAL)
    assert mapping["qwen3.5-9b-fp8-uncensored-thinking"] == ("qwen3.5-9b-fp8-uncensored", "llamacpp")
    assert mapping["Chatterbox-Turbo"] == ("chatterbox-turbo", "chatterbox")
    assert "16 virtual models on 9 physical models" in result.stdout


def test_check_config_demo_passes():
    result = check_config(str(DEMO_DIR))
    assert result.returncode == 0, result.stderr


def broken_models() -> dict:
    models = demo_models()
    models["physical"]["qwen3.5-4b"]["backend"] = "llamacp"  # unknown backend
    models["physical"]["gpt-oss-20b"]["type"] = "chat"  # wrong type
    models["virtual"]["qwen3.5-4b-thinking"]["physical"] = "qwen3.5-5b"  # points nowhere
    del models["physical"]["chatterbox"]["path"]  # missing field
    models["physical"]["cohere-transcribe"]["vram_gb"] = "four"  # string for a number
    return models


def test_broken_config_names_every_error_with_its_path(tmp_path):
    directory = write_config(tmp_path, broken_models())
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    assert info.value.errors == [
        "models.yaml::$.physical.chatterbox: 'path' is a required property",
        "models.yaml::$.physical.cohere-transcribe.vram_gb: 'four' is not of type 'number'",
        "models.yaml::$.physical.gpt-oss-20b.type: 'chat' is not one of ['llm', 'asr', 'tts']",
    ]


def test_reference_and_backend_errors_come_together(tmp_path, builtin_pm):
    models = broken_models()
    models["physical"]["gpt-oss-20b"]["type"] = "llm"
    models["physical"]["chatterbox"]["path"] = "chatterbox"
    models["physical"]["cohere-transcribe"]["vram_gb"] = 4
    directory = write_config(tmp_path, models)
    with pytest.raises(ConfigError) as info:
        load_config(directory, Runtimes(builtin_pm))
    known = ", ".join(sorted(models["physical"]))
    assert info.value.errors == [
        "models.yaml::$.virtual['qwen3.5-4b-thinking'].physical: 'qwen3.5-5b' is not a "
        f"physical model (known: {known})",
        "models.yaml::$.physical['qwen3.5-4b'].backend: backend 'llamacp' is not provided by "
        "any installed plugin (installed: echo)",
    ]


def test_first_party_backend_missing_names_the_package(tmp_path, builtin_pm):
    models = demo_models()
    models["physical"]["chatterbox"]["backend"] = "chatterbox"
    models["physical"]["chatterbox"].pop("options", None)
    directory = write_config(tmp_path, models)
    with pytest.raises(ConfigError) as info:
        load_config(directory, Runtimes(builtin_pm))
    assert info.value.errors == [
        "models.yaml::$.physical.chatterbox.backend: backend 'chatterbox' is not provided by "
        "any installed plugin (installed: echo); install llmux-chatterbox "
        "(pip install -e plugins/llmux_chatterbox)"
    ]
    # --schema-only accepts it: the files are fine, only the runtime is missing here.
    assert load_config(directory).physical["chatterbox"].backend == "chatterbox"


def test_cli_exits_1_and_lists_every_error(tmp_path):
    directory = write_config(tmp_path, broken_models())
    result = check_config(str(directory))
    assert result.returncode == 1
    assert f"{directory}: 3 error(s)" in result.stderr
    for path in ("$.physical.chatterbox:", "$.physical.cohere-transcribe.vram_gb:",
                 "$.physical.gpt-oss-20b.type:"):
        assert path in result.stderr


def test_behaviour_must_fit_the_model_type_and_options_the_backend(tmp_path, builtin_pm):
    models = demo_models()
    models["virtual"]["Chatterbox"]["behaviour"]["thinking"] = True
    models["physical"]["qwen3.5-4b"]["options"]["tokn_delay"] = 1
    directory = write_config(tmp_path, models)
    with pytest.raises(ConfigError) as info:
        load_config(directory, Runtimes(builtin_pm))
    assert info.value.errors == [
        "models.yaml::$.virtual.Chatterbox.behaviour.thinking: not valid for a tts model "
        "(allowed: language, options, voice)",
        "models.yaml::$.physical['qwen3.5-4b'].options: Additional properties are not allowed "
        "('tokn_delay' was unexpected)",
    ]


def test_duplicate_names_and_keys_are_errors(tmp_path):
    text = (DEMO_DIR / "models.yaml").read_text()
    text = text.replace("virtual:\n", "virtual:\n  Chatterbox:\n    physical: chatterbox\n", 1)
    (tmp_path / "models.yaml").write_text(text)
    (tmp_path / "api_keys.yaml").write_text(
        "keys:\n  - {name: a, key: aaaaaaaaaaaaaaaaaaaa}\n  - {name: a, key: aaaaaaaaaaaaaaaaaaaa}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("models.yaml: line ")
    assert "duplicate key 'Chatterbox'" in info.value.errors[0]
    (tmp_path / "models.yaml").write_text((DEMO_DIR / "models.yaml").read_text())
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.errors == [
        "api_keys.yaml::$.keys[1].name: duplicate key name 'a'",
        "api_keys.yaml::$.keys[1].key: the same key is given twice (use one key per client)",
    ]


def test_a_model_larger_than_the_budget_is_its_own_problem(tmp_path):
    """Not a configuration error (the container would restart forever): check-config passes
    and names the model that cannot be served; serve starts and that model answers 503."""
    models = demo_models()
    models["physical"]["gpt-oss-20b"]["vram_gb"] = 42
    directory = write_config(tmp_path, models)
    load_config(directory)  # valid
    result = check_config(str(directory))
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if "cannot fit" in ln)
    assert "model 'gpt-oss-20b' needs 42.00 GiB" in line
    assert "the usable budget is 15.50 GiB: it cannot be served on this GPU" in line


def test_yaml_syntax_and_missing_files(tmp_path):
    (tmp_path / "models.yaml").write_text("physical: [\n")
    result = check_config(str(tmp_path))
    assert result.returncode == 1
    assert "models.yaml: line 2, column 1: invalid YAML" in result.stderr
    assert f"api_keys.yaml: file not found in {tmp_path}" in result.stderr


def test_unknown_chat_format_names_the_known_ones(tmp_path, builtin_pm):
    models = demo_models()
    models["physical"]["gpt-oss-20b"]["chat_format"] = "harmony"
    directory = write_config(tmp_path, models)
    with pytest.raises(ConfigError) as info:
        load_config(directory, Runtimes(builtin_pm))
    assert info.value.errors == [
        "models.yaml::$.physical.gpt-oss-20b.chat_format: unknown chat format 'harmony' "
        "(known: gpt_oss, plain, qwen3_5)"
    ]
