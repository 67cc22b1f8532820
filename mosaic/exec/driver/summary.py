"""What a sweep did, as data and as the text ``mosaic run`` prints at the end."""

from __future__ import annotations

import math
import shlex
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic import sweep as sweeps
from mosaic.config import Config
from mosaic.store.status import FAILED, RunStatus
from mosaic.store.status import ORDER as _ORDER


def return_status(results: Mapping[str, Any]) -> str:
    """The legacy ``runs.return_status`` of a finished run: losses and execution time."""
    return (
        f"train_loss={_sci(results.get('train_loss'))}\ttest_loss={_sci(results.get('test_loss'))}"
        f"\texecution_time={_sci(results.get('duration_s'))}"
    )


def _sci(value: Any) -> str:
    return "nan" if value is None else f"{float(value):.3E}"


def model_key(pipeline: list[dict[str, Any]], config: Config) -> str:
    """The model a run trains: the keys (else class names) of its pipeline-scheme sections
    (:func:`mosaic.sweep.dataset_and_model`, the rule the report and the verdict use)."""
    return sweeps.scheme_label(pipeline, config.process.pipeline_scheme)


@dataclass(frozen=True)
class SweepSummary:
    """The outcome of ``run``, ``resume`` or ``rerun``.

    ``runs`` holds (run_id, status, test_loss, model key) of every run that finished;
    ``statuses`` the final status of every planned run.
    """

    store: Path
    sweep_id: int
    kind: str
    runs: tuple[tuple[int, str, float | None, str], ...]
    statuses: tuple[str, ...]
    seconds: float
    run_files: Path | str  # a folder, or the URL workers write to
    paused_file: Path | None = None
    tasks: int = 0  # Dask tasks submitted (short runs share one: mosaic.exec.driver.batching)

    @property
    def counts(self) -> dict[str, int]:
        """Runs per final status."""
        return dict(Counter(self.statuses))

    @property
    def exit_code(self) -> int:
        """0 when no run failed, 1 when some run ended ``error`` or ``system failure``."""
        return 1 if any(s in FAILED for s in self.statuses) else 0

    @property
    def failed(self) -> list[int]:
        """Run ids that ended ``error`` or ``system failure``."""
        return sorted(r for r, status, _, _ in self.runs if status in FAILED)

    def best(self) -> dict[str, tuple[int, float]]:
        """The done run with the lowest test_loss per model key."""
        best: dict[str, tuple[int, float]] = {}
        for run_id, status, loss, key in self.runs:
            if status != RunStatus.DONE or loss is None or math.isnan(loss):
                continue
            if key not in best or loss < best[key][1]:
                best[key] = (run_id, loss)
        return dict(sorted(best.items()))

    def render(self) -> str:
        """The final summary: counts, best run per model, where the results are, a query."""
        counts = self.counts
        parts = [f"{counts[s]} {s}" for s in _ORDER if counts.get(s)]
        batched = f" ({self.tasks} Dask tasks)" if 0 < self.tasks < len(self.statuses) else ""
        lines = [f"sweep {self.sweep_id} ({self.kind}): {len(self.statuses)} runs in {self.seconds:.1f} s{batched}: {', '.join(parts) or 'nothing to do'}"]
        best = self.best()
        if best:
            width = max(len(k) for k in best)
            lines.append("best run per model (lowest test_loss):")
            lines += [f"  {key:<{width}}  run {run_id:<5} test_loss={loss:.3E}" for key, (run_id, loss) in best.items()]
        store = shlex.quote(str(self.store))
        if self.failed:
            shown = ", ".join(map(str, self.failed[:20])) + (" ..." if len(self.failed) > 20 else "")
            lines.append(f"failed runs: {shown} (tracebacks: mosaic status {store})")
        if self.paused_file is not None:
            lines.append(f"paused: {counts.get(RunStatus.PAUSED.value, 0)} runs saved in {self.paused_file}; continue with: mosaic resume {shlex.quote(str(self.paused_file))}")
        lines.append(f"results: {self.store} (sweep {self.sweep_id}); checkpoints and logs: {self.run_files}")
        query = "SELECT run_id, train_loss, test_loss FROM run_results ORDER BY test_loss LIMIT 5"
        lines.append(f"try: mosaic query {store} {shlex.quote(query)}")
        return "\n".join(lines)
