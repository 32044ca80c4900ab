"""The composed chain: chunk invariance (online == offline), time rule, resets, robustness."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cardiostream.processing import (
    flush_device,
    new_device_state,
    process_chunk,
    process_record,
    reset_device,
)
from cardiostream.records import Record, load_record
from cardiostream.signal import DEFAULT_SPEC
from tests.dsp_synth import rr_series, synth_ecg

FS = DEFAULT_SPEC.fs_hz
START_US = 1_750_000_000_000_000


def same(a, b) -> bool:
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    arrays = [k for k in ("samples", "template") if k in da]
    return all(np.array_equal(da.pop(k), db.pop(k)) for k in arrays) and da == db


def as_record(x: np.ndarray, fs: float = FS, name: str = "syn") -> Record:
    gain = (200.0,) * x.shape[0]
    adc = np.clip(np.round(x * 200.0), -32768, 32767).astype(np.int16)
    return Record(name, fs, tuple(f"L{i}" for i in range(x.shape[0])), gain,
                  (0,) * x.shape[0], adc)


@pytest.fixture(scope="module")
def rec208(data_dir) -> Record:
    return load_record(data_dir / "mitdb", "208", sampto=int(240 * FS))


def test_chunk_size_does_not_change_any_window(rec208):
    runs = [process_record(rec208, DEFAULT_SPEC, chunk_s=c, start_us=START_US)
            for c in (0.5, 0.37, 2.0)]
    base = runs[0]
    assert len(base.beats) > 250 and len(base.rhythms) > 100
    for other in runs[1:]:
        assert len(other.beats) == len(base.beats) and len(other.rhythms) == len(base.rhythms)
        assert all(same(a, b) for a, b in zip(base.beats, other.beats, strict=True))
        assert all(same(a, b) for a, b in zip(base.rhythms, other.rhythms, strict=True))


def test_r_time_maps_back_to_the_record_sample_and_matches_reference(rec208, data_dir):
    import wfdb

    out = process_record(rec208, DEFAULT_SPEC, start_us=START_US)
    r = np.array([round((b.r_time_us - START_US) * FS / 1e6) for b in out.beats])
    assert np.all(np.diff(r) > 0)
    ann = wfdb.rdann(str(data_dir / "mitdb" / "208"), "atr", sampto=int(240 * FS))
    ref = np.array([s for s, c in zip(ann.sample, ann.symbol, strict=True) if c in "NVFS"])
    ref = ref[(ref > 10 * FS) & (ref < 235 * FS)]
    hit = np.min(np.abs(ref[:, None] - r[None, :]), axis=1) <= 0.15 * FS
    assert hit.mean() > 0.99


def test_250hz_device_gives_the_same_beats_as_360hz():
    from scipy.signal import resample_poly

    truth = rr_series(400, list(np.random.default_rng(2).uniform(0.5, 1.1, 60)))
    x = synth_ecg(truth, int(truth[-1] + 500))
    x250 = resample_poly(x, 25, 36, axis=1)
    a = process_record(as_record(x), DEFAULT_SPEC, start_us=START_US)
    b = process_record(as_record(x250, fs=250.0), DEFAULT_SPEC, start_us=START_US)
    ta = np.array([w.r_time_us for w in a.beats])
    tb = np.array([w.r_time_us for w in b.beats])
    assert len(ta) == len(tb) == len(truth)
    assert np.abs(ta - tb).max() <= 2 * 1e6 / FS          # within 2 model samples


@pytest.mark.parametrize("fs_in", [125.0, 257.0, 300.0, 1000.0])
def test_devices_at_other_common_rates_give_the_360hz_beats_whatever_the_chunking(fs_in):
    """MIMIC 125 Hz, INCART 257 Hz, AliveCor 300 Hz, a 1 kHz cart: every rate
    ``schemas.supported_fs`` accepts is resampled to the model rate; the beats are those of
    the 360 Hz signal and, as at 360 Hz, do not depend on the chunk size."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    from cardiostream.schemas import supported_fs

    assert supported_fs(fs_in)
    truth = rr_series(400, list(np.random.default_rng(7).uniform(0.45, 1.2, 40)))
    x = synth_ecg(truth, int(truth[-1] + 500))
    r = Fraction(fs_in / FS).limit_denominator(1000)
    rec = as_record(resample_poly(x, r.numerator, r.denominator, axis=1), fs=fs_in)
    a, b = (process_record(rec, DEFAULT_SPEC, chunk_s=c, start_us=START_US) for c in (0.5, 0.37))
    assert all(same(u, v) for u, v in zip(a.beats + a.rhythms, b.beats + b.rhythms, strict=True))
    ref = process_record(as_record(x), DEFAULT_SPEC, start_us=START_US)
    ta = np.array([w.r_time_us for w in ref.beats])
    tb = np.array([w.r_time_us for w in a.beats])
    assert len(ta) == len(tb) == len(truth)
    assert np.abs(ta - tb).max() <= 3 * 1e6 / FS          # within 3 model samples (8 ms)


def test_chunk_size_does_not_change_windows_of_a_resampled_device():
    from scipy.signal import resample_poly

    truth = rr_series(400, list(np.random.default_rng(5).uniform(0.4, 1.3, 40)))
    x = resample_poly(synth_ecg(truth, int(truth[-1] + 500), noise_mv=0.05), 25, 18, axis=1)
    rec = as_record(x, fs=500.0)
    a, b = (process_record(rec, DEFAULT_SPEC, chunk_s=c, start_us=START_US) for c in (0.5, 0.37))
    assert len(a.beats) == len(b.beats) == len(truth) and len(a.rhythms) == len(b.rhythms)
    assert all(same(u, v) for u, v in zip(a.beats + a.rhythms, b.beats + b.rhythms, strict=True))


def test_reset_flushes_and_starts_a_new_segment():
    truth = rr_series(400, [0.8] * 20)
    x = synth_ecg(truth, int(truth[-1] + 100))
    st = new_device_state(DEFAULT_SPEC, "dev-9", "ward-2", FS, ("II", "V1"), START_US)
    st, beats, _ = process_chunk(st, x, START_US)
    st, flushed = reset_device(st, t0_us=START_US + 60_000_000)
    assert st.segment == 1 and st.beat_counter == len(beats) + len(flushed) == len(truth)
    assert flushed[-1].rr_next_s == 0.0
    st, more, _ = process_chunk(st, x, START_US + 60_000_000)
    st, tail = flush_device(st)
    nums = [w.beat_index for w in beats + flushed + more + tail]
    assert nums == list(range(2 * len(truth)))
    assert {w.segment for w in more + tail} == {1}
    assert more[0].r_time_us - START_US - 60_000_000 == beats[0].r_time_us - START_US


def test_empty_tiny_and_bad_chunks(rec208):
    st = new_device_state(DEFAULT_SPEC, "d", "u", FS, ("a", "b"), START_US)
    st, b, r = process_chunk(st, np.empty((2, 0)), START_US)
    assert (b, r) == ([], [])
    x = rec208.millivolts()[:, : int(20 * FS)]
    got = []
    for i in range(x.shape[1]):                               # one sample at a time
        st, b, _ = process_chunk(st, x[:, i:i + 1], START_US)
        got += b
    whole = process_record(dataclasses.replace(rec208, adc=rec208.adc[:, : int(20 * FS)]),
                           DEFAULT_SPEC, start_us=START_US, device_id="d", flush=False,
                           unit="u")
    assert [w.r_time_us for w in got] == [w.r_time_us for w in whole.beats]
    with pytest.raises(ValueError):
        process_chunk(st, np.full((2, 5), np.nan), START_US)
    with pytest.raises(ValueError):
        process_chunk(st, np.zeros((3, 5)), START_US)


def test_flat_line_and_asystole_are_flat_or_quiet_without_beats():
    flat = as_record(np.full((2, int(40 * FS)), 0.25))
    out = process_record(flat, DEFAULT_SPEC)
    assert out.beats == [] and out.rhythms
    assert all(w.quality == ("flat", "flat") and w.sqi == (0.0, 0.0) for w in out.rhythms)
    truth = rr_series(200, [0.8] * 12)
    x = synth_ecg(truth, int(40 * FS), noise_mv=0.003)       # 10 s of beats, then asystole
    out = process_record(as_record(x), DEFAULT_SPEC)
    late = [w for w in out.beats if w.r_time_us > 12e6]
    assert late == [] and len(out.beats) == len(truth)
    assert all(w.beat_times_us == () for w in out.rhythms if w.start_time_us > 12e6)


def test_pure_noise_record_runs_and_is_flagged_noisy(data_dir):
    rec = load_record(data_dir / "nstdb", "ma", sampto=int(120 * FS))
    out = process_record(rec, DEFAULT_SPEC)
    flags = [f for w in out.rhythms for f in w.quality]
    assert flags.count("noisy") / len(flags) > 0.7
