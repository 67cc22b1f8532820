"""Mosaic's own notes in a run's log (``output_<run_id>.log``): what it did instead of failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO


def run_notes(log: TextIO) -> Callable[[str], None]:
    """A writer of ``mosaic: <note>`` lines into ``log``, each distinct note once per run."""
    seen: set[str] = set()

    def note(text: str) -> None:
        if text not in seen:
            seen.add(text)
            log.write(f"mosaic: {text}\n")

    return note
