"""load_config(): YAML -> JSON Schema (every error, with its path) -> typed, frozen objects.

``llmux serve`` and ``llmux check-config`` both go through :func:`load_config`, so they can
never disagree about what a valid configuration is.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from .errors import ConfigError
from .runtime import Runtimes, install_hint
from .types import Behaviour, PhysicalModel, VirtualModel

MODELS_FILE = "models.yaml"
KEYS_FILE = "api_keys.yaml"
DEFAULT_MODELS_DIR = "/models"

# Which behaviour fields make sense for which model type.
BEHAVIOUR_FIELDS = {
    "llm": {"thinking", "reasoning_effort", "system_prompt_prefix", "sampling", "options"},
    "asr": {"language", "options"},
    "tts": {"language", "voice", "options"},
}


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8081
    chat_body_limit_mb: float = 20
    audio_body_limit_mb: float = 25
    max_waiting: int = 64
    metrics_require_auth: bool = False
    preload: tuple[str, ...] = ()
    stream_write_timeout_s: float = 60  # a stream whose client stops reading ends after this
    shutdown_grace_s: float = 10  # how long shutdown waits for running calls to end


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: str = field(repr=False)  # never printed
    admin: bool = False


@dataclass(frozen=True)
class Config:
    directory: Path
    models_dir: Path
    budget_gb: float | None
    reserve_gb: float
    server: ServerSettings
    physical: dict[str, PhysicalModel]
    virtual: dict[str, VirtualModel]
    keys: tuple[ApiKey, ...]


def resolve_config_dir(cli_value: str | os.PathLike | None) -> Path:
    """``--config DIR``, then ``LLMUX_CONFIG_DIR``, then ``./config``."""
    value = cli_value or os.environ.get("LLMUX_CONFIG_DIR") or "config"
    return Path(value).expanduser().resolve()


def load_config(
    directory: str | os.PathLike,
    runtimes: Runtimes | None = None,
    *,
    missing_backends: list[str] | None = None,
) -> Config:
    """Load and validate ``models.yaml`` and ``api_keys.yaml`` from ``directory``.

    With ``runtimes``, backends and their options are checked against the installed
    plugins too; without (``--schema-only``) only the files themselves are checked.
    Raises :class:`ConfigError` listing every problem.

    A backend that no installed plugin provides is an error, unless ``missing_backends``
    is a list: then its message is appended there instead (``serve`` starts anyway and its
    models answer 503 with the install hint, while ``check-config`` reports an error).
    """
    directory = Path(directory)
    errors: list[str] = []
    models = _read_yaml(directory / MODELS_FILE, errors)
    keys = _read_yaml(directory / KEYS_FILE, errors)
    if models is not None:
        errors += _schema_errors(MODELS_FILE, models, _schema("models.schema.json"))
    if keys is not None:
        errors += _schema_errors(KEYS_FILE, keys, _schema("api_keys.schema.json"))
    if errors:
        raise ConfigError(errors)
    assert models is not None and keys is not None

    errors += _check_references(models)
    errors += _check_keys(keys)
    if runtimes is not None:
        errors += _check_backends(models, runtimes, missing_backends)
    if errors:
        raise ConfigError(errors)
    return _build(directory, models, keys)


# --------------------------------------------------------------------------- reading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that reports duplicate mapping keys instead of keeping the last one."""

    duplicates: list[str]


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            loader.duplicates.append(
                f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                f"(first defined on line {seen[key] + 1})"
            )
        else:
            seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _read_yaml(path: Path, errors: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.append(f"{path.name}: file not found in {path.parent}")
        return None
    except OSError as exc:
        errors.append(f"{path.name}: cannot read: {exc.strerror or exc}")
        return None
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        errors.append(f"{path.name}: {where}invalid YAML: {problem}")
        return None
    finally:
        loader.dispose()
    errors += [f"{path.name}: {d}" for d in loader.duplicates]
    return {} if data is None else data


def _schema(name: str) -> dict:
    return json.loads(resources.files("llmux.schema").joinpath(name).read_text())


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out


def _schema_errors(file: str, data: Any, schema: dict, prefix: tuple = ()) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    found = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for err in found:
        path = (*prefix, *err.absolute_path)
        if err.validator == "additionalProperties" and not err.absolute_path and not prefix:
            out.append(f"{file}::$: {err.message}")
            continue
        out.append(f"{file}::{json_path(path)}: {_message(err)}")
    return out


def _message(err: jsonschema.ValidationError) -> str:
    if err.validator == "enum":
        options = ", ".join(repr(v) for v in err.validator_value)
        return f"{err.instance!r} is not one of [{options}]"
    if err.validator == "type":
        return f"{err.instance!r} is not of type {err.validator_value!r}"
    return err.message


# --------------------------------------------------------------------------- cross-checks


def _check_references(models: dict) -> list[str]:
    errors = []
    physical = models["physical"]
    for name, entry in models["virtual"].items():
        target = entry["physical"]
        where = f"{MODELS_FILE}::{json_path(['virtual', name])}"
        if target not in physical:
            known = ", ".join(sorted(physical))
            errors.append(f"{where}.physical: {target!r} is not a physical model (known: {known})")
            continue
        mtype = physical[target]["type"]
        allowed = BEHAVIOUR_FIELDS[mtype]
        for key in sorted(set(entry.get("behaviour", {})) - allowed):
            errors.append(
                f"{where}.behaviour.{key}: not valid for a {mtype} model "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    for section in ("physical", "virtual"):
        lowered: dict[str, str] = {}
        for name in models[section]:
            if name.lower() in lowered:
                errors.append(
                    f"{MODELS_FILE}::{json_path([section, name])}: differs from "
                    f"{lowered[name.lower()]!r} only in case; clients could not tell them apart"
                )
            lowered.setdefault(name.lower(), name)
    for name, entry in physical.items():
        where = f"{MODELS_FILE}::{json_path(['physical', name])}"
        if entry["type"] == "llm" and "chat_format" not in entry:
            errors.append(f"{where}: an llm model needs 'chat_format' (e.g. qwen3_5, gpt_oss, plain)")
    for index, name in enumerate(models.get("server", {}).get("preload", [])):
        if name not in physical:
            errors.append(
                f"{MODELS_FILE}::{json_path(['server', 'preload', index])}: "
                f"{name!r} is not a physical model"
            )
    return errors


def _check_keys(keys: dict) -> list[str]:
    errors, names, secrets = [], set(), set()
    for index, entry in enumerate(keys["keys"]):
        where = f"{KEYS_FILE}::{json_path(['keys', index])}"
        if entry["name"] in names:
            errors.append(f"{where}.name: duplicate key name {entry['name']!r}")
        if entry["key"] in secrets:
            errors.append(f"{where}.key: the same key is given twice (use one key per client)")
        names.add(entry["name"])
        secrets.add(entry["key"])
    return errors


def _check_backends(models: dict, runtimes: Runtimes, missing: list[str] | None) -> list[str]:
    from .chatformats import ChatFormats

    formats = ChatFormats.from_plugin_manager(runtimes.pm)
    errors = []
    for name, entry in models["physical"].items():
        where = f"{MODELS_FILE}::{json_path(['physical', name])}"
        if "chat_format" in entry and entry["chat_format"] not in formats:
            errors.append(
                f"{where}.chat_format: unknown chat format {entry['chat_format']!r} "
                f"(known: {', '.join(formats.names)})"
            )
        if not runtimes.has(entry["backend"]):
            message = f"{where}.backend: {install_hint(entry['backend'], runtimes.names)}"
            (errors if missing is None else missing).append(message)
            continue
        info = runtimes.get(entry["backend"]).info
        if entry["type"] not in info.types:
            errors.append(
                f"{where}.type: backend {info.name!r} does not serve {entry['type']} models "
                f"(it serves: {', '.join(sorted(info.types))})"
            )
        errors += _schema_errors(
            MODELS_FILE, entry.get("options", {}), dict(info.options_schema),
            prefix=("physical", name, "options"),
        )
    return errors


# --------------------------------------------------------------------------- building


def _build(directory: Path, models: dict, keys: dict) -> Config:
    if os.environ.get("LLMUX_MODELS_DIR"):  # relative to where llmux runs
        models_dir = Path(os.environ["LLMUX_MODELS_DIR"]).expanduser().resolve()
    else:  # relative to the config directory
        models_dir = Path(models.get("models_dir", DEFAULT_MODELS_DIR)).expanduser()
        if not models_dir.is_absolute():
            models_dir = (directory / models_dir).resolve()
    physical = {}
    for name, e in models["physical"].items():
        caps = e.get("capabilities", {})
        physical[name] = PhysicalModel(
            name=name, type=e["type"], backend=e["backend"], path=e["path"],
            models_dir=models_dir,
            vram_gb=float(e["vram_gb"]) if e.get("vram_gb") is not None else None,
            vision=caps.get("vision", False), tools=caps.get("tools", False),
            chat_format=e.get("chat_format"), options=e.get("options", {}),
            source=e.get("source"),
        )
    virtual = {}
    for name, e in models["virtual"].items():
        b = e.get("behaviour", {})
        virtual[name] = VirtualModel(
            name=name, physical=physical[e["physical"]], description=e.get("description", ""),
            behaviour=Behaviour(
                thinking=b.get("thinking"), reasoning_effort=b.get("reasoning_effort"),
                system_prompt_prefix=b.get("system_prompt_prefix"),
                sampling=b.get("sampling", {}), language=b.get("language"),
                voice=b.get("voice"), options=b.get("options", {}),
            ),
        )
    vram = models.get("vram", {})
    server = models.get("server", {})
    return Config(
        directory=directory.resolve(),
        models_dir=models_dir,
        budget_gb=vram.get("budget_gb"),
        reserve_gb=float(vram.get("reserve_gb", 0.5)),
        server=ServerSettings(**{**server, "preload": tuple(server.get("preload", ()))}),
        physical=physical,
        virtual=virtual,
        keys=tuple(ApiKey(k["name"], k["key"], k.get("admin", False)) for k in keys["keys"]),
    )
