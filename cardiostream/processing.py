"""One device's whole DSP chain: resample → filter → detect → windows.

``process_chunk`` is what the Faust agent calls per decoded chunk; the offline
twin ``process_record`` feeds a WFDB record through the very same function in
chunks, so training data, ``cardiostream annotate`` and the live stream agree
beat for beat (the detector and windows are chunk-invariant: any chunking gives
the same windows, tests/test_processing.py).

Time rule: sample k (model rate) of a segment has device time
``t0_us + round(k * 1e6 / spec.fs_hz)`` where ``t0_us`` is the ``t0_us`` of the
segment's first chunk; the later chunks' ``t0_us`` are not used (a gap or a
clock jump is the caller's business: call ``reset_device``).  For a record
replayed from ``start_us`` at its native 360 Hz, the record sample of a beat is
``round((r_time_us - start_us) * fs / 1e6)`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cardiostream.filters import FilterState, design_sos, filter_step, new_filter_state
from cardiostream.qrs import (
    DEFAULT_QRS,
    Beat,
    QRSParams,
    QRSState,
    new_qrs_state,
    plan_for,
    qrs_flush,
    qrs_step,
)
from cardiostream.records import Record
from cardiostream.resample import ResamplerState, latency_s, new_resampler, resample_step
from cardiostream.schemas import BeatWindow, RhythmWindow
from cardiostream.signal import SignalSpec
from cardiostream.windowing import (
    WindowState,
    new_window_state,
    pending_from_us,
    window_flush,
    window_step,
)

_US = 1_000_000
Windows = tuple[list[BeatWindow], list[RhythmWindow]]


@dataclass(slots=True)
class DeviceState:
    """Everything one device needs between chunks (about 115 kB for two leads: the
    history buffers carry spare columns so that a chunk is appended in place)."""

    spec: SignalSpec
    device_id: str
    unit: str
    fs_in_hz: float
    leads: tuple[str, ...]        # as the device lists them (a change restarts the device)
    segment: int
    t0_us: int | None             # device time of the segment's first sample (None: no chunk yet)
    resampler: ResamplerState
    filt: FilterState
    qrs: QRSState
    win: WindowState | None = None
    beat_counter: int = 0
    window_counter: int = 0
    samples_in: int = 0           # input samples consumed in this segment
    last_detections: list[Beat] = field(default_factory=list)  # detector output, last call
    qrs_params: QRSParams = field(default=DEFAULT_QRS)
    lead_order: tuple[int, ...] | None = None   # spec.lead_order(leads); None: as sent

    @property
    def n_leads(self) -> int:
        return len(self.leads)

    @property
    def model_leads(self) -> tuple[str, ...]:
        """The leads in the order of every window's rows (``SignalSpec.lead_order``)."""
        return self.leads if self.lead_order is None else \
            tuple(self.leads[i] for i in self.lead_order)


def new_device_state(spec: SignalSpec, device_id: str, unit: str, fs_in_hz: float,
                     leads: tuple[str, ...] | list[str], t0_us: int | None = None,
                     segment: int = 0, qrs_params: QRSParams = DEFAULT_QRS) -> DeviceState:
    """A fresh segment.  ``t0_us`` may be None: the first chunk's ``t0_us`` is used."""
    leads = tuple(leads)
    if not leads:
        raise ValueError("a device needs at least one lead")
    if not (np.isfinite(fs_in_hz) and fs_in_hz > 0):
        raise ValueError(f"fs_in_hz must be positive, got {fs_in_hz}")
    n = len(leads)
    order = spec.lead_order(leads)
    return DeviceState(spec=spec, device_id=device_id, unit=unit, fs_in_hz=float(fs_in_hz),
                       leads=leads, segment=segment, t0_us=t0_us,
                       lead_order=None if order == tuple(range(n)) else order,
                       resampler=new_resampler(fs_in_hz, spec.fs_hz, n),
                       filt=new_filter_state(design_sos(spec), n),
                       qrs=new_qrs_state(spec.fs_hz, n, qrs_params), qrs_params=qrs_params)


def _windows_state(state: DeviceState) -> WindowState:
    if state.win is None:
        latency_us = round(latency_s(state.resampler, state.fs_in_hz) * _US)
        lookahead = plan_for(state.qrs_params, state.spec.fs_hz).half
        state.win = new_window_state(state.spec, state.n_leads, state.device_id, state.unit,
                                     state.segment, int(state.t0_us or 0), latency_us, lookahead,
                                     state.model_leads)
        state.win.beat_counter, state.win.window_counter = state.beat_counter, state.window_counter
    return state.win


def _sync_counters(state: DeviceState) -> None:
    if state.win is not None:
        state.beat_counter, state.window_counter = state.win.beat_counter, state.win.window_counter


def process_chunk(state: DeviceState, samples_mv: np.ndarray, t0_us: int
                  ) -> tuple[DeviceState, list[BeatWindow], list[RhythmWindow]]:
    """Feed one chunk ``samples_mv`` (n_leads, n) float mV of device time ``t0_us``, its
    rows in the device's lead order (``state.leads``); windows hold them in
    ``state.model_leads`` order.

    Returns the windows that became complete.  An empty chunk is a no-op.
    Raises ValueError on a wrong shape or non-finite samples (validate at the edge).
    """
    x = np.asarray(samples_mv, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != state.n_leads:
        raise ValueError(f"chunk must be ({state.n_leads}, n) for leads {state.leads}, "
                         f"got {x.shape}")
    if x.shape[1] == 0:
        return state, [], []
    if not np.isfinite(x).all():
        raise ValueError("chunk holds NaN or infinite samples")
    if state.lead_order is not None:
        x = x[state.lead_order, :]
    if state.t0_us is None:
        state.t0_us = int(t0_us)
    win = _windows_state(state)
    state.samples_in += x.shape[1]
    state.resampler, raw = resample_step(state.resampler, x)
    state.filt, filt = filter_step(state.filt, raw)
    state.qrs, beats = qrs_step(state.qrs, filt)
    state.last_detections = beats
    state.win, beat_windows, rhythm_windows = window_step(win, filt, raw, beats,
                                                          state.qrs.scan_from)
    _sync_counters(state)
    return state, beat_windows, rhythm_windows


def flush_device(state: DeviceState) -> tuple[DeviceState, list[BeatWindow]]:
    """End of segment: decide the last candidates and emit every pending beat window
    (missing post-R samples edge-padded, ``rr_next_s`` 0.0).  Rhythm windows are not
    flushed (a partial rhythm window is not emitted).  The state must then be reset."""
    if state.win is None:
        return state, []
    state.qrs, beats = qrs_flush(state.qrs)
    state.last_detections = beats
    state.win, beat_windows, _ = window_step(state.win, np.empty((state.n_leads, 0)),
                                             np.empty((state.n_leads, 0)), beats, 0)
    state.win, rest = window_flush(state.win)
    _sync_counters(state)
    return state, beat_windows + rest


def reset_device(state: DeviceState, fs_in_hz: float | None = None,
                 leads: tuple[str, ...] | None = None, t0_us: int | None = None
                 ) -> tuple[DeviceState, list[BeatWindow]]:
    """Flush the current segment and start the next one (gap, rate or lead change).

    ``segment`` increments; beat and window numbers continue.  Returns the new state
    and the flushed beat windows of the old segment."""
    state, flushed = flush_device(state)
    new = new_device_state(state.spec, state.device_id, state.unit,
                           fs_in_hz if fs_in_hz is not None else state.fs_in_hz,
                           leads if leads is not None else state.leads, t0_us,
                           segment=state.segment + 1, qrs_params=state.qrs_params)
    new.beat_counter, new.window_counter = state.beat_counter, state.window_counter
    return new, flushed


@dataclass(frozen=True, slots=True)
class RecordWindows:
    beats: list[BeatWindow]
    rhythms: list[RhythmWindow]
    detections: list[Beat] = field(default_factory=list)  # detector beats (model samples)


def process_record(record: Record, spec: SignalSpec, chunk_s: float = 0.5,
                   device_id: str | None = None, start_us: int = 0, unit: str = "ward-1",
                   flush: bool = True, qrs_params: QRSParams = DEFAULT_QRS) -> RecordWindows:
    """Offline twin: feed ``record`` in ``chunk_s`` chunks exactly as the stream would.

    Chunk k starts at input sample ``k * round(chunk_s * fs)`` with device time
    ``start_us + round(sample * 1e6 / fs)``.  ``flush`` emits the beats pending at the
    record's end (what a stream does when the device stops and the segment is reset).
    """
    step = max(1, round(chunk_s * record.fs_hz))
    dev = device_id or f"rec-{record.name}"
    state = new_device_state(spec, dev, unit, record.fs_hz, record.leads, start_us,
                             qrs_params=qrs_params)
    x = record.millivolts()
    beats: list[BeatWindow] = []
    rhythms: list[RhythmWindow] = []
    detections: list[Beat] = []
    for i in range(0, x.shape[1], step):
        t0 = start_us + round(i * _US / record.fs_hz)
        state, b, r = process_chunk(state, x[:, i:i + step], t0)
        beats += b
        rhythms += r
        detections += state.last_detections
    if flush:
        state, b = flush_device(state)
        beats += b
        detections += state.last_detections
    return RecordWindows(beats, rhythms, detections)


def needed_from_us(state: DeviceState) -> int | None:
    """Device time of the oldest sample a window not yet emitted still needs
    (``windowing.pending_from_us``; None: no chunk yet). A worker that restarts must
    re-read the signal from there to emit them (streamer/ackgate.py holds the Kafka commit
    until that re-read fits the warm-up)."""
    return None if state.win is None else pending_from_us(state.win)
