"""Committing a batch's offsets once its outputs are durable, through broker outages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from kafka.errors import CommitFailedError, KafkaError

log = logging.getLogger(__name__)


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
    waited = 0.0
    for delay in delays:
        try:
            commit()
            return True
        except CommitFailedError as exc:   # rebalanced meanwhile: the new owner redoes it
            log.warning("commit failed after rebalance (%s); redelivery is deduplicated", exc)
            return False
        except KafkaError as exc:
            if not exc.retriable:
                raise
            if should_stop() or waited >= give_up_after_s:
                log.warning("offsets left uncommitted after %.0f s (%s); the next commit "
                            "covers them, a redelivery is deduplicated", waited, exc)
                return False
            log.warning("offset commit failed (%s); retrying in %.1f s", exc, delay)
            sleep(delay)
            waited += delay
    return False
