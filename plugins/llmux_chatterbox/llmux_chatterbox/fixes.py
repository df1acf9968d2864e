"""What chatterbox-tts 0.1.7 needs to run beside llmux's torch, transformers and numpy.

chatterbox-tts is installed with ``--no-deps`` (its pins would downgrade transformers and
torch), so it meets newer libraries than it was written for. Each fix below is small, local
to this process and harmless where it is not needed (the production image with a matching
torchaudio, an old setuptools, numpy 1).

1. :func:`import_torchaudio` -- PyPI's torchaudio wheel is CUDA-linked; beside a CPU torch its
   C++ extension cannot load and ``import torchaudio`` raises ``OSError``.
2. :func:`check_watermarker` -- resemble-perth imports ``pkg_resources``; without it (setuptools
   >= 81) its watermarker silently becomes ``None`` and every model construction fails.
3. :func:`float32_loudness` -- Turbo's loudness normalisation returns float64 under numpy 2,
   and ``prepare_conditionals`` then fails with "expected scalar type Double but found Float".

And three more: :func:`no_hook_leak` (Multilingual), :func:`local_files_only` (offline) and
:func:`quiet_progress`.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TypeVar

from llmux.errors import ModelLoadError

T = TypeVar("T")
_applied = False


def apply() -> None:
    """Make ``import chatterbox`` work here. Idempotent; call before importing chatterbox."""
    global _applied
    if _applied:
        return
    import_torchaudio()
    with warnings.catch_warnings():
        # perth imports pkg_resources, which warns that it is deprecated (setuptools 80).
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                                category=UserWarning)
        import perth
    check_watermarker(perth)
    quiet_progress()
    _applied = True


# --------------------------------------------------------------------------- fix 1


def import_torchaudio():
    """Import torchaudio, falling back to its pure-Python parts if its C++ extension fails.

    Why: the newest torchaudio on PyPI (2.11) links against CUDA torch (``libc10_cuda.so``);
    beside llmux's CPU torch, ``torchaudio._extension`` raises ``OSError`` at import. chatterbox
    uses only pure-Python torchaudio (``compliance.kaldi.fbank``, ``transforms.Resample``),
    which work without the extension. torchaudio already treats a *missing* library file as
    "extension not available"; we treat a library that cannot load the same way, by wrapping
    its loader (left cached in ``sys.modules`` by the failed import) and importing again.
    Where the extension loads (a matching torchaudio, the production image), nothing changes.
    """
    try:
        return importlib.import_module("torchaudio")
    except OSError:
        utils = sys.modules.get("torchaudio._extension.utils")
        if utils is None:
            raise
    original = utils._load_lib

    def load_lib_or_skip(lib: str) -> bool:
        try:
            return original(lib)
        except OSError:
            return False  # as if the file were absent: the pure-Python fallback

    utils._load_lib = load_lib_or_skip
    for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
        if name != "torchaudio._extension.utils" and not name.startswith("torchaudio._internal"):
            del sys.modules[name]
    return importlib.import_module("torchaudio")


# --------------------------------------------------------------------------- fix 2


def check_watermarker(perth_module) -> None:
    """Fail with the fix instead of chatterbox's "'NoneType' object is not callable".

    Why: chatterbox always constructs ``perth.PerthImplicitWatermarker()``. resemble-perth
    imports it inside ``try/except ImportError`` and sets it to ``None`` when its
    ``from pkg_resources import resource_filename`` fails -- which it does with setuptools
    >= 81, where ``pkg_resources`` is gone. The plugin therefore requires ``setuptools<81``;
    this check turns a broken environment into a load error that names the fix.
    """
    if getattr(perth_module, "PerthImplicitWatermarker", None) is None:
        raise ModelLoadError(
            "resemble-perth's watermarker could not be imported (it needs pkg_resources, "
            "removed in setuptools 81): run  pip install 'setuptools<81'"
        )


# --------------------------------------------------------------------------- fix 3


def float32_loudness(tts) -> None:
    """Make ``tts.norm_loudness`` (Turbo) return float32 as the rest of the model expects.

    Why: ``ChatterboxTurboTTS.prepare_conditionals`` normalises the reference clip with
    pyloudnorm, which multiplies the float32 clip by a Python/NumPy float64 gain; under NumPy 2
    (NEP 50) the product is float64, the speaker encoder then receives a Double tensor and
    fails with "expected scalar type Double but found Float". Casting back keeps the loudness
    normalisation (``norm_loudness=False`` would drop it).
    """
    import numpy as np

    original = tts.norm_loudness

    def norm_loudness(wav, sr, *args, **kwargs):
        return np.asarray(original(wav, sr, *args, **kwargs), dtype=np.float32)

    tts.norm_loudness = norm_loudness


# --------------------------------------------------------------------------- hook leak


ANALYZER_MODULE = "chatterbox.models.t3.inference.alignment_stream_analyzer"


@contextmanager
def no_hook_leak(module, owner: str = ANALYZER_MODULE):
    """Remove the forward hooks that ``owner``'s code adds to ``module`` during the call.

    Why: Multilingual's ``T3.inference`` builds an ``AlignmentStreamAnalyzer`` per call, which
    registers forward hooks on three attention layers and never removes them. Every sentence
    would add three more: each copies attention weights to the CPU at every step, and keeps
    its analyzer (and its growing alignment matrix) alive -- a server gets slower and bigger
    with every request. chatterbox drops the handles, so the hooks are found in torch's
    per-module hook dictionaries by the module that defined them. Hooks of anyone else stay:
    transformers installs its own output-capturing hooks on the first call and relies on them.
    """
    before = {id(m): set(m._forward_hooks) for m in module.modules()}
    try:
        yield
    finally:
        for m in module.modules():
            for key, hook in list(m._forward_hooks.items()):
                if key in before.get(id(m), ()) or getattr(hook, "__module__", None) != owner:
                    continue
                del m._forward_hooks[key]  # what RemovableHandle.remove() does
                getattr(m, "_forward_hooks_with_kwargs", {}).pop(key, None)
                getattr(m, "_forward_hooks_always_called", {}).pop(key, None)


# --------------------------------------------------------------------------- offline, quiet


@contextmanager
def _local_hub_files(directory: Path):
    import chatterbox.models.tokenizers.tokenizer as tokenizer_module

    def local_file(repo_id=None, filename=None, **_ignored) -> str:
        path = directory / filename
        if not path.is_file():
            raise FileNotFoundError(f"{filename} is not in {directory}")
        return str(path)

    original = tokenizer_module.hf_hub_download
    tokenizer_module.hf_hub_download = local_file
    try:
        yield
    finally:
        tokenizer_module.hf_hub_download = original


def local_files_only(directory: Path, build: Callable[[], T]) -> T:
    """Run ``build`` (a ``from_local``), serving the tokenizer's hub downloads from ``directory``.

    Why: the multilingual tokenizer fetches ``Cangjie5_TC.json`` (Chinese) with
    ``hf_hub_download`` even under ``from_local``; offline that waits on the network, and the
    file that download_models.sh put beside the weights is never read. Here it is read from
    the checkpoint directory; if it is not there, Chinese loses its Cangjie encoding (the
    library logs a warning) and nothing else changes. Loads run one at a time (the
    scheduler's single load thread), so swapping the module attribute is safe.
    """
    with _local_hub_files(Path(directory)):
        return build()


def quiet_progress() -> None:
    """Silence the tqdm bars T3 and Turbo's S3Gen print to stderr for every sentence."""
    import functools

    import chatterbox.models.s3gen.flow_matching as flow_module
    import chatterbox.models.t3.t3 as t3_module
    from tqdm import tqdm

    t3_module.tqdm = flow_module.tqdm = functools.partial(tqdm, disable=True)
