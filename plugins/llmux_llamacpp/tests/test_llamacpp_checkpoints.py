"""Prompt checkpoints (issue 15): a request restores the longest saved state whose tokens
are a prefix of its prompt, evaluates only the rest, reports exactly what it reused, and
generates what a cold run generates; the states outlive an unload. On the tiny hybrid
qwen35 GGUF (its Gated DeltaNet state cannot be cut back) and a tiny llama-arch GGUF (whose
KV cache can), both with the Qwen3.5 template. Greedy, fixed seed; no timing."""

from __future__ import annotations

import pytest

from llamacpp_prefix import (ANSWER, CALL, MMPROJ_FILE, RESULT, SYSTEM, USER1, USER2,
                             checkpoints, cold, common, data_url, history_end, model_files,
                             physical, plugin, png, request, run, tokens)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    yield from model_files(tmp_path_factory)


@pytest.fixture(params=["qwen35", "llama"])
def loaded(request, files):
    arch = request.param
    checkpoints.forget()
    model = physical(files, arch)
    handles = [plugin.load(model, None)]
    yield arch, model, handles
    for handle in handles:
        if "llama" in handle.__dict__:
            plugin.unload(model, handle)


def test_agent_loop_reuses_the_whole_first_prompt(loaded):
    """(a) Turn 2 appends the call and its result: the first prompt's checkpoint (its last
    token but one) is a prefix, and the answer is the cold answer."""
    arch, model, (handle,) = loaded
    turn1, turn2 = request([SYSTEM, USER1]), request([SYSTEM, USER1, CALL, RESULT])
    t1, t2 = tokens(handle, turn1), tokens(handle, turn2)
    assert t2[:len(t1)] == t1  # the template keeps the reasoning of the current turn
    _, u1 = run(model, handle, turn1)
    assert u1.cached_tokens == 0
    out, u2 = run(model, handle, turn2)
    if arch == "qwen35":  # only the checkpoint: the context (with the answer) cannot be cut
        assert u2.cached_tokens == len(t1) - 1
    else:  # the context itself: the first prompt at least
        assert len(t1) - 1 <= u2.cached_tokens < len(t2)
    assert u2.prompt_tokens == len(t2)
    assert out == cold(model.models_dir, arch, turn2)


def test_thinking_chat_reuses_up_to_the_dropped_reasoning(loaded):
    """(b) The template drops turn 1's reasoning from turn 2: the prompts diverge right after
    turn 1's history; reuse stops there, and the answer is the cold answer."""
    arch, model, (handle,) = loaded
    turn1 = request([SYSTEM, USER1])
    turn2 = request([SYSTEM, USER1, ANSWER, USER2])
    t1, t2 = tokens(handle, turn1), tokens(handle, turn2)
    diverge = common(t1, t2)
    assert diverge < len(t1) - 1  # the first prompt's end is not a prefix any more
    run(model, handle, turn1)
    out, u2 = run(model, handle, turn2)
    assert 0 < u2.cached_tokens <= diverge
    if arch == "qwen35":
        assert u2.cached_tokens == history_end(handle, turn1)
    else:
        assert u2.cached_tokens == diverge
    assert out == cold(model.models_dir, arch, turn2)
    # turn 3 continues turn 2's history (its end is a checkpoint)
    turn3 = request([SYSTEM, USER1, ANSWER, USER2, ANSWER,
                     {"role": "user", "content": "Thanks."}])
    out, u3 = run(model, handle, turn3)
    assert u3.cached_tokens >= history_end(handle, turn2)
    assert out == cold(model.models_dir, arch, turn3)


def test_an_edited_message_is_never_reused_past_the_edit(loaded):
    """(c) The first user message edited: nothing after the edit comes from a state."""
    arch, model, (handle,) = loaded
    turn1 = request([SYSTEM, USER1, CALL, RESULT])
    edited = request([SYSTEM, {"role": "user", "content": "What is the weather in Rome?"},
                      CALL, RESULT])
    run(model, handle, turn1)
    run(model, handle, request([SYSTEM, USER1]))
    edit = common(tokens(handle, turn1), tokens(handle, edited))
    out, usage = run(model, handle, edited)
    assert usage.cached_tokens <= edit
    assert out == cold(model.models_dir, arch, edited)


def test_periodic_checkpoints_reuse_up_to_an_edit(files):
    """With ``prompt_checkpoint_every``, an edit deep in a hybrid model's history reuses the
    last periodic checkpoint before the edit, never past it."""
    checkpoints.forget()
    model = physical(files, "qwen35", name="cp-every", prompt_checkpoint_every=16)
    handle = plugin.load(model, None)
    turn1 = request([SYSTEM, USER1, CALL, RESULT])
    edited = request([SYSTEM, USER1, CALL, {**RESULT, "content": "It is raining."}])
    try:
        run(model, handle, turn1)
        run(model, handle, request([SYSTEM, USER2]))  # the context holds another prompt
        edit = common(tokens(handle, turn1), tokens(handle, edited))
        out, usage = run(model, handle, edited)
        system_end = common(tokens(handle, turn1), tokens(handle, request([SYSTEM, USER2])))
        assert usage.cached_tokens == edit // 16 * 16 > system_end
    finally:
        plugin.unload(model, handle)
    assert out == cold(files, "qwen35", edited)
    checkpoints.forget()


def test_a_new_conversation_reuses_a_long_system_block(files):
    """A system/tools block of 256 tokens or more is a checkpoint of its own: another
    conversation with the same system prompt (hybrid model) starts from it."""
    checkpoints.forget()
    model = physical(files, "qwen35", name="cp-system")
    handle = plugin.load(model, None)
    system = {"role": "system", "content": SYSTEM["content"] * 12}
    first = request([system, USER1])
    other = request([system, {"role": "user", "content": "Tell me a joke."}])
    try:
        run(model, handle, first)
        shared = common(tokens(handle, first), tokens(handle, other))
        assert shared >= 256
        out, usage = run(model, handle, other)
        assert usage.cached_tokens == shared
    finally:
        plugin.unload(model, handle)
    assert out == cold(files, "qwen35", other)
    checkpoints.forget()


def test_the_conversation_continues_after_unload_and_load(loaded):
    """(d) Unload, load the same file again: turn 2 still restores turn 1's checkpoint."""
    arch, model, handles = loaded
    turn1, turn2 = request([SYSTEM, USER1]), request([SYSTEM, USER1, CALL, RESULT])
    run(model, handles[0], turn1)
    stored = checkpoints.store_bytes(model.name)
    assert stored > 0
    plugin.unload(model, handles[0])
    handles.append(plugin.load(model, None))
    assert checkpoints.store_bytes(model.name) == stored
    handle = handles[-1]
    assert handle.llama.n_tokens == 0  # a new context: nothing in it
    out, u2 = run(model, handle, turn2)
    t1 = len(tokens(handle, turn1))
    if arch == "qwen35":  # the checkpoint at the prompt's last token but one
        assert u2.cached_tokens == t1 - 1
    else:  # the state saved after the answer, cut back to what turn 2 shares with it
        assert t1 - 1 <= u2.cached_tokens < u2.prompt_tokens
    assert out == cold(model.models_dir, arch, turn2)


def test_an_image_prompt_reuses_the_text_before_the_first_image(files):
    """A follow-up question about an image (hybrid model): the text before the image is
    restored, the image and what follows are evaluated again; the answer is the cold one."""
    checkpoints.forget()
    model = physical(files, "qwen35", name="cp-vl", mmproj_file=MMPROJ_FILE)
    handle = plugin.load(model, None)
    image = {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(png(64, 64))}},
        {"type": "text", "text": "What is the weather in this picture?"}]}
    turn1 = request([SYSTEM, image])
    turn2 = request([SYSTEM, image, ANSWER, USER2])
    try:
        _, u1 = run(model, handle, turn1)
        assert u1.cached_tokens == 0
        out, u2 = run(model, handle, turn2)
        before = handle.render(turn2)[0].split(handle.vision.marker)[0]
        n_before = len(handle.llama.tokenize(before.encode(), add_bos=True, special=True))
        assert 0 < u2.cached_tokens <= n_before + 1  # mtmd may add <|vision_start|>
    finally:
        plugin.unload(model, handle)
    assert out == cold(files, "qwen35", turn2, mmproj_file=MMPROJ_FILE)
    checkpoints.forget()
