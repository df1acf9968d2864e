"""Fixtures for the deployment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import FakeBin


@pytest.fixture
def fakebin(tmp_path: Path) -> FakeBin:
    return FakeBin(tmp_path)
