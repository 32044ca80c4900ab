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


def _kurtosis(x: np.ndarray) -> np.ndarray:
    """Pearson kurtosis per row (3 for a Gaussian); 0 where the row is constant."""
    c = x - x.mean(axis=1, keepdims=True)
    m2 = (c * c).mean(axis=1)
    m4 = (c ** 4).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(m2 > 0, m4 / (m2 * m2), 0.0)
    return k


def _hf_ratio(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Fraction of each row's 1-40 Hz power that lies in 20-40 Hz."""
    p = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1.0 / fs_hz)
    total = p[:, (f >= 1.0) & (f <= 40.0)].sum(axis=1)
    hf = p[:, (f >= 20.0) & (f <= 40.0)].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, hf / total, 0.0)


def _saturated(raw: np.ndarray) -> np.ndarray:
    hi = raw.max(axis=1, keepdims=True)
    lo = raw.min(axis=1, keepdims=True)
    stuck = np.zeros(raw.shape, dtype=bool)
    stuck[:, 1:] = np.abs(np.diff(raw, axis=1)) <= SAT_TOL_MV
    at_rail = (np.abs(raw - hi) <= SAT_TOL_MV) | (np.abs(raw - lo) <= SAT_TOL_MV)
    return (stuck & at_rail).mean(axis=1) > SAT_FRACTION


def lead_quality(raw_mv: np.ndarray, filtered_mv: np.ndarray, fs_hz: float
                 ) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Per-lead (flag, sqi) of one window sampled at ``fs_hz``.

    Both inputs (n_leads, n) mV; n may be 0 (→ all flat).
    """
    raw = np.asarray(raw_mv, dtype=np.float64)
    filt = np.asarray(filtered_mv, dtype=np.float64)
    if raw.shape != filt.shape or raw.ndim != 2:
        raise ValueError(f"raw {raw.shape} and filtered {filt.shape} must be equal (n_leads, n)")
    n_leads, n = raw.shape
    if n < 3:
        return ("flat",) * n_leads, (0.0,) * n_leads
    flat = (np.ptp(raw, axis=1) < FLAT_PTP_MV) | (filt.std(axis=1) < FLAT_STD_MV)
    sat = _saturated(raw) & ~flat
    kurt = _kurtosis(filt)
    hf = _hf_ratio(filt, fs_hz)
    sqi = np.minimum(np.clip((kurt - 3.0) / (CLEAN_KURTOSIS - 3.0), 0.0, 1.0),
                     np.clip((NOISY_HF + 0.05 - hf) / (NOISY_HF + 0.05 - CLEAN_HF), 0.0, 1.0))
    flags, values = [], []
    for i in range(n_leads):
        if flat[i]:
            flags.append("flat"), values.append(0.0)
        elif sat[i]:
            flags.append("saturated"), values.append(0.0)
        else:
            noisy = kurt[i] < NOISY_KURTOSIS or hf[i] > NOISY_HF
            flags.append("noisy" if noisy else "good")
            values.append(round(float(sqi[i]), 4))
    return tuple(flags), tuple(values)


def best_quality(flags: tuple[str, ...]) -> str:
    """One label for a multi-lead beat: the best lead decides (the detector used all)."""
    for level in QUALITY_LEVELS:
        if level in flags:
            return level
    return "flat"
