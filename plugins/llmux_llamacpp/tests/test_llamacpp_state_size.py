"""What a prompt checkpoint costs at the production shape, measured by llama.cpp itself.

The model has Qwen3.5-9B's layer dimensions (``tiny.PRODUCTION_LAYERS``: 16 q / 4 kv heads
of 256; Gated DeltaNet with 16 key / 32 value heads of 128, conv kernel 4; every 4th layer
full attention) on a 64-wide residual stream, so its saved state per layer is the 9B's.
The README's figure for the 9B (32 layers, 8 of them full attention: about 242 MiB for a
6k-token prompt) must follow from what llama.cpp writes here."""

from __future__ import annotations

from llmux_llamacpp import tiny
from llmux_llamacpp.checkpoints import capture

MiB = 1024 ** 2


def test_a_checkpoint_at_the_9b_layer_shapes_is_what_the_readme_says(tmp_path):
    import llama_cpp

    shape = tiny.PRODUCTION_LAYERS
    path = tiny.write_text_model(tmp_path / "layers.gguf", "{{ messages[0]['content'] }}",
                                 shape=shape)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=2, verbose=False)
    try:
        ids = [10 + i % 200 for i in range(400)]
        llm.eval(ids[:100])
        short = len(capture(llm))
        llm.eval(ids[100:])
        long = len(capture(llm))
    finally:
        llm.close()
    full = shape.recurrent.count(False)
    linear = shape.recurrent.count(True)

    per_token = (long - short) / 300  # the full-attention layer's K and V, f16, per token
    kv = 2 * shape.kv_heads * shape.head_dim * 2
    assert full * kv <= per_token <= full * kv + 64  # plus a cell's position and sequences

    fixed = short - 100 * per_token  # the Gated DeltaNet states, whatever the length
    ssm = shape.ssm_rank * shape.ssm_state * shape.ssm_state * 4  # float32 per value head
    conv = (shape.ssm_conv - 1) * (shape.ssm_inner + 2 * shape.ssm_groups * shape.ssm_state) * 4
    assert linear * (ssm + conv) <= fixed <= linear * (ssm + conv) + 4096

    # The 9B: 8 full-attention and 24 Gated DeltaNet layers, a 6k-token prompt.
    nine_b = 6144 * 8 * (per_token / full) + 24 * (fixed / linear)
    assert 240 * MiB <= nine_b <= 244 * MiB  # README: "about 242 MiB"
