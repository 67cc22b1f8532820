"""Shipped examples: ``mosaic init DIR`` copies the tutorial so a newcomer starts from something that works."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mosaic.errors import UsageError

TUTORIAL = Path(__file__).resolve().parent / "tutorial"
_FILES = ("config.ini", "dataset.py", "mlp.py")


def init(directory: str | os.PathLike[str], force: bool = False) -> Path:
    """Copy the tutorial (config.ini, dataset.py, mlp.py) into ``directory``.

    Refuses to overwrite existing files unless ``force``; returns the config path.
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: exists and is not a folder; choose another path")
    clashes = [name for name in _FILES if (target / name).exists()]
    if clashes and not force:
        raise UsageError(f"{target}: already has {', '.join(clashes)}; choose an empty folder or pass --force")
    target.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        shutil.copyfile(TUTORIAL / name, target / name)
    return target / "config.ini"
