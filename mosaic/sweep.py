"""Expand a config into pipelines, exactly as the original ``mosaic_generate`` did.

A pipeline is a list of section dicts, one per scheme type, in the legacy JSON shape:
every key of the section in file order, range values as integers, everything else as
strings, ``name`` (the section name) appended to sections that expanded, and the ``key``
template filled. Pipelines are the Cartesian product of each type's variants (first type
outermost), each repeated ``multiplicity`` times consecutively.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mosaic.config import RESERVED, ClassSection, Config, load_config
from mosaic.errors import ConfigError, UsageError
from mosaic.store.files import atomic_write

Section = dict[str, Any]
Pipeline = list[Section]

_TEMPLATE = re.compile(r"\{(\w+)\}")


def section_variants(section: ClassSection) -> list[Section]:
    """Every variant of one class section, in the legacy order.

    Range keys vary slowest (first in file outermost), then list keys (first outermost).
    """
    ranges = [p for p in section.params if p.kind == "range"]
    lists = [p for p in section.params if p.kind == "list"]
    varying = ranges + lists
    base = {p.name: p.values[0] for p in section.params}
    variants = []
    for combo in itertools.product(*(p.values for p in varying)):
        variant = dict(base)
        for param, value in zip(varying, combo, strict=True):
            variant[param.name] = value
        if section.expands and "name" not in variant:
            variant["name"] = section.name
        if "key" in variant:
            variant["key"] = fill_key(str(variant["key"]), variant)
        variants.append(variant)
    return variants


def fill_key(template: str, values: Section) -> str:
    """Replace each ``{param}`` of a key template by that parameter's value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(values.get(name, values.get("name", "")))

    return _TEMPLATE.sub(value, template)


def iter_pipelines(config: Config) -> Iterator[Pipeline]:
    """Yield the pipelines of a config lazily (each repeated ``multiplicity`` times)."""
    per_type = {}
    for type_ in dict.fromkeys(config.scheme):
        per_type[type_] = [v for s in config.sections_of(type_) for v in section_variants(s)]
    multiplicity = config.monitor.multiplicity
    for combo in itertools.product(*(per_type[t] for t in config.scheme)):
        pipeline = list(combo)
        for _ in range(multiplicity):
            yield pipeline


def generate(config: str | Path | Config) -> list[Pipeline]:
    """Expand a config (path or loaded Config) into its list of pipelines.

    Sections are shared between pipelines that use the same variant: treat them as read-only.
    """
    if not isinstance(config, Config):
        config = load_config(config)
    return list(iter_pipelines(config))


def count_pipelines(config: Config) -> int:
    """How many pipelines a config expands to, without building them."""
    total = config.monitor.multiplicity
    for type_ in config.scheme:
        total *= sum(len(section_variants(s)) for s in config.sections_of(type_))
    return total


def write_pipelines(pipelines: Sequence[Pipeline], path: str | os.PathLike[str]) -> Path:
    """Write a legacy pipeline file (JSON, indent 4) atomically; the name must end in .json."""
    path = Path(path)
    if path.suffix != ".json":
        raise UsageError(f"{path}: a pipeline file must end in .json (the original's rule); e.g. {path.with_suffix('.json')}")
    if not path.parent.exists():
        raise UsageError(f"{path}: folder {path.parent} does not exist; create it first")
    return atomic_write(path, json.dumps(list(pipelines), indent=4))


def read_pipelines(path: str | os.PathLike[str]) -> list[Pipeline]:
    """Read a pipeline file written by ``generate``/``pause`` (ours or the original's)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: pipeline file not found; create it with 'mosaic generate CONFIG {path.name}'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}); regenerate it with 'mosaic generate'") from None
    if isinstance(data, dict) and "pipelines" in data:
        data = data["pipelines"]
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON list of pipelines, got {type(data).__name__}")
    for index, pipeline in enumerate(data):
        if not isinstance(pipeline, list) or not all(isinstance(s, dict) for s in pipeline):
            raise ConfigError(f"{path}: pipeline {index} is not a list of section objects")
        for section in pipeline:
            missing = [k for k in ("type", "class", "path_to_class") if k not in section]
            if missing:
                raise ConfigError(f"{path}: pipeline {index} has a section without {', '.join(missing)}")
    return data


def format_pipeline(pipeline: Pipeline) -> str:
    """The legacy one-line form: ``dataset_OR(4,80,0.8) | mlp_brick(2,2)``."""
    parts = []
    for section in pipeline:
        args = ",".join(str(v) for k, v in section.items() if k not in RESERVED)
        parts.append(f"{section['class']}({args})")
    return " | ".join(parts)


def legacy_params(pipeline: Pipeline) -> list[tuple[str, Any]]:
    """The original's params rows for a pipeline: ``<class>_<param>`` and ``<type>_key``.

    Values keep their JSON type (range values are integers), as the original stored them.
    """
    rows: list[tuple[str, Any]] = []
    for section in pipeline:
        for name, value in section.items():
            if name == "key":
                rows.append((f"{section['type']}_key", value))
            else:
                rows.append((f"{section['class']}_{name}", value))
    return rows


def pipeline_key(pipeline: Pipeline, type_: str) -> str | None:
    """The filled key of the section of ``type_`` in a pipeline, if any."""
    for section in pipeline:
        if section.get("type") == type_ and "key" in section:
            return str(section["key"])
    return None


# -- the one rule for "dataset" and "model" (the driver's summary, the report, the verdict) ----
def scheme_types(raw: Any) -> tuple[str, ...]:
    """The types of a recorded ``data_scheme``/``pipeline_scheme`` value (``'a, b'`` -> ``('a', 'b')``)."""
    if not isinstance(raw, str):
        return ()
    return tuple(t for t in (part.strip() for part in raw.split(",")) if t)


def scheme_label(pipeline: Pipeline, types: Sequence[str], keys: Mapping[str, Any] | None = None) -> str:
    """The part of a pipeline made of the sections of ``types``, as one label.

    Each type gives its key (``keys[type]`` first: a ``<type>_key`` param, which ``rekey``
    rewrites; else the section's ``key``), else its class name, else the type itself; the
    parts are joined with `` | ``.
    """
    parts = []
    for type_ in types:
        key = keys.get(type_) if keys else None
        if key is None:
            key = pipeline_key(pipeline, type_)
        if key is None:
            key = next((str(s["class"]) for s in pipeline if s.get("type") == type_ and "class" in s), type_)
        parts.append(str(key))
    return " | ".join(parts)


def dataset_and_model(
    pipeline: Pipeline,
    data_scheme: Sequence[str] = (),
    pipeline_scheme: Sequence[str] = (),
    keys: Mapping[str, Any] | None = None,
) -> tuple[str | None, str | None]:
    """The dataset and the model a run trains: the labels (:func:`scheme_label`) of its
    data-scheme part and of its pipeline-scheme part. Replicates share both.

    Without the schemes (a database of the original tool that did not record them), the
    first section's type is the dataset and the last section's type the model. An empty
    pipeline has neither.
    """
    if not pipeline:
        return None, None
    if not data_scheme or not pipeline_scheme:
        types = [str(s.get("type")) for s in pipeline]
        data_scheme, pipeline_scheme = types[:1], types[-1:]
    return scheme_label(pipeline, data_scheme, keys), scheme_label(pipeline, pipeline_scheme, keys)
