"""Signal quality per lead: lead-off / flat line, saturation, noise → flag + SQI in 0..1.

Computed on a window's own samples (a 10 s rhythm window or a beat window), so
the result does not depend on how the stream was chunked.

* flat (lead off, disconnected, asystole with a dead lead): the raw signal's
  peak-to-peak stays below ``FLAT_PTP_MV`` or the filtered signal's spread is
  below ``FLAT_STD_MV``.  SQI 0.
* saturated (ADC rail, amplifier clipping): more than ``SAT_FRACTION`` of the
  samples sit exactly at the window's max or min with a zero step.  SQI 0.
* noisy: kurtosis of the filtered signal below ``NOISY_KURTOSIS``.  ECG is
  peaky (QRS complexes; kurtosis typically 8-30 over 10 s) while muscle noise
  and motion artefact are near-Gaussian (3).  Li, Mark & Clifford 2008,
  "Robust heart rate estimation ... signal quality indices" (kSQI).
  SQI grows linearly from 0 at kurtosis 3 to 1 at ``CLEAN_KURTOSIS``.
  Muscle noise can be bursty (high kurtosis), so a lead is noisy too when more
  than ``NOISY_HF`` of its 1-40 Hz power lies in 20-40 Hz (clean ECG: < 0.25,
  MIT-BIH NSTDB "ma" noise: 0.45-0.75); the SQI takes the lower of the two.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FLAT_PTP_MV = 0.02
FLAT_STD_MV = 0.005
SAT_FRACTION = 0.10
SAT_TOL_MV = 1e-6
NOISY_KURTOSIS = 5.0
NOISY_HF = 0.40
CLEAN_HF = 0.25
CLEAN_KURTOSIS = 8.0
QUALITY_LEVELS = ("good", "noisy", "flat", "saturated")


@lru_cache(maxsize=64)
def _bands(n: int, fs_hz: float) -> tuple[int, int, int, int]:
    """rfft bin ranges [a, b) of 1-40 Hz and [c, d) of 20-40 Hz for n samples."""
    f = np.fft.rfftfreq(n, 1.0 / fs_hz)
    idx = lambda lo, hi: (int(np.searchsorted(f, lo)), int(np.searchsorted(f, hi, "right")))  # noqa: E731
    return (*idx(1.0, 40.0), *idx(20.0, 40.0))


def _hf_ratio(c: np.ndarray, fs_hz: float) -> np.ndarray:
    """Fraction of each zero-mean row's 1-40 Hz power that lies in 20-40 Hz."""
    spec = np.fft.rfft(c, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    a, b, lo_hf, hi_hf = _bands(c.shape[1], float(fs_hz))
    total = power[:, a:b].sum(axis=1)
    return np.divide(power[:, lo_hf:hi_hf].sum(axis=1), total, out=np.zeros(c.shape[0]),
                     where=total > 0)


def lead_quality(raw_mv: np.ndarray, filtered_mv: np.ndarray, fs_hz: float,
                 spectral: bool = True) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Per-lead (flag, sqi) of one window sampled at ``fs_hz``.

    Both inputs (n_leads, n) mV; n may be 0 (→ all flat).  Vectorised over leads.
    ``spectral=False`` skips the 20-40 Hz test (kurtosis only): the cheap form used
    for every beat window, where one QRS in 0.7 s already dominates the spectrum.
    """
    raw, filt = np.asarray(raw_mv), np.asarray(filtered_mv)
    if raw.shape != filt.shape or raw.ndim != 2:
        raise ValueError(f"raw {raw.shape} and filtered {filt.shape} must be equal (n_leads, n)")
    n_leads, n = raw.shape
    if n < 3:
        return ("flat",) * n_leads, (0.0,) * n_leads
    # plain ufunc reductions: np.mean & co cost ~10x more per call on small arrays
    c = filt - (np.add.reduce(filt, axis=1) / n)[:, None]
    c2 = c * c
    m2 = (np.add.reduce(c2, axis=1) / n).tolist()
    m4 = (np.einsum("ij,ij->i", c2, c2) / n).tolist()
    hi, lo = np.maximum.reduce(raw, axis=1), np.minimum.reduce(raw, axis=1)
    rest = raw[:, 1:]
    rail = (rest >= (hi - SAT_TOL_MV)[:, None]) | (rest <= (lo + SAT_TOL_MV)[:, None])
    n_rail = np.add.reduce(rail, axis=1)
    if (n_rail > SAT_FRACTION * n).any():      # only then can enough samples be stuck there
        stuck = np.abs(rest - raw[:, :-1]) <= SAT_TOL_MV
        n_sat = np.add.reduce(stuck & rail, axis=1).tolist()
    else:
        n_sat = [0] * n_leads
    hf = _hf_ratio(c, fs_hz).tolist() if spectral else [0.0] * n_leads
    ptp = (hi - lo).tolist()
    flags, values = [], []
    for i in range(n_leads):
        kurt = m4[i] / (m2[i] * m2[i]) if m2[i] > 0 else 0.0
        if ptp[i] < FLAT_PTP_MV or m2[i] < FLAT_STD_MV ** 2:
            flags.append("flat"), values.append(0.0)
        elif n_sat[i] > SAT_FRACTION * n:
            flags.append("saturated"), values.append(0.0)
        else:
            noisy = kurt < NOISY_KURTOSIS or hf[i] > NOISY_HF
            flags.append("noisy" if noisy else "good")
            values.append(round(min(_ramp(kurt, 3.0, CLEAN_KURTOSIS),
                                    _ramp(NOISY_HF + 0.05 - hf[i], 0.0,
                                          NOISY_HF + 0.05 - CLEAN_HF)), 4))
    return tuple(flags), tuple(values)


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at or below lo, 1 at or above hi, linear between."""
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def best_quality(flags: tuple[str, ...]) -> str:
    """One label for a multi-lead beat: the best lead decides (the detector used all)."""
    for level in QUALITY_LEVELS:
        if level in flags:
            return level
    return "flat"
