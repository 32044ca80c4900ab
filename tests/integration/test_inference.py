"""The inference worker against the real broker and Redis.

Synthetic windows (rule-based test models, answers known by construction) prove
the delivery contract: alarms with evidence in the care unit's stream, results
in the results topic, offsets committed, and no duplicate alarm when the same
windows are delivered twice. MIT-BIH replays live in test_inference_mitdb.py.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cardiostream.schemas import (
    BeatWindow,
    RhythmWindow,
    decode_alarm,
    decode_result,
    encode_window,
)
from cardiostream.settings import Settings
from cardiostream.signal import DEFAULT_SPEC
from inference import sink as rsink
from inference.worker import build_worker
from tests.inference_models import write_model_dir

US = 1_000_000
SPEC = DEFAULT_SPEC


def synthetic_patient(device: str, base_us: int) -> list[BeatWindow | RhythmWindow]:
    """40 s: normal beats at 75 bpm, an 8-beat V run at 150 bpm from 20 s, rhythm windows."""
    times = [*np.arange(0, 20, 0.8), *np.arange(20, 23, 0.4), *np.arange(23.6, 40, 0.8)]
    labels = ["V" if 20 <= t < 23 else "N" for t in times]
    events = []
    template = np.zeros((2, SPEC.beat_span), np.float32)
    template[0, SPEC.beat_pre] = 1.0                           # the patient's usual beat
    for i, (t, lab) in enumerate(zip(times, labels, strict=True)):
        s = np.zeros((2, SPEC.beat_span), np.float32)
        s[0, SPEC.beat_pre] = 4.0 if lab == "V" else 1.0       # the rule model's V criterion
        r = base_us + round(t * US)
        rr = 0.8 if i == 0 else float(times[i] - times[i - 1])
        events.append((r + 450_000, BeatWindow(device, "ward-t", SPEC.spec_id, 0, i, r,
                                               r + 450_000, rr, 0.8, 0.8, 0.8, "good", s,
                                               template)))
    n = int(SPEC.rhythm_window_s * SPEC.rhythm_fs_hz)
    for k, end_s in enumerate(np.arange(10, 40, 2.0)):
        start, end = base_us + round((end_s - 10) * US), base_us + round(end_s * US)
        bt = tuple(base_us + round(t * US) for t in times if end_s - 10 <= t < end_s)
        events.append((end, RhythmWindow(device, "ward-t", SPEC.spec_id, 0, k, start, end, end,
                                         SPEC.rhythm_fs_hz, bt, ("good", "good"), (0.9, 0.9),
                                         np.full((2, n), 0.05, np.float32))))
    return [w for _, w in sorted(events, key=lambda e: e[0])]


def produce(settings: Settings, windows) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all",
                             enable_idempotence=True)
    for w in windows:
        producer.send(settings.topics.windows, key=w.device_id.encode(), value=encode_window(w))
    producer.flush()
    producer.close()


def run_worker(settings: Settings, expected: int, timeout_s: float = 90.0) -> int:
    """Run a worker in a thread until it has processed ``expected`` messages."""
    worker = build_worker(settings)
    done = threading.Event()
    thread = threading.Thread(target=worker.run, args=(done.is_set,), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while worker.processed < expected and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.1)
    done.set()
    thread.join(30)
    worker.producer.close(timeout=10)
    worker.consumer.close(autocommit=False)
    return worker.processed


def stream_alarms(settings: Settings, unit: str):
    with redis.Redis.from_url(settings.redis.url) as r:
        return [(eid, {k.decode(): v for k, v in f.items()})
                for eid, f in r.xrange(rsink.alarm_stream(unit))]


@pytest.fixture
def worker_settings(isolated: Settings, tmp_path) -> Settings:
    models = write_model_dir(tmp_path / "models")
    return isolated.model_copy(update={
        "paths": isolated.paths.model_copy(update={"model_dir": models}),
        "inference": isolated.inference.model_copy(update={"device": "cpu", "max_wait_ms": 20.0,
                                                           "group_id": f"g-{tmp_path.name}"})})


def test_alarms_results_and_commits(worker_settings: Settings) -> None:
    s = worker_settings
    windows = synthetic_patient("bed-7", int(time.time() * US) - 60 * US)
    produce(s, windows)
    assert run_worker(s, len(windows)) == len(windows)

    entries = stream_alarms(s, "ward-t")
    rows = [(f["type"].decode(), f["state"].decode()) for _, f in entries]
    # the rule rhythm model also calls the irregular windows around the run AFIB (cv_rr)
    assert [r for r in rows if r[0] == "vt"] == [("vt", "raised"), ("vt", "cleared")]
    raised = decode_alarm(entries[rows.index(("vt", "raised"))][1]["alarm"])
    assert raised.severity == "red" and len(raised.strip_mv) >= 300
    assert [lab for _, lab in raised.beats] == ["V", "V", "V"]
    redis_us = int(entries[rows.index(("vt", "raised"))][1]["redis_time_us"])
    assert redis_us >= raised.last_sample_time_us

    with redis.Redis.from_url(s.redis.url) as r:
        live = {k.decode(): json.loads(v) for k, v in r.hgetall(rsink.patient_key("bed-7")).items()}
        assert r.hlen(rsink.active_key("bed-7")) == 0
    assert live["hr_bpm"] == pytest.approx(75.0) and live["active"] == []

    consumer = KafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    consumer.subscribe([s.topics.results])
    results = [decode_result(m.value) for m in consumer]
    consumer.close()
    assert len(results) == len(windows)
    assert {r.label for r in results if r.kind == "beat"} == {"N", "V"}

    probe = KafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers,
                          group_id=s.inference.group_id, enable_auto_commit=False)
    parts = probe.partitions_for_topic(s.topics.windows)
    committed = sum(probe.committed(TopicPartition(s.topics.windows, p)) or 0 for p in parts)
    probe.close()
    assert committed == len(windows)


def test_same_windows_twice_make_no_duplicate_alarm(worker_settings: Settings) -> None:
    s = worker_settings
    windows = synthetic_patient("bed-8", int(time.time() * US) - 60 * US)
    produce(s, windows)
    produce(s, windows)                                  # the whole episode redelivered
    assert run_worker(s, 2 * len(windows)) == 2 * len(windows)
    first = stream_alarms(s, "ward-t")
    # a second worker in a fresh group re-reads everything with empty alarm state
    again = s.model_copy(update={"inference": s.inference.model_copy(
        update={"group_id": s.inference.group_id + "-again"})})
    assert run_worker(again, 2 * len(windows)) == 2 * len(windows)
    assert stream_alarms(s, "ward-t") == first
    assert [f["state"] for _, f in first if f["type"] == b"vt"] == [b"raised", b"cleared"]


def test_windows_pending_at_a_rebalance_are_processed_after_it(worker_settings: Settings) -> None:
    """A member joins and leaves while windows wait in the worker's batch: none is lost.

    The join revokes every partition (eager protocol), so the worker drops its
    uncommitted batch; when the member leaves, the partitions come straight back,
    and the worker must re-read from the committed offset, not from where its
    fetcher had got to.
    """
    from cardiostream.kafka_config import consumer_kwargs, subscribe_when_known

    s = worker_settings.model_copy(update={"inference": worker_settings.inference.model_copy(
        update={"max_wait_ms": 4000.0})})                 # windows sit in the batch for 4 s
    windows = synthetic_patient("bed-9", int(time.time() * US) - 60 * US)
    produce(s, windows)
    worker = build_worker(s)
    done = threading.Event()
    thread = threading.Thread(target=worker.run, args=(done.is_set,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(worker.batcher) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(worker.batcher) > 0 and worker.processed == 0
        intruder = KafkaConsumer(**{**consumer_kwargs(s.kafka, group_id=s.inference.group_id),
                                    "enable_auto_commit": False})
        subscribe_when_known(intruder, [s.topics.windows])
        while not intruder.assignment() and time.monotonic() < deadline:
            intruder.poll(timeout_ms=100)
        assert intruder.assignment(), "the second member never joined"
        intruder.close(autocommit=False)                  # leaves: everything goes back
        while worker.processed < len(windows) and time.monotonic() < deadline + 60:
            time.sleep(0.1)
    finally:
        done.set()
        thread.join(30)
        worker.producer.close(timeout=10)
        worker.consumer.close(autocommit=False)
    assert worker.processed == len(windows)
    assert [f["state"] for _, f in stream_alarms(s, "ward-t") if f["type"] == b"vt"] == \
        [b"raised", b"cleared"]
