"""Shared fixtures. Tests use real components: real files under tmp_path, real clusters.

What is not a fixture (paths, store builders, servers, run tasks) is in :mod:`tests.helpers`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CLASSES_DRIVER, TUTORIAL
from tests.helpers.servers import OR_TABLE, Files


@pytest.fixture
def tutorial_dir(tmp_path: Path) -> Path:
    """A fresh copy of the shipped tutorial (config.ini, dataset.py, mlp.py)."""
    target = tmp_path / "tutorial"
    shutil.copytree(TUTORIAL, target)
    return target


@pytest.fixture
def tutorial_pipeline(tutorial_dir: Path) -> list[dict]:
    """The tutorial's first pipeline, on 40 samples in batches of 4 (its classes in ``tutorial_dir``)."""
    from mosaic.sweep import generate

    config = tutorial_dir / "config.ini"
    text = config.read_text().replace("data_size = 200", "data_size = 40").replace("batch_size = 1", "batch_size = 4")
    config.write_text(text)
    return generate(config)[0]


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands remember the last store under $MOSAIC_STATE_DIR: never the user's home in tests."""
    monkeypatch.setenv("MOSAIC_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def dask_client():
    """A session LocalCluster (2 worker processes, 1 thread each, on 127.0.0.1) and its client.

    Started like the embedded cluster of ``mosaic run``: a worker that dies fails its run at once.
    """
    from distributed import Client

    from mosaic.exec.cluster.local import start_local_cluster
    from mosaic.exec.cluster.plugins import WorkerSetup

    cluster = start_local_cluster(2, setup=WorkerSetup(torch_threads=1))
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """The driver test configs and classes beside the tutorial's dataset.py and mlp.py."""
    target = tmp_path / "sweep"
    shutil.copytree(CLASSES_DRIVER, target)
    for name in ("dataset.py", "mlp.py"):
        shutil.copy(TUTORIAL / name, target / name)
    return target


@pytest.fixture
def files() -> Iterator[Files]:
    """A real HTTP server on 127.0.0.1 serving the OR truth table (or.csv), big.bin and small.bin."""
    server = Files({"or.csv": OR_TABLE, "big.bin": b"b" * 900, "small.bin": b"s" * 100})
    yield server
    server.close()
