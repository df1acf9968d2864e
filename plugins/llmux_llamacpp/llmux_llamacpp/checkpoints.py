"""Prompt checkpoints: the context's sequence state saved at chosen prompt positions, so a
later prompt that starts with the same tokens continues from there (the idea of llama.cpp
server's context checkpoints). Hybrid and recurrent models (Qwen3.5's Gated DeltaNet) cannot
cut their state back to a shorter prefix; a saved state at the right position is the only
way they reuse a prompt.

A state is ``llama_state_seq_get_data`` of sequence 0: the KV cells and the recurrent state,
no logits (a restored prompt always evaluates at least one token). A :class:`Store` holds
them per model, keyed by their tokens, bounded in bytes, least recently used out. Stores
live in a process-wide registry keyed by the physical model's name and its file's identity
(path, size, mtime), outside the engine: after an unload and a new load of the same file a
conversation continues from its checkpoint.
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["Store", "store_for", "store_bytes", "identity", "capture", "restore", "forget"]


def _key(tokens: Sequence[int]) -> bytes:
    return np.asarray(tokens, dtype=np.int32).tobytes()


class Store:
    """Saved states by token prefix; ``limit`` bytes at most (the states' bytes)."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._states: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._states)

    def lengths(self) -> list[int]:
        """The token counts of the states held (least recently used first)."""
        with self._lock:
            return [len(k) // 4 for k in self._states]

    def __contains__(self, tokens: Sequence[int]) -> bool:
        key = _key(tokens)
        with self._lock:
            return key in self._states

    def longest(self, tokens: Sequence[int], most: int) -> tuple[int, bytes] | None:
        """The longest state whose tokens are a prefix of ``tokens``, of ``most`` tokens at
        most: (its length, its bytes), marked as just used; None if none."""
        key = _key(tokens[:most])
        with self._lock:
            best = max((k for k in self._states if key.startswith(k)), key=len, default=None)
            if best is None:
                return None
            self._states.move_to_end(best)
            return len(best) // 4, self._states[best]

    def closest(self, tokens: Sequence[int], most: int) -> tuple[int, list[int], bytes] | None:
        """The state sharing the longest common prefix with ``tokens[:most]``, whatever
        follows it (for a context whose cache can be cut back to that prefix): (the common
        length, the state's tokens, its bytes), marked as just used; None if none shares any."""
        want = np.asarray(tokens[:most], dtype=np.int32)
        best: tuple[int, bytes] | None = None
        with self._lock:
            for key in self._states:
                have = np.frombuffer(key, dtype=np.int32)
                n = min(len(have), len(want))
                same = have[:n] == want[:n]
                length = n if same.all() else int(np.argmin(same))
                if length > 0 and (best is None or length > best[0]):
                    best = (length, key)
            if best is None:
                return None
            self._states.move_to_end(best[1])
            return (best[0], np.frombuffer(best[1], dtype=np.int32).tolist(),
                    self._states[best[1]])

    def put(self, tokens: Sequence[int], data: bytes) -> bool:
        """Keep ``data`` as the state after ``tokens``; the least recently used go until the
        store fits its limit. A state larger than the limit is not kept."""
        if not tokens or len(data) > self.limit:
            return False
        key = _key(tokens)
        with self._lock:
            old = self._states.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._states[key] = data
            self._bytes += len(data)
            while self._bytes > self.limit:
                _, dropped = self._states.popitem(last=False)
                self._bytes -= len(dropped)
        return True

    def discard(self, tokens: Sequence[int]) -> None:
        with self._lock:
            data = self._states.pop(_key(tokens), None)
            if data is not None:
                self._bytes -= len(data)

    def resize(self, limit: int) -> None:
        with self._lock:
            self.limit = int(limit)
            while self._bytes > self.limit and self._states:
                _, dropped = self._states.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._bytes = 0


_registry: dict[tuple, Store] = {}
_registry_lock = threading.Lock()


def identity(name: str, path: Path, layout: Any = None) -> tuple:
    """What a saved state belongs to: the model's name, its file (path, size, mtime) and the
    context's layout (what changes the state's format)."""
    stat = path.stat()
    return (name, str(path.resolve()), stat.st_size, stat.st_mtime_ns, layout)


def store_for(name: str, path: Path, limit: int, layout: Any = None) -> Store | None:
    """The process-wide store of this model file (created on first use, resized to
    ``limit``); None when ``limit`` is 0 (disabled: the model's old states go too). A store
    of the same name for another file (replaced, edited) is dropped."""
    key = identity(name, path, layout)
    with _registry_lock:
        for other in [k for k in _registry if k[0] == name and k != key]:
            del _registry[other]
        if limit <= 0:
            _registry.pop(key, None)
            return None
        store = _registry.get(key)
        if store is None:
            store = _registry[key] = Store(limit)
        else:
            store.resize(limit)
        return store


def store_bytes(name: str | None = None) -> int:
    """Host RAM held by saved states: one physical model's (by name), or all of them."""
    with _registry_lock:
        return sum(s.bytes for k, s in _registry.items() if name is None or k[0] == name)


def report(name: str) -> dict | None:
    """One physical model's store for ``GET /health``: bytes, limit, entries; None if none."""
    with _registry_lock:
        found = [s for k, s in _registry.items() if k[0] == name]
    if not found:
        return None
    return {"bytes": sum(s.bytes for s in found), "limit": max(s.limit for s in found),
            "entries": sum(len(s) for s in found)}


def forget(name: str | None = None) -> None:
    """Drop one model's stores (by name), or all."""
    with _registry_lock:
        for key in [k for k in _registry if name is None or k[0] == name]:
            del _registry[key]


# ---------------------------------------------------------------------- llama.cpp side

def capture(llama: Any) -> bytes:
    """Sequence 0's state (KV cells and recurrent state) of ``llama``'s context."""
    import llama_cpp

    ctx = llama._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
    return ctypes.string_at(buf, n) if 0 < n <= size else b""


def restore(llama: Any, tokens: Sequence[int], data: bytes) -> bool:
    """Replace ``llama``'s context with a saved state after ``tokens``; False (and the
    context cleared) when llama.cpp refuses it."""
    import llama_cpp

    ctx = llama._ctx.ctx
    llama.reset()
    mem = llama_cpp.llama_get_memory(ctx)
    if mem is not None:
        llama_cpp.llama_memory_clear(mem, True)
    src = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    if llama_cpp.llama_state_seq_set_data(ctx, src, len(data), 0) != len(data):
        llama.reset()
        if mem is not None:
            llama_cpp.llama_memory_clear(mem, True)
        return False
    llama.input_ids[:len(tokens)] = tokens
    llama.n_tokens = len(tokens)
    llama._requires_eval = True
    return True
