"""``mosaic resume`` (mosaic.exec.driver.resume): a pipeline file needs its store and config,
and with nothing to resume it refuses in one line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import mosaic
from mosaic.errors import UsageError
from mosaic.exec.driver.commands import resume
from tests.helpers import MOSAIC


def mosaic_cli(*args: Any) -> subprocess.CompletedProcess:
    return subprocess.run([str(MOSAIC), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_resume_of_a_generated_file_needs_store_and_config(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    pipelines = tmp_path / "p.json"
    mosaic.write_pipelines(mosaic.generate(sweep_dir / "tiny.ini")[:2], pipelines)
    with pytest.raises(UsageError, match="--store"):
        resume(pipelines)
    summary = resume(pipelines, store=tmp_path / "store", config=sweep_dir / "tiny.ini", client=dask_client)
    assert summary.exit_code == 0 and sorted(r for r, *_ in summary.runs) == [1, 2]


@pytest.mark.parametrize("form", ["no argument", "store"])
def test_resume_refuses_with_one_line_when_nothing_is_known(form: str, tmp_path: Path) -> None:
    args = [] if form == "no argument" else [tmp_path / "absent"]
    result = mosaic_cli("resume", *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
