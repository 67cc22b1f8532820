"""The reader contract, as a reusable class (in the manner of Optuna's ``StorageTestCase``).

:class:`ReaderContract` states, one test method per rule, what every
:class:`mosaic.store.reader.Reader` must honour whatever it reads. It is not collected itself:
a test module subclasses it once per kind of store (``Test...``) and gives the subclass a
``reader`` fixture that yields a reader of that kind, parametrized over the states that kind
must handle (see tests/store/test_reader.py). A new kind of store gets the whole contract by
adding one subclass.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from mosaic.errors import SelectionError
from mosaic.store.reader import RUN_COLUMNS, Reader
from mosaic.store.selection import Selection
from mosaic.store.status import RunStatus
from tests.helpers.stores import VIEW_COLUMNS

RUN_VIEW = VIEW_COLUMNS["runs"]
RESULT_VIEW = VIEW_COLUMNS["run_results"]
HISTORY_VIEW = VIEW_COLUMNS["history"]


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


class ReaderContract:
    """Every reader method, one rule per test; a subclass provides the ``reader`` fixture."""

    @pytest.fixture
    def reader(self) -> Iterator[Reader]:
        """A reader of the subclass's kind of store (each subclass overrides this fixture)."""
        raise NotImplementedError(f"{type(self).__name__} must provide the 'reader' fixture")
        yield  # pragma: no cover - a generator, as the subclasses' fixtures are

    def test_runs_latest_row_per_run(self, reader: Reader) -> None:
        runs = reader.runs()
        assert runs.column_names == RUN_VIEW
        ids = _column(runs, "run_id")
        assert ids == sorted(set(ids))
        assert set(_column(runs, "status")) <= {s.value for s in RunStatus}
        if ids:
            assert _column(reader.runs(ids[:2]), "run_id") == ids[:2]
        assert reader.runs([]).num_rows == 0

    def test_latest_runs_as_dicts(self, reader: Reader) -> None:
        rows = reader.snapshot(lambda: reader.latest_runs())
        assert all(tuple(row) == RUN_COLUMNS for row in rows)
        ids = [row["run_id"] for row in rows]
        assert ids == sorted(set(ids))
        done = [row for row in rows if row["status"] == RunStatus.DONE]
        assert all(row["pipeline_json"] for row in done)  # from runs, or the 'pipeline' param of an import
        if ids:
            assert [row["run_id"] for row in reader.latest_runs(ids[-1:])] == ids[-1:]

    def test_run_ids_and_selection(self, reader: Reader) -> None:
        known, used, ids = reader.snapshot(lambda: (reader.known_run_ids(), reader.used_run_ids(), reader.run_ids()))
        assert known <= used
        assert ids == sorted(known)
        if not known:
            with pytest.raises(SelectionError, match="no runs"):
                reader.run_ids(Selection(ids="all"))
            return
        first = min(known)
        assert reader.run_ids(Selection(ids=str(first))) == [first]
        assert set(reader.run_ids(Selection(ids="all"))) >= {first}
        with pytest.raises(SelectionError, match="not in"):
            reader.run_ids(Selection(ids=str(max(reader.used_run_ids()) + 1000)))
        assert reader.request(f"SELECT run_id FROM runs WHERE run_id = {first}") == [first]
        with pytest.raises(SelectionError, match="one integer column"):
            reader.request("SELECT 'x' AS run_id")
        with pytest.raises(SelectionError, match="read-only"):
            reader.request("DELETE FROM runs")

    def test_params_latest_value_and_synthesized_status(self, reader: Reader) -> None:
        params, runs = reader.snapshot(lambda: (reader.params(), reader.runs()))
        assert params.column_names == ["run_id", "param_name", "param_value"]
        keys = list(zip(_column(params, "run_id"), _column(params, "param_name"), strict=True))
        assert len(keys) == len(set(keys))
        ids = _column(params, "run_id")
        assert ids == sorted(ids)
        status = {r: v for r, n, v in zip(ids, _column(params, "param_name"), _column(params, "param_value"), strict=True)
                  if n == "status"}
        assert status == dict(zip(_column(runs, "run_id"), _column(runs, "status"), strict=True))
        names = reader.param_names()
        assert names == sorted(set(names)) and "status" not in names
        if not names:
            return
        name = names[0]
        only = reader.params(names=[name])
        assert set(_column(only, "param_name")) == {name}
        values = reader.param_values(name)
        assert values == sorted(set(values)) and len(reader.param_values(name, limit=1)) == 1
        keyed = set(_column(reader.params(names=[], keys=True), "param_name"))
        assert all(n.endswith("_key") for n in keyed)
        run_id = _column(only, "run_id")[0]
        value = _column(only, "param_value")[0]
        assert run_id in reader.matching_runs(name, "equal", value, None)
        assert set(_column(reader.params(ids=[run_id]), "run_id")) == {run_id}

    def test_results_latest_attempt_per_run(self, reader: Reader) -> None:
        results, known = reader.snapshot(lambda: (reader.results(), reader.known_run_ids()))
        assert results.column_names == RESULT_VIEW
        ids = _column(results, "run_id")
        assert ids == sorted(set(ids)) and set(ids) <= known

    def test_history_latest_attempt_per_epoch(self, reader: Reader) -> None:
        history, known = reader.snapshot(lambda: (reader.history(), reader.known_run_ids()))
        assert history.column_names == HISTORY_VIEW
        keys = list(zip(_column(history, "run_id"), _column(history, "epoch"), strict=True))
        assert keys == sorted(set(keys))
        assert {r for r, _ in keys} <= known  # never the history of a run whose runs row is unseen
        if reader.is_legacy and not keys:
            return
        for run_id in {r for r, _ in keys}:
            epochs = [e for r, e in keys if r == run_id]
            assert epochs == list(range(1, len(epochs) + 1))

    def test_sweeps_and_next_run_id(self, reader: Reader) -> None:
        sweeps = reader.sweeps()
        sweep_ids = _column(sweeps, "sweep_id")
        assert sweep_ids == sorted(set(sweep_ids))
        if reader.is_legacy:
            assert sweeps.num_rows == 0
        # one snapshot: on a live store, a run planned between two separate calls would race
        next_id, used = reader.snapshot(lambda: (reader.next_run_id(), reader.used_run_ids()))
        assert next_id > max(used, default=0)
        assert dict(reader.system()).keys() >= {"next_run_id"} or not reader.is_legacy

    def test_snapshot_returns_what_the_action_returns(self, reader: Reader) -> None:
        assert reader.snapshot(lambda: 42) == 42
