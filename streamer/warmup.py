"""Restart and rebalance: warm each device's DSP up from the last seconds of its partition.

Mechanism (justified in docs/processor.md): no DSP state in tables. The first time a
worker sees a record of a partition it did not own, it reads that partition
back from ~``warmup_s`` before the record (``offsets_for_times`` on the record
timestamps, capped at ``warmup_max_messages``) up to the record's offset with
a plain, group-less aiokafka consumer, keeps per device only the chunks whose
device time lies in the last ``warmup_s`` before the resume point, and feeds
them through the pipeline with ``emit=False``. Faust then continues from the
committed offset, which it only commits after the windows of every earlier
record were flushed with acks=all, and only past records after which every window
still pending started within ``warmup_s`` (``streamer.ackgate``). Result:
at-least-once windows, warm DSP state, and a warm-up bounded by ``warmup_s`` of
signal per device. When the
agent's segments table knows where the device's segment started, the re-read
begins on that segment's rhythm-window grid and keeps its id (``_select``).

Why not a Faust table with a changelog of the DSP state: a device's state holds
~10 s of two-lead samples (rhythm buffer, QRS look-back), ~60 KB; writing it
to a changelog at every 0.5 s chunk for 2,000 devices is ~240 MB/s, and
checkpointing less often still needs the re-read of the signal since the
checkpoint. Re-reading 10 s is what a checkpoint would save at best.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardiostream.schemas import (
    SampleChunk,
    SchemaError,
    decode_chunk,
    is_bundle,
    split_bundle,
)
from cardiostream.settings import Settings
from streamer.pipeline import Pipeline

log = logging.getLogger(__name__)
_US = 1_000_000
# Record timestamps are the producer's wall clock; allow for produce jitter and batching.
TIMESTAMP_SLACK_S = 5.0
READ_TIMEOUT_S = 30.0
Anchor = Callable[[str], "int | None"]     # device id -> its current segment start (µs)
Unit = tuple[int, "bytes | None", bytes]   # (offset, key, one encoded chunk)


@dataclass(frozen=True, slots=True)
class WarmupReport:
    topic: str
    partition: int
    start_offset: int
    end_offset: int        # exclusive: the first record Faust delivers
    records_read: int
    chunks_fed: int
    devices: int
    seconds: float


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka connection arguments equivalent to ``cardiostream.kafka_config.client_kwargs``."""
    from aiokafka.helpers import create_ssl_context

    from cardiostream.kafka_config import client_kwargs

    kw = client_kwargs(settings.kafka)
    cafile = kw.pop("ssl_cafile", None)
    if kw["security_protocol"].endswith("SSL"):
        kw["ssl_context"] = create_ssl_context(cafile=cafile)
    return kw


def _units(rec: Any) -> list[tuple[bytes | None, bytes, SampleChunk]]:
    """A record's valid chunks as (key, chunk bytes, decoded chunk): itself, or each member
    of a bundle keyed by its device (so the pipeline's single-chunk path, key check
    included, takes it). What does not decode was refused (and dead-lettered) when it was
    first processed."""
    if not is_bundle(rec.value):
        members, keys = [rec.value], [rec.key]
    else:
        try:
            members = split_bundle(rec.value)
        except SchemaError:
            return []
        keys = [None] * len(members)
    units = []
    for key, member in zip(keys, members, strict=True):
        try:
            chunk = decode_chunk(member)
        except SchemaError:
            continue
        units.append((key if key is not None else chunk.device_id.encode(), member, chunk))
    return units


def _select(records: list[Any], warmup_s: float, anchor_of: Anchor,
            owns: Callable[[str], bool] = lambda device: True
            ) -> tuple[list[Unit], dict[str, int]]:
    """Per device, the chunks within ``warmup_s`` of device time before
    its newest chunk (as ``(offset, key, value)`` units; bundles are split and members of
    devices this partition does not ``owns`` are left out, as they were refused), and
    ``device -> segment start`` hints for devices whose recorded segment began before that
    (the fresh DSP state then keeps the segment's id).

    Rhythm windows sit on the device-time hop grid (``cardiostream.windowing``), so a state
    started anywhere cuts the same windows; a window still waiting for its decision margin
    at the commit starts within ``warmup_s`` of the resume point, because the worker holds
    a record's ack until that holds (``streamer.ackgate``).
    """
    end_by_device: dict[str, int] = defaultdict(int)
    decoded = []
    for rec in records:
        for key, value, chunk in _units(rec):
            if not owns(chunk.device_id):
                continue
            end_by_device[chunk.device_id] = max(end_by_device[chunk.device_id], chunk.end_us)
            decoded.append(((rec.offset, key, value), chunk))
    horizon = round(warmup_s * _US)
    kept = [(u, c) for u, c in decoded if c.end_us > end_by_device[c.device_id] - horizon]
    first_t0: dict[str, int] = {}
    for _, c in kept:
        first_t0.setdefault(c.device_id, c.t0_us)
    hints = {}
    for device, t0 in first_t0.items():
        anchor = anchor_of(device)
        if anchor is not None and anchor <= t0:
            hints[device] = anchor
    return [u for u, _ in kept], hints


async def _read_range(settings: Settings, topic: str, partition: int, end_offset: int,
                      timestamp_ms: int) -> tuple[int, list[Any]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    cfg = settings.processor
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign([tp])
        lookback_ms = round((cfg.warmup_s + TIMESTAMP_SLACK_S) * 1000)
        found = (await consumer.offsets_for_times({tp: max(0, timestamp_ms - lookback_ms)}))[tp]
        first = (await consumer.beginning_offsets([tp]))[tp]
        start = max(first, end_offset - cfg.warmup_max_messages,
                    found.offset if found is not None else end_offset)
        records: list[Any] = []
        if start >= end_offset:
            return start, records
        consumer.seek(tp, start)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
            recs = batch.get(tp, [])
            if not recs and await consumer.position(tp) >= end_offset:
                return start, records
            records += [r for r in recs if r.offset < end_offset]
            if recs and recs[-1].offset >= end_offset - 1:
                return start, records
        log.warning("warm-up %s[%d]: stopped after %.0f s at %d records (wanted up to %d)",
                    topic, partition, READ_TIMEOUT_S, len(records), end_offset)
        return start, records
    finally:
        await consumer.stop()


async def warm_up(settings: Settings, pipeline: Pipeline, topic: str, partition: int,
                  end_offset: int, timestamp_ms: int) -> WarmupReport:
    """Re-read ``topic[partition]`` before ``end_offset`` into ``pipeline`` without emitting.

    The devices' recorded segment starts (``streamer.segments``, same partition number)
    put each re-read on its segment's rhythm grid.
    """
    from streamer.segments import read_partition

    t0 = time.perf_counter()
    starts = await read_partition(aiokafka_kwargs(settings), settings.topics.segments,
                                  partition)
    start, records = await _read_range(settings, topic, partition, end_offset, timestamp_ms)
    chosen, hints = _select(records, settings.processor.warmup_s, starts.get,
                            lambda device: pipeline.owns(device, partition))
    pipeline.segment_hints.update(hints)
    for offset, key, value in chosen:
        pipeline.handle(key, value, topic, partition, offset, None, emit=False)
    devices = {key for _, key, _ in chosen}
    report = WarmupReport(topic, partition, start, end_offset, len(records), len(chosen),
                          len(devices), time.perf_counter() - t0)
    log.info("warm-up %s[%d] offsets %d..%d: %d records, %d chunks fed, %d devices "
             "(%d continue their segment), %.2f s", topic, partition, start, end_offset,
             len(records), len(chosen), len(devices), len(hints), report.seconds)
    return report
