"""Signal quality flags on windows with known defects."""

from __future__ import annotations

import numpy as np
import pytest

from cardiostream.filters import design_sos, filter_offline
from cardiostream.quality import best_quality, lead_quality
from cardiostream.signal import DEFAULT_SPEC
from tests.dsp_synth import rr_series, synth_ecg

FS = DEFAULT_SPEC.fs_hz
SOS = design_sos(DEFAULT_SPEC)


def q(raw: np.ndarray):
    return lead_quality(raw, filter_offline(SOS, raw), FS)


def clean(n_s: float = 10.0) -> np.ndarray:
    truth = rr_series(100, [0.8] * int(n_s / 0.8))
    return synth_ecg(truth, int(n_s * FS))


def test_clean_ecg_is_good_with_high_sqi():
    flags, sqi = q(clean())
    assert flags == ("good", "good") and min(sqi) > 0.8


def test_flat_lead_is_flagged_and_the_other_is_not():
    x = clean()
    x[1] = 0.42                                   # lead off: amplifier holds a constant
    flags, sqi = q(x)
    assert flags == ("good", "flat") and sqi[1] == 0.0


def test_saturated_lead():
    x = clean()
    x[0] = np.clip(x[0] * 4, -10, 2.0)            # rail at 2 mV for every QRS and more
    x[0, 1000:2000] = 2.0
    flags, _ = q(x)
    assert flags[0] == "saturated"


def test_gaussian_noise_and_muscle_like_noise_are_noisy():
    rng = np.random.default_rng(0)
    white = rng.normal(0, 0.3, (2, int(10 * FS)))
    assert q(white)[0] == ("noisy", "noisy")
    assert max(q(white)[1]) < 0.3


def test_nstdb_muscle_artifact_record_is_mostly_noisy(data_dir):
    from cardiostream.records import load_record

    rec = load_record(data_dir / "nstdb", "ma", sampto=int(300 * FS))
    x = rec.millivolts()
    flags = [q(x[:, s:s + int(10 * FS)])[0] for s in range(0, x.shape[1] - 3600, 3600)]
    noisy = np.mean([f.count("noisy") / 2 for f in flags])
    assert noisy > 0.7


@pytest.mark.parametrize("n", [0, 1, 2])
def test_empty_and_tiny_windows_are_flat(n):
    flags, sqi = lead_quality(np.zeros((2, n)), np.zeros((2, n)), FS)
    assert flags == ("flat", "flat") and sqi == (0.0, 0.0)


def test_best_quality_prefers_the_usable_lead():
    assert best_quality(("flat", "good")) == "good"
    assert best_quality(("saturated", "noisy")) == "noisy"
