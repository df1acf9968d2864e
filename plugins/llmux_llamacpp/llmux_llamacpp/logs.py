"""llama.cpp's and mtmd's log output -> Python logging (logger ``llmux_llamacpp.llama_cpp``).

llama-cpp-python 0.3.36 maps ggml's log levels wrongly (ggml: 1 debug, 2 info, 3 warn,
4 error, 5 continue; it reads 3 as error and 4 as debug), so with ``verbose=False`` every
warning reaches stderr and every error is dropped. llmux installs its own callback, once per
process: ggml debug/info -> DEBUG, warn -> WARNING, error -> ERROR.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("llmux_llamacpp.llama_cpp")

_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
# Expected, harmless: llama.cpp warns on every image with M-RoPE (image positions advance
# by the image's height/width, not by its token count).
_QUIET = (b"find_slot: non-consecutive token position",)
_callback = None
_last = logging.DEBUG


def install() -> None:
    global _callback
    if _callback is not None:
        return
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        global _last
        lvl = _last if level == 5 else _LEVELS.get(level, logging.DEBUG)
        _last = lvl
        if lvl == logging.WARNING and text.startswith(_QUIET):
            lvl = logging.DEBUG
        if log.isEnabledFor(lvl):
            message = text.decode("utf-8", "replace").rstrip("\n")
            if message:
                log.log(lvl, "%s", message)

    _callback = callback  # referenced for the life of the process: C keeps the pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(callback, ctypes.c_void_p(0))  # sets mtmd's (clip's) too
