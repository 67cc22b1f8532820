"""Where a ``path_to_class`` points: the one rule, used by the config check, the driver's
source bundle and the worker's import (absolute as is; else the config's folder, then the
current folder)."""

from __future__ import annotations

import os
from pathlib import Path


def candidates(raw: str, config_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The places ``raw`` may name, in the order they are tried (no duplicates)."""
    path = Path(os.path.expanduser(str(raw)))
    if path.is_absolute():
        return [path]
    tried = [Path(config_dir) / path] if config_dir is not None else []
    tried.append(Path.cwd() / path)
    return list(dict.fromkeys(tried))


def find_class_file(raw: str, config_dir: str | os.PathLike[str] | None) -> Path | None:
    """The resolved class file ``raw`` names, or None when no candidate is a file."""
    return next((c.resolve() for c in candidates(raw, config_dir) if c.is_file()), None)


def looked_at(raw: str, config_dir: str | os.PathLike[str] | None, joiner: str = " or ") -> str:
    """The candidates of ``raw`` as one phrase, for a 'not found' message."""
    return joiner.join(str(c) for c in candidates(raw, config_dir))
