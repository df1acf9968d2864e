"""Stand-ins for a loaded Chatterbox model in the plugin's unit tests: the surface the
plugin's token cap and synthesis loop use, so their logic is tested without S3Gen's cost
(the real models run in test_chatterbox_openai.py)."""

from __future__ import annotations

import types
from pathlib import Path

from llmux.types import PhysicalModel


class FakeT3:
    """T3's two sampling entry points, returning ``script`` (or endless tokens)."""

    def __init__(self, script=None):
        import torch

        self.tfmr = torch.nn.Identity()
        self.script = script
        self.calls: list[dict] = []

    def _tokens(self, n):
        import torch

        ids = self.script if self.script is not None else [i % 6561 for i in range(n)]
        return torch.tensor([ids[:n]], dtype=torch.long)

    def inference(self, **kwargs):
        self.calls.append(kwargs)
        for _ in range(2):
            self.tfmr(0)  # a forward pass per step, as the real loop makes
        return self._tokens(kwargs["max_new_tokens"])

    def inference_turbo(self, t3_cond, text_tokens, max_gen_len=1000, **kwargs):
        self.calls.append({"max_gen_len": max_gen_len, **kwargs})
        return self._tokens(max_gen_len + 1)  # one token before the loop


class FakeTTS:
    """The surface of a Chatterbox model that synthesize() uses; 960 samples per token."""

    def __init__(self, tokens_per_call: int = 12):
        self.t3 = FakeT3(script=list(range(1, tokens_per_call + 1)) + [6562])
        self.conds = types.SimpleNamespace(name="builtin")
        self.generated: list[tuple[str, dict, object]] = []
        self.prepared: list[str] = []

    def generate(self, text, **kwargs):
        import torch

        tokens = self.t3.inference(max_new_tokens=1000)
        self.generated.append((text, kwargs, self.conds))
        return torch.full((1, tokens.shape[1] * 960), 0.1)

    def prepare_conditionals(self, path, exaggeration=0.5):
        self.prepared.append(path)
        self.conds = types.SimpleNamespace(name=Path(path).stem)


def physical(tmp_path: Path, variant="english", **options) -> PhysicalModel:
    return PhysicalModel(name=f"cb-{variant}", type="tts", backend="chatterbox", path=variant,
                         models_dir=tmp_path, vram_gb=1,
                         options={"variant": variant, **options})


def fake_handle(model: PhysicalModel, tts=None):
    from llmux_chatterbox.synth import Handle
    from llmux_chatterbox.variants import VARIANTS

    return Handle.create(model, VARIANTS[model.options["variant"]], tts or FakeTTS(), "cpu")
