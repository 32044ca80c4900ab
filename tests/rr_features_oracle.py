"""The previous one-window dominant-RR / P-wave features (cardiostream/rr_features.py
as of commit add8a6e, before the batched rewrite), its algorithm kept verbatim as the
oracle the batched ``dominant_rr_batch`` must equal (the shipped rhythm model was
trained on it); thresholds and names come from cardiostream.rr_features."""

from __future__ import annotations

import numpy as np

# The thresholds are the shipped ones (one definition); only the algorithm is frozen here.
from cardiostream.rr_features import (
    IRREGULAR_DNN,
    NN_RANGE_S,
    NO_EVIDENCE,
    P_MIN_RR_S,
    P_PRE_S,
    QRS_POST_S,
    QRS_PRE_S,
    SAME_SHAPE_AMP,
    SAME_SHAPE_CORR,
)

_US = 1_000_000


def beat_segments(lead: np.ndarray, fs_hz: float, beat_idx: np.ndarray) -> np.ndarray:
    """(n,) samples of one lead, (k,) beat sample indices -> (k, w) mean-removed segments.

    Beats near the window edges are read from an edge-padded copy, so every beat
    gets a segment of the same width w = round((QRS_PRE_S + QRS_POST_S) * fs_hz) + 1.
    """
    pre, post = round(QRS_PRE_S * fs_hz), round(QRS_POST_S * fs_hz)
    padded = np.pad(np.asarray(lead, dtype=np.float64), (pre, post), mode="edge")
    idx = np.clip(beat_idx, 0, lead.size - 1)[:, None] + np.arange(pre + post + 1)[None, :]
    seg = padded[idx]
    return seg - seg.mean(axis=1, keepdims=True)


def dominant_mask(segments: np.ndarray) -> np.ndarray:
    """(k, w) segments -> (k,) bool: same shape as the most typical beat.

    The typical beat is the one with the highest summed correlation to all others
    (a medoid), so a single noisy beat cannot become the reference.
    """
    k = segments.shape[0]
    if k < 3:
        return np.ones(k, dtype=bool)
    norm = np.linalg.norm(segments, axis=1)
    unit = segments / np.where(norm > 0, norm, 1.0)[:, None]
    corr = unit @ unit.T                                  # (k, k) Pearson (mean removed)
    ref = int(np.argmax(corr.sum(axis=1)))
    ptp = np.ptp(segments, axis=1)
    ratio = ptp / ptp[ref] if ptp[ref] > 0 else np.ones(k)
    lo, hi = SAME_SHAPE_AMP
    return (corr[ref] >= SAME_SHAPE_CORR) & (ratio >= lo) & (ratio <= hi)


def dominant_intervals(beat_s: np.ndarray, dominant: np.ndarray) -> np.ndarray:
    """Intervals between consecutive dominant beats, each divided by the beats it spans.

    ``beat_s`` (k,) ascending seconds, ``dominant`` (k,) bool -> (m,) seconds per beat.
    """
    pos = np.flatnonzero(dominant)
    if pos.size < 2:
        return np.zeros(0)
    return np.diff(beat_s[pos]) / np.diff(pos)


def p_wave_evidence(lead: np.ndarray, fs_hz: float, beat_idx: np.ndarray,
                    use: np.ndarray) -> tuple[float, float, float]:
    """(p_wave_corr, p_wave_to_qrs, p_wave_measured) over the beats ``use`` (bool (k,));
    (0, 0, 0) with fewer than 3 usable beats.

    ``lead`` (n,) mV, ``beat_idx`` (k,) R-peak samples. Beats whose P segment starts
    before the window are skipped.
    """
    first, last = round(P_PRE_S[0] * fs_hz), round(P_PRE_S[1] * fs_hz)
    ok = use & (beat_idx - first >= 0) & (beat_idx < lead.size)
    if ok.sum() < 3:
        return 0.0, 0.0, 0.0
    idx = beat_idx[ok]
    seg = np.asarray(lead, dtype=np.float64)[idx[:, None] - first + np.arange(first - last)]
    seg = seg - seg.mean(axis=1, keepdims=True)
    template = np.median(seg, axis=0)
    norms = np.linalg.norm(seg, axis=1) * np.linalg.norm(template)
    corr = (seg @ template) / np.maximum(norms, 1e-12)
    qrs = float(np.median(np.ptp(beat_segments(lead, fs_hz, idx), axis=1)))
    return float(np.mean(corr)), float(np.ptp(template) / qrs) if qrs > 0 else 0.0, 1.0


def dominant_rr_features(beat_times_us: np.ndarray, start_time_us: int, lead: np.ndarray,
                         fs_hz: float) -> np.ndarray:
    """One rhythm window -> (len(DOMINANT_RR_FEATURES),) float32 (see the module docstring).

    ``beat_times_us`` (k,) device times of the window's beats, ``lead`` (n,) mV of
    the window's lead 0 at ``fs_hz`` starting at ``start_time_us``. Fewer than 4
    beats (or fewer than 3 dominant intervals / usable P segments): 0 (no evidence).
    """
    t = np.asarray(beat_times_us, dtype=np.float64)
    lead = np.asarray(lead, dtype=np.float64)
    if t.size < 4 or lead.size < 2:
        return np.array(NO_EVIDENCE, dtype=np.float32)
    idx = np.round((t - start_time_us) * fs_hz / _US).astype(np.int64)
    dom = dominant_mask(beat_segments(lead, fs_hz, idx))
    rr_prev = np.diff(t, prepend=-np.inf) / _US
    p_wave = p_wave_evidence(lead, fs_hz, idx, dom & (rr_prev > P_MIN_RR_S))
    nn = dominant_intervals(t / _US, dom)
    nn = nn[(nn > NN_RANGE_S[0]) & (nn < NN_RANGE_S[1])]
    frac = float(dom.mean())
    if nn.size < 3:
        return np.array([frac, 0.0, 0.0, 0.0, *p_wave], dtype=np.float32)
    mean, med = float(nn.mean()), float(np.median(nn))
    d = np.diff(nn)
    return np.array([frac, nn.std() / mean, np.sqrt(np.mean(d ** 2)) / mean,
                     np.mean(np.abs(d) > IRREGULAR_DNN * med), *p_wave], dtype=np.float32)
