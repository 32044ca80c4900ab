"""The previous one-window rhythm features (cardiostream/features.py before the batched
rewrite, commit 29dce74), kept verbatim as the oracle the batched code must equal;
rhythm features v2 append the one-window ``tests.rr_features_oracle``."""

from __future__ import annotations

import math

import numpy as np

from cardiostream.schemas import RhythmWindow
from tests.rr_features_oracle import dominant_rr_features

_US = 1_000_000
def _sample_entropy(rr: np.ndarray, m: int = 1, r_frac: float = 0.04) -> float:
    """SampEn of a short RR series (Richman & Moorman 2000), tolerance r_frac x median RR.

    A tolerance tied to the median RR (not to the series' own std, which is tiny in
    sinus rhythm) keeps regular rhythms near 0 and AF high (cf. Lake & Moorman 2011).
    """
    n = rr.size
    if n < m + 3:
        return 0.0
    r = r_frac * float(np.median(rr))

    def matches(k: int) -> int:
        emb = np.lib.stride_tricks.sliding_window_view(rr, k)[: n - m]
        d = np.max(np.abs(emb[:, None, :] - emb[None, :, :]), axis=2)
        return int((np.sum(d <= r) - emb.shape[0]) // 2)

    b, a = matches(m), matches(m + 1)
    if a == 0 or b == 0:
        return 2.5  # capped: "no repeats" is the most irregular a short series shows
    return float(min(-math.log(a / b), 2.5))


def rr_irregularity(rr_s: np.ndarray, window_s: float) -> list[float]:
    """RR features of one window (seconds in, the first 19 of RHYTHM_FEATURES out).

    ``frac_near_median`` and ``iqr_over_median`` are robust to isolated ectopics:
    sinus rhythm with PVCs keeps most RRs near the median, AF spreads them all.
    """
    rr = rr_s[(rr_s > 0.15) & (rr_s < 6.0)]
    if rr.size < 3:
        longest = float(rr.max()) if rr.size else window_s
        return [rr.size * 10.0 / window_s, longest, longest, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                0.0, longest, float(rr.min()) if rr.size else window_s, 0.0, 0.0, 1.0, 0.0,
                0.0, 0.0, 0.0]
    d = np.diff(rr)
    mean, med = float(rr.mean()), float(np.median(rr))
    tp = np.sum((d[:-1] * d[1:]) < 0) / max(d.size - 1, 1)
    hist, _ = np.histogram(rr / med, bins=8, range=(0.4, 2.0))
    p = hist[hist > 0] / max(hist.sum(), 1)
    short_long = np.sum((rr[:-1] < 0.85 * med) & (rr[1:] > 1.15 * med)) / (rr.size - 1)
    return [rr.size * 10.0 / window_s, mean, med, float(rr.std() / mean),
            float(np.sqrt(np.mean(d ** 2)) / mean), float(np.mean(np.abs(d) > 0.05)),
            float(np.median(np.abs(d - np.median(d))) / med), float(tp),
            _sample_entropy(rr), float(-(p * np.log(p)).sum()), float(rr.max()),
            float(rr.min()), float(short_long), float(np.mean(np.abs(d) > 0.15 * med)),
            float(np.mean(np.abs(rr / med - 1) < 0.08)),
            float(np.subtract(*np.percentile(rr, [75, 25])) / med), *_clean_rr_stats(rr, med)]


def _clean_rr_stats(rr: np.ndarray, med: float) -> list[float]:
    """CV and RMSSD/mean after dropping premature+compensatory RR pairs (ectopic beats).

    A PVC or PAC makes a short RR followed by a long one; sinus rhythm with ectopy is
    regular once those pairs are removed, AF is not (ectopy filter after Petrenas 2015).
    """
    ectopic = (rr[:-1] < 0.85 * med) & (rr[1:] > 1.1 * med)
    drop = np.zeros(rr.size, dtype=bool)
    drop[:-1] |= ectopic
    drop[1:] |= ectopic
    clean = rr[~drop]
    frac = float(ectopic.sum() / (rr.size - 1))
    if clean.size < 3:
        return [0.0, 0.0, frac]
    m = float(clean.mean())
    return [float(clean.std() / m), float(np.sqrt(np.mean(np.diff(clean) ** 2)) / m), frac]


def vf_band_fraction(signal: np.ndarray, fs_hz: float) -> float:
    """Share of 1-30 Hz power within 2.5-7.5 Hz: high in VF/VFL (sine-like waves)."""
    s = signal - signal.mean()
    spec = np.abs(np.fft.rfft(s * np.hanning(s.size))) ** 2
    f = np.fft.rfftfreq(s.size, 1.0 / fs_hz)
    total = spec[(f >= 1.0) & (f <= 30.0)].sum()
    return float(spec[(f >= 2.5) & (f <= 7.5)].sum() / total) if total > 0 else 0.0


def rhythm_window_features(w: RhythmWindow) -> np.ndarray:
    """One window -> (len(RHYTHM_FEATURES),) float32, one window at a time."""
    window_s = (w.end_time_us - w.start_time_us) / _US
    rr = np.diff(np.asarray(w.beat_times_us, dtype=np.float64)) / _US
    lead0 = np.asarray(w.samples[0], dtype=np.float64)
    sqi = min(w.sqi) if w.sqi else 1.0
    feats = rr_irregularity(rr, max(window_s, 1e-3)) + [vf_band_fraction(lead0, w.fs_hz), sqi]
    feats += dominant_rr_features(np.asarray(w.beat_times_us), w.start_time_us, w.samples[0],
                                  w.fs_hz).tolist()
    return np.nan_to_num(np.asarray(feats, dtype=np.float32), nan=0.0, posinf=10.0)
