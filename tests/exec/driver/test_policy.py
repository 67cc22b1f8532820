"""The fault policy (mosaic.exec.driver.policy): what a sweep does with a run whose task came
back without its outcome. Pure, so each rule of its docstring is checked on its own."""

from __future__ import annotations

import pytest

from mosaic.exec.driver.policy import MAX_RESUBMITS, Decision, FaultPolicy


def _died(policy: FaultPolicy, run_id: int, *, ended: bool = False, started: bool = False,
          in_batch: bool = False) -> Decision:
    return policy.worker_died(run_id, ended_in_task=ended, started_in_task=started, in_batch=in_batch)


def test_a_run_that_ended_in_the_task_continues_from_its_checkpoint() -> None:
    policy = FaultPolicy()
    assert not policy.continues(1)
    # it ended in the task: neither batch nor start matters, its result was lost with the worker
    assert _died(policy, 1, ended=True, started=True, in_batch=True) is Decision.CONTINUE
    assert policy.continues(1) and not policy.continues(2)
    assert policy.resubmits[1] == 1
    assert policy.may_share(1, 2)  # a lost result does not make a run go alone


def test_a_lost_result_continues_too() -> None:
    policy = FaultPolicy()
    assert policy.result_lost(4) is Decision.CONTINUE
    assert policy.continues(4) and policy.resubmits[4] == 1


def test_a_run_of_a_batch_goes_again_alone() -> None:
    policy = FaultPolicy()
    assert policy.may_share(1, 2, 3)
    # started or not, a run of a batch whose worker died is not blamed: it goes again, alone
    assert _died(policy, 2, started=True, in_batch=True) is Decision.ALONE
    assert _died(policy, 3, in_batch=True) is Decision.ALONE
    assert not policy.may_share(1, 2) and not policy.may_share(3)
    assert policy.may_share(1, 4)  # the other runs still share
    assert not policy.continues(2)
    assert (policy.resubmits[2], policy.resubmits[3], policy.resubmits[1]) == (1, 1, 0)


def test_a_run_alone_that_never_started_goes_again() -> None:
    policy = FaultPolicy()
    assert _died(policy, 5) is Decision.AGAIN
    assert policy.resubmits[5] == 1 and policy.may_share(5) and not policy.continues(5)


def test_a_run_alone_that_started_died_with_its_worker() -> None:
    policy = FaultPolicy()
    assert _died(policy, 6, started=True) is Decision.DIED
    assert policy.resubmits[6] == 0  # nothing submitted again


def test_a_run_that_never_starts_fails_after_the_resubmit_limit() -> None:
    policy = FaultPolicy()
    decisions = [_died(policy, 7) for _ in range(MAX_RESUBMITS + 2)]
    assert decisions == [Decision.AGAIN] * MAX_RESUBMITS + [Decision.DIED] * 2
    assert policy.resubmits[7] == MAX_RESUBMITS  # a refusal does not count
    assert policy.resubmits[8] == 0  # each run has its own count


def test_a_run_of_batches_fails_after_the_resubmit_limit() -> None:
    policy = FaultPolicy()
    decisions = [_died(policy, 9, in_batch=True) for _ in range(MAX_RESUBMITS + 1)]
    assert decisions == [Decision.ALONE] * MAX_RESUBMITS + [Decision.DIED]
    assert policy.resubmits[9] == MAX_RESUBMITS


def test_a_result_lost_every_time_is_lost_after_the_limit() -> None:
    policy = FaultPolicy()
    decisions = [_died(policy, 10, ended=True) for _ in range(MAX_RESUBMITS)]
    decisions.append(policy.result_lost(10))
    assert decisions == [Decision.CONTINUE] * MAX_RESUBMITS + [Decision.LOST]
    assert policy.resubmits[10] == MAX_RESUBMITS


def test_the_limit_counts_every_path_together() -> None:
    policy = FaultPolicy()
    assert _died(policy, 11, in_batch=True) is Decision.ALONE
    assert _died(policy, 11) is Decision.AGAIN
    assert _died(policy, 11, ended=True) is Decision.CONTINUE
    assert policy.resubmits[11] == 3
    assert _died(policy, 11) is Decision.DIED
    assert _died(policy, 11, ended=True) is Decision.LOST


@pytest.mark.parametrize("limit", [0, 1, 5])
def test_the_limit_is_the_policys_own(limit: int) -> None:
    policy = FaultPolicy(max_resubmits=limit)
    decisions = [_died(policy, 1) for _ in range(limit + 1)]
    assert decisions == [Decision.AGAIN] * limit + [Decision.DIED]
    assert policy.resubmits[1] == limit


def test_default_limit() -> None:
    assert FaultPolicy().max_resubmits == MAX_RESUBMITS == 3


@pytest.mark.parametrize(("decision", "resubmit"), [
    (Decision.AGAIN, True), (Decision.ALONE, True), (Decision.CONTINUE, True),
    (Decision.DIED, False), (Decision.LOST, False),
])
def test_which_decisions_resubmit(decision: Decision, resubmit: bool) -> None:
    assert decision.resubmit is resubmit


def test_every_decision_is_named_in_the_resubmit_table() -> None:
    # a new Decision must say whether it resubmits: the table above names them all
    assert {d.name for d in Decision} == {"AGAIN", "ALONE", "CONTINUE", "DIED", "LOST"}
