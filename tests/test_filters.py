"""Filter and resampler parity: chunked streaming == one-shot, plus physical checks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal as sps

from cardiostream.filters import design_sos, filter_offline, filter_step, new_filter_state
from cardiostream.resample import new_resampler, resample_step
from cardiostream.signal import DEFAULT_SPEC, SignalSpec

SOS = design_sos(DEFAULT_SPEC)


def _chunks(n: int, sizes: list[int]) -> list[slice]:
    out, i, k = [], 0, 0
    while i < n:
        step = sizes[k % len(sizes)]
        out.append(slice(i, min(n, i + step)))
        i, k = i + step, k + 1
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000),
       sizes=st.lists(st.integers(0, 700), min_size=1, max_size=20).filter(any),
       n_leads=st.integers(1, 3))
def test_chunked_filter_equals_one_shot(seed, n, sizes, n_leads):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_leads, n)).cumsum(axis=1) + rng.normal(0, 5, (n_leads, 1))
    state = new_filter_state(SOS, n_leads)
    parts = []
    for sl in _chunks(n, sizes):
        state, y = filter_step(state, x[:, sl])
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), filter_offline(SOS, x),
                               rtol=0, atol=1e-9)


def test_one_shot_reference_is_plain_sosfilt():
    """The oracle is scipy's own sosfilt with the causal steady-state seed."""
    x = np.random.default_rng(1).standard_normal((2, 1000))
    zi = sps.sosfilt_zi(SOS)[:, None, :] * x[:, 0][None, :, None]
    np.testing.assert_allclose(filter_offline(SOS, x), sps.sosfilt(SOS, x, zi=zi)[0],
                               atol=1e-12)


def test_constant_offset_gives_no_transient():
    state = new_filter_state(SOS, 1)
    _, y = filter_step(state, np.full((1, 2000), 3.7))
    assert np.abs(y).max() < 1e-9


def _band_power(x: np.ndarray, fs: float, lo: float, hi: float) -> float:
    f, p = sps.periodogram(x, fs)
    return float(p[(f >= lo) & (f <= hi)].sum())


def test_removes_baseline_wander_mains_and_keeps_qrs_band():
    fs = DEFAULT_SPEC.fs_hz
    t = np.arange(int(60 * fs)) / fs
    wander = 1.0 * np.sin(2 * np.pi * 0.15 * t)
    mains = 0.3 * np.sin(2 * np.pi * 60 * t) + 0.3 * np.sin(2 * np.pi * 50 * t)
    qrs_band = 0.5 * np.sin(2 * np.pi * 10 * t)
    x = (wander + mains + qrs_band)[None, :]
    y = filter_offline(SOS, x)[0, int(10 * fs):]
    x0 = x[0, int(10 * fs):]
    assert _band_power(y, fs, 0, 0.3) < 0.01 * _band_power(x0, fs, 0, 0.3)
    assert _band_power(y, fs, 49, 61) < 0.01 * _band_power(x0, fs, 49, 61)
    assert 0.8 < _band_power(y, fs, 9, 11) / _band_power(x0, fs, 9, 11) < 1.2


def test_empty_chunk_is_a_no_op():
    state = new_filter_state(SOS, 2)
    state, y = filter_step(state, np.empty((2, 0)))
    assert y.shape == (2, 0) and state.zi is None


@settings(max_examples=30, deadline=None)
@given(fs=st.sampled_from([128.0, 250.0, 256.0, 500.0, 1000.0]),
       seed=st.integers(0, 2**32 - 1),
       sizes=st.lists(st.integers(0, 400), min_size=1, max_size=10).filter(any))
def test_resampler_chunked_equals_one_shot(fs, seed, sizes):
    x = np.random.default_rng(seed).standard_normal((2, 3000))
    _, whole = resample_step(new_resampler(fs, 360.0, 2), x)
    state, parts = new_resampler(fs, 360.0, 2), []
    for sl in _chunks(x.shape[1], sizes):
        state, y = resample_step(state, x[:, sl])
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0, atol=1e-9)


def test_resampler_preserves_time_and_in_band_sines():
    for fs in (250.0, 500.0):
        t = np.arange(int(20 * fs)) / fs
        _, y = resample_step(new_resampler(fs, 360.0, 1), np.sin(2 * np.pi * 7 * t)[None])
        tt = np.arange(y.shape[1]) / 360.0
        assert np.abs(y[0, 50:] - np.sin(2 * np.pi * 7 * tt[50:])).max() < 1e-3
        assert abs(y.shape[1] - 20 * 360) < 40


def test_spec_rejects_bad_bands():
    import pytest

    with pytest.raises(ValueError):
        SignalSpec(highpass_hz=50.0, lowpass_hz=40.0)
