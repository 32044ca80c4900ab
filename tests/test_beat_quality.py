"""beat_quality is the label lead_quality gives a beat window, by another route."""

from __future__ import annotations

import numpy as np
import pytest

from cardiostream.quality import beat_quality, best_quality, lead_quality


def _cases():
    rng = np.random.default_rng(7)
    t = np.arange(252) / 360.0
    qrs = np.exp(-0.5 * ((t - 0.25) / 0.01) ** 2)
    for k in range(60):
        raw = np.vstack([qrs * rng.uniform(0.5, 2), qrs * rng.uniform(0.05, 1)])
        raw = raw + rng.normal(0, rng.choice([0.001, 0.05, 0.5]), raw.shape)
        if k % 5 == 1:
            raw[k % 2] = 0.3                                # flat lead
        if k % 5 == 2:
            raw = np.clip(raw, None, np.quantile(raw, 0.7))  # clipped at the rail
        if k % 5 == 3:
            raw = np.round(raw * 200) / 200                 # ADC steps
        raw = raw.astype(np.float32)
        yield raw, (raw - raw.mean(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("raw,filt", list(_cases()))
def test_beat_quality_equals_best_of_lead_flags(raw, filt):
    flags, _ = lead_quality(raw, filt, 360.0, spectral=False)
    assert beat_quality(raw, filt) == best_quality(flags)


def test_short_window_is_flat():
    assert beat_quality(np.zeros((2, 2)), np.zeros((2, 2))) == "flat"
