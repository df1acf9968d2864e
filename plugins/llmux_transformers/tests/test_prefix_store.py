"""The prefix store on its own: longest-prefix match (one token always left to run), copies
independent of the live cache, LRU out within the byte bound, and the process-wide registry
that keeps a store across unload and load."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from llmux_transformers import prefix_cache
from llmux_transformers.prefix_cache import KEY_BYTES_PER_TOKEN, PrefixStore


def cache_of(tokens: int, layers: int = 2, fill: float = 1.0) -> DynamicCache:
    cache = DynamicCache()
    for layer in range(layers):
        k = torch.full((1, 2, tokens, 4), fill)
        cache.update(k, k.clone(), layer)
    return cache


def size(tokens: int, layers: int = 2) -> int:
    return layers * 2 * (2 * tokens * 4) * 4 + KEY_BYTES_PER_TOKEN * tokens


def test_longest_prefix_short_of_the_last_token():
    store = PrefixStore(10 ** 6)
    assert store.put((1, 2), cache_of(2))
    assert store.put((1, 2, 3, 4), cache_of(4))
    assert store.put((1, 9, 9), cache_of(3))
    assert store.match([1, 2, 3, 4, 5]).tokens == (1, 2, 3, 4)
    assert store.match([1, 2, 3, 4]).tokens == (1, 2)  # the last prompt token must run
    assert store.match([1, 2, 3]).tokens == (1, 2)
    assert store.match([1, 9, 8, 7]) is None  # (1,) was never stored: no partial reuse
    assert store.match([2, 1, 2, 3]) is None
    assert store.bytes == size(2) + size(4) + size(3)


def test_snapshots_are_copies():
    store = PrefixStore(10 ** 6)
    live = cache_of(3)
    store.put((1, 2, 3), live)
    live.layers[0].keys.fill_(7.0)  # the live cache goes on (generate writes into it)
    reuse = prefix_cache.begin(store, [1, 2, 3, 4, 5], "cpu")
    assert reuse.tokens == 3 and reuse.marks == [4]
    assert torch.equal(reuse.cache.layers[0].keys, torch.ones(1, 2, 3, 4))
    reuse.cache.layers[0].keys.fill_(5.0)  # and so does a restored one
    again = prefix_cache.begin(store, [1, 2, 3, 4, 5], "cpu")
    assert torch.equal(again.cache.layers[0].keys, torch.ones(1, 2, 3, 4))
    assert again.cache.get_seq_length() == 3


def test_least_recently_used_out_within_the_bound():
    limit = size(4) * 2 + size(4) // 2  # room for two of four-token snapshots
    store = PrefixStore(limit)
    for first in (1, 2, 3):
        store.put((first, 0, 0, 0), cache_of(4))
        assert store.bytes <= limit
        if first == 2:
            assert store.match([1, 0, 0, 0, 9]) is not None  # 1 is now newer than 2
    assert store.match([2, 0, 0, 0, 9]) is None  # 2 went first
    assert store.match([1, 0, 0, 0, 9]) is not None and len(store) == 2
    assert not store.put(tuple(range(40)), cache_of(40))  # larger than the whole bound
    assert len(store) == 2 and store.bytes <= limit
    store.resize(size(4))
    assert len(store) == 1 and store.bytes <= size(4)


def test_begin_marks():
    store = PrefixStore(10 ** 6)
    fresh = prefix_cache.begin(store, list(range(10)), "cpu", marks=[0, 4, 9, 12])
    assert (fresh.cache, fresh.tokens, fresh.marks) == (None, 0, [4, 9])
    store.put(tuple(range(4)), cache_of(4))
    warm = prefix_cache.begin(store, list(range(10)), "cpu", marks=[2, 4, 6])
    assert (warm.tokens, warm.marks) == (4, [6, 9])
    assert prefix_cache.begin(None, list(range(10)), "cpu") is None
    image = prefix_cache.begin(store, list(range(10)), "cpu", marks=[2, 5, 9], limit=3)
    assert (image.tokens, image.marks) == (0, [2, 3])  # nothing from the image (3) on
    store.put(tuple(range(3)), cache_of(3))
    image = prefix_cache.begin(store, list(range(10)), "cpu", marks=[2, 5], limit=3)
    assert (image.tokens, image.marks) == (3, [])


@pytest.fixture
def registry():
    saved = dict(prefix_cache._STORES)
    prefix_cache._STORES.clear()
    yield prefix_cache._STORES
    prefix_cache._STORES.clear()
    prefix_cache._STORES.update(saved)


def test_registry_keeps_a_store_per_identity(registry):
    a = prefix_cache.store_for(("m", "weights-1"), 0.001)
    a.put((1, 2), cache_of(2))
    assert prefix_cache.store_for(("m", "weights-1"), 0.001) is a  # unload + load
    assert prefix_cache.store_for(("m", "weights-1"), None).limit == prefix_cache.GiB
    other = prefix_cache.store_for(("n", "weights-1"), 0.001)
    assert other is not a and len(registry) == 2
    b = prefix_cache.store_for(("m", "weights-2"), 0.001)  # new weights: the old states go
    assert b is not a and len(b) == 0 and len(a) == 0 and ("m", "weights-1") not in registry
    assert prefix_cache.store_for(("m", "weights-2"), 0) is None  # off: dropped
    assert ("m", "weights-2") not in registry
