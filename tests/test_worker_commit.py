"""Offset commits after the outputs are durable: a broker outage must not kill the worker."""

from __future__ import annotations

import itertools

import pytest
from kafka.errors import CommitFailedError, KafkaConnectionError, TopicAuthorizationFailedError

from inference.offsets import commit_offsets


class FlakyCommit:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures, self.calls = list(failures), 0

    def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def test_commit_is_retried_through_a_broker_outage() -> None:
    commit, slept = FlakyCommit([KafkaConnectionError("111 ECONNREFUSED")] * 3), []
    assert commit_offsets(commit, itertools.repeat(0.5), lambda: False, sleep=slept.append)
    assert commit.calls == 4 and slept == [0.5, 0.5, 0.5]


def test_a_long_outage_leaves_the_offsets_for_the_next_commit() -> None:
    commit, slept = FlakyCommit([KafkaConnectionError("down")] * 100), []
    assert not commit_offsets(commit, itertools.repeat(5.0), lambda: False,
                              give_up_after_s=30.0, sleep=slept.append)
    assert sum(slept) == 30.0 and commit.calls == 7


def test_stopping_does_not_wait_for_the_broker() -> None:
    commit = FlakyCommit([KafkaConnectionError("down")] * 100)
    assert not commit_offsets(commit, itertools.repeat(1.0), lambda: True, sleep=lambda s: None)
    assert commit.calls == 1


def test_a_rebalance_is_left_to_the_new_owner() -> None:
    commit = FlakyCommit([CommitFailedError("generation changed")])
    assert not commit_offsets(commit, itertools.repeat(1.0), lambda: False, sleep=lambda s: None)


def test_non_retriable_errors_still_raise() -> None:
    commit = FlakyCommit([TopicAuthorizationFailedError("no ACL")])
    with pytest.raises(TopicAuthorizationFailedError):
        commit_offsets(commit, itertools.repeat(1.0), lambda: False, sleep=lambda s: None)


def test_reads_are_retried_until_the_broker_answers_and_interrupted_on_stop() -> None:
    from inference.offsets import retry_retriable

    read = FlakyCommit([KafkaConnectionError("down")] * 3)
    assert retry_retriable(read, itertools.repeat(0.1), lambda: False, "read",
                           sleep=lambda s: None) is None and read.calls == 4
    with pytest.raises(InterruptedError):
        retry_retriable(FlakyCommit([KafkaConnectionError("down")]), itertools.repeat(0.1),
                        lambda: True, "read", sleep=lambda s: None)
