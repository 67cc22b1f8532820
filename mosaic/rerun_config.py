"""The config of ``rerun``: a MONITOR section, and explicit overrides of the runs' recorded PROCESS.

The original's ``mosaic_rerun CONFIG DB -id ... -epoch N`` continued each run with the
PROCESS values recorded for it (lr, loss, optimizer...), taking only the MONITOR settings
and the epoch count from the command. Here too: the rerun config's ``[PROCESS]`` section is
ignored (it may well be the config of a later sweep, with another lr), and only a
``[RERUN]`` section overrides: each PROCESS key it sets replaces the recorded value for every
selected run (e.g. ``[RERUN]`` ``lr = 1e-4``). The file needs only ``[MONITOR]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from mosaic import schemas
from mosaic.config import (
    Config,
    Monitor,
    Process,
    _items,
    _monitor,
    _parse,
    _process,
    _read,
    _suggest,
)
from mosaic.errors import ConfigError, config_error

#: PROCESS keys a rerun cannot change, and why.
_FIXED = {
    "optimizer": "the run's own optimizer state",
    "data_scheme": "the run's own pipeline",
    "pipeline_scheme": "the run's own pipeline",
    "run_files_path": "from the run's own checkpoint",
}


@dataclass(frozen=True)
class RerunConfig:
    """A config given to ``rerun``: its MONITOR section and its ``[RERUN]`` overrides.

    Each run continues with its own recorded PROCESS values; a PROCESS key set in the
    ``[RERUN]`` section overrides the recorded one for every selected run (that is what
    "overrides explicitly" means). ``[PROCESS]`` and class sections are ignored: a run keeps
    its pipeline and its settings.
    """

    path: Path
    text: str
    monitor: Monitor
    overrides: Mapping[str, str]

    @classmethod
    def of(cls, config: Config) -> RerunConfig:
        """A loaded full config used for a rerun: its MONITOR, no override."""
        return cls(config.path, config.text, config.monitor, MappingProxyType({}))

    @property
    def base_dir(self) -> Path:
        """The folder of the config file (relative paths resolve here first)."""
        return self.path.parent


def load_rerun_config(path: str | os.PathLike[str]) -> RerunConfig:
    """Read a config for ``rerun``: ``[MONITOR]`` is required, ``[RERUN]`` optional, the rest ignored.

    Override values are checked when merged with each run's recorded values
    (:func:`rerun_process`); a bad MONITOR or an unknown override key raises ConfigError here.
    """
    path = Path(path)
    text = _read(path)
    parser = _parse(path, text)
    if not parser.has_section("MONITOR"):
        raise config_error(path, None, None, "no [MONITOR] section; rerun needs one (and optionally a [RERUN] "
                           "section whose PROCESS keys override the runs' recorded values, e.g. lr = 1e-4)")
    monitor = _monitor(path, _items(path, parser, "MONITOR"))
    overrides = _items(path, parser, "RERUN") if parser.has_section("RERUN") else {}
    known = schemas.config_keys("PROCESS")
    for key in overrides:
        if key in _FIXED:
            raise config_error(path, "RERUN", key, f"cannot be overridden: a rerun continues {_FIXED[key]}; "
                               "remove it from [RERUN] (start a new sweep to change it)")
        if key not in known:
            raise config_error(path, "RERUN", key, f"not a PROCESS key, so nothing to override; {_suggest(key, list(known))}")
    return RerunConfig(path.resolve(), text, monitor, MappingProxyType(dict(overrides)))


def rerun_process(config: RerunConfig, recorded: Mapping[str, str], what: str) -> Process:
    """A run's PROCESS for a rerun: its ``recorded`` values, overridden by ``config``'s ``[RERUN]``
    keys; ConfigError (naming ``what``, e.g. "run 3") when the result is not a valid PROCESS."""
    values = {**recorded, **config.overrides}
    missing = [k for k, rule in schemas.config_keys("PROCESS").items() if rule["required"] and k not in values]
    fixed = [k for k in missing if k in _FIXED]
    if fixed:
        raise ConfigError(f"{what}: no recorded {', '.join(fixed)} in the store, so it cannot be continued; "
                          "run its pipeline again in a new sweep")
    if missing:
        raise ConfigError(f"{what}: no recorded {', '.join(missing)} in the store; set "
                          f"{' and '.join(repr(k + ' = ...') for k in missing)} in the [RERUN] section of {config.path}")
    try:
        return _process(config.path, values)
    except ConfigError as exc:
        raise ConfigError(f"{what}: its recorded PROCESS values with the [RERUN] overrides of {config.path} "
                          f"are not a valid PROCESS ({exc}); set the key in [RERUN]") from None
