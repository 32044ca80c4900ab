"""Per-partition device registry: decode -> sequence -> DSP step -> encoded windows.

Everything the Faust agent does per record, minus Faust, so it runs the same
in the agent, in the restart warm-up (``emit=False``), in unit tests and in the
benchmark. One ``Pipeline`` per worker process holds ``device_id -> Device``
for every device on the partitions assigned to it (Kafka key = device id, so a
device is always on exactly one worker).

Chunk bundles (``cardiostream.schemas.encode_bundle``): a record from a gateway may
hold many devices' chunks. Each member is handled exactly like a record of its own
(decoded, checked, sequenced, dead-lettered alone with its raw bytes); instead of the
key check, its device must hash to the record's partition (``wrong_partition``
otherwise), so a device's state still lives on exactly one worker.

Segments: a ``segment`` is the device time (µs) of the first sample fed to a
fresh DSP state. It increases at every reset (gap, config change, device
restart, worker restart) and never repeats for a device, even across worker
restarts, so ``(device_id, segment, beat_index)`` stays unique downstream.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cardiostream import metrics
from cardiostream.kafka_config import partition_for
from cardiostream.schemas import (
    SampleChunk,
    SchemaError,
    Window,
    decode_chunk,
    encode_window,
    is_bundle,
    split_bundle,
)
from cardiostream.signal import SignalSpec
from streamer import sequencing
from streamer.deadletter import DeadLetters, decode_record

log = logging.getLogger(__name__)
COMPONENT = "processor"
GAP_REASONS = (sequencing.SEQ_GAP, sequencing.TIME_GAP, sequencing.FLUSH)
RESTART_REASONS = (sequencing.CONFIG_CHANGE, sequencing.SEQ_RESTART)

Record = tuple[bytes | None, bytes]          # (key, value) ready to produce
DspStep = Callable[[Any, Any, int], tuple[Any, list[Window], list[Window]]]


@dataclass(frozen=True, slots=True)
class Dsp:
    """The DSP entry points (``cardiostream.processing`` by default; stubs in tests)."""

    new_state: Callable[..., Any]    # (spec, device_id, unit, fs_in_hz, leads, t0_us, segment=)
    step: DspStep                    # (state, samples_mv (L, n), t0_us) -> (state, beats, rhythms)
    flush: Callable[[Any], tuple[Any, list[Window]]] | None = None   # end of segment
    # device time of the oldest sample a window not yet emitted needs (None: nothing)
    needed_from: Callable[[Any], int | None] | None = None

    @classmethod
    def default(cls) -> Dsp:
        from cardiostream import processing

        return cls(processing.new_device_state, processing.process_chunk,
                   processing.flush_device, processing.needed_from_us)


@dataclass(slots=True)
class Device:
    seq: sequencing.SeqState | None = None
    dsp: Any = None
    segment: int = 0
    partition: int = -1
    last_wall_s: float = 0.0


@dataclass(slots=True)
class Output:
    windows: list[Record] = field(default_factory=list)
    dead: list[Record] = field(default_factory=list)
    segments: list[tuple[bytes, bytes, int]] = field(default_factory=list)  # key, value, part.
    holds: list[tuple[str, int]] = field(default_factory=list)   # (device, chunk end µs)


class Pipeline:
    """All devices of one worker. Not thread-safe: one agent coroutine drives it."""

    def __init__(self, spec: SignalSpec, seq_cfg: sequencing.SequencerConfig,
                 dead: DeadLetters, dsp: Dsp | None = None,
                 n_partitions: int | None = None) -> None:
        self.spec = spec
        # Partition count of the samples topic, to check where bundle members belong;
        # None (in-process use): members are not checked.
        self.n_partitions = n_partitions
        self.seq_cfg = seq_cfg
        self.dead = dead
        self.dsp = dsp or Dsp.default()
        self.devices: dict[str, Device] = {}
        self.stats: Counter[str] = Counter()
        # Segment starts (device µs): hints a warm-up leaves for a device's fresh state, and
        # new starts not yet written to the worker's segments table, device -> (partition, S).
        self.segment_hints: dict[str, int] = {}
        self.new_segments: dict[str, tuple[int, int]] = {}
        self._m_chunks = metrics.CHUNKS.labels(COMPONENT)
        self._m_samples = metrics.SAMPLES.labels(COMPONENT)
        self._m_windows = {k: metrics.WINDOWS.labels(k) for k in ("beat", "rhythm")}
        # Device time of a window's newest sample -> now: the processor's share of latency.
        self._m_latency = metrics.E2E_LATENCY.labels(COMPONENT)

    # ------------------------------------------------------------------ records
    def handle(self, key: bytes | None, value: bytes | None, topic: str, partition: int,
               offset: int, now_us: int | None = None, emit: bool = True) -> Output:
        """One samples-topic record (a chunk or a bundle of chunks). ``emit=False``
        (warm-up) only advances device state."""
        out = Output()
        if not is_bundle(value):
            self._handle_chunk(key, value, None, topic, partition, offset, now_us, emit, out)
            return out
        try:
            members = split_bundle(value)
        except SchemaError as err:
            if emit:
                out.dead.append(self.dead.refuse(err, key, value, topic, partition, offset))
            return out
        for index, member in enumerate(members):
            self._handle_chunk(key, member, (index, len(members)), topic, partition, offset,
                               now_us, emit, out)
        return out

    def resumable(self, device_id: str, end_us: int, lookback_us: int) -> bool:
        """Would a successor resuming right after this device's chunk ending at ``end_us``,
        re-reading ``lookback_us`` of signal before it, still produce every window of the
        device not yet emitted? No while a chunk before that end waits in the sequencer
        (it must be processed with emission on) or a pending window starts earlier than
        the re-read (``Dsp.needed_from``)."""
        dev = self.devices.get(device_id)
        if dev is None:
            return True                  # expired or restarted: nothing pending for it
        if dev.seq is not None and any(c.t0_us < end_us for c in dev.seq.held.values()):
            return False
        if dev.dsp is None or self.dsp.needed_from is None:
            return True
        needed = self.dsp.needed_from(dev.dsp)
        return needed is None or end_us - lookback_us <= needed

    def owns(self, device_id: str, partition: int) -> bool:
        """Whether ``device_id``'s records belong on ``partition`` (always, unchecked)."""
        return self.n_partitions is None or \
            partition_for(device_id.encode(), self.n_partitions) == partition

    def _decode(self, key: bytes | None, value: bytes | None, member: tuple[int, int] | None,
                partition: int, now_us: int | None) -> SampleChunk:
        if member is None:
            return decode_record(key, value, now_us)
        index, count = member
        try:
            chunk = decode_chunk(value, now_us)
        except SchemaError as err:
            raise SchemaError(err.reason, f"bundle member {index + 1}/{count}: {err.detail}") \
                from None
        if not self.owns(chunk.device_id, partition):
            raise SchemaError("wrong_partition", f"bundle member {index + 1}/{count}: device "
                              f"{chunk.device_id!r} belongs on partition "
                              f"{partition_for(chunk.device_id.encode(), self.n_partitions or 1)}"
                              f" of {self.n_partitions}, "
                              f"not {partition}")
        return chunk

    def _handle_chunk(self, key: bytes | None, value: bytes | None,
                      member: tuple[int, int] | None, topic: str, partition: int, offset: int,
                      now_us: int | None, emit: bool, out: Output) -> None:
        try:
            chunk = self._decode(key, value, member, partition, now_us)
        except SchemaError as err:
            if emit:
                out.dead.append(self.dead.refuse(err, key, value, topic, partition, offset))
            return
        dev = self.devices.get(chunk.device_id)
        if dev is None:
            dev = self.devices[chunk.device_id] = Device(partition=partition)
        dev.last_wall_s = time.monotonic()
        dev.seq, seq_out = sequencing.step(dev.seq, chunk, self.seq_cfg)
        out.holds.append((chunk.device_id, chunk.end_us))
        where = f"{topic}[{partition}]@{offset}" + (f"#{member[0]}" if member else "")
        failure = self._safe_feed(chunk.device_id, dev, seq_out, out, emit, where)
        if failure is not None and emit:
            err = SchemaError("dsp_error", f"{type(failure).__name__}: {failure}")
            out.dead.append(self.dead.refuse(err, key, value, topic, partition, offset))

    def flush_idle(self, idle_s: float) -> Output:
        """Release chunks held behind a hole of devices silent for ``idle_s`` wall seconds."""
        out = Output()
        now = time.monotonic()
        for device_id, dev in list(self.devices.items()):
            if dev.seq is not None and dev.seq.held and now - dev.last_wall_s >= idle_s:
                dev.seq, seq_out = sequencing.flush(dev.seq, self.seq_cfg)
                self._safe_feed(device_id, dev, seq_out, out, True, "idle flush")
        return out

    def expire_idle(self, idle_s: float) -> Output:
        """Close and forget devices silent for ``idle_s`` wall seconds (pending beats emitted).

        Bounds memory when devices leave; a device that comes back starts a new segment.
        """
        out = Output()
        now = time.monotonic()
        for device_id in [d for d, dev in self.devices.items() if now - dev.last_wall_s >= idle_s]:
            dev = self.devices[device_id]
            dev.seq, seq_out = sequencing.flush(dev.seq, self.seq_cfg)
            if self._safe_feed(device_id, dev, seq_out, out, True, "expiry") is None:
                self._close(device_id, dev, out)
            self.devices.pop(device_id, None)
            self.stats["devices_expired"] += 1
        return out

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget devices of partitions this worker no longer owns (or must warm up again)."""
        gone = [d for d, dev in self.devices.items() if dev.partition in partitions]
        for device_id in gone:
            del self.devices[device_id]
            self.new_segments.pop(device_id, None)
            self.segment_hints.pop(device_id, None)
        return len(gone)

    # ------------------------------------------------------------------ internals
    def _safe_feed(self, device_id: str, dev: Device, seq_out: sequencing.SeqOutput,
                   out: Output, emit: bool, where: str) -> Exception | None:
        """``_feed`` behind an isolation boundary: a DSP failure restarts only this device."""
        try:
            self._feed(dev, seq_out, out, emit)
        except Exception as exc:  # noqa: BLE001 - one device must not stop the ward
            log.exception("DSP failed at %s, device %s: restarting the device", where,
                          device_id)
            self.devices.pop(device_id, None)
            self.stats["dsp_error"] += 1
            return exc
        return None

    def _close(self, device_id: str, dev: Device, out: Output) -> None:
        if dev.dsp is None or self.dsp.flush is None:
            return
        try:
            _, flushed = self.dsp.flush(dev.dsp)
        except Exception:  # noqa: BLE001 - same boundary as _safe_feed
            log.exception("DSP flush failed for device %s", device_id)
            self.stats["dsp_error"] += 1
            return
        self._emit(dev, flushed, "beat", out)

    def _feed(self, dev: Device, seq_out: sequencing.SeqOutput, out: Output, emit: bool) -> None:
        if emit:
            self._count(seq_out)
        for chunk, reason in seq_out.released:
            if reason is not None or dev.dsp is None:
                flushed = self._reset(dev, chunk)
                if emit:
                    self._emit(dev, flushed, "beat", out)
            dev.dsp, beats, rhythms = self.dsp.step(dev.dsp, chunk.millivolts(), chunk.t0_us)
            if emit:
                self.stats["chunks"] += 1
                self._m_chunks.inc()
                self._m_samples.inc(chunk.n_samples)
                self._emit(dev, rhythms, "rhythm", out)     # before the beats: beat_context
                self._emit(dev, beats, "beat", out)

    def _reset(self, dev: Device, chunk: SampleChunk) -> list[Window]:
        """End the device's segment (its pending beats are returned) and start a new one.

        A fresh device with a hint (left by the warm-up, which started it on the old
        segment's rhythm grid) continues that segment's id instead of starting its own.
        """
        flushed: list[Window] = []
        if dev.dsp is not None and self.dsp.flush is not None:
            _, flushed = self.dsp.flush(dev.dsp)
        hint = self.segment_hints.pop(chunk.device_id, None)
        dev.segment = hint if hint is not None and dev.dsp is None else chunk.t0_us
        if not self.spec.models_lead_known(chunk.leads):
            metrics.UNKNOWN_LEADS.inc()
            if getattr(dev.dsp, "leads", None) != chunk.leads:
                log.warning("device %s sends leads %s, none of %s: the models read %s, "
                            "a lead they were not trained on", chunk.device_id,
                            list(chunk.leads), list(self.spec.first_leads), chunk.leads[0])
        dev.dsp = self.dsp.new_state(self.spec, chunk.device_id, chunk.unit, chunk.fs_hz,
                                     chunk.leads, chunk.t0_us, segment=dev.segment)
        self.new_segments[chunk.device_id] = (dev.partition, dev.segment)
        return flushed

    def pop_new_segments(self, partition: int) -> list[tuple[str, int]]:
        """Segment starts of ``partition``'s devices not yet recorded (device, start µs)."""
        mine = [(d, seg) for d, (p, seg) in self.new_segments.items() if p == partition]
        for device_id, _ in mine:
            del self.new_segments[device_id]
        return mine

    def _emit(self, dev: Device, windows: list[Window], kind: str, out: Output) -> None:
        if not windows:
            return
        now_s = time.time()
        for win in windows:
            out.windows.append((win.device_id.encode(), encode_window(win)))
            self._m_latency.observe(max(0.0, now_s - win.last_sample_time_us / 1e6))
        self.stats[f"windows_{kind}"] += len(windows)
        self._m_windows[kind].inc(len(windows))

    def _count(self, seq_out: sequencing.SeqOutput) -> None:
        for _, reason in seq_out.dropped:
            self.stats[reason] += 1
            if reason == sequencing.DUPLICATE:
                metrics.DUPLICATES.inc()
        for reason in seq_out.resets:
            self.stats[f"reset_{reason}"] += 1
            if reason in GAP_REASONS:
                self.stats["gaps"] += 1
                metrics.GAPS.inc()
        if seq_out.reordered:
            self.stats["reordered"] += seq_out.reordered
            metrics.REORDERED.inc(seq_out.reordered)
        self.stats["missing_chunks"] += seq_out.missing
