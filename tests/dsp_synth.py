"""Synthetic ECG for DSP tests: beats at known sample positions (the independent oracle)."""

from __future__ import annotations

import numpy as np


def beat_shape(fs: float) -> tuple[np.ndarray, int]:
    """One PQRST complex (mV) and the index of its R peak within it."""
    t = np.arange(round(-0.25 * fs), round(0.45 * fs)) / fs
    g = lambda mu, sd, a: a * np.exp(-0.5 * ((t - mu) / sd) ** 2)  # noqa: E731
    wave = (g(-0.17, 0.025, 0.12) + g(-0.025, 0.008, -0.15) + g(0.0, 0.010, 1.4)
            + g(0.028, 0.009, -0.3) + g(0.27, 0.05, 0.3))
    return wave, int(np.argmin(np.abs(t)))


def synth_ecg(r_samples: list[int] | np.ndarray, n: int, fs: float = 360.0, n_leads: int = 2,
              noise_mv: float = 0.01, seed: int = 0, offset_mv: float = 0.3) -> np.ndarray:
    """(n_leads, n) mV: a beat at each R sample, lead 2 at 60 % amplitude, white noise."""
    wave, r0 = beat_shape(fs)
    x = np.zeros(n)
    for r in r_samples:
        lo = r - r0
        a, b = max(0, lo), min(n, lo + wave.size)
        if a < b:
            x[a:b] += wave[a - lo:b - lo]
    leads = np.vstack([x * (1.0 - 0.4 * i) for i in range(n_leads)])
    rng = np.random.default_rng(seed)
    return leads + offset_mv + rng.normal(0, noise_mv, leads.shape)


def rr_series(start: int, rr_s: list[float], fs: float = 360.0) -> np.ndarray:
    """R samples: ``start`` then successive RR intervals (seconds)."""
    return start + np.round(np.concatenate([[0.0], np.cumsum(rr_s)]) * fs).astype(int)
