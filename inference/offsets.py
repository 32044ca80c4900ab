"""Kafka group-offset calls of the inference worker, retried through broker outages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from kafka.errors import CommitFailedError, KafkaError

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_retriable(call: Callable[[], T], delays: Iterator[float],
                    should_stop: Callable[[], bool], what: str,
                    give_up_after_s: float | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()`` again after each retriable KafkaError, waiting the next of ``delays``.

    Raises ``InterruptedError`` when asked to stop or after ``give_up_after_s`` of
    waiting (None: never gives up); non-retriable errors raise as they are.
    """
    waited = 0.0
    for delay in delays:
        try:
            return call()
        except KafkaError as exc:
            if not exc.retriable:
                raise
            if should_stop() or (give_up_after_s is not None and waited >= give_up_after_s):
                raise InterruptedError(f"{what} abandoned after {waited:.0f} s: {exc}") from exc
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            sleep(delay)
            waited += delay
    raise InterruptedError(f"{what}: no retry delays left")


def commit_offsets(commit: Callable[[], None], delays: Iterator[float],
                   should_stop: Callable[[], bool], give_up_after_s: float = 30.0,
                   sleep: Callable[[float], None] = time.sleep) -> bool:
    """Commit a batch whose results and alarms are already durable; True once committed.

    A broker outage makes kafka-python's ``commit`` raise a retriable error
    (KafkaConnectionError: seen killing the worker in the "kafka down 20 s" fault
    scenario). Nothing is at stake by then -- the outputs are in Kafka and Redis --
    so the worker retries with back-off and, after ``give_up_after_s`` or when asked
    to stop, leaves the offsets uncommitted: the next batch's commit covers them, and
    a redelivery after a restart is deduplicated. Non-retriable errors still raise.
    """
    try:
        retry_retriable(commit, delays, should_stop, "offset commit", give_up_after_s, sleep)
        return True
    except CommitFailedError as exc:   # rebalanced meanwhile: the new owner redoes it
        log.warning("commit failed after rebalance (%s); redelivery is deduplicated", exc)
    except InterruptedError as exc:
        log.warning("offsets left uncommitted (%s); the next commit covers them, "
                    "a redelivery is deduplicated", exc)
    return False
