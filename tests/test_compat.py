"""Code written for the original tool runs unchanged and trains the same (issue 10, worker side).

The classes under tests/data/original_examples/ use the original's API the way its shipped
examples do; the sweep runs on the session LocalCluster against a real HTTP server.
"""

from __future__ import annotations

import http.server
import json
import multiprocessing
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import mosaic
from mosaic import cache
from mosaic.config import load_config
from mosaic.errors import TrainingError, UsageError
from mosaic.exec.cluster.connect import cache_settings, open_cluster
from mosaic.exec.training.checkpoints import load_checkpoint, save_checkpoint
from mosaic.exec.training.loop import Chain
from mosaic.exec.training.loss import AlignedLoss, alignment
from mosaic.exec.training.run import RunTask, execute_run
from tests.helpers import cache_workers

EXAMPLES = Path(__file__).resolve().parent / "data" / "original_examples"
OR_TABLE = b"0,0,0\n0,1,1\n1,0,1\n1,1,1\n"


class Files:
    """A real HTTP server on 127.0.0.1 serving ``/<name>`` from a dict; counts requests per path."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: Counter[str] = Counter()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests[self.path] += 1
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def files() -> Iterator[Files]:
    server = Files({"or.csv": OR_TABLE, "big.bin": b"b" * 900, "small.bin": b"s" * 100})
    yield server
    server.close()


def _query(store: Path, sql: str) -> list[dict[str, Any]]:
    return json.loads(mosaic.query(store, sql, format="json"))


# --- the original's examples, end to end -------------------------------------------------------


def test_original_examples_sweep_learn_or_and_rerun(files: Files, tmp_path: Path, dask_client: Any) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    config = folder / "config.ini"
    text = config.read_text()
    for token, value in {"CACHE_DIR": tmp_path / "cache", "DATA_URL": files.url("or.csv"), "DATA_DIR": tmp_path / "data"}.items():
        text = text.replace(token, str(value))
    config.write_text(text)
    store = tmp_path / "store"

    summary = mosaic.run(config, store, dask_client)

    runs = _query(store, "SELECT run_id, status, error FROM runs ORDER BY run_id")
    assert [r["status"] for r in runs] == ["done", "done"], runs
    assert summary.exit_code == 0
    best = _query(store, "SELECT min(test_loss) AS best, max(epochs) AS epochs FROM run_results")[0]
    assert best["epochs"] == 30
    assert best["best"] < 0.02  # OR learnt; a (B, B) broadcast stays near the targets' variance (0.17)
    # the truth table was downloaded once for both runs, into the folder given, and registered
    assert files.requests == {"/or.csv": 1}
    registry = cache.registered(tmp_path / "cache")
    assert str(tmp_path / "data" / "or_table.csv") in registry
    assert any(Path(p).name.startswith("or_sample_") for p in registry)
    # every worker points its cache at MONITOR cache_database_path / cache_size
    settings = dask_client.run(lambda: (str(cache.default_cache_dir()), cache._defaults.max_bytes))
    assert set(settings.values()) == {(str(tmp_path / "cache"), 1024**2)}

    again = mosaic.rerun(config, store, mosaic.Selection(ids="1-2"), epochs=2, client=dask_client)

    assert again.exit_code == 0 and sorted(r for r, *_ in again.runs) == [1, 2]
    rows = _query(store, "SELECT run_id, epochs, attempt, test_loss FROM run_results ORDER BY run_id")
    assert [(r["epochs"], r["attempt"]) for r in rows] == [(32, 1), (32, 1)]
    assert min(r["test_loss"] for r in rows) < 0.02  # continued from the trained state, not from scratch
    log = (folder / "run_files" / "output_1.log").read_text()
    assert "mosaic: load_model of mlp_funnel (pipeline module 1) failed" in log
    assert "restored from the run's checkpoint instead" in log


def test_cache_folder_is_made_absolute_against_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    config = tmp_path / "examples" / "config.ini"
    config.write_text(config.read_text().replace("CACHE_DIR", "my_cache"))
    monitor = load_config(config).monitor
    monkeypatch.chdir(tmp_path)
    assert cache_settings(monitor) == {"cache_dir": str(tmp_path / "my_cache"), "cache_bytes": 1024**2}


def test_embedded_cluster_workers_get_the_cache(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    config = tmp_path / "examples" / "config.ini"
    config.write_text(config.read_text().replace("CACHE_DIR", str(tmp_path / "cache")))
    cluster = open_cluster(load_config(config).monitor, workers=1)
    try:
        caches = cluster.client.run(lambda: (str(cache.default_cache_dir()), cache._defaults.max_bytes))
    finally:
        cluster.close()
    assert list(caches.values()) == [(str(tmp_path / "cache"), 1024**2)]


# --- mosaic.lib: the original's cache helpers ---------------------------------------------------


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "cache"
    cache.configure(folder, 1000)
    yield folder
    cache.configure(None, None)


def test_lib_exports_the_original_names() -> None:
    namespace: dict[str, Any] = {}
    exec("from mosaic.lib import *", namespace)  # the original's data classes import it this way
    assert {"get_path_file", "save_path_file", "download_file"} <= set(namespace)


def test_save_and_get_path_file(configured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mosaic.lib import get_path_file, save_path_file

    monkeypatch.chdir(tmp_path)
    Path("data.txt").write_bytes(b"x" * 300)
    assert get_path_file("data.txt") is False
    assert save_path_file("data.txt") is None
    assert get_path_file("data.txt") is True
    assert get_path_file(tmp_path / "data.txt") is True  # the same file, spelled absolute
    assert cache.registered(configured)[str(tmp_path / "data.txt")]["size"] == 300
    assert cache.cache_bytes(configured) == 300
    Path("data.txt").unlink()
    assert get_path_file("data.txt") is False  # deleted behind the cache's back: forgotten
    with pytest.raises(UsageError, match="file not found"):
        save_path_file("missing.txt")


def test_least_recently_used_files_are_deleted_past_cache_size(configured: Path, tmp_path: Path) -> None:
    from mosaic.lib import get_path_file, save_path_file

    paths = [tmp_path / f"f{i}.bin" for i in range(4)]
    for path in paths[:3]:
        path.write_bytes(b"x" * 300)
        save_path_file(path)  # 900 bytes of 1000
    assert get_path_file(paths[0])  # f0 used again: f1 is now the least recently used
    paths[3].write_bytes(b"x" * 300)
    save_path_file(paths[3])  # 1200 > 1000: f1 goes
    assert [p.exists() for p in paths] == [True, False, True, True]
    assert [get_path_file(p) for p in paths] == [True, False, True, True]
    assert cache.cache_bytes(configured) == 900


def test_download_file_downloads_once(configured: Path, files: Files, tmp_path: Path) -> None:
    from mosaic.lib import download_file, get_path_file

    target = tmp_path / "downloads" / "or.csv"
    first = download_file(files.url("or.csv"), str(target))
    assert first == str(target) and target.read_bytes() == OR_TABLE
    assert get_path_file(first)
    assert download_file(files.url("or.csv"), str(target)) == first
    assert download_file(files.url("or.csv"), str(tmp_path / "elsewhere.csv")) == first  # the same file again
    assert files.requests == {"/or.csv": 1}
    # a download counts against cache_size like any registered file
    download_file(files.url("big.bin"), str(tmp_path / "big.bin"))
    download_file(files.url("small.bin"), str(tmp_path / "small.bin"))
    assert not target.exists() and (tmp_path / "big.bin").exists() and (tmp_path / "small.bin").exists()
    assert download_file(files.url("or.csv"), str(target)) == str(target)
    assert files.requests["/or.csv"] == 2  # evicted, so downloaded again
    with pytest.raises(UsageError, match="HTTP 404"):
        download_file(files.url("missing.bin"), str(tmp_path / "missing.bin"))
    assert not (tmp_path / "missing.bin").exists()


def test_concurrent_processes_are_safe(tmp_path: Path) -> None:
    folder = str(tmp_path / "cache")
    groups = []
    for worker in range(4):
        group = []
        for index in range(40):
            path = tmp_path / f"w{worker}_{index}.bin"
            path.write_bytes(b"x" * (index + 1))
            group.append(str(path))
        groups.append(group)
    slow = Files({"shared.bin": b"s" * 1000})
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(4) as pool:
            pool.starmap_async(cache_workers.register_many, [(folder, g) for g in groups]).get(timeout=120)
            answers = pool.starmap_async(cache_workers.download, [(folder, slow.url("shared.bin"), str(tmp_path / f"d{i}.bin")) for i in range(4)]).get(timeout=120)
    finally:
        slow.close()
    registry = cache.registered(folder)
    assert all(path in registry for group in groups for path in group)  # no registration lost
    assert len(set(answers)) == 1 and slow.requests == {"/shared.bin": 1}


# --- loss on aligned shapes ---------------------------------------------------------------------


def test_alignment_rule() -> None:
    assert alignment((8, 1), (8,)) == (8,)
    assert alignment((8,), (8, 1)) == (8, 1)
    assert alignment((1, 1), (1,)) == (1,)  # batch size 1: a (1,) prediction, not a scalar
    assert alignment((8, 1, 3), (8, 3)) == (8, 3)
    assert alignment((8, 3), (8, 3)) is None
    assert alignment((8, 3), (8,)) is None
    assert alignment((1, 3), (1,)) is None  # class scores of one sample: left alone


@pytest.mark.parametrize("batch", [8, 1])
def test_mse_on_squeezable_shapes_matches_the_squeezed_loss(batch: int) -> None:
    prediction, target = torch.rand(batch, 1, requires_grad=True), torch.rand(batch)
    loss = AlignedLoss(torch.nn.MSELoss())
    value = loss(prediction, target)
    assert torch.allclose(value, ((prediction.squeeze(1) - target) ** 2).mean())
    value.backward()
    assert prediction.grad is not None and prediction.grad.shape == (batch, 1)
    # a last partial batch has other shapes: decided again
    assert torch.allclose(loss(prediction[:1], target[:1]), ((prediction[:1, 0] - target[:1]) ** 2).mean())


def test_a_loss_that_would_broadcast_fails_naming_both_shapes() -> None:
    loss = AlignedLoss(torch.nn.MSELoss())
    with pytest.raises(TrainingError, match=r"prediction shape \(8, 3\) and target shape \(8,\).*output_size"):
        loss(torch.rand(8, 3), torch.rand(8))

    class Custom(torch.nn.Module):  # not an nn.MSELoss, but torch warns that it broadcasts
        def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.l1_loss(prediction, target)

    with pytest.raises(TrainingError, match=r"\(4, 2\) and target shape \(4, 1\)"):
        AlignedLoss(Custom())(torch.rand(4, 2), torch.rand(4, 1))


def test_classification_losses_are_unchanged() -> None:
    scores, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    loss = AlignedLoss(torch.nn.CrossEntropyLoss())
    assert torch.equal(loss(scores, labels), torch.nn.CrossEntropyLoss()(scores, labels))
    assert torch.equal(loss(scores[:1], labels[:1]), torch.nn.CrossEntropyLoss()(scores[:1], labels[:1]))
    assert loss.reduction == "mean"  # the wrapped loss's attributes stay reachable


def test_a_broadcasting_run_ends_as_error(tmp_path: Path) -> None:
    folder = tmp_path / "classes"
    folder.mkdir()
    (folder / "wide.py").write_text(
        "import torch\n"
        "class Data:\n"
        "    def prepare(self, data, run_info, module_info):\n"
        "        ds = torch.utils.data.TensorDataset(torch.rand(16, 2), torch.rand(16))\n"
        "        loader = torch.utils.data.DataLoader(ds, batch_size=8)\n"
        "        return loader, loader\n"
        "class Wide(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layer = torch.nn.Linear(2, 3)\n"
        "    def forward(self, data, run_info, module_info):\n"
        "        return self.layer(data)\n"
    )
    task = RunTask(
        run_id=1, attempt=0, sweep_id=1, config_dir=str(folder), run_files=str(tmp_path / "files"), epochs=1,
        pipeline=[
            {"type": "dataset", "class": "Data", "path_to_class": "wide.py"},
            {"type": "mlp", "class": "Wide", "path_to_class": "wide.py"},
        ],
        process={"lr": 0.01, "loss_function": "MSELoss", "data_scheme": ["dataset"]},
    )
    outcome = execute_run(task)
    assert outcome.status == "error"
    assert "prediction shape (8, 3) and target shape (8,)" in (outcome.error or "")


# --- resume without the user's load_model ----------------------------------------------------------


class Pickled(torch.nn.Module):
    """save_model pickles the module; load_model cannot read it back (weights_only) and assigns self."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def forward(self, data: Any, run_info: Any, module_info: Any) -> torch.Tensor:
        return self.layer(data)

    def save_model(self, path: str) -> None:
        torch.save(self, path + ".pt")

    def load_model(self, path: str) -> None:
        self = torch.load(path + ".pt")  # noqa: F841 - raises under weights_only=True


class Broken(Pickled):
    def save_model(self, path: str) -> None:
        raise OSError("disk full")


def test_restore_with_a_failing_load_model(tmp_path: Path) -> None:
    saved_module = Pickled()
    optimizer = torch.optim.Adam(saved_module.parameters(), lr=0.1)
    saved_module.layer(torch.ones(4, 2)).sum().backward()
    optimizer.step()
    notes: list[str] = []
    chain = Chain([saved_module], [{}], [1])
    path = save_checkpoint(tmp_path / "ckpt.pt", chain, optimizer, lambda i: str(tmp_path / f"model_{i}"), {"epoch": 3}, note=notes.append)
    assert notes == [] and (tmp_path / "model_1.pt").is_file()
    with pytest.raises(Exception, match="weights_only"):
        torch.load(tmp_path / "model_1.pt")  # what the user's load_model runs into

    fresh = Pickled()
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.1)
    extra = load_checkpoint(path, Chain([fresh], [{}], [1]), fresh_optimizer, note=notes.append)

    assert extra["epoch"] == 3
    assert torch.equal(fresh.layer.weight, saved_module.layer.weight)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 1
    assert len(notes) == 1 and "load_model of Pickled (pipeline module 1) failed" in notes[0]
    assert "restored from the run's checkpoint instead" in notes[0]


def test_a_failing_save_model_does_not_fail_the_checkpoint(tmp_path: Path) -> None:
    module = Broken()
    notes: list[str] = []
    path = save_checkpoint(tmp_path / "ckpt.pt", Chain([module], [{}], [0]), None, lambda i: str(tmp_path / "m"), {}, note=notes.append)
    assert len(notes) == 1 and "save_model of Broken (pipeline module 0) failed: OSError: disk full" in notes[0]
    fresh = Broken()
    load_checkpoint(path, Chain([fresh], [{}], [0]), None, note=notes.append)
    assert torch.equal(fresh.layer.weight, module.layer.weight) and len(notes) == 1
