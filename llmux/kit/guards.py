"""Refusing requests a backend does not serve, with one message for all of them."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from ..types import ChatRequest, PhysicalModel


def chat_only(model: PhysicalModel, request: Any, backend: str) -> ChatRequest:
    """``request`` when it is a :class:`ChatRequest`, else a 400 saying that ``model``
    (served by ``backend``) serves chat only. Use it first thing in ``infer``."""
    if not isinstance(request, ChatRequest):
        raise InvalidRequest(
            f"model {model.name!r} ({backend}) serves chat only, not {type(request).__name__}"
        )
    return request
