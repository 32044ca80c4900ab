"""The processor against the real broker, as a child process (``cardiostream process``).

1. Online == offline: three whole MIT-BIH records through Kafka and the Faust worker give
   exactly the beats `cardiostream annotate` writes (and the beat windows of
   ``process_record``).
3. Sequencing through the broker: duplicates dropped, reorder put right (the beats equal the
   offline ones), a gap and a rate change start new segments, and the worker's counters say so.
5. SASL/SCRAM credentials from Settings reach the worker and the warm-up reader.
6. ``--workers 2`` shares the partitions.

Restarts and partition moves (2, 4) are in test_processor_restarts.py.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import pytest
import wfdb

from cardiostream.labels import BEAT_SYMBOLS
from cardiostream.processing import process_record
from cardiostream.records import Record, load_record
from cardiostream.schemas import SampleChunk, decode_dead_letter, decode_window
from cardiostream.signal import DEFAULT_SPEC
from streamer.harness import WorkerProcess, wait_assigned
from streamer.simulator import iter_chunks, resample_record
from tests.integration.processor_support import (
    US,
    assert_clean_log,
    beats_by_device,
    producer_for,
    read_all,
    send_chunk,
    settings_for,
    start_worker,
    terminator,
)

pytestmark = pytest.mark.timeout(600)


# ----------------------------------------------------------------------------- 1


@pytest.mark.slow
def test_online_beats_equal_offline_for_three_records(topic_factory, data_dir, tmp_path):
    settings = settings_for(topic_factory)
    names = ("100", "119", "208")
    start_us = time.time_ns() // 1000 - 3600 * US
    records = {n: load_record(data_dir / "mitdb", n) for n in names}
    producer = producer_for(settings)
    for name, rec in records.items():
        chunks = list(iter_chunks(rec, f"rec-{name}", start_us))
        for c in chunks:
            send_chunk(producer, settings, c)
        send_chunk(producer, settings, terminator(chunks[-1]))
    producer.flush()
    # The offline twin is `cardiostream annotate` itself: its windows and its .cs files.
    from cardiostream.annotate import annotate_record

    annotated = {n: annotate_record(r, data_dir / "mitdb", tmp_path / "ann", DEFAULT_SPEC,
                                    start_us=start_us) for n, r in records.items()}
    offline = {n: w for n, (_, w) in annotated.items()}
    expected = {f"rec-{n}": len(w.beats) for n, w in offline.items()}

    worker = start_worker(settings, tmp_path, "worker")
    try:
        def done(recs):
            got = beats_by_device(recs)
            return all(len(got[d]) >= n for d, n in expected.items())

        online = beats_by_device(read_all(settings, settings.topics.windows, done, 480))
        assert worker.running
    finally:
        worker.stop()
    for name, rec in records.items():
        want = offline[name].beats
        assert len(want) > 1500                 # whole records: ~30 min of beats each
        got = [online[f"rec-{name}"][t] for t in sorted(online[f"rec-{name}"])]
        to_sample = [round((w.r_time_us - start_us) * rec.fs_hz / US) for w in got]
        assert to_sample == [round((w.r_time_us - start_us) * rec.fs_hz / US) for w in want]
        ann = wfdb.rdann(str(annotated[name][0].with_suffix("")), "cs")
        written = [int(x) for x, sym in zip(ann.sample, ann.symbol, strict=True)
                   if sym in BEAT_SYMBOLS]
        assert to_sample == written                   # exactly what `annotate` wrote
        assert all(np.array_equal(a.samples, b.samples) for a, b in zip(got, want, strict=True))
        assert all(np.array_equal(a.template, b.template) for a, b in zip(got, want, strict=True))
        assert [(a.rr_prev_s, a.rr_next_s, a.quality) for a in got] == \
               [(b.rr_prev_s, b.rr_next_s, b.quality) for b in want]
    assert_clean_log(worker)


# ----------------------------------------------------------------------------- 3


def _piece(rec: Record, first: int, stop: int, n: int = 180) -> Record:
    return Record(rec.name, rec.fs_hz, rec.leads, rec.gain, rec.baseline,
                  rec.adc[:, first * n:stop * n])


def _positions(beats, start_us: int, fs_hz: float) -> list[int]:
    return sorted(round((w.r_time_us - start_us) * fs_hz / US) for w in beats)


@pytest.mark.slow
def test_duplicates_reorder_gap_and_rate_change_through_the_broker(topic_factory, data_dir,
                                                                    tmp_path):
    settings = settings_for(topic_factory, partitions=2)
    start_us = time.time_ns() // 1000 - 120 * US
    rec = load_record(data_dir / "mitdb", "100", sampto=40 * 360)
    chunks = list(iter_chunks(rec, "seq-dev", start_us))              # seq 0..79, 0.5 s each
    order = [*range(10), 9, 11, 10, *range(12, 30), 29, *range(50, 80)]   # hole: 30..49
    rec250 = resample_record(_piece(rec, 0, 20), 250.0)
    later = [SampleChunk(c.device_id, c.seq + 80, c.t0_us, c.fs_hz, c.leads, c.gain,
                         c.baseline, c.adc, c.unit)
             for c in iter_chunks(rec250, "seq-dev", chunks[-1].end_us)]
    producer = producer_for(settings)
    for k in order:
        send_chunk(producer, settings, chunks[k])
    for c in later:
        send_chunk(producer, settings, c)
    send_chunk(producer, settings, terminator(later[-1]))
    producer.flush()

    worker = start_worker(settings, tmp_path, "worker")
    try:
        segments = (chunks[0].t0_us, chunks[50].t0_us, later[0].t0_us)

        def done(recs):
            return any(decode_window(r.value).segment == segments[2] for r in recs)

        windows = [decode_window(r.value) for r in
                   read_all(settings, settings.topics.windows, done, 240)]
        m = worker.metrics()
    finally:
        worker.stop()
    beats = defaultdict(list)
    for w in windows:
        if w.kind == "beat":
            beats[w.segment].append(w)
    assert set(beats) == set(segments)
    # Duplicates dropped and the reorder put right: the first segment is the offline record.
    first = process_record(_piece(rec, 0, 30), DEFAULT_SPEC, 0.5, "seq-dev", start_us).beats
    assert _positions(beats[segments[0]], start_us, 360.0) == _positions(first, start_us, 360.0)
    # The gap restarted the detector cleanly at chunk 50.
    second = process_record(_piece(rec, 50, 80), DEFAULT_SPEC, 0.5, "seq-dev", segments[1]).beats
    assert _positions(beats[segments[1]], segments[1], 360.0) == \
        _positions(second, segments[1], 360.0)
    # The rate change restarted the device at 250 Hz (resampled to the spec's 360 Hz).
    third = process_record(rec250, DEFAULT_SPEC, 0.5, "seq-dev", segments[2]).beats
    assert sorted(w.r_time_us for w in beats[segments[2]]) == sorted(w.r_time_us for w in third)
    assert m["cardiostream_duplicates_total"] == 2
    assert m["cardiostream_reordered_total"] == 1
    assert m["cardiostream_gaps_total"] == 2            # the hole, and the terminator's jump
    assert_clean_log(worker)


# ----------------------------------------------------------------------------- 5


def test_worker_and_warm_up_reader_use_the_settings_sasl_credentials(secure_infra, data_dir,
                                                                      tmp_path):
    """SCRAM-SHA-512 from Settings().kafka reaches Faust (SASLCredentials) and aiokafka."""
    import asyncio

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from cardiostream.kafka_config import client_kwargs
    from streamer.deadletter import DeadLetters
    from streamer.pipeline import Pipeline
    from streamer.sequencing import SequencerConfig
    from streamer.warmup import warm_up

    suffix = str(time.time_ns())
    names = {f: f"{v}.sasl.{suffix}" for f, v in secure_infra.topics.model_dump().items()
             if isinstance(v, str)}
    settings = secure_infra.model_copy(update={
        "topics": secure_infra.topics.model_copy(update={**names, "partitions": 1}),
        "processor": secure_infra.processor.model_copy(update={"app_id": f"sasl-{suffix}"})})
    admin = KafkaAdminClient(**client_kwargs(settings.kafka))
    try:
        admin.create_topics([NewTopic(n, 1, 1) for n in names.values()], timeout_ms=30_000)
        rec = load_record(data_dir / "mitdb", "100", sampto=20 * 180)
        chunks = list(iter_chunks(rec, "sasl-1", time.time_ns() // 1000 - 60 * US))
        producer = producer_for(settings)
        for c in chunks:
            send_chunk(producer, settings, c)
        producer.send(settings.topics.samples, key=b"sasl-1", value=b"junk")
        producer.flush()
        produced_ms = time.time_ns() // 1_000_000
        worker = start_worker(settings, tmp_path, "worker")
        try:
            windows = read_all(settings, settings.topics.windows, lambda r: len(r) > 5, 120,
                                quiet_s=2.0)
            dead = read_all(settings, settings.topics.dead_letter, lambda r: len(r) >= 1, 60,
                             quiet_s=1.0)
        finally:
            worker.stop()
        assert {decode_window(r.value).device_id for r in windows} == {"sasl-1"}
        assert [decode_dead_letter(r.value).reason for r in dead] == ["bad_magic"]
        pipe = Pipeline(DEFAULT_SPEC, SequencerConfig(), DeadLetters(settings.topics.dead_letter))
        report = asyncio.run(warm_up(settings, pipe, settings.topics.samples, 0, 20,
                                     produced_ms))
        assert report.records_read == 20 and report.chunks_fed == 20 and report.devices == 1
        assert_clean_log(worker)
    finally:
        admin.delete_topics(list(names.values()), timeout_ms=30_000)
        admin.close()


# ----------------------------------------------------------------------------- 6


def test_process_workers_flag_runs_a_group_that_shares_the_partitions(topic_factory, tmp_path):
    """`cardiostream process --workers 2`: two children, ports P and P+1, clean SIGTERM."""
    import os
    import subprocess
    import sys

    from streamer.harness import free_port, settings_env

    settings = settings_for(topic_factory)
    port = free_port()
    log = open(tmp_path / "workers.log", "wb")   # noqa: SIM115 - closed below
    parent = subprocess.Popen(
        [sys.executable, "-m", "cardiostream.cli", "process", "--workers", "2",
         "--metrics-port", str(port), "--loglevel", "warning"],
        env={**os.environ, **settings_env(settings)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        views = []
        for i in range(2):
            view = WorkerProcess(settings, tmp_path / "workers.log")
            view.metrics_port = port + i
            views.append(view)
        owned = wait_assigned(views, settings.topics.partitions)
        assert all(len(o) == settings.topics.partitions // 2 for o in owned)
        parent.terminate()
        assert parent.wait(60) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
        log.close()
