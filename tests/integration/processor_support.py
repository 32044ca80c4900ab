"""Helpers for the processor's integration tests: produce, read back, run and check workers.

Not collected by pytest (no ``test_`` prefix); imported by tests/integration/test_processor*.py.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from cardiostream.records import Record
from cardiostream.schemas import SampleChunk, chunk_to_json, decode_window, encode_chunk
from cardiostream.settings import Settings
from streamer.harness import WorkerProcess

US = 1_000_000



def settings_for(topic_factory, partitions: int = 4) -> Settings:
    s = topic_factory(partitions)
    app_id = f"test-processor-{s.topics.samples.rsplit('.', 1)[-1]}"
    proc = s.processor.model_copy(update={"app_id": app_id, "session_timeout_s": 6.0,
                                          "commit_interval_s": 0.5})
    return s.model_copy(update={"processor": proc})


def producer_for(settings: Settings):
    from kafka import KafkaProducer

    from cardiostream.kafka_config import producer_kwargs

    return KafkaProducer(**producer_kwargs(settings.kafka, linger_ms=5))


def send_chunk(producer, settings: Settings, chunk: SampleChunk, key: str | None = None) -> None:
    producer.send(settings.topics.samples, key=(key or chunk.device_id).encode(),
                  value=encode_chunk(chunk))


def terminator(last: SampleChunk) -> SampleChunk:
    """A chunk 60 s after ``last``: a time gap, so the worker flushes the segment's beats."""
    return SampleChunk(last.device_id, last.seq + 1, last.end_us + 60 * US, last.fs_hz,
                       last.leads, last.gain, last.baseline, np.zeros_like(last.adc), last.unit)


def read_all(settings: Settings, topic: str, until, timeout_s: float, quiet_s: float = 8.0):
    """Records of ``topic`` from the start, until ``until(records)`` and no news for quiet_s."""
    from kafka import KafkaConsumer

    from cardiostream.kafka_config import consumer_kwargs

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


def beats_by_device(records) -> dict[str, dict[int, object]]:
    """device -> {r_time_us: window} for the beat windows (duplicates collapse)."""
    out: dict[str, dict[int, object]] = defaultdict(dict)
    for rec in records:
        win = decode_window(rec.value)
        if win.kind == "beat":
            out[win.device_id][win.r_time_us] = win
    return out


def rhythm_starts(records) -> dict[str, set[int]]:
    """device -> start times (µs) of its rhythm windows (duplicates collapse)."""
    out: dict[str, set[int]] = defaultdict(set)
    for rec in records:
        win = decode_window(rec.value)
        if win.kind == "rhythm":
            out[win.device_id].add(win.start_time_us)
    return out


def start_worker(settings: Settings, tmp_path: Path, name: str) -> WorkerProcess:
    return WorkerProcess(settings, tmp_path / f"{name}.log").start()


def assert_clean_log(worker: WorkerProcess) -> None:
    """No traceback, no error but aiokafka's retried coordinator discovery on a fresh broker."""
    text = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines()
              if "[ERROR]" in line and "Coordinator" not in line]
    assert not errors, "\n".join(errors[:20])




class Streamer(threading.Thread):
    """Devices sending their chunks paced at ``speed`` x real time, plus bad records.

    ``gateway`` > 0: the chunks travel as gateway bundles of at most that many chunks, one
    record per partition per tick (``streamer.gateway``); the bad records stay single."""

    def __init__(self, settings: Settings, chunks: dict[str, list[SampleChunk]], speed: float,
                 bad: list[tuple[float, bytes, bytes]], gateway: int = 0) -> None:
        super().__init__(daemon=True)
        self.settings, self.chunks, self.speed = settings, chunks, speed
        self.gateway = gateway
        self.bad = sorted(bad, key=lambda b: b[0])
        self.device_s = 0.0          # device time sent so far
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.error = exc

    def _run(self) -> None:
        producer = producer_for(self.settings)
        n = max(len(c) for c in self.chunks.values())
        wall0 = time.monotonic()
        bad = list(self.bad)
        for k in range(n):
            end_s = (k + 1) * 0.5
            time.sleep(max(0.0, wall0 + end_s / self.speed - time.monotonic()))
            self._send_tick(producer, [chunks[k] for chunks in self.chunks.values()])
            while bad and bad[0][0] <= end_s:
                _, key, value = bad.pop(0)
                producer.send(self.settings.topics.samples, key=key, value=value)
            self.device_s = end_s
        self._send_tick(producer, [terminator(chunks[-1]) for chunks in self.chunks.values()])
        producer.flush()
        producer.close()


    def _send_tick(self, producer, tick: list[SampleChunk]) -> None:
        if not self.gateway:
            for chunk in tick:
                send_chunk(producer, self.settings, chunk)
            return
        from streamer.gateway import GatewayBundler
        from streamer.simulator import GATEWAY_KEY

        bundler = GatewayBundler(self.gateway, self.settings.topics.partitions)
        for partition, value, _ in bundler.pack([(c.device_id, encode_chunk(c)) for c in tick]):
            producer.send(self.settings.topics.samples, key=GATEWAY_KEY, value=value,
                          partition=partition)


def bad_records(sample: SampleChunk) -> list[tuple[bytes, bytes, str]]:
    """(key, raw value, expected dead-letter reason)."""
    good = encode_chunk(sample)
    json_missing = chunk_to_json(sample).replace(b'"seq"', b'"sequence"')
    return [(sample.device_id.encode(), b"\x00\x01 not a chunk", "bad_magic"),
            (b"bed-impostor", good, "key_mismatch"),
            (sample.device_id.encode(), good[:30], "truncated"),
            (sample.device_id.encode(), b'{"v": 1, "device_id": ', "bad_json"),
            (sample.device_id.encode(), json_missing, "missing_field")]


def shorten(rec: Record, seconds: float) -> Record:
    n = round(seconds * rec.fs_hz)
    return Record(rec.name, rec.fs_hz, rec.leads, rec.gain, rec.baseline, rec.adc[:, :n])


def mitdb_devices(data_dir: Path, prefix: str, names: tuple[str, ...], seconds: float,
                  start_us: int, sampto: int) -> tuple[dict[str, Record], dict[str, list]]:
    """MIT-BIH records shortened to ``seconds`` as devices ``{prefix}-{name}``, and their chunks."""
    from cardiostream.records import load_record
    from streamer.simulator import iter_chunks

    records = {f"{prefix}-{n}": shorten(load_record(data_dir / "mitdb", n, sampto=sampto), seconds)
               for n in names}
    return records, {d: list(iter_chunks(r, d, start_us)) for d, r in records.items()}


def check_rhythms(offline: dict, online: dict[str, set[int]], before_end_us: int) -> None:
    """Rhythm windows keep the segment's 2 s grid across the event: same start times."""
    for device, rhythms in offline.items():
        want = {w.start_time_us for w in rhythms if w.end_time_us <= before_end_us}
        got = {t for t in online[device] if t + 10 * US <= before_end_us}
        print(f"{device}: {len(want)} offline rhythm windows, lost {len(want - got)}, "
              f"extra {len(got - want)}")
        assert got == want, f"{device}: lost {sorted(want - got)} extra {sorted(got - want)}"


def check_resumed(offline: dict, online: dict, start_us: int, event_s: float) -> None:
    """Online beats equal offline outside +-20 s of the event, <= 1 lost/invented inside."""
    band = (start_us + round((event_s - 20) * US), start_us + round((event_s + 20) * US))
    for device, beats in offline.items():
        want = {w.r_time_us for w in beats}
        got = set(online[device])
        outside = {t for t in want | got if not band[0] <= t <= band[1]}
        assert want & outside == got & outside, f"{device}: beats differ outside the band"
        print(f"{device}: {len(want)} offline beats, lost {len(want - got)}, "
              f"extra {len(got - want)} (outside the band around the event: none)")
        assert len(want - got) <= 1, f"{device}: lost {sorted(want - got)}"
        assert len(got - want) <= 1, f"{device}: invented {sorted(got - want)}"
        assert max(got) >= start_us + round((event_s + 30) * US)   # resumed


def read_until_offline_beats(settings: Settings, records: dict[str, Record], start_us: int):
    """The offline twin of each device's record, and the windows topic read until every
    device's last offline beat has arrived online: (twins, window records)."""
    from cardiostream.processing import process_record
    from cardiostream.signal import DEFAULT_SPEC

    twins = {d: process_record(r, DEFAULT_SPEC, 0.5, d, start_us, flush=True)
             for d, r in records.items()}
    last_r = {d: max(w.r_time_us for w in t.beats) for d, t in twins.items()}

    def done(recs) -> bool:
        got = beats_by_device(recs)
        return all(got[d] and max(got[d]) >= last_r[d] for d in records)

    return twins, read_all(settings, settings.topics.windows, done, 300)
