"""The processor against the real broker, as a child process (``cardiostream process``).

1. Online == offline: three whole MIT-BIH records through Kafka and the Faust
   worker give exactly the beats (and beat windows) of ``process_record``.
2. SIGKILL mid-stream and restart: windows resume for every device, no beat
   is lost or invented outside the warm-up band, the dead-letter topic holds
   the bad records the test sent, with their reasons, and nothing crashes.
3. Sequencing through the broker: duplicates dropped, reorder put right (the
   beats equal the offline ones), a gap and a rate change start new segments,
   and the worker's counters say so.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import wfdb

from cardiostream.labels import BEAT_SYMBOLS
from cardiostream.processing import process_record
from cardiostream.records import Record, load_record
from cardiostream.schemas import (
    SampleChunk,
    chunk_to_json,
    decode_dead_letter,
    decode_window,
    encode_chunk,
)
from cardiostream.settings import Settings
from cardiostream.signal import DEFAULT_SPEC
from streamer.harness import WorkerProcess, wait_assigned
from streamer.simulator import iter_chunks, resample_record

_US = 1_000_000
pytestmark = pytest.mark.timeout(600)


# ----------------------------------------------------------------------------- helpers


def _settings(topic_factory, partitions: int = 4) -> Settings:
    s = topic_factory(partitions)
    app_id = f"test-processor-{s.topics.samples.rsplit('.', 1)[-1]}"
    proc = s.processor.model_copy(update={"app_id": app_id, "session_timeout_s": 6.0,
                                          "commit_interval_s": 0.5})
    return s.model_copy(update={"processor": proc})


def _producer(settings: Settings):
    from kafka import KafkaProducer

    from streamer.kafka_config import producer_kwargs

    return KafkaProducer(**producer_kwargs(settings.kafka, linger_ms=5))


def _send(producer, settings: Settings, chunk: SampleChunk, key: str | None = None) -> None:
    producer.send(settings.topics.samples, key=(key or chunk.device_id).encode(),
                  value=encode_chunk(chunk))


def _terminator(last: SampleChunk) -> SampleChunk:
    """A chunk 60 s after ``last``: a time gap, so the worker flushes the segment's beats."""
    return SampleChunk(last.device_id, last.seq + 1, last.end_us + 60 * _US, last.fs_hz,
                       last.leads, last.gain, last.baseline, np.zeros_like(last.adc), last.unit)


def _read_all(settings: Settings, topic: str, until, timeout_s: float, quiet_s: float = 8.0):
    """Records of ``topic`` from the start, until ``until(records)`` and no news for quiet_s."""
    from kafka import KafkaConsumer

    from streamer.kafka_config import consumer_kwargs

    consumer = KafkaConsumer(topic, **consumer_kwargs(settings.kafka))
    records: list = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=500)
            for batch in got.values():
                records += batch
                last_new = time.monotonic()
            if until(records) and time.monotonic() - last_new > quiet_s:
                break
    finally:
        consumer.close()
    return records


def _beats_by_device(records) -> dict[str, dict[int, object]]:
    """device -> {r_time_us: window} for the beat windows (duplicates collapse)."""
    out: dict[str, dict[int, object]] = defaultdict(dict)
    for rec in records:
        win = decode_window(rec.value)
        if win.kind == "beat":
            out[win.device_id][win.r_time_us] = win
    return out


def _rhythm_starts(records) -> dict[str, set[int]]:
    """device -> start times (µs) of its rhythm windows (duplicates collapse)."""
    out: dict[str, set[int]] = defaultdict(set)
    for rec in records:
        win = decode_window(rec.value)
        if win.kind == "rhythm":
            out[win.device_id].add(win.start_time_us)
    return out


def _worker(settings: Settings, tmp_path: Path, name: str) -> WorkerProcess:
    return WorkerProcess(settings, tmp_path / f"{name}.log").start()


def _assert_clean_log(worker: WorkerProcess) -> None:
    """No traceback, no error but aiokafka's retried coordinator discovery on a fresh broker."""
    text = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines()
              if "[ERROR]" in line and "Coordinator" not in line]
    assert not errors, "\n".join(errors[:20])


# ----------------------------------------------------------------------------- 1


@pytest.mark.slow
def test_online_beats_equal_offline_for_three_records(topic_factory, data_dir, tmp_path):
    settings = _settings(topic_factory)
    names = ("100", "119", "208")
    start_us = time.time_ns() // 1000 - 3600 * _US
    records = {n: load_record(data_dir / "mitdb", n) for n in names}
    producer = _producer(settings)
    for name, rec in records.items():
        chunks = list(iter_chunks(rec, f"rec-{name}", start_us))
        for c in chunks:
            _send(producer, settings, c)
        _send(producer, settings, _terminator(chunks[-1]))
    producer.flush()
    # The offline twin is `cardiostream annotate` itself: its windows and its .cs files.
    from cardiostream.annotate import annotate_record

    annotated = {n: annotate_record(r, data_dir / "mitdb", tmp_path / "ann", DEFAULT_SPEC,
                                    start_us=start_us) for n, r in records.items()}
    offline = {n: w for n, (_, w) in annotated.items()}
    expected = {f"rec-{n}": len(w.beats) for n, w in offline.items()}

    worker = _worker(settings, tmp_path, "worker")
    try:
        def done(recs):
            got = _beats_by_device(recs)
            return all(len(got[d]) >= n for d, n in expected.items())

        online = _beats_by_device(_read_all(settings, settings.topics.windows, done, 480))
        assert worker.running
    finally:
        worker.stop()
    for name, rec in records.items():
        want = offline[name].beats
        assert len(want) > 1500                 # whole records: ~30 min of beats each
        got = [online[f"rec-{name}"][t] for t in sorted(online[f"rec-{name}"])]
        to_sample = [round((w.r_time_us - start_us) * rec.fs_hz / _US) for w in got]
        assert to_sample == [round((w.r_time_us - start_us) * rec.fs_hz / _US) for w in want]
        ann = wfdb.rdann(str(annotated[name][0].with_suffix("")), "cs")
        written = [int(x) for x, sym in zip(ann.sample, ann.symbol, strict=True)
                   if sym in BEAT_SYMBOLS]
        assert to_sample == written                   # exactly what `annotate` wrote
        assert all(np.array_equal(a.samples, b.samples) for a, b in zip(got, want, strict=True))
        assert [(a.rr_prev_s, a.rr_next_s, a.quality) for a in got] == \
               [(b.rr_prev_s, b.rr_next_s, b.quality) for b in want]
    _assert_clean_log(worker)


# ----------------------------------------------------------------------------- 2


class Streamer(threading.Thread):
    """Devices sending their chunks paced at ``speed`` x real time, plus bad records."""

    def __init__(self, settings: Settings, chunks: dict[str, list[SampleChunk]], speed: float,
                 bad: list[tuple[float, bytes, bytes]]) -> None:
        super().__init__(daemon=True)
        self.settings, self.chunks, self.speed = settings, chunks, speed
        self.bad = sorted(bad, key=lambda b: b[0])
        self.device_s = 0.0          # device time sent so far
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.error = exc

    def _run(self) -> None:
        producer = _producer(self.settings)
        n = max(len(c) for c in self.chunks.values())
        wall0 = time.monotonic()
        bad = list(self.bad)
        for k in range(n):
            end_s = (k + 1) * 0.5
            time.sleep(max(0.0, wall0 + end_s / self.speed - time.monotonic()))
            for chunks in self.chunks.values():
                _send(producer, self.settings, chunks[k])
            while bad and bad[0][0] <= end_s:
                _, key, value = bad.pop(0)
                producer.send(self.settings.topics.samples, key=key, value=value)
            self.device_s = end_s
        for chunks in self.chunks.values():
            _send(producer, self.settings, _terminator(chunks[-1]))
        producer.flush()
        producer.close()


def _bad_records(sample: SampleChunk) -> list[tuple[bytes, bytes, str]]:
    """(key, raw value, expected dead-letter reason)."""
    good = encode_chunk(sample)
    json_missing = chunk_to_json(sample).replace(b'"seq"', b'"sequence"')
    return [(sample.device_id.encode(), b"\x00\x01 not a chunk", "bad_magic"),
            (b"bed-impostor", good, "key_mismatch"),
            (sample.device_id.encode(), good[:30], "truncated"),
            (sample.device_id.encode(), b'{"v": 1, "device_id": ', "bad_json"),
            (sample.device_id.encode(), json_missing, "missing_field")]


def _short(rec: Record, seconds: float) -> Record:
    n = round(seconds * rec.fs_hz)
    return Record(rec.name, rec.fs_hz, rec.leads, rec.gain, rec.baseline, rec.adc[:, :n])


def _check_rhythms(offline: dict, online: dict[str, set[int]], before_end_us: int) -> None:
    """Rhythm windows keep the segment's 2 s grid across the event: same start times."""
    for device, rhythms in offline.items():
        want = {w.start_time_us for w in rhythms if w.end_time_us <= before_end_us}
        got = {t for t in online[device] if t + 10 * _US <= before_end_us}
        print(f"{device}: {len(want)} offline rhythm windows, lost {len(want - got)}, "
              f"extra {len(got - want)}")
        assert got == want, f"{device}: lost {sorted(want - got)} extra {sorted(got - want)}"


def _check_resumed(offline: dict, online: dict, start_us: int, event_s: float) -> None:
    """Online beats equal offline outside +-20 s of the event, <= 1 lost/invented inside."""
    band = (start_us + round((event_s - 20) * _US), start_us + round((event_s + 20) * _US))
    for device, beats in offline.items():
        want = {w.r_time_us for w in beats}
        got = set(online[device])
        outside = {t for t in want | got if not band[0] <= t <= band[1]}
        assert want & outside == got & outside, f"{device}: beats differ outside the band"
        print(f"{device}: {len(want)} offline beats, lost {len(want - got)}, "
              f"extra {len(got - want)} (outside the band around the event: none)")
        assert len(want - got) <= 1, f"{device}: lost {sorted(want - got)}"
        assert len(got - want) <= 1, f"{device}: invented {sorted(got - want)}"
        assert max(got) >= start_us + round((event_s + 30) * _US)   # resumed


@pytest.mark.slow
def test_worker_killed_mid_stream_resumes_every_device(topic_factory, data_dir, tmp_path):
    settings = _settings(topic_factory)
    seconds, speed, kill_at_s = 90.0, 2.0, 40.0
    start_us = time.time_ns() // 1000 - 60 * _US
    names = ("100", "101", "105", "119", "208", "232")
    records = {f"bed-{n}": _short(load_record(data_dir / "mitdb", n, sampto=33_000), seconds)
               for n in names}
    chunks = {d: list(iter_chunks(r, d, start_us)) for d, r in records.items()}
    bad = _bad_records(chunks["bed-100"][3])
    streamer = Streamer(settings, chunks, speed,
                        [(10.0, k, v) for k, v, _ in bad] + [(70.0, k, v) for k, v, _ in bad])

    first = _worker(settings, tmp_path, "worker-1")
    wait_assigned([first], settings.topics.partitions)
    streamer.start()
    while streamer.device_s < kill_at_s:
        time.sleep(0.1)
    first.kill()
    killed_at_s = streamer.device_s
    time.sleep(2.0)
    second = _worker(settings, tmp_path, "worker-2")
    try:
        streamer.join(timeout=seconds / speed + 60)
        assert streamer.error is None and not streamer.is_alive()
        twins = {d: process_record(r, DEFAULT_SPEC, 0.5, d, start_us, flush=True)
                 for d, r in records.items()}
        offline = {d: w.beats for d, w in twins.items()}
        last_r = {d: max(w.r_time_us for w in beats) for d, beats in offline.items()}

        def done(recs):
            got = _beats_by_device(recs)
            return all(got[d] and max(got[d]) >= last_r[d] for d in records)

        window_records = _read_all(settings, settings.topics.windows, done, 300)
        online = _beats_by_device(window_records)
        dead = _read_all(settings, settings.topics.dead_letter,
                         lambda recs: len(recs) >= 2 * len(bad), 60, quiet_s=2.0)
        assert second.running
    finally:
        second.stop()

    _check_resumed(offline, online, start_us, killed_at_s)
    _check_rhythms({d: w.rhythms for d, w in twins.items()}, _rhythm_starts(window_records),
                   start_us + round(seconds * _US))
    letters = [decode_dead_letter(r.value) for r in dead]
    got_letters = {(dl.reason, base64.b64decode(dl.raw_b64)) for dl in letters}
    assert {(reason, raw) for _, raw, reason in bad} <= got_letters
    assert all(dl.stage == "processor" for dl in letters)
    text = second.log_path.read_text(errors="replace")
    assert "warm-up" in text
    _assert_clean_log(second)


# ----------------------------------------------------------------------------- 3


def _piece(rec: Record, first: int, stop: int, n: int = 180) -> Record:
    return Record(rec.name, rec.fs_hz, rec.leads, rec.gain, rec.baseline,
                  rec.adc[:, first * n:stop * n])


def _positions(beats, start_us: int, fs_hz: float) -> list[int]:
    return sorted(round((w.r_time_us - start_us) * fs_hz / _US) for w in beats)


@pytest.mark.slow
def test_duplicates_reorder_gap_and_rate_change_through_the_broker(topic_factory, data_dir,
                                                                    tmp_path):
    settings = _settings(topic_factory, partitions=2)
    start_us = time.time_ns() // 1000 - 120 * _US
    rec = load_record(data_dir / "mitdb", "100", sampto=40 * 360)
    chunks = list(iter_chunks(rec, "seq-dev", start_us))              # seq 0..79, 0.5 s each
    order = [*range(10), 9, 11, 10, *range(12, 30), 29, *range(50, 80)]   # hole: 30..49
    rec250 = resample_record(_piece(rec, 0, 20), 250.0)
    later = [SampleChunk(c.device_id, c.seq + 80, c.t0_us, c.fs_hz, c.leads, c.gain,
                         c.baseline, c.adc, c.unit)
             for c in iter_chunks(rec250, "seq-dev", chunks[-1].end_us)]
    producer = _producer(settings)
    for k in order:
        _send(producer, settings, chunks[k])
    for c in later:
        _send(producer, settings, c)
    _send(producer, settings, _terminator(later[-1]))
    producer.flush()

    worker = _worker(settings, tmp_path, "worker")
    try:
        segments = (chunks[0].t0_us, chunks[50].t0_us, later[0].t0_us)

        def done(recs):
            return any(decode_window(r.value).segment == segments[2] for r in recs)

        windows = [decode_window(r.value) for r in
                   _read_all(settings, settings.topics.windows, done, 240)]
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
    _assert_clean_log(worker)


# ----------------------------------------------------------------------------- 4


@pytest.mark.slow
def test_partitions_move_between_workers_without_losing_beats(topic_factory, data_dir,
                                                               tmp_path):
    """Two workers share the group; one leaves mid-stream, the other takes its partitions."""
    settings = _settings(topic_factory)
    seconds, speed, leave_at_s = 70.0, 2.0, 30.0
    start_us = time.time_ns() // 1000 - 60 * _US
    names = ("100", "103", "106", "118", "201", "215")
    records = {f"mv-{n}": _short(load_record(data_dir / "mitdb", n, sampto=26_000), seconds)
               for n in names}
    chunks = {d: list(iter_chunks(r, d, start_us)) for d, r in records.items()}
    streamer = Streamer(settings, chunks, speed, [])
    stays = _worker(settings, tmp_path, "stays")
    leaves = _worker(settings, tmp_path, "leaves")
    try:
        owned = wait_assigned([stays, leaves], settings.topics.partitions)
        print(f"assignment before the move: stays {owned[0]}, leaves {owned[1]}")
        streamer.start()
        while streamer.device_s < leave_at_s:
            time.sleep(0.1)
        assert leaves.stop() == 0                      # SIGTERM: clean leave, rebalance
        assert wait_assigned([stays], settings.topics.partitions)
        streamer.join(timeout=seconds / speed + 60)
        assert streamer.error is None
        twins = {d: process_record(r, DEFAULT_SPEC, 0.5, d, start_us, flush=True)
                 for d, r in records.items()}
        offline = {d: w.beats for d, w in twins.items()}
        last_r = {d: max(w.r_time_us for w in beats) for d, beats in offline.items()}

        def done(recs):
            got = _beats_by_device(recs)
            return all(got[d] and max(got[d]) >= last_r[d] for d in records)

        window_records = _read_all(settings, settings.topics.windows, done, 300)
        online = _beats_by_device(window_records)
        assert stays.running
    finally:
        stays.stop()
        leaves.stop()
    _check_resumed(offline, online, start_us, leave_at_s)
    _check_rhythms({d: w.rhythms for d, w in twins.items()}, _rhythm_starts(window_records),
                   start_us + round(seconds * _US))
    assert "warm-up" in stays.log_path.read_text(errors="replace")
    _assert_clean_log(stays)
    _assert_clean_log(leaves)


# ----------------------------------------------------------------------------- 5


def test_worker_and_warm_up_reader_use_the_settings_sasl_credentials(secure_infra, data_dir,
                                                                      tmp_path):
    """SCRAM-SHA-512 from Settings().kafka reaches Faust (SASLCredentials) and aiokafka."""
    import asyncio

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from streamer.deadletter import DeadLetters
    from streamer.kafka_config import client_kwargs
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
        chunks = list(iter_chunks(rec, "sasl-1", time.time_ns() // 1000 - 60 * _US))
        producer = _producer(settings)
        for c in chunks:
            _send(producer, settings, c)
        producer.send(settings.topics.samples, key=b"sasl-1", value=b"junk")
        producer.flush()
        produced_ms = time.time_ns() // 1_000_000
        worker = _worker(settings, tmp_path, "worker")
        try:
            windows = _read_all(settings, settings.topics.windows, lambda r: len(r) > 5, 120,
                                quiet_s=2.0)
            dead = _read_all(settings, settings.topics.dead_letter, lambda r: len(r) >= 1, 60,
                             quiet_s=1.0)
        finally:
            worker.stop()
        assert {decode_window(r.value).device_id for r in windows} == {"sasl-1"}
        assert [decode_dead_letter(r.value).reason for r in dead] == ["bad_magic"]
        pipe = Pipeline(DEFAULT_SPEC, SequencerConfig(), DeadLetters(settings.topics.dead_letter))
        report = asyncio.run(warm_up(settings, pipe, settings.topics.samples, 0, 20,
                                     produced_ms))
        assert report.records_read == 20 and report.chunks_fed == 20 and report.devices == 1
        _assert_clean_log(worker)
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

    settings = _settings(topic_factory)
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
