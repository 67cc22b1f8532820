"""The documentation covers every command, flag and config key (in the manner of sqlite-utils'
tests/test_docs.py), and the README leads into it.

The references are generated from the code at each ``make docs`` (tools/references.py, called
by tools/mkdocs_hooks.py); these tests check the generated text itself, one test per command,
legacy entry point and key, so that a failure names what is missing:

- a command of ``mosaic.cli.COMMANDS`` has its section in the command-line reference, with
  every flag and argument of its parser;
- a legacy entry point of pyproject.toml's ``[project.scripts]`` (``mosaic_<command>``) is in
  the command-line reference;
- a key of schemas/config.json is in the config-key reference, under its section;
- a public name of ``mosaic`` is in the API reference.

And the site holds together: README (under 150 lines) links only to files that exist, its
links into docs/ are pages of the site's nav, and every page of the nav exists.
"""

from __future__ import annotations

import argparse
import json
import re

import pytest
import tomllib
import yaml

import mosaic
from mosaic.cli import COMMANDS, build_parser
from tests.helpers import ROOT
from tools import references

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
CLI = references.cli_reference()
CONFIG = references.config_reference()
API = references.api_reference()


def _commands() -> list[str]:
    build_parser()  # fills COMMANDS
    return sorted(COMMANDS)


def _legacy_scripts() -> list[str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return sorted(name for name in scripts if name.startswith("mosaic_"))


def _config_keys() -> list[tuple[str, str]]:
    schema = json.loads((ROOT / "schemas" / "config.json").read_text())
    return [(section, key) for section, keys in schema.items() if isinstance(keys, dict) for key in keys]


def _section(text: str, heading: str) -> str:
    """The text under one ``## heading`` of a page, up to the next one ('' when absent)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


def _shown(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_lists_checked_are_not_empty() -> None:
    assert len(_commands()) >= 10 and len(_legacy_scripts()) >= 10
    assert {section for section, _ in _config_keys()} >= {"PROCESS", "MONITOR"}
    assert len(mosaic.__all__) >= 20


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_its_section_with_every_flag(command: str) -> None:
    section = _section(CLI, f"mosaic {command}")
    assert section, f"the command-line reference has no section `mosaic {command}`"
    parser = _subparsers()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings or [action.metavar if isinstance(action.metavar, str) else action.dest]
        for name in names:
            assert _shown(name, section), f"`mosaic {command}`: {name} is missing from its reference section"


@pytest.mark.parametrize("script", _legacy_scripts())
def test_every_legacy_entry_point_is_in_the_cli_reference(script: str) -> None:
    assert _shown(script, CLI), f"the command-line reference never names `{script}`"


@pytest.mark.parametrize(("section", "key"), _config_keys(), ids=[f"{s}.{k}" for s, k in _config_keys()])
def test_every_config_key_is_in_the_config_reference(section: str, key: str) -> None:
    title, _ = references._section_title(section)
    assert _shown(f"`{key}`", _section(CONFIG, title)), f"the config-key reference lacks the {section} key {key!r}"


@pytest.mark.parametrize("name", sorted(set(mosaic.__all__) - {"__version__"}))
def test_every_public_name_is_in_the_api_reference(name: str) -> None:
    assert f".{name}\n" in API and f'heading: "mosaic.{name}"' in API, f"the API reference lacks mosaic.{name}"


def test_the_reference_headings_are_the_commands_in_parser_order() -> None:
    headings = [h.removeprefix("mosaic ") for h in references.headings(CLI) if h.startswith("mosaic ")]
    assert headings == list(_subparsers())


# -- the site holds together ---------------------------------------------------------------
def _nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


NAV = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
GENERATED = {*references.PAGES, "changelog.md"}


def test_readme_is_a_front_door() -> None:
    lines = README.count("\n")
    assert lines < 150, f"README.md has {lines} lines: move the detail into docs/"


def test_readme_links_lead_to_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link.split("#")[0] for link in links if "://" not in link and not link.startswith("#")]
    assert local, "README.md links to no documentation page"
    missing = [link for link in local if not (ROOT / link).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    outside_nav = [link for link in local if link.startswith("docs/") and link.endswith(".md")
                   and link.removeprefix("docs/") not in NAV]
    assert not outside_nav, f"README.md links to docs pages that are not in mkdocs.yml's nav: {outside_nav}"


@pytest.mark.parametrize("page", NAV)
def test_every_page_of_the_nav_exists(page: str) -> None:
    assert page in GENERATED or (DOCS / page).is_file(), f"mkdocs.yml's nav names {page}, which does not exist"


def test_every_page_written_is_in_the_nav() -> None:
    written = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert not set(written) - set(NAV), f"pages no menu leads to: {sorted(set(written) - set(NAV))}"
