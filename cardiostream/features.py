"""Model inputs from windows: the ONE preparation shared by training and inference.

Training (``training/datasets.py``) and the inference worker both call
``beat_inputs`` / ``rhythm_inputs`` on the windows the stream processor emits, so
what a model sees in the ward is bit-for-bit what it saw when it was trained.
Pure numpy; ``load_model`` imports torch lazily (only the worker and the
evaluator call it).

Beat inputs
    x  (B, 2L, span) float32: filtered ``leads``, then the same leads minus
       the patient's running template (``cardiostream.beat_template``: what is
       unusual about this beat for this patient), each row minus its median, in
       units of the lead's template height (``template_scale``) and clipped to
       +-CLIP_SCALES (a saturated lead must not dominate a batch).
    rr (B, F) float32: RR timing relative to the patient's own rhythm. de Chazal
       2004 and Llamedo & Martinez 2011 show that RR normalised by the patient's
       long-term mean is what separates supraventricular beats across patients.

Rhythm inputs
    x     (B, L, T) float32: the decimated rhythm window, median removed, clipped.
    feats (B, F) float32: RR-irregularity statistics (Tateno & Glass 2001;
          Dash et al. 2009: RMSSD/mean, turning points, sample entropy; Petrenas
          2015: robust to ectopy via medians) plus rate and a spectral VF index.
          They depend on timing, not on MIT-BIH morphology, to generalise to
          other devices. Then ``rr_features.DOMINANT_RR_FEATURES`` (rhythm
          features v2): irregularity of the dominant-shape beats only (blind to
          ventricular ectopy) and P-wave consistency, the AF gate's evidence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiostream.rhythm_features import ragged_rr, rr_statistics, vf_band_fractions
from cardiostream.rr_features import DOMINANT_RR_FEATURES, dominant_rr_batch
from cardiostream.schemas import BeatWindow, RhythmWindow

# Input-preparation version per model kind, written by training/export.py into
# metadata.json and checked by load_model: changing one kind's inputs must not
# invalidate the other kind's shipped model.
BEAT_FEATURES_VERSION = 3     # 2: + the beat minus the patient's template (beat_template)
#                               3: both divided by the template's height (template_scale)
RHYTHM_FEATURES_VERSION = 2   # 2: + rr_features.DOMINANT_RR_FEATURES (the AF gate's)
FEATURES_VERSIONS: dict[str, int] = {"beat": BEAT_FEATURES_VERSION,
                                     "rhythm": RHYTHM_FEATURES_VERSION}
BEAT_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
CLIP_MV = 5.0
CLIP_SCALES = 5.0     # beat inputs: clip at 5 x the lead's template height
MIN_SCALE_MV = 0.05   # a flat template (lead off) is not blown up to full scale
_US = 1_000_000
_CHUNK = 512          # windows per vectorised step: bounds the (B, N, N) sample-entropy arrays

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
) + DOMINANT_RR_FEATURES
_N_RR, _VF, _SQI = 19, 19, 20      # columns: RR statistics, VF index, SQI; then dominant RR


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


def template_scale(templates: np.ndarray) -> np.ndarray:
    """(B, L, span) templates (mV) -> (B, L, 1) float32: each lead's template peak to
    peak, at least ``MIN_SCALE_MV``. With no beat admitted yet the template is the beat
    itself (``beat_template``), so every beat has one."""
    t = np.asarray(templates, dtype=np.float32)
    ptp = np.maximum.reduce(t, axis=-1, keepdims=True) - np.minimum.reduce(t, axis=-1,
                                                                            keepdims=True)
    return np.maximum(ptp, np.float32(MIN_SCALE_MV))


def beat_channels(samples: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """(B, L, span) beats and their templates (mV) -> the model's (B, 2L, span) float32:
    the beats, then beat minus template, each median-removed, divided by its lead's
    ``template_scale`` and clipped to +-CLIP_SCALES.

    Why divided (features v3): a beat's size in mV says more about the electrode, the
    patient's build and the device's gain than about its origin; in the patient's own
    units (their usual beat's height) a ventricular beat is still large and a device
    with another gain gives the same input (bench/bench_device_variation.py: with mV
    inputs, a gain of 0.5 lost 17 % of the model's V decisions)."""
    samples = np.asarray(samples, dtype=np.float32)
    scale = template_scale(templates)
    return np.concatenate([_scaled(samples, scale),
                           _scaled(samples - np.asarray(templates, np.float32), scale)],
                          axis=1)


def _scaled(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    s = (x - np.median(x, axis=-1, keepdims=True)) / scale
    return np.clip(s, -CLIP_SCALES, CLIP_SCALES).astype(np.float32)


def beat_inputs(windows: Sequence[BeatWindow], leads: Sequence[int] = (0,)
                ) -> tuple[np.ndarray, np.ndarray]:
    """Beat windows -> (x (B, 2L, span) float32, rr (B, F) float32)."""
    if not windows:
        raise ValueError("beat_inputs needs at least one window")
    rows = list(leads)
    x = np.stack([w.samples[rows] for w in windows])                  # (B, L, span)
    t = np.stack([w.template[rows] for w in windows])                 # (B, L, span)
    rr = beat_rr_features(*(np.array([getattr(w, k) for w in windows], dtype=np.float64)
                            for k in ("rr_prev_s", "rr_next_s", "rr_local_s", "rr_long_s")))
    return beat_channels(x, t), rr


# --------------------------------------------------------------------------- rhythm


def rr_irregularity(rr_s: np.ndarray, window_s: float) -> list[float]:
    """RR features of one window (seconds in, the first 19 of RHYTHM_FEATURES out).

    A one-window view of ``rhythm_features.rr_statistics`` (the one implementation).
    """
    rr = np.asarray(rr_s, dtype=np.float64).reshape(1, -1)
    return rr_statistics(rr if rr.size else np.full((1, 1), np.nan),
                         np.array([window_s]))[0].tolist()


def vf_band_fraction(signal: np.ndarray, fs_hz: float) -> float:
    """Share of 1-30 Hz power within 2.5-7.5 Hz of one (T,) signal: high in VF/VFL."""
    return float(vf_band_fractions(np.asarray(signal, np.float64)[None, :], fs_hz)[0])


def rhythm_features(windows: Sequence[RhythmWindow]) -> np.ndarray:
    """Rhythm windows -> (B, len(RHYTHM_FEATURES)) float32, computed for the batch at once.

    RR statistics on the NaN-padded RR matrix, the VF index per group of windows
    sharing a length and rate (normally the whole batch), the lowest SQI, then the
    dominant-beat RR and P-wave features of each window (``rr_features``).
    """
    feats = np.empty((len(windows), len(RHYTHM_FEATURES)))
    for lo in range(0, len(windows), _CHUNK):
        part = windows[lo:lo + _CHUNK]
        window_s = np.array([max((w.end_time_us - w.start_time_us) / _US, 1e-3) for w in part])
        feats[lo:lo + len(part), :_N_RR] = rr_statistics(
            ragged_rr([w.beat_times_us for w in part])[0], window_s)
        groups: dict[tuple[int, float], list[int]] = {}
        for i, w in enumerate(part):
            groups.setdefault((w.samples.shape[-1], w.fs_hz), []).append(i)
        for (_, fs_hz), idx in groups.items():
            lead0 = np.stack([part[i].samples[0] for i in idx]).astype(np.float64)
            rows = lo + np.asarray(idx)
            feats[rows, _VF] = vf_band_fractions(lead0, fs_hz)
            feats[rows, _SQI + 1:] = dominant_rr_batch(
                [part[i].beat_times_us for i in idx], [part[i].start_time_us for i in idx],
                lead0, fs_hz)
        feats[lo:lo + len(part), _SQI] = [min(w.sqi) if w.sqi else 1.0 for w in part]
    return np.nan_to_num(feats.astype(np.float32), nan=0.0, posinf=10.0)


def rhythm_window_features(w: RhythmWindow) -> np.ndarray:
    """One window -> (len(RHYTHM_FEATURES),) float32 (``rhythm_features`` of a batch of one)."""
    return rhythm_features([w])[0]


def rhythm_inputs(windows: Sequence[RhythmWindow], leads: Sequence[int] = (0,)
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rhythm windows -> (x (B, L, T) float32, feats (B, len(RHYTHM_FEATURES)) float32)."""
    if not windows:
        raise ValueError("rhythm_inputs needs at least one window")
    x = normalise_samples(np.stack([w.samples[list(leads)] for w in windows]))
    return x, rhythm_features(windows)


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
    expected = FEATURES_VERSIONS.get(kind)
    if expected is None:
        raise ModelLoadError(f"{sub}: unknown model kind {kind!r}, "
                             f"one of {sorted(FEATURES_VERSIONS)}")
    meta_path, ts_path = sub / "metadata.json", sub / "model.ts"
    if not meta_path.exists() or not ts_path.exists():
        raise ModelLoadError(f"{sub} needs model.ts and metadata.json")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != kind:
        raise ModelLoadError(f"{meta_path}: kind {meta.get('kind')!r}, expected {kind!r}")
    if meta.get("features_version", expected) != expected:
        raise ModelLoadError(f"{meta_path}: features_version {meta.get('features_version')} "
                             f"!= this code's {expected} for {kind} models")
    program = torch.jit.load(str(ts_path), map_location=device).eval()
    return LoadedModel(program, meta)


def fold_model_dir(rhythm_folder: Path, k: int) -> Path:
    """The model folder of cross-validation fold ``k`` under an exported rhythm model
    (``DIR/rhythm/folds/fold-K``, holding ``rhythm/``): written by ``training.rhythm``."""
    return Path(rhythm_folder) / "folds" / f"fold-{k}"


def load_fold_models(rhythm_folder: Path) -> dict[str, LoadedModel]:
    """record -> the fold model that was tested on it (empty when none were exported)."""
    out: dict[str, LoadedModel] = {}
    for sub in sorted((Path(rhythm_folder) / "folds").glob("fold-*")):
        model = load_model(sub, "rhythm")
        out |= {r: model for r in model.metadata["test_records"]}
    return out
