"""An independent re-statement of the original ``mosaic_generate`` algorithm, for tests only.

It reproduces the original's observable behaviour (recursive expansion with de-duplication,
range values as ints, list items split on the original's token characters, ``name`` added to
expanded sections, key templates filled) so that tests can compare our sweep output with it
on configs the original handles correctly.
"""

from __future__ import annotations

import configparser
import re

_RANGE_PREFIX = re.compile(r"\{([0-9]+)-([0-9]+)\}")
_TOKEN = re.compile(r"[\w./:{}-]+")


def _expand_ranges(out: list[dict], section: dict, name: str) -> None:
    found = False
    for key, value in section.items():
        match = _RANGE_PREFIX.match(str(value))
        if match:
            found = True
            for number in range(int(match.group(1)), int(match.group(2)) + 1):
                child = dict(section)
                child.setdefault("name", name)
                child[key] = number
                _expand_ranges(out, child, name)
    if not found and section not in out:
        out.append(section)


def _expand_lists(out: list[dict], section: dict, name: str) -> None:
    found = False
    for key, value in section.items():
        tokens = _TOKEN.findall(str(value))
        if len(tokens) > 1:
            found = True
            for token in tokens:
                child = dict(section)
                child.setdefault("name", name)
                child[key] = token
                _expand_lists(out, child, name)
    if not found and section not in out:
        out.append(section)


def _fill_key(section: dict) -> None:
    if "key" in section:
        section["key"] = re.sub(r"\{(\w+)\}", lambda m: str(section[m.group(1)]), section["key"])


def legacy_generate(path: str) -> list[list[dict]]:
    """Pipelines as the original tool generated them."""
    parser = configparser.ConfigParser()
    parser.read(path)
    by_type: dict[str, list[dict]] = {}
    for name in parser.sections():
        raw = dict(parser[name])
        if "type" not in raw:
            continue
        ranged: list[dict] = []
        _expand_ranges(ranged, raw, name)
        variants: list[dict] = []
        for section in ranged:
            _expand_lists(variants, section, name)
        for section in variants:
            _fill_key(section)
        by_type.setdefault(raw["type"], []).extend(variants)
    scheme = re.split(r" ?, ?", parser["PROCESS"]["data_scheme"] + "," + parser["PROCESS"]["pipeline_scheme"])
    pipelines: list[list[dict]] = [[]]
    for type_ in scheme:
        pipelines = [p + [s] for p in pipelines for s in by_type[type_]]
    multiplicity = int(parser["MONITOR"]["multiplicity"])
    return [p for p in pipelines for _ in range(multiplicity)]
