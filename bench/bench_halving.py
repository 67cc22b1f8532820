"""Benchmark: the tutorial sweep at 50 epochs, full grid against successive halving.

Usage: .venv/bin/python bench/bench_halving.py [--epochs 50] [--factor 3] [--min-epochs 1,3] [--out DIR]

Two shapes of the shipped tutorial (``mosaic init``), each run in one sitting as a full grid,
then as halving with each ``--min-epochs`` value, as ``mosaic run`` subprocesses timed from
start to exit:

- ``tutorial``: the tutorial as shipped, where a model is a section's key (``mlp_funnel``,
  ``mlp_brick``): 2 models of 12 runs (widths 2-4 pooled, 4 replicates);
- ``per width``: the same runs with ``key = mlp_funnel_{width}`` / ``mlp_brick_{width}``:
  6 models of 4 replicates.

For each: wall time, epochs trained (history rows), the share of the grid's epochs, whether the
verdict's best model on the grid's store (verdict ``best``) was kept to the last epoch by
halving, and which models the verdict calls ``tied`` with it were stopped. Then ``mosaic
replay`` on the grid's store gives its prediction of the same, and the table says whether the
real sweep's decisions are exactly the replay's. Prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mosaic
from mosaic.search.decisions import read_decisions

BIN = Path(sys.executable).parent


def _sweep(folder: Path, name: str, strategy: str, args: argparse.Namespace, per_width: bool) -> tuple[Path, float]:
    text = (folder / "config.ini").read_text()
    text = re.sub(r"^epochs = .*$", f"epochs = {args.epochs}", text, flags=re.M)
    text = text.replace("run_files_path = run_files", f"run_files_path = files_{name}")
    if per_width:
        text = text.replace("key = mlp_funnel\n", "key = mlp_funnel_{width}\n").replace("key = mlp_brick\n", "key = mlp_brick_{width}\n")
    text += f"\n[SEARCH]\nstrategy = {strategy}\nreduction_factor = {args.factor}\nmin_epochs = {args.first}\n"
    config = folder / f"{name}.ini"
    config.write_text(text)
    store = folder / f"store_{name}"
    started = time.perf_counter()
    subprocess.run([str(BIN / "mosaic"), "run", str(config), str(store), "--no-progress"], check=True,
                   capture_output=True, text=True, timeout=3600)
    return store, time.perf_counter() - started


def _epochs(store: Path) -> int:
    with mosaic.open_store(store) as session:
        return int(session.fetch("SELECT count(*) FROM history")[0][0])


def _stopped(store: Path) -> set[tuple[str, str]]:
    """(dataset, model) pairs halving stopped at some rung."""
    return {(str(r["dataset"]), str(r["model"])) for r in read_decisions(store) if not r["kept"]}


def _verdicts(store: Path) -> dict[tuple[str, str], str]:
    """(dataset, model) -> the verdict's word for it on ``store``."""
    table = mosaic.verdict(store).table
    return {(str(d), str(m)): str(v) for d, m, v in zip(table["dataset"], table["model"], table["verdict"], strict=True)}


def _decisions(store: Path) -> list[tuple[str, str, int, bool]]:
    return sorted((str(r["dataset"]), str(r["model"]), int(r["rung"]), bool(r["kept"])) for r in read_decisions(store))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--factor", type=int, default=3)
    parser.add_argument("--min-epochs", default="1,3", help="comma-separated first rungs to try")
    parser.add_argument("--out", type=Path, help="keep the stores here (default: a temporary folder)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-halving-"))
    firsts = [int(v) for v in str(args.min_epochs).split(",")]
    rows = []
    for label, per_width in (("tutorial", False), ("per width", True)):
        folder = root / label.replace(" ", "_")
        shutil.rmtree(folder, ignore_errors=True)
        mosaic.init(folder)
        args.first = firsts[0]
        grid, grid_s = _sweep(folder, "grid", "grid", args, per_width)
        verdicts = _verdicts(grid)
        for first in firsts:
            args.first = first
            halving, halving_s = _sweep(folder, f"halving{first}", "halving", args, per_width)
            replay = mosaic.replay(grid, reduction_factor=args.factor, min_epochs=first)
            stopped = _stopped(halving)
            best = sorted(m for key, m in ((k, k[1]) for k, v in verdicts.items() if v == "best") if key not in stopped)
            lost = sorted(m for (d, m), v in verdicts.items() if v == "best" and (d, m) in stopped)
            tied = sorted(m for (d, m), v in verdicts.items() if v == "tied" and (d, m) in stopped)
            same = _decisions(halving) == sorted((c.dataset, c.model, c.rung, c.kept) for c in replay.cuts)
            rows.append((label, first, grid_s, halving_s, _epochs(grid), _epochs(halving), best, lost, tied, same))
    print(f"tutorial, {args.epochs} epochs, reduction_factor {args.factor} ({root})\n")
    print("| models | min_epochs | grid s | halving s | time ratio | grid epochs | halving epochs | share "
          "| verdict's best kept | best stopped | tied stopped | = replay |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|")
    for label, first, grid_s, halving_s, grid_e, halving_e, best, lost, tied, same in rows:
        print(f"| {label} | {first} | {grid_s:.1f} | {halving_s:.1f} | {halving_s / grid_s:.2f} | {grid_e} | {halving_e} "
              f"| {halving_e / grid_e:.0%} | {', '.join(best) or '-'} | {', '.join(lost) or '-'} | {', '.join(tied) or '-'} "
              f"| {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
