"""Shared fixtures. Tests use real components: real files under tmp_path, real clusters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
TUTORIAL = ROOT / "mosaic" / "examples" / "tutorial"


@pytest.fixture
def tutorial_dir(tmp_path: Path) -> Path:
    """A fresh copy of the shipped tutorial (config.ini, dataset.py, mlp.py)."""
    target = tmp_path / "tutorial"
    shutil.copytree(TUTORIAL, target)
    return target
