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
from scipy.ndimage import _ni_support, maximum_filter1d

from cardiostream.filters import sos_filter_inplace
from cardiostream.history import ColumnHistory
from cardiostream.qrs_rules import (
    DEFAULT_QRS,
    Beat,
    QRSParams,
    decide,
    learn,
    run_searchback,
)

try:  # the C routine behind maximum_filter1d: same result without ~3 us of checks a call
    from scipy.ndimage._nd_image import min_or_max_filter1d as _max_filter_kernel
    _NEAREST = _ni_support._extend_mode_to_code("nearest")
except (ImportError, AttributeError):  # pragma: no cover - a scipy that moved them
    _max_filter_kernel = None

__all__ = ["DEFAULT_QRS", "Beat", "QRSParams", "QRSState", "new_qrs_state", "plan_for",
           "qrs_flush", "qrs_step"]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Parameters in samples at one rate, plus the shared filter coefficients."""

    bp_sos: np.ndarray             # band-pass sections, then the first difference (see plan_for)
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
    # The differentiator d[k] = bp[k] - bp[k-1] as one more section (b = 1, -1, a = 1):
    # the kernel then computes bp[k] + (-bp[k-1] - 0*y + 0), the same rounded difference
    # (up to the sign of a zero difference, which squaring removes), without the ~3
    # numpy calls per chunk of a separate difference and its carried last sample.
    bp_d = np.vstack([bp, [[1.0, -1.0, 0.0, 1.0, 0.0, 0.0]]])
    return _Plan(np.ascontiguousarray(bp_d), env, mwi, half, round(params.refractory_s * fs_hz),
                 round(params.twave_s * fs_hz), round(params.learn_s * fs_hz), rr_max, hist)


@dataclass(slots=True)
class QRSState:
    fs_hz: float
    n_leads: int
    params: QRSParams = DEFAULT_QRS
    n: int = 0                         # samples seen in this segment
    bp_zi: np.ndarray | None = None    # (n_leads, sections + 1, 2) band-pass + difference delays
    env_zi: np.ndarray | None = None   # (n_leads, 1, 2) energy-normaliser delays
    csum: np.ndarray | None = None     # (n_leads + 1, mwi) last cumulative sums (integrator)
    hist: np.ndarray | None = None     # (2 + 3 n_leads, h) last h samples, rows below: a view
    store: ColumnHistory | None = None  # ... of this buffer
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
    sb_due: int | None = None          # sample at which search-back fires (see _accept)
    plan: _Plan | None = None          # plan_for(params, fs_hz), kept: its cache key hashes
                                       # every QRSParams field (~1 us a chunk)

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
                    lead_peaks=[[] for _ in range(n_leads)], plan=plan_for(params, float(fs_hz)))


def _features(st: QRSState, p: _Plan, x: np.ndarray, out: np.ndarray) -> None:
    """(n_leads, n) filtered mV → this chunk's history rows, written into ``out``
    (2 + 3 n_leads, n) (see ``QRSState.hist``).

    The integrator is a running sum over a carried cumulative sum: the same sequential
    additions whatever the chunking, so chunked == one-shot bit for bit.  Results go
    straight into ``out`` or preallocated rows (``out=``): at 0.5 s chunks numpy's
    per-call cost, not the arithmetic, is what this function spends.
    """
    L, n, m = st.n_leads, x.shape[1], p.mwi
    if st.bp_zi is None:
        st.bp_zi = np.zeros((L, p.bp_sos.shape[0], 2))
        st.env_zi = np.zeros((L, 1, 2))
        st.env_zi[:, 0, 0] = (1.0 - p.env_sos[0, 0]) * st.params.env_prior
        st.csum = np.zeros((L + 1, m))
    out[2 + L:2 + 2 * L] = x
    e = np.array(x, dtype=np.float64, order="C")
    sos_filter_inplace(p.bp_sos, e, st.bp_zi)       # band-passed and differentiated
    np.multiply(e, e, out=e)                        # energy
    env = e.copy()
    sos_filter_inplace(p.env_sos, env, st.env_zi)
    env = np.add(env, st.params.env_floor, out=out[2 + 2 * L:])
    # c: the carried cumulative sums, then this chunk's per-lead normalised energy and
    # the leads' mean absolute energy, summed up in place
    c = np.empty((L + 1, m + n))
    c[:, :m] = st.csum
    np.divide(e, env, out=c[:L, m:])
    _lead_mean(e, c[L, m:])
    _lead_mean(c[:L, m:], out[1])
    np.add.accumulate(c[:, m - 1:], axis=1, out=c[:, m - 1:])   # np.cumsum minus its wrapper
    st.csum = c[:, n:]                              # a view: c is this chunk's own array
    mwi = c[:, m:] - c[:, :n]
    mwi *= 1.0 / m
    lead_f = out[2:2 + L]
    cap = st.params.lead_cap
    if cap > 0:                                   # one lead's artefact cannot outvote the rest
        np.divide(mwi[:L], 1.0 + mwi[:L] * (1.0 / cap), out=lead_f)
    else:
        lead_f[:] = mwi[:L]
    f = out[0]
    _lead_mean(lead_f, f)
    f[mwi[L] < st.params.min_energy] = 0.0              # too little energy to be a QRS


def _candidates(st: QRSState, p: _Plan, horizon: int) -> list[int]:
    """Indices in [scan_from, horizon) that are the feature's max within +-half."""
    h0 = st.hist_start
    lo = max(h0, st.scan_from - p.half)
    seg = st.hist_f[lo - h0:]
    mx = _running_max(seg, 2 * p.half + 1)
    a, b = st.scan_from - lo, horizon - lo
    v = seg[a:b]
    ok = v == mx[a:b]
    if a > 0:
        ok &= v > seg[a - 1:b - 1]
    else:                                    # segment start: sample 0 has no left neighbour
        ok[1:] &= v[1:] > v[:-1]
        ok[0] = False
    return (ok.nonzero()[0] + st.scan_from).tolist()


def _running_max(seg: np.ndarray, size: int) -> np.ndarray:
    """``maximum_filter1d(seg, size, mode="nearest")`` of a 1-D float64 array."""
    if _max_filter_kernel is None:
        return maximum_filter1d(seg, size=size, mode="nearest")
    out = np.empty_like(seg)
    _max_filter_kernel(seg, size, 0, out, _NEAREST, 0.0, 0, 0)   # axis 0, origin 0, max
    return out


def _lead_mean(rows: np.ndarray, out: np.ndarray) -> None:
    """``np.add.reduce(rows, axis=0) * (1 / L)`` into ``out``, for the (L, n) energy rows.

    Two leads (the usual case) take one ``np.add``, ~0.5 us cheaper than the reduction:
    the same sum, since the reduction only adds a leading 0.0, which changes nothing for
    these non-negative (never -0.0) energies.
    """
    if rows.shape[0] == 2:
        np.add(rows[0], rows[1], out=out)
        out *= 0.5
    else:
        np.multiply(np.add.reduce(rows, axis=0), 1.0 / rows.shape[0], out=out)


def qrs_step(state: QRSState, x: np.ndarray) -> tuple[QRSState, list[Beat]]:
    """Feed one chunk of filtered signal ``x`` (n_leads, n) mV; return beats decided now.

    Beats come out in time order.  State is updated in place and returned.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != state.n_leads:
        raise ValueError(f"chunk must be ({state.n_leads}, n), got {x.shape}")
    if x.shape[1] == 0:
        return state, []
    p = state.plan or plan_for(state.params, state.fs_hz)
    if state.store is None:
        state.store = ColumnHistory(2 + 3 * state.n_leads)
    keep = p.hist if state.learned else state.store.width   # learning reads the first learn_s
    _features(state, p, x, state.store.extend(x.shape[1], keep, 2 * x.shape[1]))
    state.hist = state.store.view()
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
