"""The ``upstream`` backend's options (models.yaml ``options``) and the key they point at."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmux import ModelLoadError, PhysicalModel

DEFAULT_CONCURRENCY = 8  # calls one upstream model takes at once, unless options say
MAX_CONCURRENCY = 64  # the most: BackendInfo.parallel, what the worker threads are sized for

OPTIONS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["base_url"],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://",
                     "description": "the upstream's OpenAI base URL, with /v1"},
        "model": {"type": "string", "minLength": 1,
                  "description": "the upstream's model name (default: the physical name)"},
        "api_key_env": {"type": "string", "minLength": 1,
                        "description": "an environment variable holding the upstream key"},
        "api_key_file": {"type": "string", "minLength": 1,
                         "description": "a file holding the upstream key"},
        "connect_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "first_byte_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "verify_tls": {"type": "boolean"},
        "max_concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY},
        "extra_body": {"type": "object",
                       "description": "fields merged into every upstream chat request (top_k)"},
        "transcription_format": {"enum": ["verbose_json", "json"],
                                 "description": "what llmux asks an ASR upstream for: "
                                                "verbose_json (text, language, segments) or "
                                                "json (text only)"},
    },
    "not": {"required": ["api_key_env", "api_key_file"]},
}


@dataclass(frozen=True)
class Settings:
    base_url: str
    model: str
    api_key_env: str | None = None
    api_key_file: str | None = None
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 300.0
    verify_tls: bool = True
    max_concurrency: int = DEFAULT_CONCURRENCY
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    transcription_format: str = "verbose_json"

    @property
    def shown_url(self) -> str:
        """``base_url`` as messages and logs show it: without any ``user:password@``."""
        scheme, sep, rest = self.base_url.partition("://")
        host, slash, path = rest.partition("/")
        return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}"

    def api_key(self) -> str | None:
        """The upstream key, read when the model loads; never logged."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise ModelLoadError(
                    f"upstream key: environment variable {self.api_key_env} is not set")
            return key
        if self.api_key_file:
            try:
                key = Path(self.api_key_file).expanduser().read_text().strip()
            except OSError as exc:
                raise ModelLoadError(
                    f"upstream key: cannot read {self.api_key_file}: {exc.strerror}") from None
            if not key:
                raise ModelLoadError(f"upstream key: {self.api_key_file} is empty")
            return key
        return None


def settings(model: PhysicalModel) -> Settings:
    o = dict(model.options)
    return Settings(
        base_url=o["base_url"].rstrip("/"),
        model=o.get("model") or model.name,
        api_key_env=o.get("api_key_env"),
        api_key_file=o.get("api_key_file"),
        connect_timeout_s=float(o.get("connect_timeout_s", 5.0)),
        first_byte_timeout_s=float(o.get("first_byte_timeout_s", 300.0)),
        verify_tls=bool(o.get("verify_tls", True)),
        max_concurrency=int(o.get("max_concurrency", DEFAULT_CONCURRENCY)),
        extra_body=dict(o.get("extra_body") or {}),
        transcription_format=o.get("transcription_format", "verbose_json"),
    )
