"""The inference worker: windows topic -> batches -> models -> alarms -> results topic + Redis.

Client: kafka-python, not aiokafka. The loop is CPU/GPU-bound (numpy feature
preparation and a torch forward pass of up to tens of milliseconds), so an
asyncio loop would buy nothing and would stall aiokafka's heartbeats during each
forward pass; kafka-python heartbeats from its own thread, and its
``poll(timeout_ms, max_records)`` maps directly onto the batcher's deadline and
size. The sequence that makes delivery safe is plain sequential code:

    poll -> batch -> predict -> alarm state machines
         -> results producer (acks=all, idempotent) flushed, every send confirmed
         -> Redis (alarms deduplicated by id, live state), retried with back-off
         -> commit the batch's offsets

A crash anywhere before the commit redelivers the batch; the alarm state machines
drop windows they have already seen and Redis refuses alarm ids it already has,
so redelivery adds no alarm. The results topic is at-least-once (its readers key
on device + beat/window index).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from cardiostream import metrics
from cardiostream.schemas import (
    DeadLetter,
    SchemaError,
    Window,
    decode_window,
    encode_dead_letter,
    encode_result,
)
from cardiostream.settings import Settings
from inference.batcher import Batcher
from inference.decider import Decider
from inference.offsets import commit_offsets, retry_retriable
from inference.predictor import Predictor
from inference.sink import RedisSink

log = logging.getLogger(__name__)
COMPONENT = "inference"
LAG_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Item:
    """One consumed message: its coordinates, raw bytes and decoded window (None = refused)."""

    tp: TopicPartition
    offset: int
    key: bytes | None
    raw: bytes
    window: Window | None
    error: SchemaError | None = None


def decode_item(tp: TopicPartition, offset: int, key: bytes | None, raw: bytes) -> Item:
    """Decode and check that the Kafka key is the payload's device id."""
    try:
        win = decode_window(raw)
        if key is not None and key != win.device_id.encode():
            raise SchemaError("key_mismatch", f"key {key[:64]!r} != device {win.device_id}")
        return Item(tp, offset, key, raw, win)
    except SchemaError as err:
        return Item(tp, offset, key, raw, None, err)


class InferenceWorker:
    """Owns the consume/produce loop; the clients are injected (tests build their own)."""

    def __init__(self, settings: Settings, consumer: KafkaConsumer, producer: KafkaProducer,
                 predictor: Predictor, sink: RedisSink, decider: Decider,
                 clock: Callable[[], float] = time.monotonic) -> None:
        inf = settings.inference
        self.topics = settings.topics
        self.consumer, self.producer = consumer, producer
        self.predictor, self.sink, self.decider = predictor, sink, decider
        self.batcher: Batcher[Item] = Batcher(inf.max_batch, inf.max_wait_ms / 1000.0)
        self.clock = clock
        self.gauges = metrics.PatientGauges(settings.metrics.max_patient_series)
        self.device_tp: dict[str, TopicPartition] = {}
        self.kafka = settings.kafka
        self.cold: set[TopicPartition] = set()   # assigned, alarm state not rebuilt yet
        self._next_lag = 0.0
        self.processed = 0

    # ------------------------------------------------------------------ loop
    def run(self, should_stop: Callable[[], bool]) -> None:
        """Poll and process until ``should_stop()``; then finish the pending batch."""
        while not should_stop():
            self.step()
        self.process(self.batcher.flush())

    def step(self) -> None:
        """One poll (bounded by the pending batch's deadline) and every batch it closes."""
        metrics.heartbeat(COMPONENT)
        timeout_ms = max(1, int(self.batcher.time_left(self.clock()) * 1000))
        room = max(1, self.batcher.max_size - len(self.batcher))
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=room)
        if self.cold:          # before any record of a newly assigned partition is decided
            rewound = self._warm_up()
            polled = {tp: recs for tp, recs in polled.items() if tp not in rewound}
        items = [decode_item(tp, r.offset, r.key, r.value)
                 for tp, records in polled.items() for r in records]
        for batch in self.batcher.extend(items, self.clock()):
            self.process(batch)
        for batch in self.batcher.poll(self.clock()):
            self.process(batch)
        self._report_lag()

    def _warm_up(self) -> set[TopicPartition]:
        """Start newly assigned partitions at their committed offsets, alarm state rebuilt.

        The rewind is what makes a revocation safe: ``revoke`` drops the pending,
        uncommitted windows of the partitions it loses, and when the group hands a
        partition straight back to this member, kafka-python 3.0 keeps its fetch
        position -- past the dropped windows, which then never come again (seen in
        tests/integration/test_inference.py: a rejoin seconds after start left
        138 windows fetched, dropped and never processed). Seeking to the
        committed offset (the beginning when the group has none, as
        auto_offset_reset=earliest says) re-reads exactly what was not made
        durable. Returns the rewound partitions: records polled for them in the
        same call are discarded, they come again from the rewound position.
        """
        from inference.warmup import replay

        cold, self.cold = self.cold, set()
        rewound = cold & self.consumer.assignment()
        committed: list[tuple[TopicPartition, int]] = []
        for tp in sorted(rewound):
            off = retry_retriable(lambda tp=tp: self.consumer.committed(tp),
                                  self.sink.backoff.delays(), self.sink.should_stop,
                                  f"committed offset of {tp}")
            if off is None:
                self.consumer.seek_to_beginning(tp)
                continue
            self.consumer.seek(tp, off)
            if off:
                committed.append((tp, off))
        replay(self.kafka, committed, self.predictor, self.decider)
        return rewound

    # ------------------------------------------------------------------ one batch
    def process(self, batch: list[Item]) -> None:
        """Classify, decide, make durable, then commit. Raises if Kafka refuses a send."""
        if not batch:
            return
        metrics.BATCH_SIZE.observe(len(batch))
        futures = [self._dead_letter(it, it.error) for it in batch if it.error is not None]
        good = [it for it in batch if it.window is not None]
        pred = self.predictor.predict([it.window for it in good]) if good else None
        alarms, touched = [], set()
        for rej in pred.rejected if pred else ():
            futures.append(self._dead_letter(good[rej.index],
                                             SchemaError(rej.reason, rej.detail)))
        for it, res in zip(good, pred.results if pred else (), strict=True):
            if res is None:
                continue
            futures.append(self.producer.send(self.topics.results, key=it.key,
                                              value=encode_result(res)))
            alarms += self.decider.feed(it.window, res)
            touched.add(it.window.device_id)
            self.device_tp[it.window.device_id] = it.tp
            if res.kind == "beat":
                metrics.BEATS.labels(metrics.beat_label(res.label)).inc()
        self.producer.flush()
        for fut in futures:
            if fut.failed():
                raise RuntimeError(f"results/dead-letter send failed: {fut.exception}")
        states = {d: self.decider.live(d) for d in touched}
        self.sink.write(alarms, states)
        self._update_gauges(states)
        self._commit(batch)
        self.processed += len(batch)

    def _dead_letter(self, it: Item, err: SchemaError):
        log.warning("dead letter %s[%d] offset %d: %s", it.tp.topic, it.tp.partition,
                    it.offset, err)
        metrics.DEAD_LETTERS.labels(COMPONENT, err.reason).inc()
        dl = DeadLetter.of(err, it.raw, it.key, it.tp.topic, it.tp.partition, it.offset,
                           COMPONENT, int(time.time() * 1e6))
        return self.producer.send(self.topics.dead_letter, key=it.key,
                                  value=encode_dead_letter(dl))

    def _commit(self, batch: list[Item]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for it in batch:
            offsets[it.tp] = OffsetAndMetadata(it.offset + 1, "", -1)
        commit_offsets(lambda: self.consumer.commit(offsets), self.sink.backoff.delays(),
                       self.sink.should_stop)

    # ------------------------------------------------------------------ bookkeeping
    def revoke(self, revoked: set[TopicPartition]) -> None:
        """Partitions moved away: drop their pending windows and their devices' states."""
        kept = [it for it in self.batcher.flush() if it.tp not in revoked]
        self.batcher.extend(kept, self.clock())
        gone = {d for d, tp in self.device_tp.items() if tp in revoked}
        self.decider.forget(gone)
        self.predictor.forget(gone)
        for d in gone:
            self.device_tp.pop(d, None)
            self.gauges.forget(d)

    def _update_gauges(self, states: dict[str, dict[str, object]]) -> None:
        metrics.DEVICES_ACTIVE.labels(COMPONENT).set(len(self.decider.states))
        for d, st in states.items():
            if st.get("hr_bpm"):
                self.gauges.set_heart_rate(d, float(st["hr_bpm"]))
            self.gauges.set_rhythm(d, str(st.get("rhythm", "?")))
            quality = list(st.get("quality") or [])
            if quality:
                self.gauges.set_signal_quality(d, quality.count("good") / len(quality))
            self.gauges.set_alarm_level(d, _worst(st.get("active") or []))

    def _report_lag(self) -> None:
        """The lag gauge, every LAG_EVERY_S. Best effort: ``position`` asks the broker when
        the consumer has no position yet, and a broker outage then must cost one gauge
        update, not the worker (a fault test once saw it exit here with ECONNREFUSED)."""
        now = self.clock()
        if now < self._next_lag:
            return
        self._next_lag = now + LAG_EVERY_S
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self.consumer.position(tp)
            except KafkaError as exc:
                log.warning("lag of %s[%d] not reported this round: %s", tp.topic,
                            tp.partition, exc)
                continue
            metrics.CONSUMER_LAG.labels(COMPONENT, str(tp.partition)).set(
                max(0, high - position))


def _worst(active: list[str]) -> str:
    from inference.alarm_types import SEVERITY

    levels = [SEVERITY.get(k.split(":")[0], "none") for k in active]
    return max(levels, key=lambda s: metrics.ALARM_LEVEL[s], default="none")


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker_ref: list[InferenceWorker]) -> None:
        self.worker_ref = worker_ref

    def on_partitions_revoked(self, revoked) -> None:
        if self.worker_ref:
            self.worker_ref[0].revoke(set(revoked))

    def on_partitions_assigned(self, assigned) -> None:
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
        if self.worker_ref:
            self.worker_ref[0].cold |= set(assigned)


def build_worker(settings: Settings) -> InferenceWorker:
    """Clients, models and state from settings: the service's composition."""
    from cardiostream.kafka_config import consumer_kwargs, producer_kwargs, subscribe_when_known
    from inference.decider import model_spec
    from inference.sink import Backoff, make_client

    inf = settings.inference
    predictor = Predictor(settings.paths.model_dir, inf.device, inf.half_precision,
                          threads=inf.torch_threads or None)
    ref: list[InferenceWorker] = []
    consumer = KafkaConsumer(**{
        **consumer_kwargs(settings.kafka, group_id=inf.group_id),
        "enable_auto_commit": False, "max_poll_records": inf.max_batch,
        "key_deserializer": None, "value_deserializer": None})
    subscribe_when_known(consumer, [settings.topics.windows], _Rebalance(ref))
    producer = KafkaProducer(**producer_kwargs(settings.kafka, linger_ms=5))
    sink = RedisSink(make_client(settings.redis), settings.redis.alarm_stream_maxlen, Backoff())
    decider = Decider(settings.alarms, model_spec(predictor.beat.metadata),
                      seed=sink.active_alarms)
    worker = InferenceWorker(settings, consumer, producer, predictor, sink, decider)
    ref.append(worker)
    return worker


def serve(settings: Settings, should_stop: Callable[[], bool]) -> int:
    """Run until ``should_stop()``; returns windows processed. Closes the clients."""
    from inference.alarm_types import ALARM_TYPES

    metrics.init_component(COMPONENT, alarm_types=ALARM_TYPES)
    worker = build_worker(settings)
    worker.sink.should_stop = should_stop
    log.info("inference on %s (half=%s), batch %d / %.0f ms, models %s",
             worker.predictor.device, worker.predictor.half, settings.inference.max_batch,
             settings.inference.max_wait_ms, worker.predictor.version)
    try:
        worker.run(should_stop)
    except InterruptedError as exc:
        log.warning("stopped with an unwritten batch (%s); it will be redelivered", exc)
    finally:
        worker.producer.close(timeout=10)
        worker.consumer.close(autocommit=False)
    return worker.processed
