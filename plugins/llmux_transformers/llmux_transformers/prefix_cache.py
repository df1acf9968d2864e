"""Prompt-prefix reuse: a bounded, per-model store of prompt states, kept across swaps.

After a prompt's prefill, the model's cache (the full-attention KV *and* the Gated DeltaNet
conv and recurrent states of a hybrid Qwen3.5, in transformers' ``DynamicCache`` with
``LinearAttention*Layer``s; sliding-window layers for gpt-oss) is copied to host RAM and kept
under the prompt's tokens. The state is one token short of the prompt, as llama.cpp keeps
it: the last prompt token must still go through the model for the first token's logits, and
``generate`` runs exactly that one.

A recurrent state cannot be cut back to a shorter prefix, so a snapshot is a whole state at
its exact position and is used only whole: a new prompt reuses the longest stored snapshot
whose tokens are a prefix of it (all but its last token), restored as a fresh copy on the
model's device, and the prefill processes only the rest. ``cached_tokens`` is that length.

An image prompt reuses and keeps states only before its first image token (the tokens there
have plain positions, the same in a text prompt); the images and all after them are always
processed.

Bounded by ``prompt_cache_gb`` (host bytes of the snapshots and their keys), least recently
used first out; 0 turns reuse off. The stores live in a process-wide registry keyed by the
model's name and the identity of its weights and numerics (files, dtype, device,
quantisation, attention), so an unload + load of the same model finds its snapshots again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

GiB = 1024 ** 3
DEFAULT_GB = 1.0
#: Options that change neither the weights nor the numerics: not part of a store's identity.
NEUTRAL_OPTIONS = frozenset({"prompt_cache_gb", "prefill_chunk", "max_context", "max_vram_gb",
                             "kernels_dir", "languages"})
KEY_BYTES_PER_TOKEN = 8  # a key's tuple slot (small ints are shared)


@dataclass
class Snapshot:
    """A prompt state in host RAM: the cache after the first ``len(tokens)`` tokens."""

    tokens: tuple[int, ...]
    cache: Any
    nbytes: int


@dataclass
class Reuse:
    """What one request gets from the store: the cache to continue from (a fresh copy on the
    model's device, or None to start empty), how many prompt tokens it holds, the positions
    past it to snapshot at (ascending, the last one all but the prompt's last token), and
    ``keep(position, cache)``, which the prefill calls at each of them."""

    cache: Any
    tokens: int
    marks: list[int]
    keep: Callable[[int, Any], None]


class PrefixStore:
    """Snapshots of one model, least recently used first out past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[int, ...], Snapshot] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, limit: int) -> None:
        with self._lock:
            self.limit = limit
            self._evict(0)

    def match(self, ids: list[int]) -> Snapshot | None:
        """The longest snapshot whose tokens are a prefix of ``ids`` short of its last token
        (so that token is still run), now the most recently used; None when there is none."""
        key = tuple(ids)
        usable = len(key) - 1
        with self._lock:
            best = None
            for tokens, snap in self._entries.items():
                n = len(tokens)
                if (n <= usable and (best is None or n > len(best.tokens))
                        and key[n - 1] == tokens[-1] and key[:n] == tokens):
                    best = snap
            if best is not None:
                self._entries.move_to_end(best.tokens)
            return best

    def put(self, tokens: tuple[int, ...], cache: Any) -> bool:
        """Keep a host copy of ``cache`` (holding ``tokens``) unless it alone is over the
        limit; evict the least recently used to make room. True when kept."""
        nbytes = state_bytes(cache) + KEY_BYTES_PER_TOKEN * len(tokens)
        if not tokens or nbytes > self.limit:
            return False
        with self._lock:
            if tokens in self._entries:
                self._entries.move_to_end(tokens)
                return True
        snap = Snapshot(tokens, copy_state(cache, "cpu"), nbytes)  # outside the lock
        with self._lock:
            self._evict(nbytes)
            old = self._entries.pop(tokens, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._entries[tokens] = snap
            self.bytes += nbytes
        return True

    def _evict(self, room: int) -> None:
        while self._entries and self.bytes + room > self.limit:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


def begin(store: PrefixStore | None, ids: list[int], device: Any, marks: Iterable[int] = (),
          limit: int | None = None) -> Reuse | None:
    """The reuse of a prompt: the longest stored state restored on ``device`` (or none),
    and where to snapshot this prompt: the ``marks`` (message boundaries, e.g. the end of
    the system block and the end of the conversation before the generation prompt, where
    the next turn's prompt is likely to diverge) and all but its last token. ``limit`` (an
    image prompt: its first image token) bounds both: no state holds a token from there on.
    None when the model has no store."""
    if store is None or len(ids) < 2:
        return None
    bound = len(ids) - 1 if limit is None else min(limit, len(ids) - 1)
    snap = store.match(ids[:bound + 1])
    done = len(snap.tokens) if snap is not None else 0
    points = sorted({m for m in marks if done < m < bound} | ({bound} if done < bound else set()))

    def keep(position: int, cache: Any) -> None:
        store.put(tuple(ids[:position]), cache)

    restored = copy_state(snap.cache, device) if snap is not None else None
    return Reuse(restored, done, points, keep)


# --------------------------------------------------------------------------- copies


def copy_state(cache: Any, device: Any) -> Any:
    """A deep copy of a transformers cache whose tensors are new copies on ``device``: the
    cache and its layers are copied attribute by attribute, tensors (also inside dicts,
    lists and tuples, as the linear-attention layers keep them) copied, anything else
    (ints, flags, dtypes) shared."""
    import torch

    def copy(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.detach().to(device, copy=True)
        if isinstance(obj, dict):
            return {k: copy(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(copy(v) for v in obj)
        if _is_cache_part(obj):
            new = object.__new__(type(obj))
            new.__dict__.update({k: copy(v) for k, v in vars(obj).items()})
            return new
        return obj

    return copy(cache)


def state_bytes(cache: Any) -> int:
    """The bytes of every tensor a cache holds."""
    import torch

    def size(obj: Any) -> int:
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, dict):
            return sum(size(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(size(v) for v in obj)
        if _is_cache_part(obj):
            return sum(size(v) for v in vars(obj).values())
        return 0

    return size(cache)


def _is_cache_part(obj: Any) -> bool:
    from transformers import cache_utils

    return isinstance(obj, (cache_utils.Cache, cache_utils.CacheLayerMixin,
                            cache_utils.LinearAttentionCacheLayerMixin))


# --------------------------------------------------------------------------- registry

_STORES: dict[tuple, PrefixStore] = {}
_REGISTRY_LOCK = threading.Lock()


def identity(name: str, ckpt: Any, plan: Any, options: Mapping[str, Any]) -> tuple:
    """What a snapshot is valid for: the model's name, its weight files (path, size,
    modification time), how they are loaded (dtype, device, quantisation) and the options
    that change the numerics (attention implementation, ...)."""
    files = []
    for f in ckpt.files:
        st = f.stat()
        files.append((str(f), st.st_size, st.st_mtime_ns))
    numerics = tuple(sorted((k, repr(v)) for k, v in options.items() if k not in NEUTRAL_OPTIONS))
    return (name, tuple(files), plan.describe(), numerics)


def store_for(key: tuple, gb: float | None) -> PrefixStore | None:
    """The process-wide store of ``key`` (see :func:`identity`), bounded to ``gb`` GiB
    (default :data:`DEFAULT_GB`); None, and any old store dropped, when ``gb`` is 0. The
    stores of the same name under another identity are dropped (their states are stale)."""
    limit = int((DEFAULT_GB if gb is None else gb) * GiB)
    with _REGISTRY_LOCK:
        if limit <= 0:
            old = _STORES.pop(key, None)
            if old is not None:
                old.clear()
            return None
        for stale in [k for k in _STORES if k[0] == key[0] and k != key]:
            _STORES.pop(stale).clear()  # the same name, other weights or numerics
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = PrefixStore(limit)
    store.resize(limit)
    return store


def report(name: str) -> dict | None:
    """One physical model's store for ``GET /health``: bytes, limit, entries; None if none."""
    found = [s for k, s in stores().items() if k[0] == name]
    if not found:
        return None
    return {"bytes": sum(s.bytes for s in found), "limit": max(s.limit for s in found),
            "entries": sum(len(s) for s in found)}


def stores() -> dict[tuple, PrefixStore]:
    """Every store of this process (for tests and reporting)."""
    with _REGISTRY_LOCK:
        return dict(_STORES)
