"""The records a worker publishes about its runs (mosaic.exec.wire.events.RunEvent), the names
they travel under, and how junk on a topic is left out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mosaic.exec.wire.events import (
    EPOCH_FIELDS,
    RunEvent,
    batch_key,
    parse_run_key,
    parse_topic,
    read_events,
    run_key,
    sweep_topic,
)
from mosaic.store.status import RunStatus

START = RunEvent.start(3, "run-1-3-abc", "tcp://127.0.0.1:4000", "cpu")
END = RunEvent.end(3, "run-1-3-abc", "tcp://127.0.0.1:4000", "cuda:0", RunStatus.SYSTEM_FAILURE)
EPOCH = RunEvent.epoch_end(3, 1, 4, 10, {"train_loss": 0.5, "test_loss": 0.25, "train_acc": 0.75,
                                        "test_acc": None, "seconds": 2, "other": "left out"})


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return value is None or type(value) in (str, int, float)


@pytest.mark.parametrize("event", [START, END, EPOCH], ids=["start", "end", "epoch"])
def test_a_record_round_trips_through_its_message(event: RunEvent) -> None:
    message = event.message()
    assert RunEvent.from_message(message) == event
    # it travels as plain data (Dask carries it without pickling): JSON can hold it, as is
    assert _plain(message), message
    assert RunEvent.from_message(json.loads(json.dumps(message))) == event


def test_the_messages_say_what_they_are() -> None:
    assert START.message() == {"event": "start", "run_id": 3, "key": "run-1-3-abc",
                               "worker": "tcp://127.0.0.1:4000", "device": "cpu"}
    assert END.message()["status"] == "system failure" and type(END.message()["status"]) is str
    assert EPOCH.message() == {"event": "epoch", "run_id": 3, "attempt": 1, "epoch": 4, "epochs": 10,
                               "train_loss": 0.5, "test_loss": 0.25, "train_acc": 0.75, "test_acc": None,
                               "seconds": 2.0}
    assert "status" not in START.message()


def test_an_epoch_keeps_only_its_values_as_floats() -> None:
    assert set(EPOCH.values or {}) == set(EPOCH_FIELDS)
    assert EPOCH.value("seconds") == 2.0 and type(EPOCH.value("seconds")) is float
    assert EPOCH.value("test_acc") is None
    assert EPOCH.value("other") is None
    assert START.value("train_loss") is None  # a start has no values
    odd = RunEvent.epoch_end(1, 0, 1, 1, {"train_loss": "0.125", "test_loss": "nan?", "train_acc": object()})
    assert odd.values == {"train_loss": 0.125, "test_loss": None, "train_acc": None}


def test_an_epoch_message_is_read_with_its_values_converted() -> None:
    event = RunEvent.from_message({"event": "epoch", "run_id": "5", "attempt": "2", "epoch": 3,
                                   "train_loss": "1.5", "test_loss": None, "seconds": "x", "junk": 1})
    assert event == RunEvent("epoch", 5, attempt=2, epoch=3, epochs=3,  # no epochs: the epoch itself
                             values={"train_loss": 1.5, "test_loss": None, "seconds": None})
    assert type(event.value("train_loss")) is float


def test_read_events_takes_one_message_a_list_or_a_tuple() -> None:
    assert read_events(START.message()) == [START]
    assert read_events([START.message(), EPOCH.message(), END.message()]) == [START, EPOCH, END]
    assert read_events((END.message(), START.message())) == [END, START]
    assert read_events([]) == [] and read_events(()) == []


JUNK: list[Any] = [
    None,
    "start",
    42,
    ["event", "start"],
    {"event": "finish", "run_id": 1},  # an unknown kind
    {"run_id": 1, "key": "k"},  # no kind
    {"event": "start"},  # no run id
    {"event": "start", "run_id": "one"},
    {"event": "start", "run_id": None},
    {"event": "end", "run_id": 1, "key": "k"},  # an end without its status
    {"event": "end", "run_id": 1, "status": "finished"},  # not a status
    {"event": "epoch", "run_id": 1, "epoch": 2},  # no attempt
    {"event": "epoch", "run_id": 1, "attempt": 0},  # no epoch
    {"event": "epoch", "run_id": 1, "attempt": "first", "epoch": 1},
]


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_junk_is_not_a_record(junk: Any) -> None:
    assert RunEvent.from_message(junk) is None
    assert read_events(junk) == []


def test_read_events_skips_junk_and_keeps_the_records() -> None:
    assert read_events([START.message(), *JUNK, END.message()]) == [START, END]
    assert read_events(tuple(JUNK)) == []


def test_an_end_reads_its_status_as_a_run_status() -> None:
    for status in RunStatus:
        event = RunEvent.from_message({"event": "end", "run_id": 1, "status": status.value})
        assert event is not None and event.status is status
        assert (event.key, event.worker, event.device) == ("", "", "")  # missing text becomes empty


def test_run_keys_carry_the_sweep_and_run_ids() -> None:
    assert run_key(4, 17, "ab12") == "run-4-17-ab12"
    assert run_key(4, 17, "ab12", resubmit=2) == "run-4-17-ab12-2"
    assert parse_run_key(run_key(4, 17, "ab12")) == (4, 17, "ab12")
    assert parse_run_key(run_key(4, 17, "ab12", resubmit=3)) == (4, 17, "ab12")


@pytest.mark.parametrize("key", [
    batch_key(4, 17, 5, "ab12", 1), "run-4-x-ab12", "run-4-17", "run-4-17-XYZ", "prefix-run-4-17-ab12",
    None, 12, ("run-4-17-ab12",),
], ids=repr)
def test_other_keys_are_not_run_keys(key: object) -> None:
    assert parse_run_key(key) is None


def test_a_batch_key_names_its_first_run_and_count() -> None:
    assert batch_key(4, 17, 5, "ab12", 1) == "runs-4-17x5-ab12-1"


def test_topics_carry_the_sweep_id_and_token() -> None:
    assert sweep_topic(9, "00ff") == "mosaic-9-00ff"
    assert parse_topic(sweep_topic(9, "00ff")) == (9, "00ff")
    for other in ("mosaic-9", "mosaic-x-00ff", "mosaic-9-00ff-1", "dask-9-00ff", "mosaic-9-ZZ", None, 9):
        assert parse_topic(other) is None, other
