"""Augmentation for beat windows: amplitude, baseline and real electrode noise.

Noise comes from the NSTDB ``ma`` (muscle) and ``bw`` (baseline wander) records
(Moody et al. 1984), passed through the same causal filter the stream applies, so
an augmented window looks like a filtered noisy recording, not like raw noise
pasted onto a filtered beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardiostream.filters import design_sos, filter_offline
from cardiostream.records import load_record
from cardiostream.signal import SignalSpec

NOISE_RECORDS = ("ma", "bw")


def filter_like_stream(mv: np.ndarray, spec: SignalSpec) -> np.ndarray:
    """(L, n) mV at spec.fs_hz -> the stream's causal filter output, one shot."""
    return filter_offline(design_sos(spec), mv)


@dataclass
class NoiseBank:
    """Filtered noise tracks (n_tracks, n) float32 mV at the spec's sample rate."""

    tracks: np.ndarray
    amp_range: tuple[float, float] = (0.7, 1.4)
    ramp_mv: float = 0.3
    noise_prob: float = 0.5
    noise_gain: float = 0.6

    @classmethod
    def load(cls, nstdb_dir: Path, spec: SignalSpec, cache_dir: Path) -> NoiseBank:
        path = Path(cache_dir) / "datasets" / spec.spec_id / "nstdb-noise.npy"
        if path.exists():
            return cls(np.load(path))
        tracks = []
        for name in NOISE_RECORDS:
            rec = load_record(nstdb_dir, name)
            if rec.fs_hz != spec.fs_hz:
                raise ValueError(f"NSTDB {name} is {rec.fs_hz} Hz, spec wants {spec.fs_hz}")
            tracks.append(filter_like_stream(rec.millivolts(), spec))
        arr = np.concatenate(tracks).astype(np.float32)
        arr = arr[:, int(10 * spec.fs_hz):]  # drop the filter's start-up transient
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, arr)
        return cls(arr)

    def augment(self, x: np.ndarray, rng: np.random.Generator,
                templates: np.ndarray | None = None) -> np.ndarray:
        """(B, L, span) mV -> scaled, tilted and (half of them) noisy copies.

        ``templates`` (the beats' templates, same shape) are scaled in place by the same
        factor when given: a device's gain moves a beat and its patient's template
        together, so only the beat's height relative to the template carries meaning."""
        b, n_leads, span = x.shape
        scale = rng.uniform(*self.amp_range, size=(b, 1, 1))
        if templates is not None:
            templates *= scale.astype(templates.dtype)
        ramp = rng.uniform(-self.ramp_mv, self.ramp_mv, size=(b, 1, 1))
        out = x * scale + ramp * np.linspace(-0.5, 0.5, span)[None, None, :]
        track = rng.integers(0, self.tracks.shape[0], size=b)
        start = rng.integers(0, self.tracks.shape[1] - span, size=b)
        gain = rng.uniform(0, self.noise_gain, size=b) * (rng.random(b) < self.noise_prob)
        idx = start[:, None] + np.arange(span)[None, :]
        noise = self.tracks[track[:, None], idx] * gain[:, None]       # (B, span)
        return (out + noise[:, None, :]).astype(np.float32)
