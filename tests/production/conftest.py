"""The nine production checkpoints at their published shapes, data as sparse holes, built
once per session by :func:`benchmarks.production_shapes.build_all` (~20 s on 2 cores, a few
MB of disk). Use ``production_models_dir`` as ``models_dir`` of a copy of
``config/models.yaml`` to drive estimators, planners and ``check-config`` at the real sizes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class ProductionBuild:
    root: Path  # the models_dir
    models: dict[str, dict]  # build_all's answer, by physical model name
    seconds: float  # wall time of the whole build, imports included

    def folder(self, name: str) -> Path:
        return Path(self.models[name]["path"])


@pytest.fixture(scope="session")
def production_build(tmp_path_factory) -> ProductionBuild:
    from benchmarks.production_shapes import build_all

    root = tmp_path_factory.mktemp("production-models")
    t0 = time.perf_counter()
    models = build_all(root)
    return ProductionBuild(root, models, time.perf_counter() - t0)


@pytest.fixture(scope="session")
def production_models_dir(production_build) -> Path:
    """A ``models_dir`` holding all nine production models under their configured paths."""
    return production_build.root
