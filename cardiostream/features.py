"""Model inputs from windows: the ONE preparation shared by training and inference.

Training (``training/datasets.py``) and the inference worker both call
``beat_inputs`` / ``rhythm_inputs`` on the windows the stream processor emits, so
what a model sees in the ward is bit-for-bit what it saw when it was trained.
Pure numpy; ``load_model`` imports torch lazily (only the worker and the
evaluator call it).

Beat inputs
    x  (B, L, span) float32: filtered mV of ``leads`` minus the window median,
       clipped to +-CLIP_MV (a saturated lead must not dominate a batch).
    rr (B, F) float32: RR timing relative to the patient's own rhythm. de Chazal
       2004 and Llamedo & Martinez 2011 show that RR normalised by the patient's
       long-term mean is what separates supraventricular beats across patients.

Rhythm inputs
    x     (B, L, T) float32: the decimated rhythm window, median removed, clipped.
    feats (B, F) float32: RR-irregularity statistics (Tateno & Glass 2001;
          Dash et al. 2009: RMSSD/mean, turning points, sample entropy; Petrenas
          2015: robust to ectopy via medians) plus rate and a spectral VF index.
          They depend on timing, not on MIT-BIH morphology, to generalise to
          other devices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiostream.schemas import BeatWindow, RhythmWindow

FEATURES_VERSION = 1
BEAT_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
CLIP_MV = 5.0
_US = 1_000_000

BEAT_RR_FEATURES: tuple[str, ...] = (
    "rr_prev_over_long", "rr_next_over_long", "rr_local_over_long",
    "rr_prev_over_local", "rr_next_over_prev", "rr_prev_s", "rr_long_s",
)

RHYTHM_FEATURES: tuple[str, ...] = (
    "n_beats_per_10s", "mean_rr_s", "median_rr_s", "cv_rr", "rmssd_over_mean",
    "pnn50", "mad_dRR_over_median", "turning_point_ratio", "sample_entropy",
    "hist_entropy", "max_rr_s", "min_rr_s", "frac_short_long", "irregular_dRR_frac",
    "frac_near_median", "iqr_over_median", "clean_cv", "clean_rmssd_over_mean",
    "ectopic_pair_frac", "vf_band_power_frac", "sqi_min",
)


class ModelLoadError(RuntimeError):
    """A model folder that is missing files or does not match this code."""


def _fallback(value: np.ndarray, *alternatives: np.ndarray) -> np.ndarray:
    """Replace non-finite or non-positive seconds by the first usable alternative."""
    out = np.asarray(value, dtype=np.float64).copy()
    for alt in alternatives:
        bad = ~np.isfinite(out) | (out <= 0)
        out[bad] = np.asarray(alt, dtype=np.float64)[bad]
    bad = ~np.isfinite(out) | (out <= 0)
    out[bad] = 0.8  # 75 bpm: only when the stream has no RR at all yet
    return out


def beat_rr_features(rr_prev: np.ndarray, rr_next: np.ndarray, rr_local: np.ndarray,
                     rr_long: np.ndarray) -> np.ndarray:
    """(B,) seconds each -> (B, len(BEAT_RR_FEATURES)) float32, ratios clipped to [0, 4]."""
    long_ = _fallback(rr_long, rr_local, rr_prev, rr_next)
    local = _fallback(rr_local, long_)
    prev = _fallback(rr_prev, local)
    nxt = _fallback(rr_next, local)
    feats = np.stack([prev / long_, nxt / long_, local / long_, prev / local, nxt / prev,
                      prev, long_], axis=1)
    return np.clip(feats, 0.0, 4.0).astype(np.float32)


def normalise_samples(samples: np.ndarray) -> np.ndarray:
    """(..., L, T) mV -> median-removed, clipped float32 (same shape)."""
    s = np.asarray(samples, dtype=np.float32)
    s = s - np.median(s, axis=-1, keepdims=True)
    return np.clip(s, -CLIP_MV, CLIP_MV).astype(np.float32)


def beat_inputs(windows: Sequence[BeatWindow], leads: Sequence[int] = (0,)
                ) -> tuple[np.ndarray, np.ndarray]:
    """Beat windows -> (x (B, L, span) float32, rr (B, F) float32)."""
    if not windows:
        raise ValueError("beat_inputs needs at least one window")
    x = np.stack([w.samples[list(leads)] for w in windows])          # (B, L, span)
    rr = beat_rr_features(*(np.array([getattr(w, k) for w in windows], dtype=np.float64)
                            for k in ("rr_prev_s", "rr_next_s", "rr_local_s", "rr_long_s")))
    return normalise_samples(x), rr


# --------------------------------------------------------------------------- rhythm


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
    window_s = (w.end_time_us - w.start_time_us) / _US
    rr = np.diff(np.asarray(w.beat_times_us, dtype=np.float64)) / _US
    lead0 = np.asarray(w.samples[0], dtype=np.float64)
    sqi = min(w.sqi) if w.sqi else 1.0
    feats = rr_irregularity(rr, max(window_s, 1e-3)) + [vf_band_fraction(lead0, w.fs_hz), sqi]
    return np.nan_to_num(np.asarray(feats, dtype=np.float32), nan=0.0, posinf=10.0)


def rhythm_inputs(windows: Sequence[RhythmWindow], leads: Sequence[int] = (0,)
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rhythm windows -> (x (B, L, T) float32, feats (B, len(RHYTHM_FEATURES)) float32)."""
    if not windows:
        raise ValueError("rhythm_inputs needs at least one window")
    x = normalise_samples(np.stack([w.samples[list(leads)] for w in windows]))
    feats = np.stack([rhythm_window_features(w) for w in windows])
    return x, feats


@dataclass(frozen=True, slots=True)
class RateRules:
    """Explicit rate rules layered on the rhythm model (thresholds in bpm / s)."""

    brady_bpm: float = 50.0
    tachy_bpm: float = 120.0
    pause_s: float = 2.5

    def apply(self, label: str, feats: np.ndarray) -> str:
        """Model label + window features -> final rhythm code (PAUSE, SBR, TACHY win over N)."""
        i = RHYTHM_FEATURES.index
        if feats[i("max_rr_s")] >= self.pause_s:
            return "PAUSE"
        if label != "N":
            return label
        bpm = 60.0 / max(float(feats[i("median_rr_s")]), 1e-3)
        if bpm < self.brady_bpm:
            return "SBR"
        if bpm > self.tachy_bpm:
            return "TACHY"
        return label


# --------------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class LoadedModel:
    """A TorchScript program and its metadata.json (kind, classes, spec_id, ...)."""

    program: Any
    metadata: dict[str, Any]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["classes"])

    @property
    def leads(self) -> tuple[int, ...]:
        return tuple(self.metadata.get("leads_used", [0]))


def load_model(folder: Path, kind: str, device: str = "cpu") -> LoadedModel:
    """Load DIR/<kind>/model.ts + metadata.json without importing ``training``."""
    import torch

    sub = Path(folder) / kind
    meta_path, ts_path = sub / "metadata.json", sub / "model.ts"
    if not meta_path.exists() or not ts_path.exists():
        raise ModelLoadError(f"{sub} needs model.ts and metadata.json")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != kind:
        raise ModelLoadError(f"{meta_path}: kind {meta.get('kind')!r}, expected {kind!r}")
    if meta.get("features_version", FEATURES_VERSION) != FEATURES_VERSION:
        raise ModelLoadError(f"{meta_path}: features_version {meta.get('features_version')} "
                             f"!= this code's {FEATURES_VERSION}")
    program = torch.jit.load(str(ts_path), map_location=device).eval()
    return LoadedModel(program, meta)
