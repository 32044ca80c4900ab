"""Simulated bedside monitors: each device replays one WFDB record into the samples topic.

One process drives many devices from a single scheduler loop (a heap of next-due
chunks, one sleep until the earliest; no thread per device), so 1,000 devices
at 1x cost a few percent of a core. Timestamps are exact: chunk ``k`` of a device
starts at sample ``i = k * chunk_n`` and carries
``t0_us = start_us + round(i * 1e6 / fs_hz)``, so a consumer recovers ``i``;
``seq`` grows by one per chunk, and both keep growing across loops.

Device ids are pseudonymous (``bed-07``); which record a device replays is
logged, never sent.

At ``speed=max`` device time runs ahead of the wall clock (one 30 min record
replays in seconds); consumers that check timestamps against ``now`` accept up
to ``schemas.MAX_FUTURE_S`` ahead, so ``--loop --speed max`` is for benchmarks.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from cardiostream.records import Record, load_record
from cardiostream.schemas import MAX_CHUNK_SAMPLES, SampleChunk, encode_chunk, supported_fs
from cardiostream.settings import Settings
from streamer import faults as F
from streamer.gateway import GatewayBundler

log = logging.getLogger(__name__)
_US = 1_000_000
NSTDB_FS_HZ = 360.0
GATEWAY_KEY = b"gateway"   # bundles go to an explicit partition; the key only names the sender
TICK_S = 0.010          # chunks due within one tick are sent together: <= 100 wake-ups/s


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One simulated device: a pseudonymous id, the record it replays, its sample rate."""

    device_id: str
    record: str
    fs_hz: float | None = None      # resample the record to this rate (None: keep)
    unit: str = "ward-1"


@dataclass(slots=True)
class SimulatorStats:
    """Live counters (the metrics hook: a Prometheus exporter may read or subclass this)."""

    devices: int = 0
    chunks_sent: int = 0
    samples_sent: int = 0
    bytes_sent: int = 0
    send_errors: int = 0
    max_late_s: float = 0.0       # worst lateness of a chunk against its 1x/Nx schedule
    wall_s: float = 0.0           # wall time from the first scheduled chunk to the end of flush
    cpu_s: float = 0.0            # process CPU time (all threads, incl. the producer's) in wall_s
    faults: F.FaultCounts = field(default_factory=F.FaultCounts)


def device_ids(n: int, prefix: str = "bed") -> list[str]:
    """``bed-01`` ... : zero-padded to at least two digits, same width for all."""
    width = max(2, len(str(n)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, n + 1)]


def assign_devices(records: list[str], n: int, *, fs_hz: float | None = None,
                   unit: str = "ward-1") -> list[DeviceSpec]:
    """``n`` devices over ``records``, cycling when there are more devices than records."""
    if not records or n < 1:
        raise ValueError("need at least one record and one device")
    return [DeviceSpec(dev, records[i % len(records)], fs_hz, unit)
            for i, dev in enumerate(device_ids(n))]


def chunk_samples(chunk_s: float, fs_hz: float) -> int:
    n = round(chunk_s * fs_hz)
    if not 1 <= n <= MAX_CHUNK_SAMPLES:
        raise ValueError(f"chunk_s={chunk_s} at {fs_hz} Hz gives {n} samples; "
                         f"need 1..{MAX_CHUNK_SAMPLES}")
    return n


def resample_record(record: Record, fs_hz: float) -> Record:
    """The record at ``fs_hz`` (polyphase FIR, scipy ``resample_poly``), still int16 counts."""
    from scipy.signal import resample_poly

    if not supported_fs(fs_hz):
        raise ValueError(f"fs_hz={fs_hz}: no device may send at that rate "
                         "(cardiostream.schemas.supported_fs)")
    if fs_hz == record.fs_hz:
        return record
    ratio = Fraction(fs_hz / record.fs_hz).limit_denominator(1000)
    base = np.asarray(record.baseline, dtype=np.float64)[:, None]
    y = resample_poly(record.adc - base, ratio.numerator, ratio.denominator, axis=1) + base
    info = np.iinfo(np.int16)
    adc = np.clip(np.rint(y), info.min, info.max).astype(np.int16)
    return replace(record, fs_hz=float(fs_hz), adc=adc)


def _window(adc: np.ndarray, i: int, n: int, loop: bool) -> np.ndarray:
    """Samples [i, i+n) of a record, wrapping around when looping. (n_leads, <=n) view."""
    total = adc.shape[1]
    a = i % total if loop else i
    if a + n <= total or not loop:
        return adc[:, a:a + n]
    return np.take(adc, np.arange(a, a + n), axis=1, mode="wrap")


def iter_scheduled(record: Record, device_id: str, start_us: int, chunk_s: float = 0.5,
                   faults: F.FaultConfig = F.NO_FAULTS, *, unit: str = "ward-1",
                   loop: bool = False, noise: F.NoiseSource | None = None,
                   fault_state: F.FaultState | None = None
                   ) -> Iterator[tuple[float, SampleChunk]]:
    """(send_after_s, chunk) pairs: chunks in send order, due once ``send_after_s`` of
    device time (seconds since ``start_us``) has passed - the end of the newest chunk."""
    if faults.noise_p > 0 and noise is None:
        raise ValueError("noise faults need a NoiseSource (see Simulator._prepare)")
    fs = record.fs_hz
    n = chunk_samples(chunk_s, fs)
    state = fault_state or F.new_state(faults, device_id)
    i, seq = 0, 0
    while loop or i < record.adc.shape[1]:
        adc = _window(record.adc, i, n, loop)
        chunk = SampleChunk(device_id, seq, start_us + round(i * _US / fs), fs, record.leads,
                            record.gain, record.baseline, adc, unit)
        if seq == 0:
            chunk.validate()     # id, unit, leads, gains are constant: check them once
        due_s = (i + adc.shape[1]) / fs
        i, seq = i + n, seq + 1
        if not faults.enabled:
            yield due_s, chunk
            continue
        if faults.signal_enabled:
            chunk = F.apply_signal_faults(chunk, faults, state, noise)
        for out in F.deliver(F.jitter(chunk, faults, state), faults, state):
            yield due_s, out
    for out in F.flush_held(state):
        yield (i / fs), out


def iter_chunks(record: Record, device_id: str, start_us: int, chunk_s: float = 0.5,
                faults: F.FaultConfig = F.NO_FAULTS, **kw) -> Iterator[SampleChunk]:
    """The chunks one device sends, in order, without Kafka (see ``iter_scheduled``)."""
    for _, chunk in iter_scheduled(record, device_id, start_us, chunk_s, faults, **kw):
        yield chunk


class RecordCache:
    """Loads each (record, fs, seconds) once; devices replaying it share the array."""

    def __init__(self, mitdb: Path, record_s: float | None = None) -> None:
        self.mitdb, self.record_s = Path(mitdb), record_s
        self._cache: dict[tuple[str, float | None], Record] = {}

    def get(self, name: str, fs_hz: float | None = None) -> Record:
        key = (name, fs_hz)
        if key not in self._cache:
            sampto = None
            if self.record_s is not None:
                import wfdb

                hdr = wfdb.rdheader(str(self.mitdb / name))
                sampto = min(hdr.sig_len, round(self.record_s * hdr.fs))
            rec = load_record(self.mitdb, name, sampto=sampto)
            self._cache[key] = rec if fs_hz is None else resample_record(rec, fs_hz)
        return self._cache[key]


def _resample_mv(x: np.ndarray, fs_from: float, fs_to: float) -> np.ndarray:
    """(leads, n) float signal from ``fs_from`` to ``fs_to`` (polyphase FIR)."""
    if fs_from == fs_to:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(fs_to / fs_from).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=1).astype(np.float32)


def load_noise(nstdb: Path, kind: str) -> np.ndarray:
    """NSTDB noise record ``ma`` or ``bw`` in mV, (2, 650000)."""
    rec = load_record(nstdb, kind)
    return rec.millivolts().astype(np.float32)


class Simulator:
    """Many devices, one producer, one scheduler loop. ``run`` returns the counts."""

    def __init__(self, settings: Settings, devices: list[DeviceSpec], *, speed: float = 1.0,
                 loop: bool = False, faults: F.FaultConfig = F.NO_FAULTS,
                 chunk_s: float = 0.5, topic: str | None = None,
                 duration_s: float | None = None, record_s: float | None = None,
                 compression: str = "auto", linger_ms: int = 50,
                 stats: SimulatorStats | None = None,
                 producer_factory: Callable[[], object] | None = None,
                 align_start_us: int | None = None, gateway_bundle: int = 0,
                 gateway_linger_s: float = 0.1) -> None:
        if not (speed > 0):
            raise ValueError(f"speed={speed}: use a positive factor or math.inf for max")
        if len({d.device_id for d in devices}) != len(devices):
            raise ValueError("device ids must be unique")
        self.settings, self.devices, self.speed, self.loop = settings, devices, speed, loop
        self.faults, self.chunk_s, self.duration_s = faults, chunk_s, duration_s
        self.topic = topic or settings.topics.samples
        self.records = RecordCache(settings.paths.mitdb, record_s)
        self.stats = stats or SimulatorStats()
        self._compression, self._linger_ms = compression, linger_ms
        self._producer_factory = producer_factory or self._kafka_producer
        self.start_us: dict[str, int] = {}   # device -> device time of its record's sample 0
        # Replay scoring puts each record's sample 0 on a multiple of this (the rhythm hop), so
        # the processor cuts the same rhythm windows as the offline twin started at 0.
        self.align_start_us = align_start_us
        # > 0: act as a gateway, one record per partition per linger of at most this many
        # chunks (streamer/gateway.py); 0: each device sends its own records, keyed by id.
        if gateway_bundle < 0:
            raise ValueError(f"gateway_bundle={gateway_bundle}: use 0 (off) or a bundle size")
        self.gateway_bundle, self.gateway_linger_s = gateway_bundle, gateway_linger_s

    def _kafka_producer(self) -> object:
        from kafka import KafkaProducer

        from cardiostream.kafka_config import producer_kwargs

        return KafkaProducer(**producer_kwargs(self.settings.kafka, compression=self._compression,
                                               linger_ms=self._linger_ms))

    def _prepare(self) -> list[tuple[DeviceSpec, Record, F.NoiseSource | None]]:
        """Load every record (and the noise record) before the clock starts."""
        noise = None
        if self.faults.noise_p > 0:
            noise = load_noise(self.settings.paths.nstdb, self.faults.noise_kind)
        scales: dict[tuple[str, float | None], F.NoiseSource] = {}
        out = []
        for dev in self.devices:
            rec = self.records.get(dev.record, dev.fs_hz)
            chunk_samples(self.chunk_s, rec.fs_hz)   # refuse a bad chunk_s before connecting
            log.info("device %s replays record %s at %g Hz", dev.device_id, dev.record, rec.fs_hz)
            key = (dev.record, dev.fs_hz)
            if noise is not None and key not in scales:
                dev_noise = _resample_mv(noise, NSTDB_FS_HZ, rec.fs_hz)
                scale = F.noise_scale(rec.millivolts(), dev_noise, self.faults.noise_snr_db)
                scales[key] = F.NoiseSource(dev_noise, scale)
            out.append((dev, rec, scales.get(key)))
        return out

    def _streams(self, prepared, wall0_us: int) -> list[Iterator[tuple[float, SampleChunk]]]:
        streams = []
        for k, (dev, rec, noise) in enumerate(prepared):
            phase_us = round(k * self.chunk_s * _US / len(prepared))  # spread the load
            state = F.new_state(self.faults, dev.device_id, self.stats.faults)
            if noise is not None:
                state.noise_pos = int(state.rng.integers(0, noise.noise_mv.shape[1]))
            start_us = wall0_us + phase_us
            if self.align_start_us:
                start_us = -(-start_us // self.align_start_us) * self.align_start_us
            self.start_us[dev.device_id] = start_us
            gen = iter_scheduled(rec, dev.device_id, start_us, self.chunk_s,
                                 self.faults, unit=dev.unit, loop=self.loop, noise=noise,
                                 fault_state=state)
            streams.append(_offset(gen, phase_us / _US))
        return streams

    def run(self, stop: threading.Event | None = None) -> SimulatorStats:
        """Replay until every device is done (``loop=False``), ``duration_s`` passes or
        ``stop`` is set; always flushes the producer before returning."""
        stop = stop or threading.Event()
        prepared = self._prepare()
        producer = self._producer_factory()
        streams = self._streams(prepared, round(time.time() * _US))
        self.stats.devices = len(streams)
        t0, cpu0 = time.monotonic(), time.process_time()
        try:
            self._loop(producer, streams, t0, stop)
        finally:
            producer.flush()
            self.stats.wall_s = time.monotonic() - t0
            self.stats.cpu_s = time.process_time() - cpu0
            producer.close()
        return self.stats

    def _loop(self, producer, streams, t0: float, stop: threading.Event) -> None:
        heap: list[tuple[float, int, SampleChunk]] = []
        for k, s in enumerate(streams):
            _push(heap, s, k)
        paced = math.isfinite(self.speed)
        end = t0 + self.duration_s if self.duration_s is not None else math.inf
        st, topic, errback = self.stats, self.topic, self._on_error
        gateway = self._gateway(producer)
        try:
            while heap and not stop.is_set():
                now = time.monotonic()
                if now >= end:
                    break
                due_s, k, chunk = heap[0]
                if paced:
                    wait = t0 + due_s / self.speed - now
                    if gateway is not None and gateway.due(now):
                        self._send_bundles(producer, gateway.drain())
                    if wait > TICK_S:
                        drain_at = gateway.due_at() if gateway is not None else None
                        nap = min(wait, end - now, math.inf if drain_at is None
                                  else max(0.0, drain_at - now))
                        stop.wait(nap)
                        continue
                    st.max_late_s = max(st.max_late_s, -wait)
                heapq.heappop(heap)
                payload = encode_chunk(chunk)
                if gateway is None:
                    fut = producer.send(topic, value=payload, key=chunk.device_id.encode())
                    fut.add_errback(errback, chunk.device_id, chunk.seq)
                else:
                    full = gateway.add(chunk.device_id, payload, now)
                    self._send_bundles(producer, [full] if full is not None else [])
                st.chunks_sent += 1
                st.samples_sent += chunk.n_samples
                st.bytes_sent += len(payload)
                _push(heap, streams[k], k)
        finally:
            if gateway is not None:
                self._send_bundles(producer, gateway.drain())

    def _gateway(self, producer) -> GatewayBundler | None:
        if not self.gateway_bundle:
            return None
        partitions = getattr(producer, "partitions_for", lambda topic: None)(self.topic)
        n = len(partitions) if partitions else self.settings.topics.partitions
        return GatewayBundler(self.gateway_bundle, n, self.gateway_linger_s)

    def _send_bundles(self, producer, bundles: list) -> None:
        for partition, value, members in bundles:
            fut = producer.send(self.topic, value=value, key=GATEWAY_KEY, partition=partition)
            fut.add_errback(self._on_bundle_error, partition, members)

    def _on_bundle_error(self, exc: BaseException, partition: int, members: int) -> None:
        self.stats.send_errors += members
        log.error("send failed: topic=%s gateway bundle of %d chunks to partition %d: %r",
                  self.topic, members, partition, exc)

    def _on_error(self, exc: BaseException, device_id: str, seq: int) -> None:
        self.stats.send_errors += 1
        log.error("send failed: topic=%s device=%s seq=%d: %r", self.topic, device_id, seq, exc)


def _offset(gen: Iterator[tuple[float, SampleChunk]], phase_s: float):
    for due_s, chunk in gen:
        yield due_s + phase_s, chunk


def _push(heap: list, stream: Iterator[tuple[float, SampleChunk]], k: int) -> None:
    item = next(stream, None)
    if item is not None:
        heapq.heappush(heap, (item[0], k, item[1]))
