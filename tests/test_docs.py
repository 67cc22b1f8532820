"""README.md documents every command and every config key (in the manner of sqlite-utils'
tests/test_docs.py): one test per command, per legacy entry point and per key, so that a
failure names what is missing.

- a command of ``mosaic.cli.COMMANDS`` must be shown as ``mosaic <command>`` in code: a fenced
  block or an inline code span;
- a legacy entry point of pyproject.toml's ``[project.scripts]`` (``mosaic_<command>``) must be
  shown in code the same way;
- a key of schemas/config.json (its PROCESS, MONITOR and class-section keys) must be named in
  README's text.
"""

from __future__ import annotations

import json
import re

import pytest
import tomllib

from mosaic.cli import COMMANDS, build_parser
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
#: fenced code blocks, then inline code spans (outside those blocks)
_FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_INLINE = re.compile(r"`([^`\n]+)`")


def _code(text: str) -> str:
    """Everything README shows as code, one piece a line."""
    blocks = _FENCED.findall(text)
    prose = _FENCED.sub("", text)
    return "\n".join([*blocks, *_INLINE.findall(prose)])


CODE = _code(README)


def _commands() -> list[str]:
    build_parser()  # fills COMMANDS
    return sorted(COMMANDS)


def _legacy_scripts() -> list[str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return sorted(name for name in scripts if name.startswith("mosaic_"))


def _config_keys() -> list[tuple[str, str]]:
    schema = json.loads((ROOT / "schemas" / "config.json").read_text())
    return [(section, key) for section, keys in schema.items() if isinstance(keys, dict) for key in keys]


def _shown(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_the_lists_checked_are_not_empty() -> None:
    assert len(_commands()) >= 10 and len(_legacy_scripts()) >= 10
    assert {section for section, _ in _config_keys()} >= {"PROCESS", "MONITOR"}


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_shown_in_code(command: str) -> None:
    assert _shown(f"mosaic {command}", CODE), f"README.md shows no `mosaic {command}` in code"


@pytest.mark.parametrize("script", _legacy_scripts())
def test_every_legacy_entry_point_is_shown_in_code(script: str) -> None:
    assert _shown(script, CODE), f"README.md shows no `{script}` in code"


@pytest.mark.parametrize(("section", "key"), _config_keys(), ids=[f"{s}.{k}" for s, k in _config_keys()])
def test_every_config_key_is_named(section: str, key: str) -> None:
    assert _shown(key, README), f"README.md never names the {section} key {key!r}"
