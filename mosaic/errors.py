"""Typed exceptions. The CLI turns any MosaicError into one line on stderr and exit code 2.

A message says what is wrong, where (file, section, key), the bad value and the fix:
``config.ini [mlp_funnel] width: range {5-2} runs backwards; write {2-5}``.
"""

from __future__ import annotations


class MosaicError(Exception):
    """Base class of every error Mosaic raises on purpose (bad input, bad state)."""


class ConfigError(MosaicError):
    """The .ini file (or a pipeline file) is missing, malformed or inconsistent."""


class UsageError(MosaicError):
    """A command was called with arguments that cannot work (bad path, bad flag value)."""


class StoreError(MosaicError):
    """The store is missing, unreadable, or a query against it was refused."""


class SelectionError(MosaicError):
    """A run selection (-id, -request, -param_name_and_value...) is malformed or empty."""


class RunError(MosaicError):
    """A sweep could not start (no CUDA when need_gpu, cluster unreachable...)."""


class LegacyError(MosaicError):
    """A database written by the original tool could not be read or written."""


class RunFailure(MosaicError):
    """A run failed in a way Mosaic detected itself; its message says it all, so no traceback is stored."""


class TrainingError(RunFailure):
    """Training cannot go on: a non-finite loss, an empty loader, a malformed batch."""


class PipelineError(RunFailure):
    """A run's pipeline cannot be built: class file or class not found, missing parameter..."""


class StopTraining(MosaicError):  # noqa: N818 - named like Keras' / ptutils' signal, not an error
    """Raised by ``Callback.on_epoch_end`` to end training after this epoch (a signal, not a failure)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def config_error(path: object, section: str | None, key: str | None, message: str) -> ConfigError:
    """Build a ConfigError whose message starts with ``file [section] key:``."""
    where = str(path)
    if section is not None:
        where += f" [{section}]"
    if key is not None:
        where += f" {key}"
    return ConfigError(f"{where}: {message}")
