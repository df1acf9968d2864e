"""Images through llama.cpp's multimodal library (mtmd) and the model's mmproj file.

llama-cpp-python's ``MTMDChatHandler`` renders, evaluates *and* generates in one call, with
no token-level cancellation and no usage counts. llmux needs only its first half, so this
module drives the same public ``mtmd_cpp`` bindings the handler uses: tokenize the rendered
prompt with the images (``mtmd_tokenize``), evaluate text chunks with ``Llama.eval`` and
image chunks with ``mtmd_helper_eval_chunk_single``. Images are decoded by Pillow first, so
a corrupt or oversized image is a clear 400 and any format Pillow reads works (mtmd gets raw
RGB); the decoding is the runtime kit's (:mod:`llmux.kit.images`).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llmux import InvalidRequest, ModelLoadError, kit
from llmux.kit import MAX_IMAGE_PIXELS  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    rgb: bytes


def decode_image(url: str, index: int) -> Image:
    """A ``data:image/...;base64,`` URL -> RGB pixels, or :class:`InvalidRequest` (the
    kit's :func:`llmux.kit.decode_image`, up to :data:`MAX_IMAGE_PIXELS`)."""
    rgb = kit.decode_image(url, index)
    return Image(rgb.width, rgb.height, rgb.tobytes())


class Vision:
    """An mtmd context bound to one loaded ``Llama``; freed by :meth:`close`."""

    def __init__(self, mmproj: Path, llama: Any, use_gpu: bool) -> None:
        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd

        self._mtmd = mtmd
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = llama.n_threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if llama.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self.ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), llama.model, params)
        if not self.ctx:
            raise ModelLoadError(f"{mmproj} could not be loaded as a vision projector (mmproj)")
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise ModelLoadError(f"{mmproj} is not a vision projector")
        self.marker = mtmd.mtmd_default_marker().decode()

    def close(self) -> None:
        if self.ctx:
            self._mtmd.mtmd_free(self.ctx)
            self.ctx = None

    def evaluate(self, llama: Any, prompt: str, images: list[Image],
                 prefix: Callable[[list[int]], int | None] | None = None,
                 ) -> tuple[list[int], int, int]:
        """Evaluate ``prompt`` with ``images`` in place of the markers into ``llama``.

        The text before the first image goes through ``prefix`` (which evaluates it reusing
        what it can and returns how many tokens it reused, None when cancelled); without it,
        or when the prompt starts with an image, the context is reset first. Returns the
        prompt as ``Llama.generate`` should see it (one id per position; image positions
        hold -1 so that no later prompt can match them as a cached prefix), the number of
        tokens, image tokens included, and how many were reused.
        """
        mtmd = self._mtmd
        bitmaps = []
        chunks = None
        try:
            for image in images:
                buf = (ctypes.c_uint8 * len(image.rgb)).from_buffer_copy(image.rgb)
                bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, buf)
                if not bitmap:
                    raise InvalidRequest("an image could not be prepared", param="messages")
                bitmaps.append(bitmap)
            text = mtmd.mtmd_input_text()
            encoded = prompt.encode()
            text.text = encoded
            text.text_len = len(encoded)
            text.add_special = True
            text.parse_special = True
            chunks = mtmd.mtmd_input_chunks_init()
            array = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            result = mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), array, len(bitmaps))
            if result != 0:
                raise InvalidRequest(
                    f"the images do not match the prompt (mtmd_tokenize error {result}); "
                    f"is {self.marker!r} in the text?", param="messages",
                )
            try:
                return self._eval_chunks(llama, chunks, prefix)
            except BaseException:
                _clear(llama)  # never leave a half-evaluated image in the context
                raise
        finally:
            if chunks is not None:
                mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _eval_chunks(self, llama: Any, chunks: Any, prefix: Any) -> tuple[list[int], int, int]:
        """Text chunks through ``Llama.eval`` (the first through ``prefix``), image chunks
        through the projector."""
        import llama_cpp

        mtmd = self._mtmd
        n_tokens = reused = 0
        n_chunks = mtmd.mtmd_input_chunks_size(chunks)
        for i in range(n_chunks):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            kind = mtmd.mtmd_input_chunk_get_type(chunk)
            count = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            first_text = i == 0 and prefix is not None and kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT
            if i == 0 and not first_text:
                _clear(llama)
            if n_tokens + count > llama.n_ctx():
                raise InvalidRequest(
                    f"the prompt ({n_tokens + count}+ tokens with images) does not fit "
                    f"the context of {llama.n_ctx()} tokens", param="messages",
                )
            if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                size = ctypes.c_size_t()
                ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(size))
                text_tokens = [ptr[j] for j in range(size.value)]
                if first_text:
                    got = prefix(text_tokens)
                    if got is None:  # cancelled: what is in the context stays consistent
                        return llama.input_ids[: llama.n_tokens].tolist(), n_tokens + count, 0
                    reused = got
                else:
                    llama.eval(text_tokens)
            else:
                start = llama.n_tokens
                new_n_past = llama_cpp.llama_pos(0)
                result = mtmd.mtmd_helper_eval_chunk_single(
                    self.ctx, llama.ctx, chunk, llama_cpp.llama_pos(start),
                    llama_cpp.llama_seq_id(0), llama.n_batch,
                    i == n_chunks - 1,  # logits only if the prompt ends in the image
                    ctypes.byref(new_n_past),
                )
                if result != 0:
                    raise RuntimeError(f"mtmd could not evaluate an image (error {result})")
                llama.n_tokens = new_n_past.value
                llama.input_ids[start:llama.n_tokens] = -1
            n_tokens += count
        return llama.input_ids[: llama.n_tokens].tolist(), n_tokens, reused


def _clear(llama: Any) -> None:
    import llama_cpp

    llama.reset()
    memory = llama_cpp.llama_get_memory(llama.ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)
