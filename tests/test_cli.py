"""The CLI (mosaic.cli) is a thin skin: every command has help, maps to one public function, and
runs; ``mosaic run``'s exit codes and Ctrl-C; the original's commands (``mosaic_run``,
``mosaic_rerun``, ``mosaic_savedb``) typed as a user of the original would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomllib

import mosaic
from mosaic.cli import COMMANDS, build_parser, main
from mosaic.exec.driver.status import status
from mosaic.store.writer import Store
from tests.helpers import BIN, ROOT
from tests.helpers import ORIGINAL_EXAMPLES as EXAMPLES
from tests.helpers.servers import Files

TIMEOUT_S = 300


def test_every_command_maps_to_a_public_function() -> None:
    build_parser()
    assert COMMANDS, "no command registered"
    for command, function in COMMANDS.items():
        assert function in mosaic.__all__, command
        assert callable(getattr(mosaic, function)), command


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    build_parser()
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: mosaic {command}" in out
        assert len(out.splitlines()) > 3, command


def test_legacy_aliases_are_installed() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mosaic"] == "mosaic.cli:console_main"
    for name in ("generate", "run", "status", "pause", "resume", "rerun", "savedb", "rekey", "plotloss", "metaplot"):
        target = scripts[f"mosaic_{name}"]
        module, attribute = target.split(":")
        assert callable(getattr(sys.modules.get(module) or __import__(module, fromlist=[attribute]), attribute))
        assert name in COMMANDS


def test_generate_through_the_installed_commands(tutorial_dir: Path) -> None:
    bin_dir = Path(sys.executable).parent
    out = tutorial_dir / "p.json"
    done = subprocess.run([bin_dir / "mosaic", "generate", tutorial_dir / "config.ini", out], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "24 pipelines saved" in done.stdout
    assert mosaic.read_pipelines(out) == mosaic.generate(tutorial_dir / "config.ini")
    legacy = subprocess.run([bin_dir / "mosaic_generate", tutorial_dir / "config.ini", tutorial_dir / "p.db"], capture_output=True, text=True, timeout=120)
    assert legacy.returncode == 2 and legacy.stderr.count("\n") == 1 and "not a .json file" in legacy.stderr
    assert not (tutorial_dir / "p.db").exists()


def test_generate_does_not_import_torch_or_dask(tutorial_dir: Path) -> None:
    code = (
        "import sys; from mosaic.cli import main; "
        f"main(['generate', {str(tutorial_dir / 'config.ini')!r}, {str(tutorial_dir / 'p.json')!r}]); "
        "print(sorted(m for m in ('torch', 'distributed', 'duckdb', 'altair') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_init_copies_a_working_tutorial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "study")]) == 0
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["config.ini", "dataset.py", "mlp.py"]
    assert len(mosaic.generate(tmp_path / "study" / "config.ini")) == 24
    capsys.readouterr()
    assert main(["init", str(tmp_path / "study")]) == 2
    assert "already has config.ini" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "study"), "--force"]) == 0


def test_public_api_is_explicit() -> None:
    for name in mosaic.__all__:
        assert hasattr(mosaic, name), name
    with pytest.raises(AttributeError):
        mosaic.not_a_function  # noqa: B018


@pytest.mark.parametrize("flag", ["-epoch", "-epochs"])
def test_epoch_and_epochs_both_parse(flag: str) -> None:
    args = build_parser().parse_args(["rerun", "config.ini", "store", "-id", "1-2", flag, "2"])
    assert args.epochs == 2 and args.id == "1-2"


# -- mosaic run: exit codes and Ctrl-C --------------------------------------------------------------
def mosaic_cli(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "mosaic", *map(str, args)], capture_output=True, text=True, timeout=180, env=env)


def test_cli_run_exit_codes(sweep_dir: Path, tmp_path: Path) -> None:
    done = mosaic_cli("run", sweep_dir / "tiny.ini", tmp_path / "ok", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "4 done" in done.stdout and "best run per model" in done.stdout
    assert "[run finished]" in done.stderr
    assert len(status(tmp_path / "ok").of("done")) == 4

    failed = mosaic_cli("run", sweep_dir / "faulty.ini", tmp_path / "bad")
    assert failed.returncode == 1, failed.stderr
    assert [r.status for r in status(tmp_path / "bad").runs] == ["done", "done", "error", "system failure"]

    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("lr = 1e-2", "lr = fast"))
    refused = mosaic_cli("run", config, tmp_path / "never")
    assert refused.returncode == 2 and "'fast' is not a number" in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "never").exists()

    config.write_text(config.read_text().replace("lr = fast", "lr = 1e-2"))
    refused = mosaic_cli("run", config, tmp_path / "never", env={**os.environ, "MOSAIC_WORKER_START": "threads"})
    assert refused.returncode == 2 and "MOSAIC_WORKER_START='threads'" in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "never").exists()


def test_cli_ctrl_c_leaves_a_readable_store(sweep_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = sweep_dir / "slow.ini"
    config.write_text(config.read_text().replace("epochs = 8", "epochs = 40"))
    # SIGINT back to its default in the child: started from a background job of a non-interactive
    # shell (`make test &`, CI), pytest inherits SIGINT *ignored*, Python then never installs its
    # KeyboardInterrupt handler and the child would finish its sweep as if nothing happened
    process = subprocess.Popen(
        [BIN / "mosaic", "run", config, store, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(r.status == "running" for r in _runs_or_nothing(store)):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    report = status(store)
    assert report.of("interrupted") and not report.of("running", "pending")
    assert "Interrupted" in report.render()
    with mosaic.open_store(store) as session:
        assert session.fetch("SELECT ended IS NOT NULL FROM sweeps") == [(True,)]
    assert not os.listdir(Store(store).control_dir)


def _runs_or_nothing(store: Path) -> list[Any]:
    if not (store / "runs").exists():
        return []
    try:
        return list(status(store).runs)
    except Exception:  # noqa: BLE001 - the first files may be being written
        return []


# -- the original's commands, end to end ---------------------------------------------------------------
# The original's example classes (tests/data/original_examples: the same API calls and shapes
# as its shipped dataset.py, mlp.py and loss_function.py), a config with
# ``class_loss_function = Mse``, ``batch_size = 8``, two model classes and ``cache_size = 1M``:
# ``mosaic_run`` ends with every run done and the best run learns OR;
# ``mosaic_rerun CONFIG STORE -id 1-2 -epoch 2`` continues runs 1 and 2 (8 epochs) to 10.
# Each command starts its own embedded LocalCluster, as it would for a user.
def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def query(store: Path, sql: str, cwd: Path) -> list[dict]:
    return json.loads(cli(BIN / "mosaic", "query", store, sql, "--format", "json", cwd=cwd).stdout)


def test_original_examples_through_the_legacy_commands(files: Files, tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    config = folder / "config.ini"
    text = config.read_text().replace("epochs = 30", "epochs = 8")
    for token, value in {"CACHE_DIR": tmp_path / "cache", "DATA_URL": files.url("or.csv"), "DATA_DIR": tmp_path / "data"}.items():
        text = text.replace(token, str(value))
    assert "class_loss_function = Mse" in text and "batch_size = 8" in text and "cache_size = 1M" in text
    config.write_text(text)
    store = tmp_path / "store"

    cli(BIN / "mosaic_run", config, store, "--no-progress", cwd=folder)
    runs = query(store, "SELECT run_id, status, pipeline FROM runs ORDER BY run_id", folder)
    assert [r["status"] for r in runs] == ["done", "done"] and len({r["pipeline"] for r in runs}) == 2
    first = {r["run_id"]: r for r in query(store, "SELECT run_id, epochs, test_loss FROM run_results", folder)}
    assert {r: v["epochs"] for r, v in first.items()} == {1: 8, 2: 8}
    assert min(v["test_loss"] for v in first.values()) < 0.05  # learns OR (the targets' variance is 0.17)

    cli(BIN / "mosaic_rerun", config, store, "-id", "1-2", "-epoch", "2", "--no-progress", cwd=folder)
    again = {r["run_id"]: r for r in query(store, "SELECT run_id, epochs, attempt, test_loss FROM run_results", folder)}
    assert {r: (v["epochs"], v["attempt"]) for r, v in again.items()} == {1: (10, 1), 2: (10, 1)}
    history = query(store, "SELECT run_id, count(*) AS n, max(epoch) AS last FROM history GROUP BY 1 ORDER BY 1", folder)
    assert [(h["n"], h["last"]) for h in history] == [(10, 10), (10, 10)]
    assert min(v["test_loss"] for v in again.values()) < 0.05  # continued, not restarted

    # the old numeric SQL answers the same rows on the store and on the sqlite file savedb writes
    copy = tmp_path / "copy.db"
    cli(BIN / "mosaic_savedb", store, copy, cwd=folder)
    con = sqlite3.connect(copy)
    try:
        for sql in ("SELECT run_id, param_name FROM params WHERE param_value > 2 ORDER BY 1, 2",
                    "SELECT run_id FROM params WHERE param_name = 'mlp_funnel_width' AND param_value = '8' ORDER BY 1",
                    "SELECT run_id, param_name FROM params WHERE param_value LIKE 'mlp%' ORDER BY 1, 2"):
            ours = [tuple(r.values()) for r in query(store, sql, folder)]
            assert ours == con.execute(sql).fetchall() and ours, sql
    finally:
        con.close()
