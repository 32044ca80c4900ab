"""cardiostream.rr_features: dominant-beat RR irregularity is blind to ectopy, not to AF;
the batched code equals the one-window oracle (the code the shipped model was trained on)."""

from __future__ import annotations

import numpy as np
import pytest

from cardiostream.rr_features import DOMINANT_RR_FEATURES, dominant_rr_batch, dominant_rr_features
from tests import rr_features_oracle as oracle

FS = 120.0
_US = 1_000_000


def _strip(beat_s: np.ndarray, wide: np.ndarray, seconds: float = 10.0,
           p_wave: bool = False, f_waves: bool = False) -> np.ndarray:
    """Synthetic lead: a narrow QRS (Gaussian, 20 ms) or a wide, larger one (60 ms),
    optionally a P wave (0.15 mV, 160 ms before each narrow QRS) or f-waves (6 Hz)."""
    t = np.arange(round(seconds * FS)) / FS
    lead = np.zeros_like(t)
    for b, w in zip(beat_s, wide, strict=True):
        sd, amp = (0.06, -2.0) if w else (0.02, 1.0)
        lead += amp * np.exp(-0.5 * ((t - b) / sd) ** 2)
        if p_wave and not w:
            lead += 0.15 * np.exp(-0.5 * ((t - b + 0.16) / 0.025) ** 2)
    if f_waves:
        rng = np.random.default_rng(3)
        phase = np.cumsum(2 * np.pi * rng.uniform(4.5, 7.5, t.size) / FS)
        lead += 0.08 * np.sin(phase)
    return lead


def _features(beat_s: np.ndarray, wide: np.ndarray) -> dict[str, float]:
    f = dominant_rr_features((beat_s * _US).astype(np.int64), 0, _strip(beat_s, wide), FS)
    assert f.shape == (len(DOMINANT_RR_FEATURES),) and f.dtype == np.float32
    return dict(zip(DOMINANT_RR_FEATURES, f.tolist(), strict=True))


def test_regular_sinus_is_regular():
    beats = np.arange(0.3, 9.8, 0.8)
    f = _features(beats, np.zeros(beats.size, bool))
    assert f["dominant_frac"] == 1.0
    assert f["dominant_nn_cv"] < 1e-6 and f["dominant_nn_irregular_frac"] == 0.0


def test_ventricular_bigeminy_is_regular_on_dominant_beats():
    # N at 0.3 + 1.6 k, premature wide V 0.5 s after each N, compensatory pause after it
    n = np.arange(0.3, 9.6, 1.6)
    beats = np.sort(np.concatenate([n, n[:-1] + 0.5]))
    wide = np.isin(beats, n[:-1] + 0.5)
    raw_cv = np.diff(beats).std() / np.diff(beats).mean()
    f = _features(beats, wide)
    assert raw_cv > 0.3                              # the plain RR series looks chaotic
    assert 0.3 < f["dominant_frac"] < 0.7
    assert f["dominant_nn_cv"] < 0.02 and f["dominant_nn_irregular_frac"] == 0.0


def test_isolated_pvc_with_compensatory_pause_is_regular():
    beats = np.arange(0.3, 9.8, 0.8)
    beats[6] -= 0.3                                   # premature, and the next beat on time
    wide = np.zeros(beats.size, bool)
    wide[6] = True
    f = _features(beats, wide)
    assert f["dominant_nn_cv"] < 0.02


def test_af_stays_irregular():
    rng = np.random.default_rng(1)
    beats = np.cumsum(rng.uniform(0.4, 1.1, 14)) + 0.2
    beats = beats[beats < 9.9]
    f = _features(beats, np.zeros(beats.size, bool))
    assert f["dominant_frac"] == 1.0
    assert f["dominant_nn_cv"] > 0.15 and f["dominant_nn_irregular_frac"] > 0.5


def test_too_few_beats_give_no_evidence():
    f = _features(np.array([1.0, 2.0, 3.0]), np.zeros(3, bool))
    assert f == {"dominant_frac": 1.0, "dominant_nn_cv": 0.0,
                 "dominant_nn_rmssd_over_mean": 0.0, "dominant_nn_irregular_frac": 0.0,
                 "p_wave_corr": 0.0, "p_wave_to_qrs": 0.0, "p_wave_measured": 0.0}


def _p_features(beat_s: np.ndarray, **kw) -> np.ndarray:
    lead = _strip(beat_s, np.zeros(beat_s.size, bool), **kw)
    f = dominant_rr_features((beat_s * _US).astype(np.int64), 0, lead, FS)
    names = ("p_wave_corr", "p_wave_to_qrs", "p_wave_measured")
    return f[[DOMINANT_RR_FEATURES.index(k) for k in names]]


def test_a_repeating_p_wave_is_evidence_against_af():
    beats = np.arange(0.5, 9.8, 0.8) + np.tile([0.0, 0.12], 6)[:12]   # irregular RR
    corr, ratio, measured = _p_features(beats, p_wave=True)
    assert corr > 0.95 and 0.1 < ratio < 0.2 and measured == 1.0     # 0.15 mV P / 1 mV QRS
    corr_af, ratio_af, measured_af = _p_features(beats, f_waves=True)
    assert corr_af < 0.7 and ratio_af < ratio and measured_af == 1.0


def test_no_p_wave_evidence_at_fast_rates_is_flagged_not_zero_correlation():
    beats = np.arange(0.3, 9.9, 0.35)                                 # 171 bpm: RR < 0.4 s
    corr, ratio, measured = _p_features(beats, p_wave=True)
    assert (corr, ratio, measured) == (0.0, 0.0, 0.0)


def test_p_wave_ignores_beats_after_short_rr():
    p_wave_evidence = oracle.p_wave_evidence
    lead = _strip(np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4, bool), p_wave=True)
    idx = np.round(np.array([1.0, 2.0, 3.0, 4.0]) * FS).astype(np.int64)
    assert p_wave_evidence(lead, FS, idx, np.array([True, True, False, False])) == (0, 0, 0)
    assert p_wave_evidence(lead, FS, idx, np.ones(4, bool))[0] > 0.95


def test_oracle_helpers_shapes_and_edges():
    beat_segments, dominant_mask = oracle.beat_segments, oracle.dominant_mask
    dominant_intervals = oracle.dominant_intervals
    lead = np.sin(np.arange(600) / 7.0)
    seg = beat_segments(lead, FS, np.array([0, 300, 599]))     # edge beats are padded
    assert seg.shape == (3, round(0.18 * FS) + 1)
    np.testing.assert_allclose(seg.mean(axis=1), 0.0, atol=1e-12)
    assert dominant_mask(seg[:2]).all()                       # < 3 beats: all dominant
    iv = dominant_intervals(np.array([0.0, 1.0, 1.5, 3.0]), np.array([True, True, False, True]))
    np.testing.assert_allclose(iv, [1.0, 1.0])                # 1.0 -> 3.0 spans two beats
    assert dominant_intervals(np.array([0.0, 1.0]), np.array([True, False])).size == 0


# ------------------------------------------------------ batched == one window at a time


def _windows_args(windows) -> tuple[list, list, np.ndarray, float]:
    return ([np.asarray(w.beat_times_us) for w in windows], [w.start_time_us for w in windows],
            np.stack([w.samples[0] for w in windows]), windows[0].fs_hz)


@pytest.mark.parametrize(("record", "minutes"), [("203", 8), ("208", 8), ("207", 8), ("232", 8)])
def test_batch_equals_the_one_window_oracle_on_mitbih(data_dir, record, minutes):
    # 203 AF + VT, 208 PVC couplets/bigeminy, 207 VFL/blocks, 232 long pauses
    from cardiostream.processing import process_record
    from cardiostream.records import load_record
    from cardiostream.signal import DEFAULT_SPEC

    rec = load_record(data_dir / "mitdb", record, sampto=round(minutes * 60 * 360))
    windows = process_record(rec, DEFAULT_SPEC, device_id="d1").rhythms
    beats, starts, leads, fs = _windows_args(windows)
    together = dominant_rr_batch(beats, starts, leads, fs)
    alone = np.stack([oracle.dominant_rr_features(b, s, x, fs)
                      for b, s, x in zip(beats, starts, leads, strict=True)])
    assert together.dtype == np.float32 and together.shape == alone.shape
    np.testing.assert_array_equal(together, alone)
    # the same window in another batch (other padding widths) gives the same row
    for i in (0, 7, len(windows) - 1):
        np.testing.assert_array_equal(
            dominant_rr_batch(beats[i:i + 1], starts[i:i + 1], leads[i:i + 1], fs)[0],
            together[i])


def test_batch_equals_the_oracle_on_edge_cases():
    rng = np.random.default_rng(4)
    cases = [np.array([]), np.array([4.0]), np.array([1.0, 2.0, 3.0]),
             np.array([0.0, 0.001, 9.999, 10.0]),                   # beats at the very edges
             np.arange(0.3, 9.9, 0.35),                              # no P-wave evidence
             np.arange(0.2, 10, 0.16),                               # the widest row
             np.cumsum(rng.uniform(0.4, 1.1, 14)) + 0.2]
    n = np.arange(0.3, 9.6, 1.6)
    cases.append(np.sort(np.concatenate([n, n[:-1] + 0.5])))        # bigeminy
    beats = [(b[b <= 10.0] * _US).astype(np.int64) for b in cases]
    leads = np.stack([_strip(np.clip(b, 0, 9.99), np.arange(b.size) % 3 == 1, p_wave=True)
                      for b in cases])
    flat = np.zeros((len(cases), round(10 * FS)))
    for lead in (leads, flat):
        together = dominant_rr_batch(beats, [0] * len(beats), lead, FS)
        alone = np.stack([oracle.dominant_rr_features(b, 0, x, FS)
                          for b, x in zip(beats, lead, strict=True)])
        np.testing.assert_array_equal(together, alone)
    tiny = dominant_rr_batch(beats[-1:], [0], np.zeros((1, 1)), FS)     # a 1-sample lead
    np.testing.assert_array_equal(tiny[0], oracle.dominant_rr_features(beats[-1], 0,
                                                                       np.zeros(1), FS))
