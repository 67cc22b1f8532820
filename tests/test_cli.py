"""The CLI is a thin skin: every command has help, maps to one public function, and runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import mosaic
from mosaic.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parent.parent


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
