"""QRS detector decision rules: thresholds, T waves, artefacts, search-back, the R peak.

Split from ``qrs.py`` (feature extraction and the online step); these run per candidate
(a few per beat) in Python.  Pan & Tompkins 1985; Hamilton & Tompkins 1986; OSEA qrsdet2.
Every rule reads only sample-indexed history, so decisions do not depend on chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cardiostream.qrs import QRSState, _Plan


@dataclass(frozen=True, slots=True)
class QRSParams:
    """Detector parameters in physical units (converted to samples once, in ``_Plan``)."""

    band_hz: tuple[float, float] = (5.0, 15.0)
    mwi_s: float = 0.10            # moving-window integrator length
    env_tau_s: float = 2.0         # per-lead energy normalisation time constant
    env_prior: float = 1e-3        # normalisation seed, (mV/sample)^2: typical ECG energy
    env_floor: float = 2e-5        # keeps a flat lead from being amplified into noise
    lead_cap: float = 3.0          # soft cap of each lead's normalised feature (0: none)
    min_energy: float = 2e-4       # un-normalised MWI below this is never a QRS (~0.1 mV QRS)
    peak_half_s: float = 0.17      # candidate = max within +- this; the look-ahead
    refractory_s: float = 0.24
    twave_s: float = 0.36          # a candidate this close to the last beat may be a T wave
    twave_slope_ratio: float = 0.5
    twave_max_height: float = 0.75  # ... unless it is this tall x the QRS level (an early ectopic)
    th: float = 0.35               # threshold fraction between noise and QRS levels
    artefact_low: float = 0.15     # one-lead artefact: another lead below this x its QRS level,
    artefact_high: float = 1.5     # ... this lead above this x its own QRS level,
    artefact_premature: float = 0.7   # ... and earlier than this x the mean RR
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
class Beat:
    """One detected beat (sample indices within the segment, at the model rate)."""

    r: int            # R-peak (fiducial) sample
    peak: int         # integrator peak sample (what the thresholds saw)
    committed: int    # last sample the decision needed (r .. committed = detection delay)
    height: float
    searchback: bool


def _median(values: list[float]) -> float:
    """np.median's value for a short list, without numpy's per-call overhead."""
    if not values:
        return 0.0
    s = sorted(values)
    k = len(s) // 2
    return s[k] if len(s) % 2 else 0.5 * (s[k - 1] + s[k])


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
    w = 1.0 / np.sqrt(st.hist_g[:, peak - h0])[:, None]
    # ufunc reductions: the same sums as x.mean() and .sum() without their Python wrappers
    dev = np.abs(x - np.add.reduce(x, axis=1, keepdims=True) / x.shape[1])
    dev *= w
    return lo + int(np.add.reduce(dev, axis=0).argmax())


def _slope(st: QRSState, p: _Plan, peak: int) -> float:
    h0 = st.hist_start
    return float(np.maximum.reduce(st.hist_ce[max(h0, peak - p.mwi - 2) - h0:peak + 1 - h0]))


def _accept(st: QRSState, p: _Plan, pick: tuple, committed: int, searchback: bool) -> Beat:
    """Commit ``pick`` = (peak, height, slope, r, per-lead heights) as a beat."""
    peak, height, slope, r, leads = pick
    if st.last_r >= 0 and r - st.last_r <= p.rr_max:
        _push(st.rr, r - st.last_r, st.params.n_avg)
    _push(st.qrs_peaks, height, st.params.n_avg)
    for lead, h in zip(st.lead_peaks, leads, strict=True):
        _push(lead, h, st.params.n_avg)
    st.last_peak, st.last_r, st.last_slope = peak, r, slope
    st.sb_best, st.sb_done = None, False
    # computed once per beat: _searchback_due is asked a few times per chunk
    st.sb_due = peak + round(st.params.searchback_rr * (sum(st.rr) / len(st.rr))) if st.rr \
        else None
    return Beat(r=r, peak=peak, committed=committed, height=height, searchback=searchback)


def _pick(st: QRSState, p: _Plan, peak: int, height: float, slope: float) -> tuple:
    """Everything a beat at ``peak`` needs, taken while its samples are in the history."""
    return (peak, height, slope, _fiducial(st, p, peak),
            st.hist_lf[:, peak - st.hist_start].tolist())


def _searchback_due(st: QRSState) -> int | None:
    """Sample at which search-back fires, or None (no beat yet / no RR / already tried)."""
    return None if st.sb_done else st.sb_due       # None until a beat with an RR (_accept)


def _searchback(st: QRSState, p: _Plan, due: int) -> Beat | None:
    st.sb_done = True
    best = st.sb_best
    if best is None or best[1] < st.params.searchback_th * _threshold(st):
        return None
    if best[1] in st.noise_peaks:
        st.noise_peaks.remove(best[1])          # it was a QRS after all
    return _accept(st, p, best, due + p.half, True)


def _one_lead_artefact(st: QRSState, peak: int, since: int) -> bool:
    """A premature burst far above one lead's usual QRS while another lead sees almost
    nothing: motion artefact, not a beat (an ectopic beat shows in every lead)."""
    prm = st.params
    if st.n_leads < 2 or not st.rr or since >= prm.artefact_premature * (sum(st.rr) / len(st.rr)):
        return False
    if any(len(lead) < prm.n_avg for lead in st.lead_peaks):
        return False
    ratios = [h / max(_median(lead), 1e-12) for h, lead in
              zip(st.hist_lf[:, peak - st.hist_start].tolist(), st.lead_peaks, strict=True)]
    return min(ratios) < prm.artefact_low and max(ratios) > prm.artefact_high


def decide(st: QRSState, p: _Plan, peak: int) -> Beat | None:
    height = float(st.hist_f[peak - st.hist_start])
    slope = _slope(st, p, peak)
    since = peak - st.last_peak if st.last_peak >= 0 else 1 << 30
    if since < p.refractory:
        return None
    is_qrs = height >= _threshold(st)
    if (is_qrs and since < p.twave and slope < st.params.twave_slope_ratio * st.last_slope
            and height < st.params.twave_max_height * _median(st.qrs_peaks)):
        is_qrs = False                               # T wave: too slow for a QRS this close
    if is_qrs and _one_lead_artefact(st, peak, since):
        is_qrs = False
    if is_qrs:
        return _accept(st, p, _pick(st, p, peak, height, slope), peak + p.half, False)
    _push(st.noise_peaks, height, st.params.n_avg)
    if since >= p.twave and (st.sb_best is None or height > st.sb_best[1]):
        st.sb_best = _pick(st, p, peak, height, slope)
    return None


def learn(st: QRSState, p: _Plan) -> None:
    """Seed the levels from the first ``learn_s`` of the segment (Pan & Tompkins)."""
    f = st.hist_f[: p.learn - st.hist_start]
    st.qrs_peaks = [0.5 * float(f.max())] * st.params.n_avg
    st.noise_peaks = [float(f.mean())] * st.params.n_avg
    st.learned = True


def run_searchback(st: QRSState, p: _Plan, upto: int, beats: list[Beat]) -> None:
    """Fire every search-back whose due sample is <= ``upto`` (all its candidates decided)."""
    while (due := _searchback_due(st)) is not None and due <= upto:
        beat = _searchback(st, p, due)
        if beat is not None:
            beats.append(beat)
