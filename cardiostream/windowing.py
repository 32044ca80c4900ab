"""Beat and rhythm windows cut from the filtered stream of one device segment.

Beat window: ``spec.beat_span`` filtered samples (all leads) starting
``spec.beat_pre`` before the R peak, plus RR features in seconds: previous,
next, local mean (last ``spec.local_rr_beats`` RR including the previous one)
and long mean (last ``spec.long_rr_beats``).  It is emitted once the NEXT beat
is detected and the post-R span has arrived.  ``rr_next_s == 0.0`` marks a beat
flushed at a segment end (its next beat is unknown).  It also carries the patient's
running template (``beat_template``: median of recent on-time, dominant-shape beats,
same shape as the samples), updated as beats are cut, in beat order.

Rhythm window ``w`` covers model samples ``[phase + w*hop, phase + w*hop + win)``
of the segment, where ``phase`` puts the first start on the device-time grid of
``rhythm_hop_s`` (rounded up to the decimation step), so every segment of a device
(a restart, a rebalance, a gap) cuts the same windows and the same window always
gets the same ``end_time_us``. It is decimated to ``spec.rhythm_fs_hz`` (every
k-th sample; the signal is already low-passed below the new Nyquist), emitted once
the detector has decided every candidate up to its end, and carries the R times
inside it and each lead's quality.

Times: sample k of a segment has device time ``t0_us + round(k * 1e6 / fs)``;
``last_sample_time_us`` is the time of the last model-rate sample the window
needed, plus the resampler's latency (the input it waited for).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice

import numpy as np

from cardiostream.beat_template import TemplateState, template_step
from cardiostream.history import ColumnHistory
from cardiostream.qrs import Beat
from cardiostream.quality import beat_quality, lead_quality
from cardiostream.schemas import BeatWindow, RhythmWindow
from cardiostream.signal import SignalSpec

_US = 1_000_000


@dataclass(frozen=True, slots=True)
class _Geometry:
    """A spec's window sizes in samples, computed once."""

    decim: int        # model samples per rhythm sample
    pre: int          # spec.beat_pre (the spec's properties round on every access)
    span: int         # spec.beat_span
    hop: int          # rhythm hop, model samples
    win: int          # rhythm window, model samples
    win_d: int        # rhythm window, decimated samples
    margin: int       # samples past a rhythm window's end before its beat list is final
    keep: int         # history kept for late (search-back) beats, model samples
    rkeep: int        # decimated history kept


@lru_cache(maxsize=32)
def _geometry(spec: SignalSpec, lookahead: int) -> _Geometry:
    decim = round(spec.fs_hz / spec.rhythm_fs_hz)
    win = round(spec.rhythm_window_s * spec.fs_hz)
    # an R peak lies at most ~0.15 s before the integrator peak the detector decides on
    margin = round(0.15 * spec.fs_hz) + lookahead
    keep = round(4.0 * spec.fs_hz) + spec.beat_span
    rkeep = win // decim + 2 * margin // decim + 4
    return _Geometry(decim, spec.beat_pre, spec.beat_span, round(spec.rhythm_hop_s * spec.fs_hz),
                     win, win // decim, margin, keep, rkeep)


@dataclass(slots=True)
class _Pending:
    beat: Beat
    index: int                   # device beat number
    rr_prev_s: float
    rr_local_s: float
    rr_long_s: float
    next_commit: int = -1        # committed sample of the next beat (-1: not yet)
    rr_next_s: float = -1.0
    samples: np.ndarray | None = None   # (n_leads, span) filtered, cut once the span arrived
    template: np.ndarray | None = None  # (n_leads, span) the patient's template (beat_template)
    quality: str = ""


@dataclass(slots=True)
class WindowState:
    spec: SignalSpec
    n_leads: int
    device_id: str
    unit: str
    segment: int
    t0_us: int                   # device time of the segment's first sample
    latency_us: int              # resampler latency added to last_sample_time_us
    lookahead: int               # detector look-ahead in samples (rhythm window readiness)
    spec_id: str = ""            # computed once: hashing the spec per window costs 30 us
    geo: _Geometry | None = None  # computed once: hashing the spec for the cache costs 1 us
    beat_counter: int = 0        # carried across segments
    window_counter: int = 0      # carried across segments
    n: int = 0                   # model-rate samples seen in this segment
    hist: np.ndarray | None = None   # (2 n_leads, h) float32 recent filtered; unfiltered rows
    rhist: np.ndarray | None = None  # (2 n_leads, m) the same decimated, rhythm window span
    store: ColumnHistory | None = None   # the buffers behind hist and rhist (views of them)
    rstore: ColumnHistory | None = None
    next_rhythm: int = 0             # index within segment of the next rhythm window
    rhythm_phase: int = 0            # model samples from segment start to the hop grid
    pending: list[_Pending] = field(default_factory=list)
    rr_hist: deque = field(default_factory=deque)     # RR seconds, newest last
    rr_sum: float = 0.0                               # sum of rr_hist (long-term mean)
    beat_times: deque = field(default_factory=deque)  # recent beats (rhythm window lists)
    templates: TemplateState = field(default_factory=TemplateState)   # beats cut in order
    last_r: int = -1
    leads: tuple[str, ...] = ()      # the rows' lead names, copied into every window

    @property
    def hist_start(self) -> int:
        return self.n - (0 if self.hist is None else self.hist.shape[1])


def new_window_state(spec: SignalSpec, n_leads: int, device_id: str, unit: str, segment: int,
                     t0_us: int, latency_us: int, lookahead: int,
                     leads: tuple[str, ...] = ()) -> WindowState:
    """``leads``: the rows' names (or () when unknown); windows carry them so that a
    consumer, and a technical alarm's message, can name the electrode."""
    decim = spec.fs_hz / spec.rhythm_fs_hz
    if abs(decim - round(decim)) > 1e-9 or decim < 1:
        raise ValueError(f"fs_hz/rhythm_fs_hz must be an integer, got {decim}")
    if leads and len(leads) != n_leads:
        raise ValueError(f"{len(leads)} lead names for {n_leads} leads")
    return WindowState(spec, n_leads, device_id, unit, segment, t0_us, latency_us, lookahead,
                       spec.spec_id, _geometry(spec, lookahead),
                       rr_hist=deque(maxlen=spec.long_rr_beats),
                       rhythm_phase=_rhythm_phase(spec, t0_us, round(decim)),
                       store=ColumnHistory(2 * n_leads, np.float32),
                       rstore=ColumnHistory(2 * n_leads, np.float32), leads=tuple(leads))


def _rhythm_phase(spec: SignalSpec, t0_us: int, decim: int) -> int:
    """First model sample (a multiple of ``decim``) at or after a multiple of rhythm_hop_s."""
    hop_us = round(spec.rhythm_hop_s * _US)
    grid_us = -(-t0_us // hop_us) * hop_us
    k = -(-(grid_us - t0_us) * round(spec.fs_hz * 1000) // (_US * 1000))
    return -(-k // decim) * decim


def _time_us(ws: WindowState, k: int) -> int:
    return ws.t0_us + round(k * _US / ws.spec.fs_hz)


def _append(ws: WindowState, filt: np.ndarray, raw: np.ndarray) -> None:
    """Add a chunk to the float32 histories (float64 → float32 rounds as a cast does)."""
    g, L, n = ws.geo, ws.n_leads, filt.shape[1]
    block = ws.store.extend(n, g.keep, max(2 * n, g.keep // 4))
    block[:L] = filt
    block[L:] = raw
    first = (-ws.n) % g.decim
    k = len(range(first, n, g.decim))
    ws.rstore.extend(k, g.rkeep, max(2 * k, g.rkeep // 4))[...] = block[:, first::g.decim]
    ws.hist, ws.rhist = ws.store.view(), ws.rstore.view()
    ws.n += n


def _span(ws: WindowState, buf: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """buf[:, lo:hi] in segment samples, edge-padded before the segment start / after its end."""
    h0 = ws.hist_start
    a, b = max(lo, h0), min(hi, ws.n)
    if a >= b:                                   # nothing of it is left (cannot happen
        return np.zeros((buf.shape[0], hi - lo), dtype=buf.dtype)   # for a detector beat)
    part = buf[:, a - h0:b - h0]
    return np.pad(part, ((0, 0), (a - lo, hi - b)), mode="edge") if (a > lo or b < hi) else part


def _add_beat(ws: WindowState, beat: Beat) -> None:
    fs = ws.spec.fs_hz
    if ws.pending and ws.pending[-1].next_commit < 0:
        prev = ws.pending[-1]
        prev.next_commit, prev.rr_next_s = beat.committed, (beat.r - prev.beat.r) / fs
    rr_prev = (beat.r - ws.last_r) / fs if ws.last_r >= 0 else 0.0
    if rr_prev > 0:
        if len(ws.rr_hist) == ws.rr_hist.maxlen:
            ws.rr_sum -= ws.rr_hist[0]
        ws.rr_hist.append(rr_prev)
        ws.rr_sum += rr_prev
    n_rr = len(ws.rr_hist)
    k = min(n_rr, ws.spec.local_rr_beats)
    local = sum(islice(reversed(ws.rr_hist), k)) / k if k else 0.0     # newest first
    long = ws.rr_sum / n_rr if n_rr else 0.0
    ws.pending.append(_Pending(beat, ws.beat_counter, rr_prev, local, long))
    ws.beat_counter += 1
    ws.last_r = beat.r
    ws.beat_times.append(beat)


def _cut(ws: WindowState, pb: _Pending) -> None:
    """Cut the beat's samples while they are in the history (its next beat may be far)."""
    lo = pb.beat.r - ws.geo.pre
    hi = lo + ws.geo.span
    both = _span(ws, ws.hist, lo, hi)
    filt, raw = both[:ws.n_leads], both[ws.n_leads:]
    # a copy: the history buffer is overwritten in place later
    pb.samples, pb.quality = np.array(filt, dtype=np.float32, order="C"), beat_quality(raw, filt)
    # beats are cut in beat order (_ready_beats), so the template sees only earlier beats
    pb.template = template_step(ws.templates, pb.samples, pb.rr_prev_s, pb.rr_long_s)


def _beat_window(ws: WindowState, pb: _Pending, flushed: bool) -> BeatWindow:
    if pb.samples is None:
        _cut(ws, pb)
    hi = pb.beat.r - ws.geo.pre + ws.geo.span
    last = max(hi - 1, pb.next_commit) if not flushed else min(max(hi - 1, 0), ws.n - 1)
    return BeatWindow(
        device_id=ws.device_id, unit=ws.unit, spec_id=ws.spec_id, segment=ws.segment,
        beat_index=pb.index, r_time_us=_time_us(ws, pb.beat.r),
        last_sample_time_us=_time_us(ws, last) + ws.latency_us,
        rr_prev_s=pb.rr_prev_s, rr_next_s=max(pb.rr_next_s, 0.0), rr_local_s=pb.rr_local_s,
        rr_long_s=pb.rr_long_s, quality=pb.quality, samples=pb.samples, template=pb.template,
        leads=ws.leads)


def _ready_beats(ws: WindowState, flush: bool) -> list[BeatWindow]:
    out: list[BeatWindow] = []
    post = ws.geo.span - ws.geo.pre
    for pb in ws.pending:
        if pb.samples is None and pb.beat.r + post <= ws.n:
            _cut(ws, pb)
    while ws.pending:
        pb = ws.pending[0]
        post_ready = pb.beat.r + post <= ws.n
        if not flush and (pb.next_commit < 0 or not post_ready):
            break
        out.append(_beat_window(ws, pb, flushed=pb.next_commit < 0 or not post_ready))
        ws.pending.pop(0)
    return out


def _ready_rhythms(ws: WindowState, decided: int) -> list[RhythmWindow]:
    g, L = ws.geo, ws.n_leads
    out: list[RhythmWindow] = []
    while (start := ws.rhythm_phase + ws.next_rhythm * g.hop) + g.win + g.margin <= \
            min(decided, ws.n):
        ready = start + g.win + g.margin       # every decision before this sample is made
        end_d = -((-(start + g.win)) // g.decim)         # decimated samples before the end
        stop = ws.rhist.shape[1] - (-((-ws.n) // g.decim) - end_d)
        both = ws.rhist[:, stop - g.win_d:stop]
        flags, sqi = lead_quality(both[L:], both[:L], ws.spec.rhythm_fs_hz)
        t0, fs, end, late = ws.t0_us, ws.spec.fs_hz, start + g.win, ready + ws.lookahead
        beats = tuple(t0 + round(b.r * _US / fs) for b in ws.beat_times   # _time_us, inline
                      if start <= b.r < end and b.committed < late)
        out.append(RhythmWindow(
            device_id=ws.device_id, unit=ws.unit, spec_id=ws.spec_id, segment=ws.segment,
            window_index=ws.window_counter, start_time_us=_time_us(ws, start),
            end_time_us=_time_us(ws, start + g.win),
            last_sample_time_us=_time_us(ws, ready - 1 + ws.lookahead) + ws.latency_us,
            fs_hz=ws.spec.rhythm_fs_hz, beat_times_us=beats, quality=flags, sqi=sqi,
            samples=np.array(both[:L], order="C"), leads=ws.leads))    # a copy, as in _cut
        ws.next_rhythm += 1
        ws.window_counter += 1
    while ws.beat_times and ws.beat_times[0].r < ws.rhythm_phase + ws.next_rhythm * g.hop:
        ws.beat_times.popleft()
    return out


def window_step(ws: WindowState, filt: np.ndarray, raw: np.ndarray, beats: list[Beat],
                decided: int) -> tuple[WindowState, list[BeatWindow], list[RhythmWindow]]:
    """Add one chunk (filtered and unfiltered, (n_leads, n) mV at the model rate) and the
    beats the detector committed for it; ``decided`` = first sample whose candidates are
    not all decided yet.  Returns the windows that became complete."""
    if filt.shape[1]:
        _append(ws, filt, raw)
    for beat in beats:
        _add_beat(ws, beat)
    return ws, _ready_beats(ws, flush=False), _ready_rhythms(ws, decided)


def window_flush(ws: WindowState) -> tuple[WindowState, list[BeatWindow]]:
    """Segment end: emit every pending beat (missing samples edge-padded, rr_next_s 0)."""
    if ws.hist is None:
        ws.pending.clear()
        return ws, []
    return ws, _ready_beats(ws, flush=True)


def pending_from_us(ws: WindowState) -> int:
    """Device time of the oldest sample a window not yet emitted still needs: the start of
    the next rhythm window, or of the earliest beat window still waiting for its next beat
    (``pending`` is in beat order)."""
    first = ws.rhythm_phase + ws.next_rhythm * ws.geo.hop
    if ws.pending:
        first = min(first, ws.pending[0].beat.r - ws.geo.pre)
    return _time_us(ws, first)
