"""cardiostream.features: the input preparation shared by training and inference."""

from __future__ import annotations

import numpy as np
import pytest

from cardiostream.features import (
    BEAT_FEATURES_VERSION,
    BEAT_RR_FEATURES,
    CLIP_SCALES,
    FEATURES_VERSIONS,
    MIN_SCALE_MV,
    RHYTHM_FEATURES,
    RHYTHM_FEATURES_VERSION,
    ModelLoadError,
    RateRules,
    beat_inputs,
    beat_rr_features,
    load_model,
    rhythm_features,
    rhythm_inputs,
    rr_irregularity,
    template_scale,
    vf_band_fraction,
)
from cardiostream.processing import process_record
from cardiostream.records import load_record
from cardiostream.schemas import BeatWindow, RhythmWindow
from cardiostream.signal import DEFAULT_SPEC
from tests import features_oracle as oracle

_US = 1_000_000


def _beat(samples: np.ndarray, prev=0.8, nxt=0.8, local=0.8, long_=0.8,
          template: np.ndarray | None = None) -> BeatWindow:
    template = np.zeros_like(samples) if template is None else template
    return BeatWindow("d1", "ward-1", "spec-x", 0, 1, 10 * _US, 10 * _US, prev, nxt, local,
                      long_, "good", samples.astype(np.float32), template.astype(np.float32))


def _rhythm(beat_times_s: np.ndarray, samples: np.ndarray | None = None,
            fs: float = 120.0) -> RhythmWindow:
    x = np.zeros((1, int(10 * fs)), np.float32) if samples is None else samples
    return RhythmWindow("d1", "ward-1", "spec-x", 0, 0, 0, 10 * _US, 10 * _US, fs,
                        tuple(int(t * _US) for t in beat_times_s), ("good",), (1.0,), x)


def _feat(feats: np.ndarray, name: str) -> float:
    return float(feats[RHYTHM_FEATURES.index(name)])


def test_rr_features_are_relative_to_the_patients_long_term_rr():
    # A premature beat at 60% of the patient's usual RR, whatever the patient's rate.
    for long_ in (0.6, 1.2):
        f = beat_rr_features(np.array([0.6 * long_]), np.array([1.3 * long_]),
                             np.array([long_]), np.array([long_]))[0]
        assert f.shape == (len(BEAT_RR_FEATURES),) and f.dtype == np.float32
        assert f[0] == pytest.approx(0.6) and f[1] == pytest.approx(1.3)
        assert f[3] == pytest.approx(0.6) and f[4] == pytest.approx(1.3 / 0.6, rel=1e-5)


def test_rr_features_fall_back_when_the_stream_has_no_history():
    f = beat_rr_features(np.array([np.nan]), np.array([0.0]), np.array([0.9]),
                         np.array([np.nan]))[0]
    assert np.isfinite(f).all()
    assert f[0] == pytest.approx(1.0) and f[1] == pytest.approx(1.0)


def test_beat_inputs_remove_the_median_scale_by_the_template_and_clip():
    span = 252
    template = np.zeros((2, span))
    template[:, 90] = 2.0                # the patient's usual beat: 2 mV high
    s = np.full((2, span), 3.0)
    s[0, 100] = 30.0                     # a saturated spike on lead 0: 13.5 template heights
    s[0, 120] = 5.0                      # 1 template height above the median
    x, rr = beat_inputs([_beat(s, template=template), _beat(s * 0, template=template)],
                        leads=(0,))
    assert x.shape == (2, 2, span) and x.dtype == np.float32
    assert rr.shape == (2, len(BEAT_RR_FEATURES))
    assert np.median(x[0, 0]) == 0.0 and x[0, 0, 120] == pytest.approx(1.0)
    assert x[0, 0, 100] == pytest.approx(CLIP_SCALES)


def test_beat_inputs_do_not_depend_on_the_device_gain():
    """Beat and template scale together with the gain, so the inputs do not move (a gain
    of 0.5 had cost 17 % of the V decisions with mV inputs); a flat template is floored
    at MIN_SCALE_MV instead of amplifying a lead that is off."""
    rng = np.random.default_rng(3)
    s, t = rng.standard_normal((2, 252)), rng.standard_normal((2, 252))
    for gain in (0.5, 2.0, 0.3):
        a, _ = beat_inputs([_beat(s, template=t)], leads=(0, 1))
        b, _ = beat_inputs([_beat(s * gain, template=t * gain)], leads=(0, 1))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(template_scale(np.zeros((1, 2, 252))), np.float32(MIN_SCALE_MV))


def test_beat_inputs_second_channel_is_the_beat_minus_its_template():
    """What differs from the patient's own beat: a beat equal to its template gives a
    flat second channel, a bump the template lacks shows up there alone."""
    span = 252
    template = np.zeros((2, span))
    template[:, 90] = 1.0                                 # the patient's usual R wave
    same, odd = template.copy(), template.copy()
    odd[0, 40:50] += 0.3                                  # e.g. an abnormal P wave
    x, _ = beat_inputs([_beat(same, template=template), _beat(odd, template=template)],
                       leads=(0,))
    assert x.shape == (2, 2, span)
    np.testing.assert_array_equal(x[0, 1], 0.0)
    assert x[1, 1, 40:50] == pytest.approx(np.full(10, 0.3))
    assert np.abs(x[1, 1, 50:]).max() == 0.0 and np.abs(x[1, 1, :40]).max() == 0.0
    assert x[1, 0, 90] == pytest.approx(1.0)


def test_rr_irregularity_against_hand_computed_values():
    rr = np.array([0.8, 0.9, 0.7, 0.8])
    f = dict(zip(RHYTHM_FEATURES, rr_irregularity(rr, 10.0), strict=False))
    d = np.array([0.1, -0.2, 0.1])
    assert f["mean_rr_s"] == pytest.approx(0.8)
    assert f["rmssd_over_mean"] == pytest.approx(np.sqrt(np.mean(d ** 2)) / 0.8)
    assert f["pnn50"] == pytest.approx(1.0)            # every |dRR| > 50 ms
    assert f["turning_point_ratio"] == pytest.approx(1.0)


def test_irregular_rhythm_scores_higher_than_sinus_with_one_ectopic():
    rng = np.random.default_rng(0)
    af = np.cumsum(rng.uniform(0.4, 1.2, 14))
    sinus = np.cumsum(np.r_[[0.8] * 5, 0.5, 1.1, [0.8] * 6])  # one PVC + compensatory pause
    _, fa = rhythm_inputs([_rhythm(af[af < 10])])
    _, fs = rhythm_inputs([_rhythm(sinus[sinus < 10])])
    assert fa.shape == (1, len(RHYTHM_FEATURES))
    assert _feat(fa[0], "frac_near_median") < _feat(fs[0], "frac_near_median")
    assert _feat(fa[0], "iqr_over_median") > _feat(fs[0], "iqr_over_median")


def test_vf_band_fraction_separates_a_5hz_wave_from_slow_baseline():
    fs = 120.0
    t = np.arange(1200) / fs
    assert vf_band_fraction(np.sin(2 * np.pi * 5 * t), fs) > 0.9
    assert vf_band_fraction(np.sin(2 * np.pi * 1.2 * t), fs) < 0.1


def test_rate_rules_are_explicit():
    rules = RateRules(brady_bpm=50, tachy_bpm=120, pause_s=2.5)
    i = RHYTHM_FEATURES.index

    def feats(median_rr: float, max_rr: float) -> np.ndarray:
        f = np.zeros(len(RHYTHM_FEATURES), np.float32)
        f[i("median_rr_s")], f[i("max_rr_s")] = median_rr, max_rr
        return f

    assert rules.apply("N", feats(0.8, 3.0)) == "PAUSE"
    assert rules.apply("N", feats(1.5, 1.6)) == "SBR"
    assert rules.apply("N", feats(0.4, 0.45)) == "TACHY"
    assert rules.apply("AFIB", feats(0.4, 0.6)) == "AFIB"     # rate never hides AF
    assert rules.apply("N", feats(0.8, 0.9)) == "N"


def test_load_model_refuses_an_incomplete_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model.ts"):
        load_model(tmp_path, "beat")


def test_features_version_is_checked_per_model_kind(tmp_path):
    """A rhythm-input change refuses old rhythm models and leaves beat models loadable."""
    import json

    from tests.inference_models import write_model_dir

    folder = write_model_dir(tmp_path / "m")
    for kind, version in FEATURES_VERSIONS.items():
        assert load_model(folder, kind).metadata["features_version"] == version
    meta_path = folder / "rhythm" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(meta | {"features_version": RHYTHM_FEATURES_VERSION - 1}))
    with pytest.raises(ModelLoadError, match="features_version .* for rhythm models"):
        load_model(folder, "rhythm")
    assert load_model(folder, "beat").metadata["features_version"] == BEAT_FEATURES_VERSION
    with pytest.raises(ModelLoadError, match="unknown model kind"):
        load_model(folder, "ecg")


# ------------------------------------------------------ batched == one window at a time


def _assert_batch_equals_oracle(windows: list[RhythmWindow]) -> None:
    together = rhythm_features(windows)
    alone = np.stack([oracle.rhythm_window_features(w) for w in windows])
    assert together.shape == (len(windows), len(RHYTHM_FEATURES))
    assert together.dtype == np.float32
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("record", "minutes"), [("203", 6), ("208", 6), ("207", None)])
def test_batched_rhythm_features_equal_the_one_window_code_on_mitbih(data_dir, record, minutes):
    # 203: AF and VT, 208: PVC couplets and bigeminy, 207: VFL, blocks and pauses.
    sampto = None if minutes is None else round(minutes * 60 * 360)
    rec = load_record(data_dir / "mitdb", record, sampto=sampto)
    windows = process_record(rec, DEFAULT_SPEC, device_id="d1").rhythms
    assert len(windows) > 100
    _assert_batch_equals_oracle(windows)
    # the same window inside different batches (padding widths) gives the same row
    np.testing.assert_array_equal(rhythm_features(windows[5:6])[0], rhythm_features(windows)[5])


def test_batched_rhythm_features_equal_the_one_window_code_on_edge_cases():
    fs = 120.0
    t = np.arange(int(10 * fs)) / fs
    flat = np.zeros((1, t.size), np.float32)
    vf = (0.8 * np.sin(2 * np.pi * 5 * t)).astype(np.float32)[None, :]
    rng = np.random.default_rng(1)
    windows = [
        _rhythm(np.array([]), flat),                              # no beat, flat line
        _rhythm(np.array([4.0]), flat),                           # one beat
        _rhythm(np.array([1.0, 2.0])),                            # one RR
        _rhythm(np.array([1.0, 2.0, 3.0])),                       # two RRs
        _rhythm(np.array([1.0, 1.8, 2.6, 3.4])),                  # three equal RRs
        _rhythm(np.array([1.0, 1.05, 1.1, 1.9, 8.5])),            # glitches + a gap, all dropped
        _rhythm(np.arange(0.2, 10, 0.16)),                        # 300+ bpm: the widest row
        _rhythm(np.cumsum(rng.uniform(0.3, 1.3, 12)), vf),        # AF-like RR on a VF wave
        _rhythm(np.cumsum(np.r_[0.3, [0.8, 0.5, 1.1] * 4])),      # bigeminy-like pairs
    ]
    _assert_batch_equals_oracle(windows)
    for w in windows:
        _assert_batch_equals_oracle([w])


def test_rhythm_features_group_windows_of_other_lengths_and_rates():
    a = _rhythm(np.arange(0.5, 10, 0.8), np.ones((1, 1200), np.float32), fs=120.0)
    b = _rhythm(np.arange(0.5, 10, 0.7),
                np.sin(np.arange(2500) / 250 * 2 * np.pi * 4)[None, :].astype(np.float32),
                fs=250.0)
    _assert_batch_equals_oracle([a, b, a])
