"""schemas/ is the single source of truth: code and schema must agree."""

from __future__ import annotations

import dataclasses
import inspect

import torch

from mosaic import schemas
from mosaic.config import Monitor, Process
from mosaic.store.writer import arrow_schema


def test_every_schema_key_is_a_config_field() -> None:
    process_fields = {f.name for f in dataclasses.fields(Process)} - {"raw"}
    monitor_fields = {f.name for f in dataclasses.fields(Monitor)} - {"raw"}
    assert set(schemas.config_keys("PROCESS")) == process_fields
    assert set(schemas.config_keys("MONITOR")) == monitor_fields


def test_schema_rules_are_well_formed() -> None:
    for section in ("PROCESS", "MONITOR"):
        for key, rule in schemas.config_keys(section).items():
            assert isinstance(rule["required"], bool), key
            assert rule["doc"], key
            if not rule["required"] and "default" in rule and rule.get("choices"):
                assert rule["default"] in rule["choices"], key


def test_torch_names_exist_in_torch() -> None:
    for name in schemas.torch_names("losses"):
        cls = getattr(torch.nn, name)
        assert inspect.isclass(cls) and issubclass(cls, torch.nn.Module), name
    for name in schemas.torch_names("optimizers"):
        assert issubclass(getattr(torch.optim, name), torch.optim.Optimizer), name
    assert "MSELoss" in schemas.torch_names("losses") and "Adam" in schemas.torch_names("optimizers")


def test_store_tables_follow_the_schema() -> None:
    assert schemas.table_names() == ["sweeps", "runs", "params", "results", "history", "decisions"]
    for table in schemas.table_names():
        names = [name for name, _ in schemas.table_columns(table)]
        assert arrow_schema(table).names == names
        assert names[-1] == "time", table
        assert len(set(names)) == len(names), table
