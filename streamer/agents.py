"""The Faust agent: decode -> sequence -> DSP step -> send. Thin on purpose.

The per-record work is ``streamer.pipeline.Pipeline.handle``; this module only
wires it to Faust: the agent over the samples topic, the warm-up on the first
record of a partition this worker did not own (``streamer.warmup``), the
producer sends (acks=all, failures crash the worker so the offset is not
committed past lost windows), the acks (held by ``streamer.ackgate`` until a
restart after the record could still emit every pending window from a
``warmup_s`` re-read), and a 1 s timer that flushes idle devices, releases acks,
exports consumer lag and advances the heartbeat only while the stream moves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import faust

from cardiostream import metrics
from cardiostream.settings import Settings
from cardiostream.signal import DEFAULT_SPEC
from streamer.ackgate import AckGate
from streamer.deadletter import KNOWN_REASONS, DeadLetters
from streamer.pipeline import COMPONENT, Dsp, Output, Pipeline
from streamer.segments import encode_start
from streamer.sequencing import SequencerConfig
from streamer.warmup import warm_up

log = logging.getLogger(__name__)
STALL_S = 10.0          # lag > 0 and no record for this long: the consumer stalled
STATS_LOG_S = 30.0


class Processor:
    """State of one worker: its pipeline, warm partitions and liveness bookkeeping."""

    def __init__(self, app: faust.App, settings: Settings, pipeline: Pipeline) -> None:
        self.app = app
        # device -> start of its current segment, one record per segment (streamer/segments.py)
        self.segments_topic = settings.topics.segments
        self.settings = settings
        self.pipeline = pipeline
        self.windows_topic = settings.topics.windows
        self.dead_topic = settings.topics.dead_letter
        self.warm: set[int] = set()              # partitions whose devices are warmed up
        self.assigned: set[int] = set()          # samples-topic partitions owned now
        self.positions: dict[int, int] = {}      # partition -> next offset to process
        self.records = 0
        self.warmups: deque[Any] = deque(maxlen=64)   # latest WarmupReports
        self.send_errors = 0
        self.gate = AckGate()
        self.lookback_us = round(settings.processor.warmup_s * 1_000_000)
        self._last_records = 0
        self._last_progress = time.monotonic()
        self._last_stats_log = time.monotonic()

    async def on_record(self, event: Any) -> None:
        """One samples-topic record (a Faust ``Event``; acked here, maybe later)."""
        msg = event.message
        if msg.partition not in self.warm:
            await self._warm(msg)
        # No per-record CPU clock here: in this multi-threaded process (Faust runs the
        # consumer in its own thread) time.process_time() cost ~40 us a call, a fifth of
        # the worker's CPU in a py-spy profile. The 30 s stats line reports process CPU.
        out = self.pipeline.handle(msg.key, msg.value, msg.topic, msg.partition, msg.offset,
                                   time.time_ns() // 1000)
        for device_id, start_us in self.pipeline.pop_new_segments(msg.partition):
            out.segments.append((device_id.encode(), encode_start(start_us), msg.partition))
        await self._send(out)
        self.positions[msg.partition] = msg.offset + 1
        self.records += 1
        now = time.monotonic()
        self.gate.add(msg.partition, event, out.holds, now)
        for done in self.gate.release(msg.partition, self._resumable, now):
            done.ack()

    def _resumable(self, device_id: str, end_us: int) -> bool:
        return self.pipeline.resumable(device_id, end_us, self.lookback_us)

    async def _warm(self, msg: Any) -> None:
        from aiokafka.errors import KafkaError

        self.pipeline.drop_partitions({msg.partition})
        if self.settings.processor.warmup_s > 0 and msg.offset > 0:
            try:
                report = await warm_up(self.settings, self.pipeline, msg.topic, msg.partition,
                                       msg.offset, int(msg.timestamp * 1000))
                self.warmups.append(report)
            except (TimeoutError, KafkaError, OSError) as exc:
                # Policy: a failed re-read leaves the partition's devices cold (they start a
                # new segment at this record) rather than stopping every device of the worker.
                self.pipeline.drop_partitions({msg.partition})
                self.pipeline.stats["warmup_failed"] += 1
                log.warning("warm-up of %s[%d] before offset %d failed, devices start cold: %r",
                            msg.topic, msg.partition, msg.offset, exc)
        self.warm.add(msg.partition)

    async def _send(self, out: Output) -> None:
        producer = self.app.producer
        for key, value in out.windows:
            fut = await producer.send(self.windows_topic, key, value, None, None, None)
            fut.add_done_callback(self._check_delivery)
        for key, value in out.dead:
            fut = await producer.send(self.dead_topic, key, value, None, None, None)
            fut.add_done_callback(self._check_delivery)
        for key, value, partition in out.segments:
            fut = await producer.send(self.segments_topic, key, value, partition, None, None)
            fut.add_done_callback(self._check_delivery)

    def _check_delivery(self, fut: asyncio.Future) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is None:
            return
        self.send_errors += 1
        log.error("window/dead-letter delivery failed, stopping the worker so the offset is "
                  "not committed past it: %r", exc)
        asyncio.ensure_future(self.app.crash(exc))

    def on_assigned(self, assigned: set[Any]) -> None:
        """Forget devices of partitions moved away; kept partitions stay warm.

        The lag gauge has a series exactly for the partitions this worker owns, which is
        how tests and dashboards see the assignment.
        """
        mine = {tp.partition for tp in assigned if tp.topic == self.settings.topics.samples}
        gone = self.warm - mine
        if gone:
            self.gate.drop(gone)             # not acked: the new owner resumes before them
            dropped = self.pipeline.drop_partitions(gone)
            log.info("partitions %s moved away: forgot %d devices", sorted(gone), dropped)
        self.warm &= mine
        for partition in self.assigned - mine:
            metrics.CONSUMER_LAG.remove(COMPONENT, str(partition))
        for partition in mine - self.assigned:
            metrics.CONSUMER_LAG.labels(COMPONENT, str(partition)).set(0)
        self.assigned = mine

    async def tick(self) -> None:
        """Every second: flush idle devices, export lag, heartbeat while the stream moves."""
        cfg = self.settings.processor
        await self._send(self.pipeline.flush_idle(cfg.idle_flush_s))
        await self._send(self.pipeline.expire_idle(cfg.device_idle_s))
        for done in self.gate.release_all(self._resumable, time.monotonic()):
            done.ack()
        lag = self._lag()
        now = time.monotonic()
        if self.records != self._last_records or lag == 0:
            self._last_records, self._last_progress = self.records, now
            metrics.heartbeat(COMPONENT)
        elif now - self._last_progress > STALL_S:
            log.warning("processor stalled: lag %d records, no progress for %.0f s",
                        lag, now - self._last_progress)
        metrics.DEVICES_ACTIVE.labels(COMPONENT).set(len(self.pipeline.devices))
        if now - self._last_stats_log > STATS_LOG_S:
            self._last_stats_log = now
            total = time.process_time()
            log.info("processor: %d records, %d devices, lag %d, stats %s, acks held %d "
                     "(forced %d), process CPU s %.1f", self.records, len(self.pipeline.devices),
                     lag, dict(self.pipeline.stats), self.gate.held(), self.gate.forced, total)

    def _lag(self) -> int:
        consumer = self.app.consumer
        total = 0
        for tp in consumer.assignment():
            if tp.topic != self.settings.topics.samples or tp.partition not in self.assigned:
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            lag = max(0, high - self.positions.get(tp.partition, high))
            metrics.CONSUMER_LAG.labels(COMPONENT, str(tp.partition)).set(lag)
            total += lag
        return total


def register(app: faust.App, settings: Settings, dsp: Dsp | None = None) -> Processor:
    """Attach the agent, the timer and the rebalance hook to ``app``."""
    cfg = settings.processor
    seq_cfg = SequencerConfig(max_held=cfg.reorder_max_held, max_wait_s=cfg.reorder_max_wait_s,
                              time_tolerance_s=cfg.time_tolerance_s)
    pipeline = Pipeline(DEFAULT_SPEC, seq_cfg, DeadLetters(settings.topics.dead_letter), dsp,
                        n_partitions=settings.topics.partitions)
    proc = Processor(app, settings, pipeline)
    metrics.init_component(COMPONENT, dead_letter_reasons=KNOWN_REASONS)
    samples = app.topic(settings.topics.samples, key_type=bytes, value_type=bytes)

    @app.agent(samples, name="process-samples")
    async def process_samples(stream: faust.StreamT) -> None:
        async for event in stream.noack().events():      # acked by proc.gate
            await proc.on_record(event)

    @app.timer(interval=1.0)
    async def processor_tick() -> None:
        await proc.tick()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        proc.on_assigned(assigned)

    return proc
