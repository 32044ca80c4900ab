"""Fault injection: off by default, reproducible, and each fault does what it says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cardiostream.records import Record, load_record
from cardiostream.settings import Settings
from streamer import faults as F
from streamer.simulator import iter_chunks, load_noise

FS = 360.0
START_US = 1_764_000_000_000_000


def synthetic(n: int = 36_000, leads: int = 2) -> Record:
    """A 'record' whose every sample is unique, so moved or repeated samples show."""
    adc = (np.arange(leads * n, dtype=np.int64).reshape(leads, n) % 30_000).astype(np.int16)
    return Record("syn", FS, tuple(f"L{i}" for i in range(leads)), (200.0,) * leads,
                  (-1,) * leads, adc)


@pytest.fixture(scope="module")
def rec100() -> Record:
    return load_record(Settings().paths.mitdb, "100", sampto=round(120 * FS))


def run(rec: Record, cfg: F.FaultConfig, device: str = "bed-01", **kw) -> list:
    return list(iter_chunks(rec, device, START_US, 0.5, cfg, **kw))


def test_default_config_breaks_nothing() -> None:
    cfg = F.FaultConfig()
    assert not cfg.enabled and cfg == F.NO_FAULTS
    rec = synthetic()
    chunks = run(rec, cfg)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    np.testing.assert_array_equal(np.concatenate([c.adc for c in chunks], axis=1), rec.adc)


@pytest.mark.parametrize("kw", [dict(drop_p=1.5), dict(reorder_p=-0.1), dict(noise_p=math.nan),
                                dict(lead_off_s=0), dict(jitter_ms=-1), dict(noise_kind="em"),
                                dict(noise_snr_db=math.inf)])
def test_bad_config_is_refused(kw: dict) -> None:
    with pytest.raises(ValueError):
        F.FaultConfig(**kw)


def test_same_seed_same_faults_and_devices_independent() -> None:
    cfg = F.FaultConfig(seed=7, drop_p=0.2, duplicate_p=0.1, reorder_p=0.1, jitter_ms=1.0)
    rec = synthetic()
    a = [(c.seq, c.t0_us) for c in run(rec, cfg, "bed-01")]
    assert a == [(c.seq, c.t0_us) for c in run(rec, cfg, "bed-01")]
    assert a != [(c.seq, c.t0_us) for c in run(rec, F.FaultConfig(**{**_kw(cfg), "seed": 8}))]
    assert a != [(c.seq, c.t0_us) for c in run(rec, cfg, "bed-02")]


def test_drop_removes_chunks_and_keeps_order() -> None:
    counts = F.FaultCounts()
    cfg = F.FaultConfig(seed=1, drop_p=0.3)
    state = F.new_state(cfg, "bed-01", counts)
    seqs = [c.seq for c in run(synthetic(), cfg, fault_state=state)]
    assert seqs == sorted(set(seqs))
    assert counts.dropped == 200 - len(seqs) and 40 <= counts.dropped <= 80  # 200 chunks, p=0.3
    assert run(synthetic(), F.FaultConfig(drop_p=1.0)) == []


def test_duplicate_sends_identical_chunks_twice() -> None:
    chunks = run(synthetic(), F.FaultConfig(duplicate_p=1.0))
    assert [c.seq for c in chunks] == [s for s in range(200) for _ in range(2)]
    assert all(chunks[i] is chunks[i + 1] for i in range(0, len(chunks), 2))


def test_reorder_swaps_neighbours_and_loses_nothing() -> None:
    counts = F.FaultCounts()
    cfg = F.FaultConfig(seed=3, reorder_p=0.2)
    seqs = [c.seq for c in run(synthetic(), cfg, fault_state=F.new_state(cfg, "bed-01", counts))]
    assert sorted(seqs) == list(range(200))
    assert all(abs(pos - s) <= 1 for pos, s in enumerate(seqs))
    swapped = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if a > b)
    # a chunk held back at the very end is flushed last: reordered, but no inversion
    assert counts.reordered - 1 <= swapped <= counts.reordered and swapped > 10


def test_reordered_last_chunk_is_still_sent() -> None:
    chunks = run(synthetic(n=360), F.FaultConfig(reorder_p=1.0))  # 2 chunks
    assert [c.seq for c in chunks] == [1, 0]


def test_jitter_moves_timestamps_with_the_requested_spread() -> None:
    chunks = run(synthetic(), F.FaultConfig(seed=5, jitter_ms=2.0))
    err_us = np.array([c.t0_us - (START_US + round(c.seq * 180 * 1e6 / FS)) for c in chunks])
    assert abs(err_us.mean()) < 400 and 1500 < err_us.std() < 2500
    assert all(c.adc.shape == (2, 180) for c in chunks)


def _flat_runs(adc: np.ndarray, baseline: tuple[int, ...]) -> list[int]:
    flat = (adc == np.asarray(baseline)[:, None]).all(axis=0)
    edges = np.flatnonzero(np.diff(np.r_[0, flat.astype(np.int8), 0]))
    return list(edges[1::2] - edges[::2])


def test_lead_off_is_a_flat_line_at_zero_millivolts(rec100: Record) -> None:
    cfg = F.FaultConfig(seed=2, lead_off_p=0.02, lead_off_s=3.0)
    out = np.concatenate([c.adc for c in run(rec100, cfg)], axis=1)
    runs = _flat_runs(out, rec100.baseline)
    assert runs and all(r >= round(3.0 * FS) for r in runs[:-1])
    touched = (out != rec100.adc).any(axis=0)
    assert (out[:, touched] == np.asarray(rec100.baseline)[:, None]).all()  # nothing else changed
    mv = (out.astype(float) - 1024) / 200
    assert np.abs(mv[:, ~touched] - rec100.millivolts()[:, ~touched]).max() == 0


@pytest.mark.parametrize("kind", ["ma", "bw"])
def test_noise_burst_hits_the_requested_snr(rec100: Record, kind: str) -> None:
    noise_mv = load_noise(Settings().paths.nstdb, kind)
    snr_db = 6.0
    scale = F.noise_scale(rec100.millivolts(), noise_mv, snr_db)
    cfg = F.FaultConfig(seed=4, noise_p=1.0, noise_s=1e6, noise_kind=kind, noise_snr_db=snr_db)
    out = np.concatenate([c.adc for c in run(rec100, cfg, noise=F.NoiseSource(noise_mv, scale))],
                         axis=1)
    residual_mv = (out.astype(float) - rec100.adc) / 200.0  # (2, n) the added noise
    signal = rec100.millivolts()
    pp = np.percentile(signal, 99.9, axis=1) - np.percentile(signal, 0.1, axis=1)
    measured = 10 * np.log10((pp**2 / 8) / residual_mv.var(axis=1))
    # 120 s of a 30 min noise record: its local power differs from the whole record's
    assert np.all(np.abs(measured - snr_db) < 4.0), measured
    spectrum = np.abs(np.fft.rfft(residual_mv[0] - residual_mv[0].mean())) ** 2
    freqs = np.fft.rfftfreq(residual_mv.shape[1], 1 / FS)
    hf_share = spectrum[freqs > 15.0].sum() / spectrum.sum()
    # physical signature: muscle artefact reaches into the QRS band, baseline wander does not
    assert (hf_share > 0.08) if kind == "ma" else (hf_share < 0.02), hf_share


def test_noise_clips_at_int16_instead_of_wrapping() -> None:
    adc = np.full((1, 4), 32_000, dtype=np.int16)
    out = F.mix_noise(adc, np.full((1, 2), 5_000.0), 1)
    assert out.tolist() == [[32_000, 32_767, 32_767, 32_000]]


def _kw(cfg: F.FaultConfig) -> dict:
    return {name: getattr(cfg, name) for name in F.FaultConfig.__slots__}
