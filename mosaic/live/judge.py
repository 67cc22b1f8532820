"""The verdict so far: :func:`mosaic.analysis.verdict.verdict_table` over the done runs a board
holds, with ``mosaic verdict``'s defaults (``test_loss``, lower is better, level 0.95, seed 0).

Its statistics cost seconds at 100,000 runs, so a :class:`Judge` never computes on the request
path: a request gets the latest verdict and, when done runs changed and enough time passed
(at least :data:`MIN_INTERVAL_S`, and twenty times the last computation), starts a new one in a
thread of its own. What it hands out is bounded: the best :data:`TOP` models of each dataset.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

from mosaic.live.board import METRIC, Board

#: seconds between two verdicts at least
MIN_INTERVAL_S = 3.0
#: models shown per dataset (the best first), and datasets at most
TOP = 10
MAX_DATASETS = 20
LEVEL = 0.95


class Judge:
    """The latest verdict of a board, recomputed in the background (see the module)."""

    def __init__(self, min_interval: float = MIN_INTERVAL_S) -> None:
        self.min_interval = min_interval
        self.result: dict[str, Any] | None = None
        self._key: tuple[int, int] | None = None
        self._busy = False
        self._last = -math.inf
        self._cost = 0.0
        self._lock = threading.Lock()

    def get(self, board: Board, now: float | None = None) -> dict[str, Any] | None:
        """The latest verdict (None before the first); starts a new one when it is time."""
        clock = time.monotonic() if now is None else now
        key = (id(board), board.finals_version)
        with self._lock:
            due = not self._busy and key != self._key and clock - self._last >= max(self.min_interval, 20 * self._cost)
            if due:
                self._busy, self._key, self._last = True, key, clock
        if due:
            finals = list(board.finals())
            threading.Thread(target=self._compute, args=(finals,), name="mosaic-verdict", daemon=True).start()
        return self.result

    def _compute(self, finals: list[tuple[str, str, float]]) -> None:
        with contextlib.suppress(ImportError):  # judge() below reports it
            import mosaic.analysis.verdict  # noqa: F401 - loaded once, not counted in the cost that spaces verdicts
        start = time.perf_counter()
        try:
            result = judge(finals)
        except Exception as exc:  # noqa: BLE001 - the page shows why, the sweep goes on
            result = {"note": f"no verdict: {type(exc).__name__}: {exc}", "datasets": [], "as_of": len(finals)}
        with self._lock:
            self.result = result
            self._cost = time.perf_counter() - start
            self._busy = False


def judge(finals: list[tuple[str, str, float]]) -> dict[str, Any] | None:
    """The verdict of ``(dataset, model, value)`` rows, as bounded JSON-ready data (None: no row)."""
    if not finals:
        return None
    import pandas as pd

    from mosaic.analysis.verdict import across_datasets, verdict_table

    frame = pd.DataFrame(finals, columns=["dataset", "model", "value"])
    table = verdict_table(frame, METRIC, False, level=LEVEL, seed=0)
    datasets = []
    for name, rows in table.groupby("dataset", sort=True):
        counts = rows["verdict"].value_counts().to_dict()
        top = rows.sort_values(["rank", "model"]).head(TOP)
        datasets.append({"dataset": str(name), "models": len(rows), "counts": {str(k): int(v) for k, v in counts.items()},
                         "rows": [_row(r) for r in top.to_dict(orient="records")]})
    across = across_datasets(table, False, LEVEL)
    across_rows = None
    if across is not None:
        across_rows = [_row(r) for r in across.sort_values(["rank", "model"]).head(TOP).to_dict(orient="records")]
    return {"metric": METRIC, "level": LEVEL, "as_of": len(finals), "datasets": datasets[:MAX_DATASETS],
            "dataset_count": len(datasets), "across": across_rows}


def _row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float):
            value = None if not math.isfinite(value) else float(f"{value:.5g}")
        out[str(key)] = value
    return out
