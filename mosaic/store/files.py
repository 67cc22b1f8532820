"""``atomic_write``: the one way Mosaic writes a file (store rows, counters, control files,
run files, exports, charts, pipeline files, cache downloads).

The data goes to a temporary name in the target's folder, then is renamed over the
target, so a reader sees the old file or the new one, never half a file, and a killed
writer leaves at most a hidden ``.<name>.<random>.tmp`` behind (removed on any error).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

Content = bytes | str | Callable[[Path], Any]


def temp_path(target: Path) -> Path:
    """A fresh hidden temporary name beside ``target``."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(target: str | os.PathLike[str], content: Content, encoding: str = "utf-8") -> Path:
    """Write ``content`` to ``target`` atomically; returns ``target`` as a Path.

    ``content``: bytes, text (written with ``encoding``), or a callback that writes the file
    at the temporary path it is given (``pq.write_table``, ``torch.save``, a download...).
    """
    path = Path(target)
    tmp = temp_path(path)
    try:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        elif isinstance(content, str):
            tmp.write_text(content, encoding=encoding)
        else:
            content(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(target: str | os.PathLike[str], data: Any, indent: int | None = 1) -> Path:
    """``data`` as JSON, atomically."""
    return atomic_write(target, json.dumps(data, indent=indent))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
