"""The ``[SEARCH]`` section: which strategy a sweep uses, and its knobs.

Read like every other section (:func:`mosaic.config.load_config` calls :func:`read_search`):
a bad value is one :class:`~mosaic.errors.ConfigError` naming file, section, key and value,
and nothing is written. The keys and their rules are in ``schemas/config.json``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic import schemas
from mosaic.errors import config_error

SECTION = "SEARCH"
GRID = "grid"
HALVING = "halving"


@dataclass(frozen=True)
class SearchSpec:
    """A sweep's search strategy (the default: the full grid)."""

    strategy: str = GRID
    metric: str = "test_loss"
    reduction_factor: int = 3
    min_epochs: int = 1

    @property
    def halving(self) -> bool:
        """True for successive halving."""
        return self.strategy == HALVING

    @property
    def higher_is_better(self) -> bool:
        """Accuracies are maximised, losses minimised."""
        return self.metric.endswith("_acc")

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The rung epochs of a run planned for ``epochs``: ``min_epochs * reduction_factor^k``
        below ``epochs`` (none for the grid)."""
        if not self.halving:
            return ()
        rungs, rung = [], self.min_epochs
        while rung < epochs:
            rungs.append(rung)
            rung *= self.reduction_factor
        return tuple(rungs)


def read_search(path: Path, values: Mapping[str, str] | None, epochs: int, accuracy: str | None) -> SearchSpec:
    """The ``[SEARCH]`` section of the config at ``path`` (``values``: its raw keys; None when
    the config has none). ``epochs`` and ``accuracy`` are [PROCESS]'s, checked against the knobs."""
    if values is None:
        return SearchSpec()
    rules = schemas.config_keys(SECTION)
    for key in values:
        if key not in rules:
            close = difflib.get_close_matches(key, list(rules), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"the keys are {', '.join(rules)}"
            raise config_error(path, SECTION, key, f"not a [SEARCH] key; {hint}")
    given: dict[str, Any] = {
        key: _choice(path, key, values[key].strip(), rule) if "choices" in rule else _integer(path, key, values[key].strip(), rule)
        for key, rule in rules.items() if key in values
    }
    spec = SearchSpec(**given)
    if spec.halving and not spec.rungs(epochs):
        raise config_error(path, SECTION, "min_epochs",
                           f"{spec.min_epochs} is not below [PROCESS] epochs = {epochs}, so halving would stop nothing; "
                           f"lower it (e.g. min_epochs = 1) or use strategy = {GRID}")
    if spec.halving and spec.metric.endswith("_acc") and (accuracy or "auto") == "none":
        raise config_error(path, SECTION, "metric", f"'{spec.metric}' is not computed with [PROCESS] accuracy = none; "
                           "use metric = test_loss, or set accuracy")
    return spec


def _choice(path: Path, key: str, raw: str, rule: Mapping[str, object]) -> str:
    choices = list(rule["choices"])  # type: ignore[call-overload]
    if raw not in choices:
        raise config_error(path, SECTION, key, f"'{raw}' is not one of {', '.join(choices)}")
    return raw


def _integer(path: Path, key: str, raw: str, rule: Mapping[str, object]) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise config_error(path, SECTION, key, f"'{raw}' is not a whole number; write e.g. {rule.get('default', 1)}") from None
    low = int(rule.get("min", 1))  # type: ignore[call-overload]
    if value < low:
        raise config_error(path, SECTION, key, f"{value} is below {low}; use {low} or more")
    return value
