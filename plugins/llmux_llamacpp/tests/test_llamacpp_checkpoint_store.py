"""The checkpoint store: its LRU bound in bytes (unit and on a loaded model), a state
llama.cpp refuses, and why hybrid models need checkpoints at all."""

from __future__ import annotations

import pytest

from llamacpp_prefix import (SYSTEM, USER1, USER2, checkpoints, cold, model_files, physical,
                             plugin, request, run, tokens)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    yield from model_files(tmp_path_factory)


def test_hybrid_state_cannot_be_cut(files):
    model = physical(files, "qwen35", cache_gb=0)
    handle = plugin.load(model, None)
    try:
        assert handle.llama._is_hybrid and handle.store is None
    finally:
        plugin.unload(model, handle)


def test_the_store_keeps_its_bound(files):
    """(e) States beyond the limit go, least recently used first; the bytes stay within it;
    prompt_cache_gb 0 keeps none."""
    checkpoints.forget()
    probe = physical(files, "qwen35", name="cp-probe")
    handle = plugin.load(probe, None)
    run(probe, handle, request([SYSTEM, USER1]))
    sizes = [len(d) for d in handle.store._states.values()]
    plugin.unload(probe, handle)
    limit = int(max(sizes) * 2.5)
    model = physical(files, "qwen35", name="cp-bound", cache_gb=limit / 1024**3)
    handle = plugin.load(model, None)
    try:
        assert handle.store.limit == limit
        for city in ("Paris", "Rome", "Oslo", "Lima", "Kyiv"):
            user = {"role": "user", "content": f"Weather in {city}?"}
            run(model, handle, request([SYSTEM, user]))
            assert 0 < handle.store.bytes <= limit
            assert checkpoints.store_bytes(model.name) == handle.store.bytes
        assert len(handle.store) <= 2
        # the latest prompt's states are the ones kept
        last = tokens(handle, request([SYSTEM, {"role": "user", "content": "Weather in Kyiv?"}]))
        assert last[:len(last) - 1] in handle.store
    finally:
        plugin.unload(model, handle)
    checkpoints.forget()


def test_a_state_llama_cpp_refuses_is_dropped(files):
    """A state that does not restore (here truncated) is dropped; the request runs cold."""
    checkpoints.forget()
    model = physical(files, "qwen35", name="cp-bad")
    handle = plugin.load(model, None)
    try:
        req = request([SYSTEM, USER1])
        t = tokens(handle, req)
        run(model, handle, request([SYSTEM, USER2]))
        data = checkpoints.capture(handle.llama)
        handle.llama.reset()
        handle.store.clear()
        handle.store.put(t[:20], data[: len(data) // 2])
        out, usage = run(model, handle, req)
        assert usage.cached_tokens == 0 and t[:20] not in handle.store
    finally:
        plugin.unload(model, handle)
    assert out == cold(files, "qwen35", req)
    checkpoints.forget()


def test_store_lru_unit():
    store = checkpoints.Store(limit=10)
    assert store.put([1, 2], b"aaaa") and store.put([1, 2, 3], b"bbbb")
    assert store.longest([1, 2, 3, 4], 4)[0] == 3
    assert store.longest([1, 2, 3], 2) == (2, b"aaaa")  # now the most recently used
    assert store.put([5], b"cccc")  # [1, 2, 3] was the least recently used
    assert store.bytes == 8 and [1, 2, 3] not in store and [1, 2] in store
    assert not store.put([6], b"x" * 11) and store.bytes <= 10
    assert store.longest([9], 1) is None
