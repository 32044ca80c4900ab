"""Online multi-lead QRS detector: ``QRSState`` + ``qrs_step``.

Design (Pan & Tompkins 1985; Hamilton & Tompkins 1986, "Quantitative
investigation of QRS detection rules"; OSEA's qrsdet2):

1. Feature, vectorised per chunk with carried filter state: each lead is
   band-passed (5-15 Hz), differentiated and squared; every lead's energy is
   divided by its own slow running mean (single-pole, ``env_tau_s``), so a
   clean, peaky lead dominates a noisy one automatically; the normalised
   energies are averaged over leads and integrated over ``mwi_s``.
2. Candidates: local maxima of the integrated feature that are the largest
   within +-``peak_half_s``.  Deciding one needs ``peak_half_s`` of signal
   after the integrator's peak: that is the detector's look-ahead (about
   250 ms after the R peak; docs/qrs.md gives the measured distribution).
3. Per candidate (Python, a few per beat): adaptive threshold
   ``noise + th * (qrs - noise)`` over the medians of the last 8 QRS and noise
   peaks, a 200 ms refractory period, T-wave rejection by slope within 360 ms,
   and search-back at ``searchback_rr`` x mean RR for the largest candidate
   above half the threshold.  Search-back beats are committed late (at most
   ``searchback_rr`` x ``rr_max_s``); their commit delay is reported too.
4. The R peak (fiducial) is the sample of largest weighted absolute deviation
   of the *filtered* leads within the QRS, so beat windows centre on it.

Every decision depends only on sample indices, never on chunk boundaries:
any chunking gives the same beats (tests/test_processing.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d


@dataclass(frozen=True, slots=True)
class QRSParams:
    """Detector parameters in physical units (converted to samples once, in ``_Plan``)."""

    band_hz: tuple[float, float] = (5.0, 15.0)
    mwi_s: float = 0.10            # moving-window integrator length
    env_tau_s: float = 2.0         # per-lead energy normalisation time constant
    env_prior: float = 1e-3        # normalisation seed, (mV/sample)^2: typical ECG energy
    env_floor: float = 2e-5        # keeps a flat lead from being amplified into noise
    min_energy: float = 2e-4       # un-normalised MWI below this is never a QRS (~0.1 mV QRS)
    peak_half_s: float = 0.20      # candidate = max within +- this; the look-ahead
    refractory_s: float = 0.20
    twave_s: float = 0.36          # a candidate this close to the last beat may be a T wave
    twave_slope_ratio: float = 0.5
    th: float = 0.3125             # threshold fraction between noise and QRS levels
    searchback_rr: float = 1.5
    searchback_th: float = 0.5
    learn_s: float = 2.0           # threshold initialisation span at segment start
    rr_max_s: float = 2.0          # RR values above this do not enter the mean RR
    n_avg: int = 8

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise ValueError(f"band_hz must be 0 < lo < hi, got {self.band_hz}")
        if min(self.mwi_s, self.peak_half_s, self.refractory_s, self.learn_s) <= 0:
            raise ValueError("durations must be positive seconds")


DEFAULT_QRS = QRSParams()


@dataclass(frozen=True, slots=True)
class _Plan:
    """Parameters in samples at one rate, plus the shared filter coefficients."""

    bp_sos: np.ndarray
    env_b: np.ndarray
    env_a: np.ndarray
    mwi_b: np.ndarray
    mwi: int
    half: int
    refractory: int
    twave: int
    learn: int
    rr_max: int
    hist: int


@lru_cache(maxsize=16)
def plan_for(params: QRSParams, fs_hz: float) -> _Plan:
    bp = sps.butter(2, params.band_hz, "bandpass", fs=fs_hz, output="sos")
    alpha = 1.0 - np.exp(-1.0 / (params.env_tau_s * fs_hz))
    mwi = max(1, round(params.mwi_s * fs_hz))
    rr_max = round(params.rr_max_s * fs_hz)
    half = round(params.peak_half_s * fs_hz)
    hist = round(params.searchback_rr * rr_max) + half + 2 * mwi + 8
    return _Plan(bp, np.array([alpha]), np.array([1.0, alpha - 1.0]), np.full(mwi, 1.0 / mwi),
                 mwi, half, round(params.refractory_s * fs_hz), round(params.twave_s * fs_hz),
                 round(params.learn_s * fs_hz), rr_max, hist)


@dataclass(frozen=True, slots=True)
class Beat:
    """One detected beat (sample indices within the segment, at the model rate)."""

    r: int            # R-peak (fiducial) sample
    peak: int         # integrator peak sample (what the thresholds saw)
    committed: int    # last sample the decision needed (r .. committed = detection delay)
    height: float
    searchback: bool


@dataclass(slots=True)
class QRSState:
    fs_hz: float
    n_leads: int
    params: QRSParams = DEFAULT_QRS
    n: int = 0                         # samples seen in this segment
    bp_zi: np.ndarray | None = None
    env_zi: np.ndarray | None = None
    mwi_zi: np.ndarray | None = None
    raw_zi: np.ndarray | None = None
    prev_bp: np.ndarray | None = None
    hist_x: np.ndarray | None = None   # (n_leads, h) filtered input, last h samples
    hist_f: np.ndarray | None = None   # (h,) normalised integrated feature
    hist_ce: np.ndarray | None = None  # (h,) normalised energy (slope measure)
    hist_g: np.ndarray | None = None   # (n_leads, h) per-lead 1/sqrt(env): fiducial weights
    scan_from: int = 0                 # first undecided candidate sample
    learned: bool = False
    qrs_peaks: list[float] = field(default_factory=list)
    noise_peaks: list[float] = field(default_factory=list)
    rr: list[int] = field(default_factory=list)
    last_peak: int = -1                # integrator peak of the last beat (-1: none yet)
    last_r: int = -1
    last_slope: float = 0.0
    sb_best: tuple[int, float, float] | None = None   # (peak, height, slope) search-back pick
    sb_done: bool = False

    @property
    def hist_start(self) -> int:
        return self.n - (0 if self.hist_f is None else self.hist_f.shape[0])


def new_qrs_state(fs_hz: float, n_leads: int, params: QRSParams = DEFAULT_QRS) -> QRSState:
    if n_leads < 1:
        raise ValueError(f"n_leads must be >= 1, got {n_leads}")
    return QRSState(fs_hz=float(fs_hz), n_leads=n_leads, params=params)


def _features(st: QRSState, p: _Plan, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """(n_leads, n) filtered mV → normalised energy ce (n,), feature f (n,), weights."""
    if st.bp_zi is None:
        st.bp_zi = np.zeros((p.bp_sos.shape[0], st.n_leads, 2))
        st.prev_bp = np.zeros((st.n_leads, 1))
        st.env_zi = np.full((st.n_leads, 1), (1.0 - p.env_b[0]) * st.params.env_prior)
        st.mwi_zi = np.zeros(p.mwi - 1)
        st.raw_zi = np.zeros(p.mwi - 1)
    bp, st.bp_zi = sps.sosfilt(p.bp_sos, x, axis=-1, zi=st.bp_zi)
    d = np.diff(bp, axis=-1, prepend=st.prev_bp)
    st.prev_bp = bp[:, -1:]
    e = d * d
    env, st.env_zi = sps.lfilter(p.env_b, p.env_a, e, axis=-1, zi=st.env_zi)
    env += st.params.env_floor
    ce = (e / env).mean(axis=0)
    f, st.mwi_zi = sps.lfilter(p.mwi_b, [1.0], ce, zi=st.mwi_zi)
    raw, st.raw_zi = sps.lfilter(p.mwi_b, [1.0], e.mean(axis=0), zi=st.raw_zi)
    f[raw < st.params.min_energy] = 0.0     # too little absolute energy to be a QRS
    return ce, f, 1.0 / np.sqrt(env)


def _append(st: QRSState, p: _Plan, x, ce, f, g) -> None:
    if st.hist_f is None:
        st.hist_x, st.hist_f, st.hist_ce, st.hist_g = x, f, ce, g
    else:
        keep = p.hist
        st.hist_x = np.concatenate([st.hist_x[:, -keep:], x], axis=1)
        st.hist_f = np.concatenate([st.hist_f[-keep:], f])
        st.hist_ce = np.concatenate([st.hist_ce[-keep:], ce])
        st.hist_g = np.concatenate([st.hist_g[:, -keep:], g], axis=1)


def _candidates(st: QRSState, p: _Plan, horizon: int) -> list[int]:
    """Indices in [scan_from, horizon) that are the feature's max within +-half."""
    h0 = st.hist_start
    lo = max(h0, st.scan_from - p.half)
    seg = st.hist_f[lo - h0:]
    mx = maximum_filter1d(seg, size=2 * p.half + 1, mode="nearest")
    i = np.arange(seg.shape[0])
    rise = np.empty(seg.shape[0], dtype=bool)
    rise[0] = False
    rise[1:] = seg[1:] > seg[:-1]
    ok = (seg == mx) & rise & (i + lo >= st.scan_from) & (i + lo < horizon)
    return (np.flatnonzero(ok) + lo).tolist()


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def _push(buf: list, value, n: int) -> None:
    buf.append(value)
    if len(buf) > n:
        del buf[0]


def _threshold(st: QRSState) -> float:
    noise = _median(st.noise_peaks)
    return noise + st.params.th * (_median(st.qrs_peaks) - noise)


def _fiducial(st: QRSState, p: _Plan, peak: int) -> int:
    """R peak: largest weighted |deviation| of the filtered leads in the integrator span."""
    h0 = st.hist_start
    lo, hi = max(h0, peak - p.mwi - 8), min(st.n, peak + 4)
    x = st.hist_x[:, lo - h0:hi - h0]
    w = st.hist_g[:, peak - h0][:, None]
    dev = (np.abs(x - np.median(x, axis=1, keepdims=True)) * w).sum(axis=0)
    return lo + int(np.argmax(dev))


def _slope(st: QRSState, p: _Plan, peak: int) -> float:
    h0 = st.hist_start
    return float(st.hist_ce[max(h0, peak - p.mwi - 2) - h0:peak + 1 - h0].max())


def _accept(st: QRSState, p: _Plan, peak: int, height: float, slope: float,
            committed: int, searchback: bool) -> Beat:
    r = _fiducial(st, p, peak)
    if st.last_r >= 0 and r - st.last_r <= p.rr_max:
        _push(st.rr, r - st.last_r, st.params.n_avg)
    _push(st.qrs_peaks, height, st.params.n_avg)
    st.last_peak, st.last_r, st.last_slope = peak, r, slope
    st.sb_best, st.sb_done = None, False
    return Beat(r=r, peak=peak, committed=committed, height=height, searchback=searchback)


def _searchback_due(st: QRSState) -> int | None:
    """Sample at which search-back fires, or None (no beat yet / no RR / already tried)."""
    if st.last_peak < 0 or not st.rr or st.sb_done:
        return None
    return st.last_peak + round(st.params.searchback_rr * float(np.mean(st.rr)))


def _searchback(st: QRSState, p: _Plan, due: int) -> Beat | None:
    st.sb_done = True
    best = st.sb_best
    if best is None or best[1] < st.params.searchback_th * _threshold(st):
        return None
    if best[1] in st.noise_peaks:
        st.noise_peaks.remove(best[1])          # it was a QRS after all
    return _accept(st, p, best[0], best[1], best[2], due + p.half, True)


def _decide(st: QRSState, p: _Plan, peak: int) -> Beat | None:
    height = float(st.hist_f[peak - st.hist_start])
    slope = _slope(st, p, peak)
    since = peak - st.last_peak if st.last_peak >= 0 else 1 << 30
    if since < p.refractory:
        return None
    is_qrs = height >= _threshold(st)
    if is_qrs and since < p.twave and slope < st.params.twave_slope_ratio * st.last_slope:
        is_qrs = False                               # T wave: too slow for a QRS this close
    if is_qrs:
        return _accept(st, p, peak, height, slope, peak + p.half, False)
    _push(st.noise_peaks, height, st.params.n_avg)
    if since >= p.twave and (st.sb_best is None or height > st.sb_best[1]):
        st.sb_best = (peak, height, slope)
    return None


def _learn(st: QRSState, p: _Plan) -> None:
    """Seed the levels from the first ``learn_s`` of the segment (Pan & Tompkins)."""
    f = st.hist_f[: p.learn - st.hist_start]
    st.qrs_peaks = [0.5 * float(f.max())] * st.params.n_avg
    st.noise_peaks = [float(f.mean())] * st.params.n_avg
    st.learned = True


def qrs_step(state: QRSState, x: np.ndarray) -> tuple[QRSState, list[Beat]]:
    """Feed one chunk of filtered signal ``x`` (n_leads, n) mV; return beats decided now.

    Beats come out in time order.  State is updated in place and returned.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != state.n_leads:
        raise ValueError(f"chunk must be ({state.n_leads}, n), got {x.shape}")
    if x.shape[1] == 0:
        return state, []
    p = plan_for(state.params, state.fs_hz)
    ce, f, g = _features(state, p, x)
    _append(state, p, x, ce, f, g)
    state.n += x.shape[1]
    return state, _scan(state, p, state.n - p.half)


def qrs_flush(state: QRSState) -> tuple[QRSState, list[Beat]]:
    """Decide the remaining candidates with the look-ahead the segment still has (its end)."""
    if state.hist_f is None:
        return state, []
    return state, _scan(state, plan_for(state.params, state.fs_hz), state.n)


def _scan(st: QRSState, p: _Plan, horizon: int) -> list[Beat]:
    if horizon <= st.scan_from:
        return []
    if not st.learned:
        if min(horizon, st.n) < p.learn:
            return []
        _learn(st, p)
    beats: list[Beat] = []
    for peak in _candidates(st, p, horizon):
        _run_searchback(st, p, peak - 1, beats)
        beat = _decide(st, p, peak)
        if beat is not None:
            beats.append(beat)
    _run_searchback(st, p, horizon - 1, beats)
    st.scan_from = horizon
    return beats


def _run_searchback(st: QRSState, p: _Plan, upto: int, beats: list[Beat]) -> None:
    """Fire every search-back whose due sample is <= ``upto`` (all its candidates decided)."""
    while (due := _searchback_due(st)) is not None and due <= upto:
        beat = _searchback(st, p, due)
        if beat is not None:
            beats.append(beat)

