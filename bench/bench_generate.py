"""Benchmark: expanding a config into pipelines (target: 100,000 pipelines in under 2 s, linear).

Usage: .venv/bin/python bench/bench_generate.py [--sizes 1000,10000,100000] [--repeat 3]
Prints one line per size: pipelines, best generate() seconds, microseconds per pipeline,
seconds to also write the legacy JSON file.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import mosaic
from mosaic.sweep import write_pipelines

TUTORIAL = Path(mosaic.__file__).resolve().parent / "examples" / "tutorial"

CONFIG = """\
[PROCESS]
lr = 1e-2
epochs = 10
loss_function = MSELoss
data_scheme = dataset
pipeline_scheme = mlp

[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 2
multiplicity = {multiplicity}

[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./dataset.py
batch_size = 1, 2, 4, 8, 16
data_size = 200
train_prop = 0.8
key = data_{{batch_size}}

[mlp_funnel]
type = mlp
class = mlp_funnel
path_to_class = ./mlp.py
key = funnel_{{length}}_{{width}}
length = {{1-10}}
width = {{1-{width}}}

[mlp_brick]
type = mlp
class = mlp_brick
path_to_class = ./mlp.py
key = brick_{{length}}_{{width}}
length = {{1-10}}
width = {{1-{width}}}
"""


def measure(folder: Path, pipelines_wanted: int, repeat: int) -> tuple[int, float, float]:
    # 5 datasets x 2 models x 10 lengths x W widths, every pipeline distinct (multiplicity 1)
    width = max(1, pipelines_wanted // (5 * 2 * 10))
    multiplicity = 1
    path = folder / "config.ini"
    path.write_text(CONFIG.format(multiplicity=multiplicity, width=width))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        pipelines = mosaic.generate(path)
        best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    write_pipelines(pipelines, folder / "p.json")
    written = time.perf_counter() - start
    return len(pipelines), best, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("dataset.py", "mlp.py"):
            shutil.copy(TUTORIAL / name, folder / name)
        print(f"{'pipelines':>10} {'generate_s':>11} {'us/pipeline':>12} {'write_json_s':>13}")
        for size in (int(s) for s in args.sizes.split(",")):
            count, seconds, written = measure(folder, size, args.repeat)
            print(f"{count:>10} {seconds:>11.3f} {seconds / count * 1e6:>12.2f} {written:>13.3f}")


if __name__ == "__main__":
    main()
