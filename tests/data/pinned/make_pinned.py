"""Write pinned_losses.json: per-epoch losses of a few runs (run once, with the code to pin).

Usage: .venv/bin/python tests/data/pinned/make_pinned.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repository root: tests is a package

from tests.exec.training.test_epoch import CASES, run_case  # noqa: E402

if __name__ == "__main__":
    pinned = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in CASES:
            pinned[name] = run_case(name, Path(folder) / name)
    (HERE / "pinned_losses.json").write_text(json.dumps(pinned, indent=1) + "\n")
    print(f"wrote {HERE / 'pinned_losses.json'}: {', '.join(pinned)}")
