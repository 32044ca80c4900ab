"""Rebuild the alarm state machines of newly assigned partitions before consuming them.

The worker commits a batch only after its alarms are in Redis, so a restarted (or
newly assigned) worker resumes at the committed offset -- but with empty
per-patient state. Alarm conditions need history (a VT run of >= 3 V beats, the
PVC count over the last minute, bigeminy cycles, window streaks), and deciding
them from the commit point on re-decides every episode that straddles it with a
different onset (a different alarm id) or misses it: tests/faults measured 5 of 40
alarms changed by a kill -9 of this worker (docs/reliability.md).

So, per newly assigned partition: re-read the windows of the last ``LOOKBACK_S``
(record timestamps) before the committed offset with a group-less consumer, and
replay them through the predictor and the decider, discarding their alarms (they
were written before that commit). The decider seeds each device with the alarms
still active in Redis at its first window, exactly as without the warm-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition

from cardiostream.schemas import SchemaError, decode_window
from cardiostream.settings import KafkaSettings
from inference.decider import Decider
from inference.predictor import Predictor

log = logging.getLogger(__name__)
LOOKBACK_S = 90.0      # > 60 s of PVC-rate history + the longest streaks, in producer time
BATCH = 512
READ_TIMEOUT_S = 30.0


def _read(kafka: KafkaSettings, tp: TopicPartition, end: int, lookback_s: float) -> list:
    from cardiostream.kafka_config import consumer_kwargs

    consumer = KafkaConsumer(**{**consumer_kwargs(kafka), "enable_auto_commit": False})
    try:
        consumer.assign([tp])
        since_ms = int((time.time() - lookback_s) * 1000)
        found = consumer.offsets_for_times({tp: since_ms}).get(tp)
        start = max(consumer.beginning_offsets([tp])[tp], found.offset if found else end)
        if start >= end:
            return []
        consumer.seek(tp, start)
        records: list = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline and consumer.position(tp) < end:
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records += [r for r in batch if r.offset < end]
        return records
    finally:
        consumer.close()


def replay(kafka: KafkaSettings, committed: Iterable[tuple[TopicPartition, int]],
           predictor: Predictor, decider: Decider, lookback_s: float = LOOKBACK_S) -> int:
    """Feed the windows before each ``(partition, committed offset)`` to ``decider``;
    returns how many were replayed. Their alarms are dropped: Redis has them already."""
    n = 0
    for tp, end in committed:
        windows = []
        for rec in _read(kafka, tp, end, lookback_s):
            try:
                windows.append(decode_window(rec.value))
            except SchemaError:
                continue          # dead-lettered when it was first consumed
        for i in range(0, len(windows), BATCH):
            part = windows[i:i + BATCH]
            pred = predictor.predict(part)
            for win, res in zip(part, pred.results, strict=True):
                if res is not None:
                    decider.feed(win, res)
        n += len(windows)
        log.info("alarm-state warm-up %s[%d]: %d windows before offset %d replayed",
                 tp.topic, tp.partition, len(windows), end)
    return n
