"""Read and validate a Mosaic ``.ini`` file into immutable objects (no torch, no dask here).

Every violation raises :class:`~mosaic.errors.ConfigError` naming the file, section, key,
the bad value and the fix, before anything is written or started.
"""

from __future__ import annotations

import ast
import configparser
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mosaic import classpath, schemas
from mosaic.errors import config_error
from mosaic.search.spec import SECTION, SearchSpec, read_search

_RANGE = re.compile(r"\{\s*(\d+)\s*-\s*(\d+)\s*\}")
_TEMPLATE = re.compile(r"\{(\w+)\}")
_DEVICE = re.compile(r"cuda(:\d+)?|cpu")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT])i?B?", re.IGNORECASE)
_SIZE_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_BOOLEANS = configparser.ConfigParser.BOOLEAN_STATES
RESERVED = ("type", "class", "path_to_class", "key", "name")


@dataclass(frozen=True)
class Param:
    """One key of a class section: its raw text and what it expands to."""

    name: str
    raw: str
    kind: str  # "plain", "range" or "list"
    values: tuple[str | int, ...]


@dataclass(frozen=True)
class ClassSection:
    """A ``[section]`` with a ``type``: one alternative of that type."""

    name: str
    type: str
    class_name: str
    path_to_class: str
    resolved_path: Path
    key: str | None
    params: tuple[Param, ...]

    @property
    def expands(self) -> bool:
        """True when some key is a range or a list (the original then adds ``name``)."""
        return any(p.kind != "plain" for p in self.params)


@dataclass(frozen=True)
class Process:
    """The ``[PROCESS]`` section."""

    lr: float
    epochs: int
    data_scheme: tuple[str, ...]
    pipeline_scheme: tuple[str, ...]
    run_files_path: str | None
    loss_function: str | None
    class_loss_function: str | None
    path_to_class_loss_function: Path | None
    optimizer: str
    seed: int | None
    accuracy: str
    checkpoint_every: int | None
    patience: int | None
    raw: Mapping[str, str] = field(repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        """A setting by name, like a dict's ``get`` (the worker reads settings by name)."""
        return getattr(self, name, default) if name in _PROCESS_FIELDS else default

    def __getitem__(self, name: str) -> Any:
        if name not in _PROCESS_FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def __getstate__(self) -> dict[str, Any]:
        # ``raw`` is a read-only mapping proxy, which does not pickle: send a plain dict
        return {**self.__dict__, "raw": dict(self.raw)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, MappingProxyType(value) if name == "raw" else value)


_PROCESS_FIELDS = frozenset(f.name for f in fields(Process)) - {"raw"}


@dataclass(frozen=True)
class Monitor:
    """The ``[MONITOR]`` section."""

    need_gpu: bool
    gpu_available: tuple[str, ...]
    nb_processus: int
    multiplicity: int
    cache_database_path: str
    cache_size: int
    raw: Mapping[str, str] = field(repr=False)
    runs_per_task: int | None = None  # None: auto (mosaic.exec.driver.batching)
    legacy_history: bool = False  # also write history_<id>.pt in run_files


@dataclass(frozen=True)
class Config:
    """A validated config file."""

    path: Path
    text: str
    process: Process
    monitor: Monitor
    sections: tuple[ClassSection, ...]
    warnings: tuple[str, ...]
    search: SearchSpec = SearchSpec()  # [SEARCH]: the full grid unless it says otherwise

    @property
    def scheme(self) -> tuple[str, ...]:
        """Data scheme types then pipeline scheme types, in order."""
        return self.process.data_scheme + self.process.pipeline_scheme

    def sections_of(self, type_: str) -> tuple[ClassSection, ...]:
        """The class sections of one type, in file order."""
        return tuple(s for s in self.sections if s.type == type_)

    @property
    def base_dir(self) -> Path:
        """The folder of the config file (relative paths resolve here first)."""
        return self.path.parent


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a Mosaic ``.ini`` file.

    Raises ConfigError with file, section, key, value and the fix for any problem.
    """
    path = Path(path)
    text = _read(path)
    parser = _parse(path, text)
    for required in ("PROCESS", "MONITOR"):
        if not parser.has_section(required):
            raise config_error(path, None, None, f"no [{required}] section; add one (see mosaic/examples/tutorial/config.ini)")
    items = {name: _items(path, parser, name) for name in parser.sections()}
    process = _process(path, items["PROCESS"])
    monitor = _monitor(path, items["MONITOR"])
    warnings: list[str] = []
    sections = []
    for name in parser.sections():
        if name in ("PROCESS", "MONITOR", SECTION):
            continue
        if "type" not in items[name]:
            if "class" in items[name] or "path_to_class" in items[name]:
                types = ", ".join(process.data_scheme + process.pipeline_scheme)
                raise config_error(path, name, "type", f"missing; a class section needs 'type = ...' (one of: {types})")
            continue
        section = _class_section(path, name, items[name])
        if section.type not in process.data_scheme + process.pipeline_scheme:
            warnings.append(
                f"{path} [{name}]: type '{section.type}' is in neither data_scheme nor pipeline_scheme; section not used"
            )
            continue
        sections.append(section)
    for key in ("data_scheme", "pipeline_scheme"):
        for type_ in getattr(process, key):
            if not any(s.type == type_ for s in sections):
                known = sorted({s.type for s in sections}) or ["none"]
                raise config_error(
                    path, "PROCESS", key,
                    f"type '{type_}' has no section; add a section with 'type = {type_}' (types defined: {', '.join(known)})",
                )
    if monitor.need_gpu and monitor.gpu_available and monitor.nb_processus != len(monitor.gpu_available):
        warnings.append(
            f"{path} [MONITOR] nb_processus: {monitor.nb_processus} differs from the {len(monitor.gpu_available)} "
            "devices of gpu_available; Mosaic starts one worker per device"
        )
    search = read_search(path, items.get(SECTION), process.epochs, process.accuracy)
    return Config(path.resolve(), text, process, monitor, tuple(sections), tuple(warnings), search)


def _read(path: Path) -> str:
    if not path.exists():
        raise config_error(path, None, None, "config file not found; check the path")
    if path.is_dir():
        raise config_error(path, None, None, "is a folder, not a config file; give the .ini file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise config_error(path, None, None, f"not a text file ({exc.reason}); give a UTF-8 .ini file") from None


def _parse(path: Path, text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise config_error(
            path, None, None,
            f"line {exc.lineno}: {exc.line.strip()!r} comes before any [section]; not an ini file? Start with [PROCESS]",
        ) from None
    except configparser.DuplicateSectionError as exc:
        raise config_error(path, exc.section, None, f"line {exc.lineno}: section defined twice; merge or rename it") from None
    except configparser.DuplicateOptionError as exc:
        raise config_error(path, exc.section, exc.option, f"line {exc.lineno}: key given twice; keep one") from None
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        raise config_error(
            path, None, None, f"line {lineno}: cannot parse {line.strip()!r}; write 'key = value' inside a [section]"
        ) from None
    return parser


def _items(path: Path, parser: configparser.ConfigParser, section: str) -> dict[str, str]:
    try:
        return dict(parser[section])
    except configparser.InterpolationError as exc:
        raise config_error(path, section, getattr(exc, "option", None), f"{exc.message.splitlines()[0]}; write %% for a literal %") from None


def _number(path: Path, section: str, key: str, raw: str, kind: type, rule: Mapping) -> int | float:
    try:
        value = kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise config_error(path, section, key, f"'{raw}' is not {noun}; write e.g. {'10' if kind is int else '1e-3'}") from None
    if "min" in rule and value < rule["min"]:
        raise config_error(path, section, key, f"{raw} is below {rule['min']}; use {rule['min']} or more")
    if "min_exclusive" in rule and value <= rule["min_exclusive"]:
        raise config_error(path, section, key, f"{raw} must be greater than {rule['min_exclusive']}; e.g. 1e-3")
    return value


def _require(path: Path, section: str, values: Mapping[str, str]) -> None:
    for key, rule in schemas.config_keys(section).items():
        if rule["required"] and key not in values:
            raise config_error(path, section, key, f"missing; add '{key} = ...' ({rule['doc']})")


def _optional_int(path: Path, section: str, values: Mapping[str, str], key: str) -> int | None:
    if key not in values or values[key].strip() == "":
        return None
    return int(_number(path, section, key, values[key], int, schemas.config_keys(section)[key]))


def _process(path: Path, values: dict[str, str]) -> Process:
    rules = schemas.config_keys("PROCESS")
    _require(path, "PROCESS", values)
    lr = float(_number(path, "PROCESS", "lr", values["lr"], float, rules["lr"]))
    epochs = int(_number(path, "PROCESS", "epochs", values["epochs"], int, rules["epochs"]))
    schemes = {key: _scheme(path, key, values[key]) for key in ("data_scheme", "pipeline_scheme")}
    loss = values.get("loss_function", "").strip() or None
    class_loss = values.get("class_loss_function", "").strip() or None
    if loss and class_loss:
        raise config_error(path, "PROCESS", "loss_function", "both loss_function and class_loss_function are set; keep one")
    if not loss and not class_loss:
        raise config_error(
            path, "PROCESS", "loss_function",
            "missing; add 'loss_function = MSELoss' (a torch.nn loss) or class_loss_function + path_to_class_loss_function",
        )
    loss_path = None
    if loss and loss not in schemas.torch_names("losses"):
        raise config_error(path, "PROCESS", "loss_function", f"'{loss}' is not a torch.nn loss class; {_suggest(loss, schemas.torch_names('losses'))}")
    if class_loss:
        raw_path = values.get("path_to_class_loss_function", "").strip()
        if not raw_path:
            raise config_error(path, "PROCESS", "path_to_class_loss_function", f"missing; name the .py file that defines {class_loss}")
        loss_path = resolve_class_path(path, "PROCESS", "path_to_class_loss_function", raw_path)
        check_class_defined(path, "PROCESS", "class_loss_function", loss_path, class_loss)
    optimizer = values.get("optimizer", "").strip() or rules["optimizer"]["default"]
    if optimizer not in schemas.torch_names("optimizers"):
        raise config_error(path, "PROCESS", "optimizer", f"'{optimizer}' is not a torch.optim optimizer; {_suggest(optimizer, schemas.torch_names('optimizers'))}")
    accuracy = values.get("accuracy", "").strip().lower() or rules["accuracy"]["default"]
    if accuracy not in rules["accuracy"]["choices"]:
        raise config_error(path, "PROCESS", "accuracy", f"'{accuracy}' is not one of {', '.join(rules['accuracy']['choices'])}")
    return Process(
        lr=lr,
        epochs=epochs,
        data_scheme=schemes["data_scheme"],
        pipeline_scheme=schemes["pipeline_scheme"],
        run_files_path=values.get("run_files_path", "").strip() or None,
        loss_function=loss,
        class_loss_function=class_loss,
        path_to_class_loss_function=loss_path,
        optimizer=optimizer,
        seed=_optional_int(path, "PROCESS", values, "seed"),
        accuracy=accuracy,
        checkpoint_every=_optional_int(path, "PROCESS", values, "checkpoint_every"),
        patience=_optional_int(path, "PROCESS", values, "patience"),
        raw=MappingProxyType(dict(values)),
    )


def _scheme(path: Path, key: str, raw: str) -> tuple[str, ...]:
    types = tuple(t.strip() for t in raw.split(","))
    if not raw.strip() or any(not t for t in types):
        raise config_error(path, "PROCESS", key, f"'{raw}' is not a list of types; write e.g. '{key} = dataset' or 'a, b'")
    return types


def _monitor(path: Path, values: dict[str, str]) -> Monitor:
    rules = schemas.config_keys("MONITOR")
    _require(path, "MONITOR", values)
    need_gpu = _boolean(path, "MONITOR", "need_gpu", values["need_gpu"])
    devices = _devices(path, values["gpu_available"])
    if need_gpu and not devices:
        raise config_error(path, "MONITOR", "gpu_available", "need_gpu is True but no device is listed; write e.g. 'gpu_available = cuda:0, cuda:1'")
    nb = int(_number(path, "MONITOR", "nb_processus", values["nb_processus"], int, rules["nb_processus"]))
    multiplicity = int(_number(path, "MONITOR", "multiplicity", values["multiplicity"], int, rules["multiplicity"]))
    raw_size = values.get("cache_size", "").strip() or rules["cache_size"]["default"]
    match = _SIZE.fullmatch(raw_size)
    if not match:
        raise config_error(path, "MONITOR", "cache_size", f"'{raw_size}' has no unit; write a number with T, G, M or K, e.g. 500M")
    cache_size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    raw_batch = values.get("runs_per_task", "").strip() or rules["runs_per_task"]["default"]
    runs_per_task = None
    if raw_batch.lower() != "auto":
        if not raw_batch.isdigit():
            raise config_error(path, "MONITOR", "runs_per_task", f"'{raw_batch}' is neither auto nor a whole number; write 'runs_per_task = auto' or e.g. 1")
        runs_per_task = int(_number(path, "MONITOR", "runs_per_task", raw_batch, int, rules["runs_per_task"]))
    legacy_history = _boolean(path, "MONITOR", "legacy_history",
                              values.get("legacy_history", "").strip() or rules["legacy_history"]["default"])
    return Monitor(
        need_gpu=need_gpu,
        gpu_available=devices,
        nb_processus=nb,
        multiplicity=multiplicity,
        cache_database_path=values.get("cache_database_path", "").strip() or rules["cache_database_path"]["default"],
        cache_size=cache_size,
        raw=MappingProxyType(dict(values)),
        runs_per_task=runs_per_task,
        legacy_history=legacy_history,
    )


def _boolean(path: Path, section: str, key: str, raw: str) -> bool:
    """A boolean value as configparser spells them (True/False, yes/no, on/off, 1/0)."""
    text = raw.strip()
    if text.lower() not in _BOOLEANS:
        raise config_error(path, section, key, f"'{text}' is not a boolean; write True or False")
    return _BOOLEANS[text.lower()]


def _devices(path: Path, raw: str) -> tuple[str, ...]:
    text = raw.strip()
    if text.lower() in ("", "none"):
        return ()
    devices = tuple(d.strip() for d in text.split(","))
    for device in devices:
        if not _DEVICE.fullmatch(device):
            raise config_error(path, "MONITOR", "gpu_available", f"'{device}' is not a torch device; write None or e.g. 'cuda:0, cuda:1'")
    if len(set(devices)) != len(devices):
        raise config_error(path, "MONITOR", "gpu_available", f"'{raw}' lists a device twice; list each once")
    return devices


def _class_section(path: Path, name: str, values: dict[str, str]) -> ClassSection:
    for key in ("type", "class", "path_to_class"):
        if not values.get(key, "").strip():
            raise config_error(path, name, key, "missing; every class section needs type, class and path_to_class")
    type_ = values["type"].strip()
    if "," in type_:
        raise config_error(path, name, "type", f"'{type_}' is a list; a section has one type (use one section per type)")
    params = tuple(
        Param(key, raw, "plain", (raw,)) if key == "type" else parse_value(path, name, key, raw)
        for key, raw in values.items()
    )
    key_template = values.get("key")
    if key_template is not None:
        for template in _TEMPLATE.findall(key_template):
            if template != "name" and template not in values:
                have = ", ".join(k for k in values if k not in RESERVED)
                raise config_error(
                    path, name, "key",
                    f"template '{key_template}' names '{{{template}}}' but the section has no '{template}'; use one of: {have or 'no parameters'}",
                )
    by_name = {p.name: p for p in params}
    class_names = by_name["class"].values
    path_values = by_name["path_to_class"].values
    resolved = None
    for raw_path in path_values:
        resolved = resolve_class_path(path, name, "path_to_class", str(raw_path))
        for class_name in class_names:
            check_class_defined(path, name, "class", resolved, str(class_name))
    assert resolved is not None
    return ClassSection(
        name=name,
        type=type_,
        class_name=values["class"].strip(),
        path_to_class=values["path_to_class"].strip(),
        resolved_path=resolved,
        key=key_template,
        params=params,
    )


def parse_value(path: Path, section: str, key: str, raw: str) -> Param:
    """Parse one class-section value: plain string, ``{a-b}`` range, or comma list.

    Lists may embed ranges (``1, 2, {4-10}``); their items stay strings. ``key`` values are
    templates and never ranges.
    """
    text = raw.strip()
    items = [item.strip() for item in text.split(",")]
    items = [item for item in items if item]
    if len(items) >= 2:
        values: list[str | int] = []
        for item in items:
            if key != "key" and _looks_like_range(item):
                values.extend(str(v) for v in _range(path, section, key, item))
            else:
                values.append(item)
        return Param(key, raw, "list", tuple(dict.fromkeys(values)))
    if key != "key" and _looks_like_range(text):
        return Param(key, raw, "range", _range(path, section, key, text))
    return Param(key, raw, "plain", (raw,))


def _looks_like_range(text: str) -> bool:
    return text.startswith("{") or text.endswith("}")


def _range(path: Path, section: str, key: str, text: str) -> tuple[int, ...]:
    match = _RANGE.fullmatch(text)
    if not match:
        raise config_error(path, section, key, f"'{text}' is not a range; write {{min-max}} with whole numbers, e.g. {{2-5}}")
    low, high = int(match.group(1)), int(match.group(2))
    if low > high:
        raise config_error(path, section, key, f"range {text} runs backwards; write {{{high}-{low}}}")
    return tuple(range(low, high + 1))


def resolve_class_path(config_path: Path, section: str, key: str, raw: str) -> Path:
    """Find a class file: relative to the config's folder first, then the current directory."""
    found = classpath.find_class_file(raw, config_path.parent)
    if found is None:
        places = classpath.looked_at(raw, config_path.parent)
        raise config_error(config_path, section, key, f"'{raw}' not found (looked at {places}); fix the path")
    return found


def check_class_defined(config_path: Path, section: str, key: str, file: Path, class_name: str) -> None:
    """Check that ``file`` defines ``class_name`` at top level, without importing it."""
    try:
        tree = _parse_python(file.read_text(encoding="utf-8"), str(file))
    except (SyntaxError, UnicodeDecodeError) as exc:
        where = f" line {exc.lineno}" if isinstance(exc, SyntaxError) else ""
        raise config_error(config_path, section, "path_to_class", f"{file}{where} is not valid Python: {exc}; fix the file") from None
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    if class_name not in defined:
        classes = sorted(n.name for n in tree.body if isinstance(n, ast.ClassDef))
        raise config_error(
            config_path, section, key,
            f"class '{class_name}' is not defined in {file}; classes there: {', '.join(classes) or 'none'}",
        )


def _suggest(value: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, choices, n=3)
    if close:
        return f"did you mean {' or '.join(close)}?"
    return f"e.g. {', '.join(choices[:4])}"


def _parse_python(source: str, filename: str, attempts: int = 5) -> ast.Module:
    """``ast.parse``, again when CPython 3.11 reports a spurious "AST constructor recursion depth
    mismatch": its ast module keeps one depth counter for every thread (cpython gh-106905), so a
    parse in a background thread at the same moment (an in-process Dask scheduler, a notebook)
    can make ours fail although the source is fine."""
    for attempt in range(attempts):
        try:
            return ast.parse(source, filename=filename)
        except SystemError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")
