"""Every reader method on both backends: :class:`~tests.helpers.contract.ReaderContract` run
against a Mosaic store (Parquet) in the four states the store must handle (empty, mid-sweep
with files arriving, compacted, imported from the original tool) and against a database
written by the original tool (sqlite), with and without its run-files folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic.store.reader import Reader, SessionReader, open_reader
from tests.helpers import LEGACY_DB, LEGACY_RUNS
from tests.helpers.contract import ReaderContract
from tests.helpers.stores import STORE_STATES, store_in_state


class TestStoreReader(ReaderContract):
    """The contract on a Mosaic store, in each state of :data:`~tests.helpers.stores.STORE_STATES`."""

    @pytest.fixture(params=STORE_STATES)
    def reader(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Reader]:
        with store_in_state(request.param, tmp_path / "store") as path, open_reader(path) as opened:
            assert isinstance(opened, SessionReader) and not opened.is_legacy
            yield opened


class TestLegacyReader(ReaderContract):
    """The contract on the original tool's sqlite database, without and with its run files."""

    @pytest.fixture(params=["legacy-db", "legacy-db+runs"])
    def reader(self, request: pytest.FixtureRequest) -> Iterator[Reader]:
        runs = LEGACY_RUNS if request.param.endswith("+runs") else None
        with open_reader(LEGACY_DB, run_files=runs) as opened:
            assert isinstance(opened, SessionReader) and opened.is_legacy
            yield opened
