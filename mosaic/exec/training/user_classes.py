"""The user's classes on a worker: imported from their files, built with their parameters.

:func:`import_class` imports a class from a ``path_to_class`` file (or the copy shipped with
the task, :mod:`mosaic.exec.wire.sources`), once per process and file version;
:func:`instantiate` builds it with constructor parameters matched by name from the run's
``run_info`` and its config section, converted to the annotated scalar types.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import sys
import threading
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from mosaic import classpath
from mosaic.config import RESERVED
from mosaic.errors import PipelineError
from mosaic.exec.wire.sources import SourceBundle, locate

_import_lock = threading.RLock()
_modules: dict[tuple[str, int], types.ModuleType] = {}


def resolve_class_path(path_to_class: str, config_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a ``path_to_class`` points (:mod:`mosaic.classpath`); PipelineError when nowhere."""
    found = classpath.find_class_file(path_to_class, config_dir or None)
    if found is None:
        looked = classpath.looked_at(path_to_class, config_dir or None, " and ")
        raise PipelineError(f"class file '{path_to_class}' not found (looked at {looked}); fix path_to_class")
    return found


def import_class(path_to_class: str, class_name: str, config_dir: str | os.PathLike[str] | None = None, sources: SourceBundle | None = None) -> type:
    """Import ``class_name`` from a user's ``.py`` file (or its copy in ``sources``, see
    :func:`mosaic.exec.wire.sources.locate`), once per process and file version.

    The module is cached by resolved path and modification time, so an edited file is
    imported again. It is registered in ``sys.modules`` (pickling and dataclasses need that)
    and its folder is on ``sys.path`` while it runs, so it can import its neighbours.
    """
    path = locate(sources, path_to_class) or resolve_class_path(path_to_class, config_dir)
    key = (str(path), path.stat().st_mtime_ns)
    with _import_lock:
        module = _modules.get(key)
        if module is None:
            module = _load_module(path)
            for old in [k for k in _modules if k[0] == key[0]]:
                del _modules[old]
            _modules[key] = module
    cls = getattr(module, class_name, None)
    if cls is None or not callable(cls):
        classes = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__)
        raise PipelineError(f"class '{class_name}' is not defined in {path}; classes there: {', '.join(classes) or 'none'}")
    return cast(type, cls)


def _load_module(path: Path) -> types.ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"mosaic_user_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineError(f"{path} cannot be imported as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
    return module


# --- constructor parameters -------------------------------------------------------------------

_SCALARS = {"int": int, "float": float, "bool": bool, "str": str}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _scalar_type(annotation: Any) -> type | None:
    """int/float/bool/str when the annotation is one of them (optionally ``| None``)."""
    if annotation in (int, float, bool, str):
        return cast(type, annotation)
    if isinstance(annotation, str):
        text = annotation.strip()
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional["):-1]
        parts = [p.strip() for p in text.split("|") if p.strip() not in ("None", "NoneType")]
        return _SCALARS.get(parts[0]) if len(parts) == 1 else None
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in (int, float, bool, str):
            return cast(type, rest[0])
    return None


def coerce(value: Any, annotation: Any, where: str, name: str) -> Any:
    """Convert a config value to the parameter's annotated type (int, float, bool or str)."""
    kind = _scalar_type(annotation)
    if kind is None or value is None or type(value) is kind:
        return value
    if not isinstance(value, str | int | float | bool | np.generic):
        return value
    try:
        if kind is bool:
            return _BOOLS[str(value).strip().lower()]
        if kind is int:
            number = float(value) if isinstance(value, str) and not value.strip().lstrip("+-").isdigit() else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(value)
            return int(number)
        if kind is float:
            return float(value)
        return str(value)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise PipelineError(
            f"{where}: parameter '{name}' is annotated {kind.__name__} but its value is {value!r}; "
            f"give a {kind.__name__} in the section"
        ) from None


def instantiate(cls: type, section: Mapping[str, Any], run_info: Mapping[str, Any], where: str) -> Any:
    """Build ``cls`` with constructor parameters matched by name: ``run_info`` first, then the section.

    Reserved section keys (type, class, path_to_class, key, name) are never passed.
    Raises PipelineError naming the class and the parameter when a required one is missing.
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return cls()
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in run_info:
            value = run_info[name]
        elif name in section and name not in RESERVED:
            value = section[name]
        elif param.default is not param.empty:
            continue
        else:
            given = [k for k in section if k not in RESERVED]
            raise PipelineError(
                f"{where}: missing constructor parameter '{name}'; add '{name} = ...' to the section or return "
                f"'{name}' from the info() of an earlier module (section has: {', '.join(given) or 'nothing'}; "
                f"run_info has: {', '.join(run_info) or 'nothing'})"
            )
        value = coerce(value, param.annotation, where, name)
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[name] = value
    return cls(*args, **kwargs)


def where_of(section: Mapping[str, Any]) -> str:
    """How messages name a pipeline section: its class, label and type."""
    label = section.get("name") or section.get("class")
    return f"class {section.get('class')} (section {label}, type {section.get('type')})"


def info_of(obj: Any, where: str) -> dict[str, Any]:
    """What a built object's ``info()`` adds to ``run_info`` (PipelineError when not a dict)."""
    info = getattr(obj, "info", None)
    if not callable(info):
        return {}
    value = info()
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineError(f"{where}: info() must return a dict, got {type(value).__name__}")
    return dict(value)


