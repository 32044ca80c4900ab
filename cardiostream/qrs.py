"""Online multi-lead QRS detector: ``QRSState`` + ``qrs_step``.

Design (Pan & Tompkins 1985; Hamilton & Tompkins 1986, "Quantitative
investigation of QRS detection rules"; OSEA's qrsdet2):

1. Feature, vectorised per chunk with carried filter state: each lead is
   band-passed (5-15 Hz), differentiated and squared; every lead's energy is
   divided by its own slow running mean (single-pole, ``env_tau_s``), so each
   lead is in "times its usual energy"; each lead is integrated over ``mwi_s``
   and soft-capped (``v / (1 + v / lead_cap)``) so a burst of artefact in one
   lead cannot outvote QRS complexes seen in the other; the leads are averaged.
2. Candidates: local maxima of that feature that are the largest within
   +-``peak_half_s``.  Deciding one needs ``peak_half_s`` of signal after the
   integrator's peak: the detector's look-ahead, about 260 ms after the R peak
   (p99 under 300 ms; docs/benchmarks.md gives the measured distribution).
3. Per candidate (Python, a few per beat; ``qrs_rules.py``): adaptive threshold
   ``noise + th * (qrs - noise)`` over the medians of the last 8 QRS and noise
   peaks, a 240 ms refractory period, T-wave rejection by slope within 360 ms
   (unless the candidate is nearly as tall as a QRS: an early ectopic beat),
   one-lead artefact rejection, and search-back at ``searchback_rr`` x mean RR
   for the largest candidate above half the threshold.  Search-back beats are
   committed late (at most ``searchback_rr`` x ``rr_max_s``); their commit
   delay is reported too.
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

from cardiostream.filters import sos_step
from cardiostream.qrs_rules import (
    DEFAULT_QRS,
    Beat,
    QRSParams,
    decide,
    learn,
    run_searchback,
)

__all__ = ["DEFAULT_QRS", "Beat", "QRSParams", "QRSState", "new_qrs_state", "plan_for",
           "qrs_flush", "qrs_step"]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Parameters in samples at one rate, plus the shared filter coefficients."""

    bp_sos: np.ndarray
    env_sos: np.ndarray            # single-pole low-pass as one SOS section
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
    hist = 2 * half + mwi + 16          # candidates need +-half, fiducial/slope mwi + 8 back
    env = np.array([[alpha, 0.0, 0.0, 1.0, alpha - 1.0, 0.0]])
    return _Plan(np.ascontiguousarray(bp), env, mwi, half, round(params.refractory_s * fs_hz),
                 round(params.twave_s * fs_hz), round(params.learn_s * fs_hz), rr_max, hist)


@dataclass(slots=True)
class QRSState:
    fs_hz: float
    n_leads: int
    params: QRSParams = DEFAULT_QRS
    n: int = 0                         # samples seen in this segment
    bp_zi: np.ndarray | None = None    # (n_leads, sections, 2) band-pass delays
    env_zi: np.ndarray | None = None   # (n_leads, 1, 2) energy-normaliser delays
    csum: np.ndarray | None = None     # (n_leads + 1, mwi) last cumulative sums (integrator)
    prev_bp: np.ndarray | None = None
    hist: np.ndarray | None = None     # (2 + 3 n_leads, h) last h samples, rows below
    scan_from: int = 0                 # first undecided candidate sample
    learned: bool = False
    qrs_peaks: list[float] = field(default_factory=list)
    noise_peaks: list[float] = field(default_factory=list)
    rr: list[int] = field(default_factory=list)
    lead_peaks: list[list[float]] = field(default_factory=list)   # per lead, last QRS heights
    last_peak: int = -1                # integrator peak of the last beat (-1: none yet)
    last_r: int = -1
    last_slope: float = 0.0
    sb_best: tuple | None = None       # search-back pick: (peak, height, slope, r, lead heights)
    sb_done: bool = False

    # history rows: feature f, normalised energy ce (slope), per-lead capped features,
    # filtered input (fiducial), per-lead energy level (fiducial weights)
    @property
    def hist_f(self) -> np.ndarray:
        return self.hist[0]

    @property
    def hist_ce(self) -> np.ndarray:
        return self.hist[1]

    @property
    def hist_lf(self) -> np.ndarray:
        return self.hist[2:2 + self.n_leads]

    @property
    def hist_x(self) -> np.ndarray:
        return self.hist[2 + self.n_leads:2 + 2 * self.n_leads]

    @property
    def hist_g(self) -> np.ndarray:
        return self.hist[2 + 2 * self.n_leads:]

    @property
    def hist_start(self) -> int:
        return self.n - (0 if self.hist is None else self.hist.shape[1])


def new_qrs_state(fs_hz: float, n_leads: int, params: QRSParams = DEFAULT_QRS) -> QRSState:
    if n_leads < 1:
        raise ValueError(f"n_leads must be >= 1, got {n_leads}")
    return QRSState(fs_hz=float(fs_hz), n_leads=n_leads, params=params,
                    lead_peaks=[[] for _ in range(n_leads)])


def _features(st: QRSState, p: _Plan, x: np.ndarray) -> np.ndarray:
    """(n_leads, n) filtered mV → this chunk's history rows (see ``QRSState.hist``).

    The integrator is a running sum over a carried cumulative sum: the same sequential
    additions whatever the chunking, so chunked == one-shot bit for bit.
    """
    if st.bp_zi is None:
        st.bp_zi = np.zeros((st.n_leads, p.bp_sos.shape[0], 2))
        st.prev_bp = np.zeros((st.n_leads, 1))
        st.env_zi = np.zeros((st.n_leads, 1, 2))
        st.env_zi[:, 0, 0] = (1.0 - p.env_sos[0, 0]) * st.params.env_prior
        st.csum = np.zeros((st.n_leads + 1, p.mwi))
    bp = sos_step(p.bp_sos, x, st.bp_zi)
    d = np.empty_like(bp)
    d[:, 0] = bp[:, 0] - st.prev_bp[:, 0]
    np.subtract(bp[:, 1:], bp[:, :-1], out=d[:, 1:])
    st.prev_bp = bp[:, -1:].copy()          # copies: do not pin the chunk buffers
    e = d * d
    env = sos_step(p.env_sos, e, st.env_zi)
    env += st.params.env_floor
    L = st.n_leads
    rows = np.empty((L + 1, e.shape[1] + 1))          # per-lead normalised, absolute
    rows[:, 0] = st.csum[:, -1]
    np.divide(e, env, out=rows[:L, 1:])
    np.multiply(np.add.reduce(e, axis=0), 1.0 / L, out=rows[L, 1:])
    c = np.concatenate([st.csum[:, :-1], np.cumsum(rows, axis=1)], axis=1)
    st.csum = c[:, -p.mwi:].copy()
    mwi = (c[:, p.mwi:] - c[:, :-p.mwi]) * (1.0 / p.mwi)
    n = e.shape[1]
    block = np.empty((2 + 3 * L, n))                  # the history rows of this chunk
    lead_f = block[2:2 + L]
    cap = st.params.lead_cap
    if cap > 0:                                   # one lead's artefact cannot outvote the rest
        np.divide(mwi[:L], 1.0 + mwi[:L] * (1.0 / cap), out=lead_f)
    else:
        lead_f[:] = mwi[:L]
    f = block[0]
    np.multiply(np.add.reduce(lead_f, axis=0), 1.0 / L, out=f)
    f[mwi[L] < st.params.min_energy] = 0.0              # too little energy to be a QRS
    np.multiply(np.add.reduce(rows[:L, 1:], axis=0), 1.0 / L, out=block[1])
    block[2 + L:2 + 2 * L] = x
    block[2 + 2 * L:] = env
    return block


def _append(st: QRSState, p: _Plan, block: np.ndarray) -> None:
    if st.hist is None:
        st.hist = block
    else:
        keep = p.hist if st.learned else st.hist.shape[1]   # learning reads the first learn_s
        st.hist = np.concatenate([st.hist[:, -keep:], block], axis=1)


def _candidates(st: QRSState, p: _Plan, horizon: int) -> list[int]:
    """Indices in [scan_from, horizon) that are the feature's max within +-half."""
    h0 = st.hist_start
    lo = max(h0, st.scan_from - p.half)
    seg = st.hist_f[lo - h0:]
    mx = maximum_filter1d(seg, size=2 * p.half + 1, mode="nearest")
    a, b = st.scan_from - lo, horizon - lo
    v = seg[a:b]
    ok = v == mx[a:b]
    if a > 0:
        ok &= v > seg[a - 1:b - 1]
    else:                                    # segment start: sample 0 has no left neighbour
        ok[1:] &= v[1:] > v[:-1]
        ok[0] = False
    return (np.flatnonzero(ok) + st.scan_from).tolist()


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
    _append(state, p, _features(state, p, x))
    state.n += x.shape[1]
    return state, _scan(state, p, state.n - p.half)


def qrs_flush(state: QRSState) -> tuple[QRSState, list[Beat]]:
    """Decide the remaining candidates with the look-ahead the segment still has (its end)."""
    if state.hist is None:
        return state, []
    return state, _scan(state, plan_for(state.params, state.fs_hz), state.n)


def _scan(st: QRSState, p: _Plan, horizon: int) -> list[Beat]:
    if horizon <= st.scan_from:
        return []
    if not st.learned:
        if min(horizon, st.n) < p.learn:
            return []
        learn(st, p)
    beats: list[Beat] = []
    for peak in _candidates(st, p, horizon):
        run_searchback(st, p, peak - 1, beats)
        beat = decide(st, p, peak)
        if beat is not None:
            beats.append(beat)
    run_searchback(st, p, horizon - 1, beats)
    st.scan_from = horizon
    return beats
