"""Every path and file name of a store, of its run files, and of the last-store memory.

Layout (hive-partitioned, one partition per sweep)::

    <store>/_mosaic.json                          marker + format version
    <store>/<table>/sweep=<id>/<stamp>.parquet    rows, append-only
    <store>/<table>/sweep=<id>/<stamp>-c.parquet  a compaction of the files up to <stamp>
    <store>/_state/next_run_id, next_sweep_id     counters, changed under _state/ids.lock
    <store>/_state/claim.lock                     held while a resume claims the runs it finishes
    <store>/_state/compact.lock                   held by a compaction (one at a time)
    <store>/_control/driver-<sweep>.json          a running driver's heartbeat
    <store>/_control/pause.json                   a pending pause request (+ claims, acks)
    <store>/run_files/                            checkpoints and logs when the config names none

    <run_files>/checkpoint_<id>.pt, output_<id>.log, history_<id>.pt (the original's format,
      with [MONITOR] legacy_history = True),
    <run_files>/model_<id>_<module> (a user's save_model), .mosaic-run-files (the sweep's token)

No other module builds one of these names.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

from mosaic.errors import UsageError
from mosaic.store.files import atomic_write

MARKER = "_mosaic.json"
SUFFIX = ".parquet"
_COMPACTED = "-c"
_PARTITION = "sweep="


def is_store(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a Mosaic store folder."""
    return (Path(path) / MARKER).is_file()


class Layout:
    """The paths inside one store folder (nothing is read or written here but folders)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- folders -------------------------------------------------------------------------
    @property
    def marker(self) -> Path:
        """The file that makes a folder a store."""
        return self.path / MARKER

    @property
    def state_dir(self) -> Path:
        """Counters and locks."""
        folder = self.path / "_state"
        folder.mkdir(exist_ok=True)
        return folder

    @property
    def control_dir(self) -> Path:
        """Pause requests and driver heartbeats."""
        folder = self.path / "_control"
        folder.mkdir(exist_ok=True)
        return folder

    @property
    def default_run_files(self) -> Path:
        """Where checkpoints and logs go when the config has no run_files_path."""
        return self.path / "run_files"

    # -- state -------------------------------------------------------------------------
    def counter(self, name: str) -> Path:
        """The file of counter ``name`` (``next_run_id``, ``next_sweep_id``)."""
        return self.state_dir / name

    @property
    def ids_lock(self) -> Path:
        """The lock the counters change under."""
        return self.state_dir / "ids.lock"

    @property
    def compact_lock_path(self) -> Path:
        """The lock compactions run under, one at a time (two would delete each other's inputs)."""
        return self.state_dir / "compact.lock"

    @property
    def claim_lock_path(self) -> Path:
        """The lock a resuming driver plans and records its runs under."""
        return self.state_dir / "claim.lock"

    @property
    def files_lock_path(self) -> Path:
        """The file behind :meth:`files_lock`."""
        return self.path / "_state" / "files.lock"

    @contextlib.contextmanager
    def files_lock(self, exclusive: bool) -> Iterator[None]:
        """Readers hold it shared while they list and read files; compaction holds it
        exclusive only while it deletes the files it merged. So a reader never loses a
        file between listing and reading it, and readers never wait on each other.

        Best effort where the lock cannot be taken (no ``fcntl``, a read-only store the
        lock file was never made in): readers then fall back on re-listing and retrying.
        """
        if fcntl is None:  # not POSIX: no lock
            yield
            return
        path = self.files_lock_path
        try:
            handle = open(path, "a+b" if exclusive else "rb")  # noqa: SIM115 - held across the yield
        except OSError:
            yield
            return
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- control -----------------------------------------------------------------------
    def heartbeat(self, sweep_id: int) -> Path:
        """The heartbeat file of the driver of ``sweep_id``."""
        return self.control_dir / f"driver-{sweep_id}.json"

    def heartbeats(self) -> list[Path]:
        """Every driver heartbeat file present."""
        return sorted(self.control_dir.glob("driver-*.json"))

    @property
    def pause_request(self) -> Path:
        """The pending pause request (at most one)."""
        return self.control_dir / "pause.json"

    def pause_claim(self, sweep_id: int) -> Path:
        """A fresh name a driver renames the request to, so only one driver gets it."""
        return self.control_dir / f"pause-claimed-{sweep_id}-{uuid.uuid4().hex[:6]}.json"

    def pause_ack(self, request_id: str) -> Path:
        """Where the driver tells the waiting ``pause`` what it did."""
        return self.control_dir / f"pause-{request_id}.ack.json"

    # -- tables ------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        """The folder of one table."""
        return self.path / table

    def partition(self, table: str, sweep_id: int) -> Path:
        """The folder of one sweep's rows of one table."""
        return self.table_dir(table) / f"{_PARTITION}{sweep_id}"

    def table_glob(self, table: str) -> str:
        """A glob over every Parquet file of a table (for DuckDB's read_parquet)."""
        return str(self.table_dir(table) / "*" / f"*{SUFFIX}")

    def files(self, table: str, sweep_id: int | None = None) -> list[Path]:
        """The Parquet files of a table (one sweep's, or all), oldest name first."""
        base = self.table_dir(table)
        pattern = f"{_PARTITION}{sweep_id if sweep_id is not None else '*'}/*{SUFFIX}"
        return sorted(base.glob(pattern))

    def partitions(self, table: str) -> list[int]:
        """The sweep ids that have a partition in ``table``."""
        return sorted(sweep_of(folder) for folder in self.table_dir(table).glob(f"{_PARTITION}*"))


def sweep_of(folder: Path) -> int:
    """The sweep id of a partition folder (``sweep=3`` -> 3)."""
    return int(folder.name.split("=", 1)[1])


def new_file_name() -> str:
    """A new part file's name; names sort by creation time."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{SUFFIX}"


def compacted_name(last: Path) -> str:
    """The name of the file merging a partition's files up to ``last``.

    It sorts right after ``last``, so before any file written after compaction started.
    """
    return f"{last.stem}{_COMPACTED}{SUFFIX}"


def visible_files(files: list[Path]) -> list[Path]:
    """Drop the files a compaction already merged but has not deleted yet.

    ``compact`` writes ``<last merged stem>-c.parquet`` and then deletes the files it
    merged: every file of the partition whose name, ``-c`` suffixes aside, sorts at or
    before the merged file's. A reader listing in between would see rows twice.
    """
    merged: dict[Path, str] = {}
    for file in files:
        if file.stem.endswith(_COMPACTED):
            base = _base(file.stem)
            merged[file.parent] = max(merged.get(file.parent, base), base)
    if not merged:
        return files
    kept = []
    for file in files:
        newest = merged.get(file.parent)
        base = _base(file.stem)
        if newest is None or base > newest or (base == newest and file.stem == _newest_stem(files, file.parent, newest)):
            kept.append(file)
    return kept


def write_order(file: Path) -> tuple[str, int]:
    """A sort key putting a partition's files in the order they were written: a compaction's
    ``<stem>-c`` file right after ``<stem>`` (plain name order puts ``-c`` first)."""
    return _base(file.stem), len(file.stem)


def _base(stem: str) -> str:
    while stem.endswith(_COMPACTED):
        stem = stem[: -len(_COMPACTED)]
    return stem


def _newest_stem(files: list[Path], folder: Path, base: str) -> str:
    """The stem of the latest compacted file of ``base`` in ``folder`` (most ``-c`` suffixes)."""
    stems = [f.stem for f in files if f.parent == folder and _base(f.stem) == base and f.stem.endswith(_COMPACTED)]
    return max(stems, key=len)


# -- run files -------------------------------------------------------------------------------
#: The keys of the original's ``history_<id>.pt`` files (a dict of per-epoch lists).
HISTORY_KEYS = ("train_loss", "test_loss", "train_acc", "test_acc")


def checkpoint_path(run_files: str | os.PathLike[str], run_id: int) -> Path:
    """``<run_files>/checkpoint_<run_id>.pt``."""
    return Path(run_files) / f"checkpoint_{run_id}.pt"


def history_path(run_files: str | os.PathLike[str], run_id: int) -> Path:
    """``<run_files>/history_<run_id>.pt``: the original's per-run loss history file."""
    return Path(run_files) / f"history_{run_id}.pt"


def log_path(run_files: str | os.PathLike[str], run_id: int) -> Path:
    """``<run_files>/output_<run_id>.log``: a run's stdout and stderr."""
    return Path(run_files) / f"output_{run_id}.log"


def run_files_marker(run_files: str | os.PathLike[str]) -> Path:
    """``<run_files>/.mosaic-run-files``: holds the token of the sweep writing there, so a
    worker can tell whether it sees the driver's run-files folder (same disk) or not."""
    return Path(run_files) / ".mosaic-run-files"


def is_log(name: str) -> bool:
    """True for a run's log file name (``output_<id>.log``: appended to, never replaced)."""
    return name.startswith("output_") and name.endswith(".log")


# -- the last store used ---------------------------------------------------------------------
def state_home() -> Path:
    """Where Mosaic remembers the last store (``$MOSAIC_STATE_DIR`` or ~/.local/state/mosaic)."""
    if os.environ.get("MOSAIC_STATE_DIR"):
        return Path(os.environ["MOSAIC_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mosaic"


def last_store_file() -> Path:
    """The file ``mosaic run`` records its store in."""
    return state_home() / "last_store"


def remember_store(path: str | os.PathLike[str]) -> None:
    """Record ``path`` as the store later commands use by default (best effort)."""
    try:
        record = last_store_file()
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(record, str(Path(path).resolve()))
    except OSError:
        pass


def last_store(example: str | None = None) -> Path:
    """The store the last ``mosaic run`` used; UsageError when none is recorded or it is gone.

    ``example``: the command to suggest (``mosaic savedb STORE COPY.db``).
    """
    record = last_store_file()
    fix = f"name the store: {example}" if example else "give the store folder"
    if not record.is_file():
        if example:
            raise UsageError(f"no store given and none recorded in {record}; {fix}")
        raise UsageError(f"no store given and no 'mosaic run' recorded one; {fix}")
    path = Path(record.read_text(encoding="utf-8").strip())
    if example and not is_store(path):
        raise UsageError(f"the last store used, {path} (from {record}), is no longer there; {fix}")
    return path
