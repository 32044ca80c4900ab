"""The simulator without Kafka: exact chunking and timestamps, looping, resampling, pacing."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cardiostream.kafka_config import partition_for
from cardiostream.records import Record
from cardiostream.schemas import decode_chunk, encode_chunk, split_bundle
from cardiostream.settings import Settings
from streamer.simulator import (
    Simulator,
    assign_devices,
    chunk_samples,
    device_ids,
    iter_chunks,
    resample_record,
)

FS = 360.0
START_US = 1_764_000_000_000_000


def ramp(n: int = 1000, leads: int = 2) -> Record:
    adc = np.arange(leads * n, dtype=np.int16).reshape(leads, n)
    return Record("ramp", FS, ("MLII", "V5")[:leads], (200.0,) * leads, (0,) * leads, adc)


def test_once_covers_the_record_exactly_with_recoverable_sample_indices() -> None:
    rec = ramp(1000)  # 5 full chunks of 180 and a last one of 100
    chunks = list(iter_chunks(rec, "bed-01", START_US, 0.5))
    assert [c.n_samples for c in chunks] == [180] * 5 + [100]
    assert [c.seq for c in chunks] == list(range(6))
    np.testing.assert_array_equal(np.concatenate([c.adc for c in chunks], axis=1), rec.adc)
    for k, c in enumerate(chunks):
        assert c.t0_us == START_US + round(k * 180 * 1e6 / FS)
        assert round((c.t0_us - START_US) * FS / 1e6) == k * 180
        assert c.device_id == "bed-01" and c.unit == "ward-1"
        assert decode_chunk(encode_chunk(c)).t0_us == c.t0_us


def test_loop_continues_timestamps_and_seq_and_wraps_the_signal() -> None:
    rec = ramp(1000)
    gen = iter_chunks(rec, "bed-01", START_US, 0.5, loop=True)
    chunks = [next(gen) for _ in range(20)]   # 3600 samples: 3.6 passes over the record
    assert [c.seq for c in chunks] == list(range(20))
    assert all(c.n_samples == 180 for c in chunks)
    got = np.concatenate([c.adc for c in chunks], axis=1)
    np.testing.assert_array_equal(got, np.take(rec.adc, np.arange(3600), axis=1, mode="wrap"))
    assert chunks[-1].t0_us == START_US + round(19 * 180 * 1e6 / FS)


def test_resampling_keeps_frequency_and_amplitude() -> None:
    t = np.arange(3600) / FS
    adc = (1024 + 400 * np.sin(2 * np.pi * 5.0 * t))[None, :].astype(np.int16)
    rec = Record("sine", FS, ("MLII",), (200.0,), (1024,), adc)
    for fs in (250.0, 300.0, 500.0):
        out = resample_record(rec, fs)
        assert out.fs_hz == fs and out.adc.shape == (1, round(3600 * fs / FS))
        mv = out.millivolts()[0, 100:-100]            # skip the FIR edges
        spectrum = np.abs(np.fft.rfft(mv - mv.mean()))
        assert np.fft.rfftfreq(mv.size, 1 / fs)[spectrum.argmax()] == pytest.approx(5.0, abs=0.2)
        assert mv.max() == pytest.approx(2.0, abs=0.05)   # 400 counts / 200 per mV
        chunks = list(iter_chunks(out, "bed-01", START_US, 0.5))
        assert chunks[0].n_samples == round(0.5 * fs) and chunks[0].fs_hz == fs
    with pytest.raises(ValueError, match="no device may send"):
        resample_record(rec, 359.9)


def test_chunk_size_must_fit_the_contract() -> None:
    assert chunk_samples(0.5, 360.0) == 180
    for bad in (0.0001, 60.0):
        with pytest.raises(ValueError, match="samples"):
            chunk_samples(bad, 360.0)


def test_device_ids_are_pseudonymous_and_records_are_reused_cyclically() -> None:
    assert device_ids(3) == ["bed-01", "bed-02", "bed-03"]
    assert device_ids(1000)[0] == "bed-0001"
    specs = assign_devices(["100", "101"], 5)
    assert [s.record for s in specs] == ["100", "101", "100", "101", "100"]
    assert all("100" not in s.device_id and "101" not in s.device_id for s in specs)


class FakeFuture:
    def add_errback(self, fn, *args) -> None:  # noqa: ANN001
        self.errback = (fn, args)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[float, str, bytes, bytes]] = []
        self.futures: list[FakeFuture] = []
        self.partitions: list[int | None] = []
        self.flushed = self.closed = False

    def send(self, topic: str, value: bytes, key: bytes, partition: int | None = None
             ) -> FakeFuture:
        self.sent.append((time.monotonic(), topic, key, value))
        self.partitions.append(partition)
        self.futures.append(FakeFuture())
        return self.futures[-1]

    def flush(self) -> None:
        self.flushed = True

    def close(self) -> None:
        self.closed = True


def make_sim(speed: float, n_dev: int = 3, **kw) -> tuple[Simulator, FakeProducer]:
    producer = FakeProducer()
    sim = Simulator(Settings(), assign_devices(["100", "101", "103"], n_dev), speed=speed,
                    record_s=5.0, topic="t", producer_factory=lambda: producer, **kw)
    return sim, producer


def test_max_speed_sends_every_chunk_round_robin_and_flushes() -> None:
    sim, producer = make_sim(math.inf)
    stats = sim.run()
    assert stats.chunks_sent == len(producer.sent) == 3 * 10 and stats.samples_sent == 3 * 1800
    assert producer.flushed and producer.closed
    keys = [key for _, _, key, _ in producer.sent]
    assert keys[:6] == [b"bed-01", b"bed-02", b"bed-03"] * 2      # interleaved, not per device
    for _, topic, key, value in producer.sent:
        assert topic == "t" and decode_chunk(value).device_id.encode() == key


def test_paced_speed_follows_device_time() -> None:
    sim, producer = make_sim(10.0, n_dev=1)     # 5 s of signal at 10x: ~0.5 s of wall time
    t0 = time.monotonic()
    stats = sim.run()
    wall = time.monotonic() - t0
    assert 0.45 < wall < 1.5 and stats.max_late_s < 0.2
    first = producer.sent[0][0]
    for k, (t, *_rest) in enumerate(producer.sent):   # chunk k is due after (k + 1) * 0.05 s
        assert t - first == pytest.approx(k * 0.05, abs=0.03)


def test_stop_event_and_duration_end_a_looping_run_and_still_flush() -> None:
    sim, producer = make_sim(1.0, loop=True)
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    t0 = time.monotonic()
    sim.run(stop)
    assert time.monotonic() - t0 < 1.5 and producer.flushed and len(producer.sent) <= 6
    sim, producer = make_sim(1.0, loop=True, duration_s=0.6)
    sim.run()
    assert producer.flushed and 1 <= len(producer.sent) <= 3


def test_send_errors_are_counted() -> None:
    sim, producer = make_sim(math.inf, n_dev=1)
    sim.run()
    fn, args = producer.futures[3].errback
    fn(RuntimeError("broker gone"), *args)      # what kafka-python does on a failed send
    assert sim.stats.send_errors == 1 and args == ("bed-01", 3)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="speed"):
        make_sim(0.0)
    with pytest.raises(ValueError, match="unique"):
        Simulator(Settings(), assign_devices(["100"], 1) * 2)


def test_cli_rejects_bad_arguments_with_a_clear_message():
    done = subprocess.run([sys.executable, "-m", "cardiostream.cli", "simulate", "100",
                           "--speed", "fast"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "positive number or 'max'" in done.stderr


@pytest.mark.parametrize("speed", [math.inf, 20.0])
def test_a_gateway_sends_each_ticks_chunks_as_bundles_on_the_devices_partitions(speed) -> None:
    sim, producer = make_sim(speed, n_dev=12, gateway_bundle=4)
    stats = sim.run()
    n_parts = Settings().topics.partitions
    seen: dict[str, list[int]] = {}
    for (_, topic, key, value), part in zip(producer.sent, producer.partitions, strict=True):
        assert topic == "t" and key == b"gateway"
        members = split_bundle(value)
        assert 1 <= len(members) <= 4
        for member in members:
            c = decode_chunk(member)
            assert part == partition_for(c.device_id.encode(), n_parts)
            seen.setdefault(c.device_id, []).append(c.seq)
    assert stats.chunks_sent == 12 * 10 and len(producer.sent) < stats.chunks_sent
    assert all(seqs == list(range(10)) for seqs in seen.values()) and len(seen) == 12
