"""Where each device's current segment started, kept in a compacted topic.

One record per segment start (key = device id, value = start in device µs as
ASCII), produced to the same partition number as the device's samples, with
the windows (acks=all, flushed before Faust commits the samples offset). After
a restart or a partition move, the warm-up reads that partition back and
starts its re-read on the old segment's rhythm grid (``streamer/warmup.py``).

A plain topic rather than a Faust table: a table's bookkeeping doubled the
framework's CPU per record (A/B with a no-op DSP: 165-190 -> 384-429 µs per
chunk), while this costs one produce per segment and one short read per
partition assignment.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from cardiostream.settings import Settings

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 20.0


def encode_start(start_us: int) -> bytes:
    return str(int(start_us)).encode()


def decode_start(raw: bytes | None) -> int | None:
    """The start (µs), or None for a missing or unreadable value (the re-read then starts 10 s
    back, which is always valid)."""
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def ensure_topic(settings: Settings) -> None:
    """Create the compacted segments topic if missing (a deployment that only made the data
    topics still gets grid-aligned restarts)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from cardiostream.kafka_config import client_kwargs

    t = settings.topics
    admin = KafkaAdminClient(**client_kwargs(settings.kafka))
    try:
        if t.segments in set(admin.list_topics()):
            return
        topic = NewTopic(t.segments, t.partitions, t.replication_factor,
                         topic_configs={"cleanup.policy": "compact"})
        try:
            admin.create_topics([topic], timeout_ms=30_000)
            log.info("created the compacted segments topic %s", t.segments)
        except TopicAlreadyExistsError:
            pass   # created concurrently by another worker: that is the goal
    finally:
        admin.close()


async def read_partition(consumer_kwargs: dict[str, Any], topic: str, partition: int
                         ) -> dict[str, int]:
    """``device -> segment start`` from the whole partition (latest record wins)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**consumer_kwargs, group_id=None, enable_auto_commit=False)
    starts: dict[str, int] = {}
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        deadline = time.monotonic() + READ_TIMEOUT_S
        while await consumer.position(tp) < end and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=10_000)
            for rec in batch.get(tp, []):
                start = decode_start(rec.value)
                if rec.key and start is not None:
                    starts[rec.key.decode(errors="replace")] = start
    except KafkaError as exc:
        log.warning("reading %s[%d] failed, re-reads start 10 s back: %r", topic, partition, exc)
    finally:
        await consumer.stop()
    return starts
