"""API keys in ``api_keys.yaml``: generate, add, list and remove them.

The file holds secrets, so every write is atomic (a temporary file in the same directory,
then ``os.replace``) and the result has mode 0600 whatever the old file had. Other entries
are kept as they are; comments are not (the file is rewritten from its data).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from .config import KEYS_FILE

KEY_PREFIX = "llmux-"
KEY_BYTES = 32  # 256 bits of entropy from the OS's CSPRNG
FILE_MODE = 0o600
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEADER = (
    "# llmux API keys, one per client. Managed by `llmux keys add/remove`: the file is\n"
    "# rewritten on every change (comments are not kept) with mode 0600. Never commit it.\n"
)


class KeyFileError(Exception):
    """The key file cannot be read or changed; the message says what to do."""


@dataclass(frozen=True)
class KeyInfo:
    """What ``llmux keys list`` shows: never the secret."""

    name: str
    admin: bool


def keys_path(config_dir: str | os.PathLike) -> Path:
    return Path(config_dir) / KEYS_FILE


def generate_key() -> str:
    """A new random key: ``llmux-`` and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def read_entries(path: Path) -> list[dict]:
    """The ``keys`` list of ``path``; an empty list when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeyFileError(f"{path}: invalid YAML, fix or remove the file: {exc}") from exc
    if data is None:
        return []
    schema = json.loads(resources.files("llmux.schema").joinpath("api_keys.schema.json").read_text())
    problems = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
    )
    if problems:
        lines = "\n".join(
            f"  {'.'.join(str(p) for p in e.absolute_path) or '$'}: {e.message}" for e in problems
        )
        raise KeyFileError(f"{path} does not match the api_keys.yaml schema:\n{lines}")
    return [dict(entry) for entry in data["keys"]]


def list_keys(path: Path) -> list[KeyInfo]:
    return [KeyInfo(e["name"], bool(e.get("admin", False))) for e in read_entries(path)]


def add_key(path: Path, name: str, *, admin: bool = False) -> str:
    """Add a new key called ``name`` and return its secret (shown to the user once)."""
    if not _NAME.match(name):
        raise KeyFileError(
            f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' "
            "(up to 64 characters, e.g. open-webui)"
        )
    entries = read_entries(path)
    if any(e["name"] == name for e in entries):
        raise KeyFileError(
            f"a key named {name!r} already exists in {path}; "
            f"remove it first with `llmux keys remove {name}` to rotate it"
        )
    existing = {e["key"] for e in entries}
    key = generate_key()
    while key in existing:  # astronomically unlikely; keeps keys unique as load_config demands
        key = generate_key()
    entry: dict = {"name": name, "key": key}
    if admin:
        entry["admin"] = True
    write_entries(path, [*entries, entry])
    return key


def remove_key(path: Path, name: str) -> None:
    entries = read_entries(path)
    kept = [e for e in entries if e["name"] != name]
    if len(kept) == len(entries):
        known = ", ".join(e["name"] for e in entries) or "none"
        raise KeyFileError(f"no key named {name!r} in {path} (known: {known})")
    write_entries(path, kept)


def write_entries(path: Path, entries: list[dict]) -> None:
    """Write ``{"keys": entries}`` atomically with mode 0600."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot create {path.parent}: {exc.strerror or exc}") from exc
    body = _HEADER + yaml.safe_dump({"keys": entries}, sort_keys=False, allow_unicode=True)
    try:
        # mkstemp creates the file with mode 0600 already: the secret is never readable
        # by others, not even for a moment.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise KeyFileError(f"cannot write in {path.parent}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
