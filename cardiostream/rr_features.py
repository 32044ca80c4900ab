"""Ectopy-robust RR irregularity and atrial activity of rhythm windows (pure numpy).

Why: in a 10 s window (10-20 beats) sinus rhythm with ventricular ectopy (bigeminy,
couplets, frequent PVCs: MIT-BIH 200, 208, 223, 215, 228) has RR statistics that
overlap those of atrial fibrillation. The physiological difference is that in
sinus rhythm the *dominant* (conducted) beats still keep time: an ectopic beat is
premature and followed by a compensatory pause, so the interval between two
dominant beats that spans ``k`` ectopics is ~``(k + 1)`` sinus intervals. In AF the
conducted beats are irregular whatever the ectopy (the basis of the ectopic
filters of Petrenas et al. 2015 and of beat-classified RR series in AF detectors).

So the beats of the window are grouped by QRS shape (correlation of a short
segment of the decimated lead around each beat with the most typical beat), and
the irregularity is measured on the dominant-beat interval series, each interval
divided by the number of beats it spans (1 + intervening non-dominant beats).
The grouping is symmetric: in bigeminy the "dominant" group may be the ectopic
one, and the spanning intervals are regular either way.

Atrial activity: the other hallmark of AF is the absence of a consistent P wave.
For the dominant beats, the segment 280..80 ms before the R peak is compared with
the median of those segments (``p_wave_corr``, mean Pearson correlation: a sinus
P wave repeats beat after beat, fibrillatory waves do not), and the median
segment's peak-to-peak is related to the QRS's (``p_wave_to_qrs``: averaging over
the window keeps a P wave and cancels f-waves). Only beats after an RR > 0.4 s
are used, so the previous T wave stays out of the segment; at faster rates (or with
fewer than 3 such beats) there is no P-wave evidence, and ``p_wave_measured`` = 0
says so, lest "not measured" (0, 0) read as "no P wave" (fast sinus rhythm or SVT
would look like AF).

Inputs are the window's own fields (``RhythmWindow.beat_times_us``,
``start_time_us``, ``samples[0]``, ``fs_hz``), so a stateless worker computes the
same numbers as training. The whole batch is computed at once (``dominant_rr_batch``,
the one implementation; ``dominant_rr_features`` is a batch of one), as in
``rhythm_features``: beats stacked in a NaN-padded ``(B, K)`` matrix with a mask,
every statistic along axis 1, so padding never counts. tests/rr_features_oracle.py
holds the previous one-window code it must equal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cardiostream.rhythm_features import compact, pad_rows, padded_median

DOMINANT_RR_FEATURES: tuple[str, ...] = (
    "dominant_frac", "dominant_nn_cv", "dominant_nn_rmssd_over_mean",
    "dominant_nn_irregular_frac", "p_wave_corr", "p_wave_to_qrs", "p_wave_measured",
)

QRS_PRE_S = 0.08         # segment around each beat used for its shape, seconds
QRS_POST_S = 0.10
SAME_SHAPE_CORR = 0.85   # Pearson correlation with the typical beat to be "dominant"
SAME_SHAPE_AMP = (0.6, 1.6)   # peak-to-peak ratio to the typical beat to be "dominant"
IRREGULAR_DNN = 0.10     # |successive difference| > 10 % of the median interval
P_PRE_S = (0.28, 0.08)   # P-wave segment: from 280 ms to 80 ms before the R peak
P_MIN_RR_S = 0.4         # only beats whose preceding RR is longer (T wave out of the way)
NN_RANGE_S = (0.15, 6.0)  # dominant intervals outside are glitches or gaps
NO_EVIDENCE = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)   # fewer than 4 beats
_US = 1_000_000


def _gather(lead: np.ndarray, start: np.ndarray, width: int) -> np.ndarray:
    """lead (B, n), start (B, K) sample indices -> (B, K, width) lead[b, start + 0..width-1]
    (starts are clipped into the lead: only masked-out beats need it)."""
    if lead.shape[1] < width:
        lead = np.pad(lead, ((0, 0), (0, width - lead.shape[1])), mode="edge")
    views = np.lib.stride_tricks.sliding_window_view(lead, width, axis=1)   # (B, n-w+1, w)
    return views[np.arange(lead.shape[0])[:, None], np.clip(start, 0, views.shape[1] - 1)]


def _masked_mean(x: np.ndarray, mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(B, K) values, (B, K) mask, (B,) counts > 0 -> (B,) mean of the masked values."""
    return np.where(mask, x, 0.0).sum(axis=1) / n


def qrs_segments(lead: np.ndarray, fs_hz: float, idx: np.ndarray) -> np.ndarray:
    """lead (B, n) mV, idx (B, K) beat samples -> (B, K, w) mean-removed QRS segments.

    Beats near the window edges are read from an edge-padded copy, so every beat
    gets a segment of the same width w = round((QRS_PRE_S + QRS_POST_S) * fs_hz) + 1.
    """
    pre, post = round(QRS_PRE_S * fs_hz), round(QRS_POST_S * fs_hz)
    padded = np.concatenate([np.repeat(lead[:, :1], pre, axis=1), lead,
                             np.repeat(lead[:, -1:], post, axis=1)], axis=1)
    seg = _gather(padded, np.clip(idx, 0, lead.shape[1] - 1), pre + post + 1)
    return seg - seg.mean(axis=2, keepdims=True)


def dominant_beats(seg: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, K, w) segments, (B, K) valid -> (B, K) bool: same shape as the most typical beat.

    The typical beat is the one with the highest summed correlation to all others
    (a medoid), so a single noisy beat cannot become the reference.
    """
    norm = np.linalg.norm(seg, axis=2)
    unit = np.where(valid[:, :, None], seg / np.where(norm > 0, norm, 1.0)[:, :, None], 0.0)
    corr = unit @ unit.transpose(0, 2, 1)                     # (B, K, K) Pearson
    rows = np.arange(seg.shape[0])
    ref = np.argmax(np.where(valid, corr.sum(axis=2), -np.inf), axis=1)      # (B,)
    ptp = np.ptp(seg, axis=2)
    ref_ptp = ptp[rows, ref][:, None]
    ratio = np.where(ref_ptp > 0, ptp / np.where(ref_ptp > 0, ref_ptp, 1.0), 1.0)
    lo, hi = SAME_SHAPE_AMP
    return valid & (corr[rows, ref] >= SAME_SHAPE_CORR) & (ratio >= lo) & (ratio <= hi)


def p_wave_evidence(lead: np.ndarray, fs_hz: float, idx: np.ndarray, use: np.ndarray,
                    qrs_ptp: np.ndarray) -> np.ndarray:
    """(B, 3) p_wave_corr, p_wave_to_qrs, p_wave_measured over the beats ``use`` (B, K);
    (0, 0, 0) with fewer than 3 usable beats.

    ``lead`` (B, n) mV, ``idx`` (B, K) R-peak samples, ``qrs_ptp`` (B, K) mV of each
    beat's QRS segment. Beats whose P segment starts before the window are skipped.
    """
    first, last = round(P_PRE_S[0] * fs_hz), round(P_PRE_S[1] * fs_hz)
    use = use & (idx - first >= 0) & (idx < lead.shape[1])
    n = use.sum(axis=1)
    out = np.zeros((lead.shape[0], 3))
    ok = n >= 3
    if not ok.any():
        return out
    lead, idx, use, n, qrs_ptp = lead[ok], idx[ok], use[ok], n[ok], qrs_ptp[ok]
    seg = _gather(lead, np.where(use, idx - first, 0), first - last)     # (B, K, L)
    seg = seg - seg.mean(axis=2, keepdims=True)
    b, _, width = seg.shape
    per_sample = np.where(use[:, :, None], seg, np.nan).transpose(0, 2, 1).reshape(b * width, -1)
    template = padded_median(per_sample, np.repeat(n, width)).reshape(b, width)   # (B, L)
    norms = np.linalg.norm(seg, axis=2) * np.linalg.norm(template, axis=1)[:, None]
    corr = (seg @ template[:, :, None])[:, :, 0] / np.maximum(norms, 1e-12)       # (B, K)
    qrs = padded_median(np.where(use, qrs_ptp, np.nan), n)
    ptp_t = np.ptp(template, axis=1)
    out[ok] = np.stack([_masked_mean(corr, use, n),
                        np.where(qrs > 0, ptp_t / np.where(qrs > 0, qrs, 1.0), 0.0),
                        np.ones(n.size)], axis=1)
    return out


def dominant_intervals(beat_s: np.ndarray, dominant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals between consecutive dominant beats, each divided by the beats it spans.

    ``beat_s`` (B, K) ascending seconds, ``dominant`` (B, K) bool -> (B, M) seconds
    per beat, NaN-padded, and the count per row.
    """
    k = beat_s.shape[1]
    order = np.argsort(~dominant, axis=1, kind="stable")     # dominant beats first, in order
    n_dom = dominant.sum(axis=1)
    nn = np.diff(np.take_along_axis(beat_s, order, axis=1), axis=1) / np.diff(order, axis=1)
    ok = np.arange(k - 1)[None, :] < (n_dom - 1)[:, None]
    return compact(nn, ok)


def _nn_statistics(nn: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(B, M) NaN-padded intervals with m (B,) >= 3 each -> (B, 3) cv, rmssd/mean, irregular."""
    valid = ~np.isnan(nn)
    mean = _masked_mean(nn, valid, m)
    dev = np.where(valid, nn - mean[:, None], 0.0)
    std = np.sqrt((dev * dev).sum(axis=1) / m)
    d = np.diff(nn, axis=1)
    d_ok = ~np.isnan(d)
    med = padded_median(nn, m)
    rmssd = np.sqrt(_masked_mean(d * d, d_ok, m - 1))
    irregular = (d_ok & (np.abs(d) > IRREGULAR_DNN * med[:, None])).sum(axis=1) / (m - 1)
    return np.stack([std / mean, rmssd / mean, irregular], axis=1)


def dominant_rr_batch(beat_times_us: Sequence[Sequence[int]], start_time_us: Sequence[int],
                      leads: np.ndarray, fs_hz: float) -> np.ndarray:
    """B windows of one rate and length -> (B, len(DOMINANT_RR_FEATURES)) float32.

    ``beat_times_us`` B ascending device-time sequences (k_b,), ``start_time_us`` (B,),
    ``leads`` (B, n) mV of lead 0 at ``fs_hz`` from each window's start. Fewer than 4
    beats (or fewer than 3 dominant intervals / usable P segments): 0 (no evidence).
    """
    leads = np.asarray(leads, dtype=np.float64)
    out = np.tile(np.array(NO_EVIDENCE), (leads.shape[0], 1))
    counts = np.fromiter((len(t) for t in beat_times_us), np.int64, len(beat_times_us))
    todo = np.flatnonzero(counts >= 4) if leads.shape[1] >= 2 else np.zeros(0, np.int64)
    if todo.size == 0:
        return out.astype(np.float32)
    k = counts[todo]
    t = pad_rows(np.concatenate([np.asarray(beat_times_us[i], np.float64) for i in todo]), k)
    valid = ~np.isnan(t)
    start = np.asarray(start_time_us, dtype=np.float64)[todo][:, None]
    idx = np.where(valid, np.round((t - start) * fs_hz / _US), 0).astype(np.int64)
    lead = leads[todo]
    seg = qrs_segments(lead, fs_hz, idx)
    dom = dominant_beats(seg, valid)
    rr_prev = np.diff(t, axis=1, prepend=-np.inf) / _US
    p_wave = p_wave_evidence(lead, fs_hz, idx, dom & (rr_prev > P_MIN_RR_S), np.ptp(seg, axis=2))
    nn, _ = dominant_intervals(t / _US, dom)
    nn, m = compact(nn, (nn > NN_RANGE_S[0]) & (nn < NN_RANGE_S[1]))
    stats = np.zeros((todo.size, 3))
    ok = m >= 3
    if ok.any():
        stats[ok] = _nn_statistics(nn[ok], m[ok])
    out[todo] = np.concatenate([(dom.sum(axis=1) / k)[:, None], stats, p_wave], axis=1)
    return out.astype(np.float32)


def dominant_rr_features(beat_times_us: np.ndarray, start_time_us: int, lead: np.ndarray,
                         fs_hz: float) -> np.ndarray:
    """One rhythm window -> (len(DOMINANT_RR_FEATURES),) float32 (a batch of one).

    ``beat_times_us`` (k,) device times of the window's beats, ``lead`` (n,) mV of
    the window's lead 0 at ``fs_hz`` starting at ``start_time_us``.
    """
    return dominant_rr_batch([beat_times_us], [start_time_us],
                             np.asarray(lead, np.float64)[None, :], fs_hz)[0]
