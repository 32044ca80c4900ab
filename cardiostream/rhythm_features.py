"""Rhythm-window features of a whole batch at once: numpy along the window axis.

The ONE implementation of the RR-irregularity statistics and the VF band index
(``features.rhythm_inputs`` and its one-window wrappers call it, in training
and in the worker). Windows hold different numbers of beats, so their RR
series are stacked left-aligned in a NaN-padded matrix ``(B, N)`` with a count
per row, and every statistic is taken along axis 1: a comparison with NaN is
False, so padding never counts, and medians/percentiles read the sorted rows at
each row's own indices (NaN sorts last). Row b equals what the statistic gives
on window b alone (tests/test_features.py checks this against the previous
one-window code to 1e-6 on MIT-BIH windows).

References: Tateno & Glass 2001, Dash et al. 2009 (RMSSD/mean, turning points,
sample entropy), Richman & Moorman 2000 and Lake & Moorman 2011 (sample entropy
with a tolerance tied to the median RR), Petrenas 2015 (ectopy filter).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import chain

import numpy as np

_US = 1_000_000
RR_MIN_S, RR_MAX_S = 0.15, 6.0     # RRs outside are detector glitches or gaps
SAMPEN_M, SAMPEN_R_FRAC, SAMPEN_CAP = 1, 0.04, 2.5
HIST_EDGES = np.linspace(0.4, 2.0, 9)   # RR/median bins of the histogram entropy


def pad_rows(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated rows + their lengths (B,) -> (B, max(1, max count)) NaN-padded."""
    b = counts.size
    out = np.full((b, max(1, int(counts.max(initial=0)))), np.nan)
    rows = np.repeat(np.arange(b), counts)
    starts = np.cumsum(counts) - counts
    out[rows, np.arange(rows.size) - np.repeat(starts, counts)] = values
    return out


def compact(m: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``m[b, j]`` where ``keep[b, j]``, shifted left in order -> (padded, counts)."""
    return pad_rows(m[keep], keep.sum(axis=1)), keep.sum(axis=1)


def ragged_rr(beat_times_us: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Beat times per window (µs) -> (RR (B, N) s NaN-padded, counts (B,)); no filtering."""
    lens = np.fromiter((len(t) for t in beat_times_us), np.int64, len(beat_times_us))
    flat = np.fromiter(chain.from_iterable(beat_times_us), np.float64, int(lens.sum()))
    last = np.zeros(flat.size, dtype=bool)
    last[np.cumsum(lens)[lens > 0] - 1] = True          # a diff across two windows
    rr = (np.diff(flat) / _US)[~last[:-1]]
    return pad_rows(rr, np.maximum(lens - 1, 0)), np.maximum(lens - 1, 0)


def _sorted_at(s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """s[b, idx[b]] for each row, idx clamped into the row."""
    return s[np.arange(s.shape[0]), np.minimum(np.maximum(idx, 0), s.shape[1] - 1)]


def sorted_median(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Row medians of row-sorted NaN-padded (B, N) with n (B,) values each (garbage if n == 0).

    Same arithmetic as ``np.median``: the middle value, or the mean of the two.
    """
    return (_sorted_at(s, (n - 1) // 2) + _sorted_at(s, n // 2)) / 2


def padded_median(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Row medians of a NaN-padded (B, N) with n (B,) values each; NaN where n == 0."""
    return np.where(n > 0, sorted_median(np.sort(m, axis=1), n), np.nan)


def sorted_percentile(s: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(row, 100 q)`` (linear method, numpy's lerp) of each sorted padded row."""
    virtual = n * q + (1 - q) - 1                        # numpy's virtual index (alpha=beta=1)
    prev = np.floor(virtual).astype(np.int64)
    gamma = virtual - prev
    a, b = _sorted_at(s, prev), _sorted_at(s, np.minimum(prev + 1, n - 1))
    return np.where(gamma >= 0.5, b - (b - a) * (1 - gamma), a + (b - a) * gamma)


def _row_mean(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(m), 0.0, m).sum(axis=1) / n


def _row_std(m: np.ndarray, n: np.ndarray, mean: np.ndarray) -> np.ndarray:
    dev = np.where(np.isnan(m), 0.0, m - mean[:, None])
    return np.sqrt((dev * dev).sum(axis=1) / n)


def _frac(mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    return mask.sum(axis=1) / n


@lru_cache(maxsize=128)
def _upper(width: int) -> np.ndarray:
    """(width, width) True strictly above the diagonal: each template pair once."""
    return np.triu(np.ones((width, width), bool), 1)


def sample_entropy(rr: np.ndarray, n: np.ndarray, med: np.ndarray) -> np.ndarray:
    """SampEn (m=1) of each padded RR row, tolerance 0.04 x median RR; (B,).

    A tolerance tied to the median RR (not the series' own std, tiny in sinus
    rhythm) keeps regular rhythms near 0 and AF high. Counts the template pairs
    i < j < n-1 within r (length 1) and those whose next RRs match too
    (length 2); "no repeat" is capped at 2.5, fewer than 4 RRs give 0.
    """
    width = rr.shape[1]
    r = (SAMPEN_R_FRAC * med)[:, None, None]
    close = np.abs(rr[:, :, None] - rr[:, None, :]) <= r      # (B, N, N); NaN -> False
    valid = np.arange(width)[None, :] < (n - SAMPEN_M)[:, None]
    pairs = close & valid[:, :, None] & valid[:, None, :] & _upper(width)
    b = pairs.sum(axis=(1, 2))
    nxt = np.zeros_like(close)
    nxt[:, :-1, :-1] = close[:, 1:, 1:]
    a = (pairs & nxt).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.minimum(-np.log(a / b), SAMPEN_CAP)
    se = np.where((a == 0) | (b == 0), SAMPEN_CAP, se)
    return np.where(n < SAMPEN_M + 3, 0.0, se)


def _hist_entropy(rel: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of RR/median in HIST_EDGES' 8 bins, as ``np.histogram``."""
    k = HIST_EDGES.size - 1
    inside = (rel >= HIST_EDGES[0]) & (rel <= HIST_EDGES[-1])
    bins = np.minimum(np.searchsorted(HIST_EDGES, rel[inside], "right") - 1, k - 1)
    rows = np.nonzero(inside)[0]
    counts = np.bincount(rows * k + bins, minlength=rel.shape[0] * k).reshape(-1, k)
    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return -(p * np.log(np.where(counts > 0, p, 1.0))).sum(axis=1)


def _clean_rr_stats(rr: np.ndarray, n: np.ndarray, med: np.ndarray) -> list[np.ndarray]:
    """CV and RMSSD/mean after dropping premature+compensatory RR pairs, + ectopic pair share.

    A PVC or PAC makes a short RR followed by a long one; sinus rhythm with ectopy
    is regular once those pairs are removed, AF is not (after Petrenas 2015).
    """
    ectopic = (rr[:, :-1] < 0.85 * med[:, None]) & (rr[:, 1:] > 1.1 * med[:, None])
    drop = np.zeros(rr.shape, dtype=bool)
    drop[:, :-1] |= ectopic
    drop[:, 1:] |= ectopic
    clean, nc = compact(rr, ~np.isnan(rr) & ~drop)
    mean = _row_mean(clean, nc)
    d = np.diff(clean, axis=1)
    cv = _row_std(clean, nc, mean) / mean
    rmssd = np.sqrt(_row_mean(d * d, nc - 1)) / mean if d.shape[1] else np.zeros(rr.shape[0])
    few = nc < 3
    return [np.where(few, 0.0, cv), np.where(few, 0.0, rmssd), ectopic.sum(axis=1) / (n - 1)]


def rr_statistics(rr_raw: np.ndarray, window_s: np.ndarray) -> np.ndarray:
    """Padded raw RR (B, N) s + window lengths (B,) s -> (B, 19): RHYTHM_FEATURES[:19].

    ``frac_near_median`` and ``iqr_over_median`` are robust to isolated ectopics:
    sinus rhythm with PVCs keeps most RRs near the median, AF spreads them all.
    """
    rr, n = compact(rr_raw, (rr_raw > RR_MIN_S) & (rr_raw < RR_MAX_S))
    if rr.shape[1] < 3:                 # no row has 3 RRs: keep the diffs' shapes valid
        rr = np.pad(rr, ((0, 0), (0, 3 - rr.shape[1])), constant_values=np.nan)
    s = np.sort(rr, axis=1)             # NaN last: row b's values are s[b, :n[b]]
    with np.errstate(divide="ignore", invalid="ignore"):
        full = _full_statistics(rr, s, n, window_s)
    few = np.zeros_like(full)           # fewer than 3 RRs: rate and extremes only
    few[:, 0] = full[:, 0]
    few[:, [1, 2, 10]] = np.where(n > 0, full[:, 10], window_s)[:, None]
    few[:, 11] = np.where(n > 0, full[:, 11], window_s)
    few[:, 14] = 1.0
    return np.where((n < 3)[:, None], few, full)


def _full_statistics(rr: np.ndarray, s: np.ndarray, n: np.ndarray,
                     window_s: np.ndarray) -> np.ndarray:
    med = sorted_median(s, n)
    mean = _row_mean(rr, n)
    d = np.diff(rr, axis=1)                               # (B, N-1), NaN past n-1
    ad = np.abs(d)
    tp = np.sum(d[:, :-1] * d[:, 1:] < 0, axis=1) / np.maximum(n - 2, 1)
    mad = padded_median(np.abs(d - padded_median(d, n - 1)[:, None]), n - 1)
    short_long = _frac((rr[:, :-1] < 0.85 * med[:, None]) & (rr[:, 1:] > 1.15 * med[:, None]),
                       n - 1)
    iqr = sorted_percentile(s, n, 0.75) - sorted_percentile(s, n, 0.25)
    rel = rr / med[:, None]
    cols = [n * 10.0 / window_s, mean, med, _row_std(rr, n, mean) / mean,
            np.sqrt(_row_mean(d * d, n - 1)) / mean, _frac(ad > 0.05, n - 1), mad / med, tp,
            sample_entropy(rr, n, med), _hist_entropy(rel), _sorted_at(s, n - 1), s[:, 0],
            short_long, _frac(ad > 0.15 * med[:, None], n - 1),
            _frac(np.abs(rel - 1) < 0.08, n), iqr / med, *_clean_rr_stats(rr, n, med)]
    return np.stack(cols, axis=1)


@lru_cache(maxsize=16)
def _vf_plan(n_samples: int, fs_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hann taper and the 1-30 Hz / 2.5-7.5 Hz rfft bin masks for one window shape."""
    f = np.fft.rfftfreq(n_samples, 1.0 / fs_hz)
    return np.hanning(n_samples), (f >= 1.0) & (f <= 30.0), (f >= 2.5) & (f <= 7.5)


def vf_band_fractions(lead0: np.ndarray, fs_hz: float) -> np.ndarray:
    """(B, T) mV at fs_hz -> (B,) share of 1-30 Hz power within 2.5-7.5 Hz (high in VF/VFL)."""
    taper, wide, band = _vf_plan(lead0.shape[1], float(fs_hz))
    s = lead0 - lead0.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(s * taper, axis=1)) ** 2
    total, inside = spec[:, wide].sum(axis=1), spec[:, band].sum(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)
