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
    a, b, lo_hf, hi_hf = _bands(c.shape[1], float(fs_hz))
    spec = np.fft.rfft(c, axis=1)[:, a:b]         # the power of the bins summed, no others
    power = spec.real ** 2 + spec.imag ** 2
    total = np.add.reduce(power, axis=1)
    return np.divide(np.add.reduce(power[:, lo_hf - a:hi_hf - a], axis=1), total,
                     out=np.zeros(c.shape[0]), where=total > 0)


def _checked(raw_mv: np.ndarray, filtered_mv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw, filt = np.asarray(raw_mv), np.asarray(filtered_mv)
    if raw.shape != filt.shape or raw.ndim != 2:
        raise ValueError(f"raw {raw.shape} and filtered {filt.shape} must be equal (n_leads, n)")
    return raw, filt


def _stats(raw: np.ndarray, filt: np.ndarray) -> tuple[np.ndarray, list, list, list, list]:
    """(zero-mean filt, ptp of raw, 2nd and 4th central moments of filt, samples stuck at a
    rail) per lead, n >= 3.  Plain ufunc reductions: np.mean & co cost ~10x more per call
    on small arrays, and these run for every beat."""
    n_leads, n = raw.shape
    c = filt - np.add.reduce(filt, axis=1, keepdims=True) / n
    c2 = c * c
    m2 = (np.add.reduce(c2, axis=1) / n).tolist()
    m4 = (np.einsum("ij,ij->i", c2, c2) / n).tolist()
    hi = np.maximum.reduce(raw, axis=1, keepdims=True)
    lo = np.minimum.reduce(raw, axis=1, keepdims=True)
    rest = raw[:, 1:]
    rail = rest >= hi - SAT_TOL_MV
    rail |= rest <= lo + SAT_TOL_MV
    if max(np.add.reduce(rail, axis=1).tolist()) > SAT_FRACTION * n:
        stuck = np.abs(rest - raw[:, :-1]) <= SAT_TOL_MV   # only then can enough be stuck
        n_sat = np.add.reduce(stuck & rail, axis=1).tolist()
    else:
        n_sat = [0] * n_leads
    return c, (hi - lo)[:, 0].tolist(), m2, m4, n_sat


def lead_quality(raw_mv: np.ndarray, filtered_mv: np.ndarray, fs_hz: float,
                 spectral: bool = True) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Per-lead (flag, sqi) of one window sampled at ``fs_hz``.

    Both inputs (n_leads, n) mV; n may be 0 (→ all flat).  Vectorised over leads.
    ``spectral=False`` skips the 20-40 Hz test (kurtosis only): the cheap form used
    for every beat window, where one QRS in 0.7 s already dominates the spectrum.
    """
    raw, filt = _checked(raw_mv, filtered_mv)
    n_leads, n = raw.shape
    if n < 3:
        return ("flat",) * n_leads, (0.0,) * n_leads
    c, ptp, m2, m4, n_sat = _stats(raw, filt)
    hf = _hf_ratio(c, fs_hz).tolist() if spectral else [0.0] * n_leads
    flags, values = [], []
    for i in range(n_leads):
        flag, kurt = _flag(ptp[i], m2[i], m4[i], n_sat[i], n, hf[i])
        flags.append(flag)
        values.append(0.0 if flag in ("flat", "saturated") else
                      round(min(_ramp(kurt, 3.0, CLEAN_KURTOSIS),
                                _ramp(NOISY_HF + 0.05 - hf[i], 0.0,
                                      NOISY_HF + 0.05 - CLEAN_HF)), 4))
    return tuple(flags), tuple(values)


def _flag(ptp: float, m2: float, m4: float, n_sat: int, n: int, hf: float) -> tuple[str, float]:
    """One lead's flag from its statistics (``_stats``), and its kurtosis."""
    kurt = m4 / (m2 * m2) if m2 > 0 else 0.0
    if ptp < FLAT_PTP_MV or m2 < FLAT_STD_MV ** 2:
        return "flat", kurt
    if n_sat > SAT_FRACTION * n:
        return "saturated", kurt
    return ("noisy" if kurt < NOISY_KURTOSIS or hf > NOISY_HF else "good"), kurt


def beat_quality(raw_mv: np.ndarray, filtered_mv: np.ndarray) -> str:
    """``best_quality(lead_quality(raw, filt, fs, spectral=False)[0])``: the one label a
    beat window carries, without the SQI values it does not use (and it stops at the
    first good lead)."""
    raw, filt = _checked(raw_mv, filtered_mv)
    n_leads, n = raw.shape
    if n < 3:
        return "flat"
    _, ptp, m2, m4, n_sat = _stats(raw, filt)
    flags = []
    for i in range(n_leads):
        flag, _ = _flag(ptp[i], m2[i], m4[i], n_sat[i], n, 0.0)    # no spectral test
        if flag == "good":
            return "good"
        flags.append(flag)
    return best_quality(tuple(flags))


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at or below lo, 1 at or above hi, linear between."""
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def best_quality(flags: tuple[str, ...]) -> str:
    """One label for a multi-lead beat: the best lead decides (the detector used all)."""
    for level in QUALITY_LEVELS:
        if level in flags:
            return level
    return "flat"
