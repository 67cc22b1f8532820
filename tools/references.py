"""The documentation's generated pages, as Markdown text: the command-line reference (from
``mosaic.cli.build_parser``), the config-key reference (from ``schemas/config.json``) and the
Python API reference (mkdocstrings directives for every name of ``mosaic.__all__``).

``tools/mkdocs_hooks.py`` adds them to the site at build time; ``tests/test_docs.py`` checks
them. Nothing here imports mkdocs, so the tests run without the ``docs`` extra.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]

#: generated page -> the function writing it (paths inside docs/)
PAGES = {
    "reference/cli.md": "cli_reference",
    "reference/config.md": "config_reference",
    "reference/api.md": "api_reference",
}

_EXIT_CODES = (
    "Exit codes: `0` all good, `1` some runs failed, `2` bad input (one line on stderr naming "
    "the file, section, key, value and the fix; nothing written)."
)


def _prose(text: str) -> str:
    """Help text as Markdown prose: a table cell, no HTML tags, no emphasis by accident."""
    text = " ".join(text.split())
    for char, escaped in (("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("*", "\\*"), ("_", "\\_")):
        text = text.replace(char, escaped)
    return text


def _sentence(text: str) -> str:
    """Help text as a sentence of prose: a capital first, a full stop last."""
    text = _prose(text)
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _code(text: str) -> str:
    """Inline code, whatever backticks the text holds."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


# -- the command-line reference ------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line help, as ``mosaic --help`` lists it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _invocation(formatter: argparse.HelpFormatter, action: argparse.Action) -> str:
    if not action.option_strings:
        return formatter._metavar_formatter(action, action.dest)(1)[0]
    return formatter._format_action_invocation(action)


def _meaning(formatter: argparse.HelpFormatter, action: argparse.Action) -> str:
    text = formatter._expand_help(action) if action.help else ""
    extras = []
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        extras.append("one of " + ", ".join(f"`{choice}`" for choice in action.choices))
    default = action.default
    if (action.option_strings and default not in (None, False, argparse.SUPPRESS)
            and "default" not in text):
        extras.append(f"default `{default}`")
    if not action.option_strings and action.nargs == "?":
        extras.append("optional")
    return "; ".join([_prose(text)] + extras if text else extras)


def _command_section(name: str, summary: str, sub: argparse.ArgumentParser) -> list[str]:
    sub.formatter_class = functools.partial(argparse.HelpFormatter, width=96)
    formatter = sub._get_formatter()
    lines = [f"## mosaic {name}", "", _sentence(summary), ""]
    if sub.description and sub.description != summary:
        lines += [_sentence(sub.description), ""]
    prefix = "usage: "
    usage = [line.removeprefix(prefix if i == 0 else " " * len(prefix))
             for i, line in enumerate(sub.format_usage().strip().splitlines())]
    lines += ["```text", *usage, "```", ""]
    actions = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
    if actions:
        lines += ["| argument | meaning |", "| --- | --- |"]
        lines += [f"| {_code(_invocation(formatter, a))} | {_meaning(formatter, a)} |" for a in actions]
        lines.append("")
    return lines


def _legacy_scripts() -> dict[str, str]:
    """``mosaic_<command>`` console scripts of pyproject.toml -> the command they run."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    return {name: name.removeprefix("mosaic_") for name in sorted(scripts) if name.startswith("mosaic_")}


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference of every ``mosaic`` command, from the parser itself."""
    if parser is None:
        from mosaic.cli import build_parser

        parser = build_parser()
    commands = _subcommands(parser)
    summaries = _summaries(parser)
    lines = [
        "# Command-line reference",
        "",
        "Generated from the `mosaic` command's own argument parser when this site was built: "
        "every command and every flag is here. `mosaic COMMAND --help` prints the same.",
        "",
        _EXIT_CODES,
        "",
        "| command | does |",
        "| --- | --- |",
    ]
    lines += [f"| [`mosaic {name}`](#mosaic-{name}) | {_prose(summaries.get(name, ''))} |" for name in commands]
    lines.append("")
    for name, sub in commands.items():
        lines += _command_section(name, summaries.get(name, ""), sub)
    lines += [
        "## The original tool's command names",
        "",
        "Each runs the command of the same name with the original's argument order "
        "(see [Migrating from the original tool](../migrating.md)).",
        "",
        "| command | runs |",
        "| --- | --- |",
    ]
    lines += [f"| `{script}` | [`mosaic {command}`](#mosaic-{command}) |"
              for script, command in _legacy_scripts().items()]
    return "\n".join(lines) + "\n"


# -- the config-key reference --------------------------------------------------------------
_SECTION_TITLES = {
    "PROCESS": ("`[PROCESS]`", "How every run trains."),
    "MONITOR": ("`[MONITOR]`", "Where and how many runs train at once, and the dataset cache."),
    "SEARCH": ("`[SEARCH]`", "Which runs train to their planned epochs: see [Search strategies](../search.md)."),
    "class_section": (
        "Class sections",
        "Every other section with a `type` names one class of a scheme; its other keys are the "
        "class's constructor parameters (single values, lists `a, b` or ranges `{2-5}`).",
    ),
}

_TYPES = {
    "float": "number",
    "int": "whole number",
    "bool": "`True` / `False`",
    "str": "text",
    "path": "path",
    "scheme": "comma-separated types",
    "torch_loss": "`torch.nn` loss name",
    "torch_optimizer": "`torch.optim` name",
    "devices": "`None` or devices `cuda:0, cuda:1`",
    "size": "size with a unit (`500M`, `1G`, `2T`)",
}


def _rule(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "choice":
        return "one of " + ", ".join(f"`{choice}`" for choice in spec.get("choices", ()))
    words = [_TYPES.get(kind, f"`{kind}`")] if kind else []
    if "min" in spec:
        words.append(f"≥ {spec['min']}")
    if "min_exclusive" in spec:
        words.append(f"> {spec['min_exclusive']}")
    if "max" in spec:
        words.append(f"≤ {spec['max']}")
    return " ".join(words)


def _needed(spec: dict[str, Any]) -> str:
    if spec.get("required"):
        return "required"
    return f"default `{spec['default']}`" if "default" in spec else "optional"


def _section_title(section: str) -> tuple[str, str]:
    return _SECTION_TITLES.get(section, (f"`[{section}]`", ""))


def config_reference(schema: dict[str, Any] | None = None) -> str:
    """The reference of every config key, from ``schemas/config.json``."""
    if schema is None:
        schema = json.loads((ROOT / "schemas" / "config.json").read_text(encoding="utf-8"))
    lines = [
        "# Config-key reference",
        "",
        "Generated from `schemas/config.json`, the file Mosaic checks configs against, when this "
        "site was built: every key Mosaic reads is here. The [config guide](../config.md) "
        "explains how values expand into pipelines.",
        "",
    ]
    for section, keys in schema.items():
        if not isinstance(keys, dict):
            continue
        title, intro = _section_title(section)
        lines += [f"## {title}", ""]
        if intro:
            lines += [intro, ""]
        lines += ["| key | needed | value | meaning |", "| --- | --- | --- | --- |"]
        for key, spec in keys.items():
            lines.append(f"| `{key}` | {_needed(spec)} | {_rule(spec)} | {_prose(spec.get('doc', ''))} |")
        lines.append("")
    lines += [
        "## `[RERUN]`",
        "",
        "Only in the config given to `mosaic rerun`: each `[PROCESS]` key it sets replaces the runs' "
        "recorded value, except `optimizer`, `data_scheme`, `pipeline_scheme` and `run_files_path` "
        "(see [Running](../running.md#training-more-rerun)).",
        "",
    ]
    return "\n".join(lines)


# -- the Python API reference --------------------------------------------------------------
_API_GROUPS = (
    ("Configs and pipelines", ("mosaic.config", "mosaic.sweep", "mosaic.examples")),
    ("Running sweeps", ("mosaic.exec",)),
    ("The store", ("mosaic.store",)),
    ("Queries, plots, reports and the verdict", ("mosaic.analysis",)),
    ("Errors", ("mosaic.errors",)),
)


def _api_group(module: str) -> str:
    for title, prefixes in _API_GROUPS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return title
    return "Other"


def api_reference(api: dict[str, str] | None = None) -> str:
    """mkdocstrings directives for every public name of ``mosaic`` (name -> defining module)."""
    if api is None:
        import mosaic

        api = mosaic._API
    groups: dict[str, list[str]] = {}
    for name in sorted(api, key=lambda n: (n[0].isupper(), n.lower())):
        groups.setdefault(_api_group(api[name]), []).append(name)
    lines = [
        "# Python API reference",
        "",
        "Everything below is importable from `mosaic` itself (`mosaic.run`, `mosaic.query`, ...): "
        "each command of the [command line](cli.md) calls the function of the same name "
        "(`mosaic import` calls `import_db`). Generated from the docstrings when this site was built.",
        "",
        "```python",
        "import mosaic",
        'summary = mosaic.run("study/config.ini", "study/results")',
        'print(mosaic.query("study/results", "SELECT run_id, test_loss FROM run_results"))',
        "```",
        "",
    ]
    order = [title for title, _ in _API_GROUPS] + ["Other"]
    for title in order:
        if title not in groups:
            continue
        lines += [f"## {title}", ""]
        for name in groups[title]:
            lines += [f"::: {api[name]}.{name}", "    options:", f"      heading: \"mosaic.{name}\"", ""]
    return "\n".join(lines)


def page(path: str) -> str:
    """The text of one generated page (a key of :data:`PAGES`)."""
    return globals()[PAGES[path]]()


def headings(text: str) -> list[str]:
    """The ``##`` headings of a generated page (what its table of contents shows)."""
    return re.findall(r"^## (.+)$", text, re.MULTILINE)
