"""Fault injection for simulated devices: pure, seeded, and off by default.

Two families, both applied per device and per chunk by ``streamer.simulator``:

* signal faults change the samples: a lead-off episode (every lead flat at its
  baseline, i.e. 0 mV) and a noise burst that mixes in an NSTDB noise record
  (``ma`` muscle artefact or ``bw`` baseline wander, Moody, Muldrow & Mark 1984)
  at a chosen signal-to-noise ratio;
* delivery faults change what reaches Kafka: dropped, duplicated and reordered
  chunks, and jitter on the device clock (``t0_us``).

Probabilities are per chunk. Every device draws from its own generator seeded
by ``(seed, crc32(device_id))``, so a run is reproducible and adding a device
does not change the faults of the others.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from cardiostream.schemas import SampleChunk

NoiseKind = Literal["ma", "bw"]
_INT16 = np.iinfo(np.int16)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What to break and how often. The defaults break nothing."""

    seed: int = 0
    drop_p: float = 0.0          # chance a chunk is never sent
    duplicate_p: float = 0.0     # chance a chunk is sent twice
    reorder_p: float = 0.0       # chance a chunk is held back and sent after the next one
    lead_off_p: float = 0.0      # chance per chunk that a lead-off episode starts
    lead_off_s: float = 5.0      # episode length, seconds
    noise_p: float = 0.0         # chance per chunk that a noise burst starts
    noise_s: float = 10.0        # burst length, seconds
    noise_kind: NoiseKind = "ma"
    noise_snr_db: float = 6.0    # NSTDB convention: S = (QRS peak-to-peak)^2 / 8
    jitter_ms: float = 0.0       # std dev of Gaussian jitter added to each t0_us

    def __post_init__(self) -> None:
        for name in ("drop_p", "duplicate_p", "reorder_p", "lead_off_p", "noise_p"):
            p = getattr(self, name)
            if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                raise ValueError(f"{name}={p!r}: a probability must be in [0, 1]")
        for name in ("lead_off_s", "noise_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be > 0 seconds")
        if not (math.isfinite(self.jitter_ms) and self.jitter_ms >= 0):
            raise ValueError(f"jitter_ms={self.jitter_ms!r} must be >= 0")
        if self.noise_kind not in ("ma", "bw"):
            raise ValueError(f"noise_kind={self.noise_kind!r}: choose 'ma' or 'bw'")
        if not math.isfinite(self.noise_snr_db):
            raise ValueError("noise_snr_db must be finite")

    @property
    def signal_enabled(self) -> bool:
        return self.lead_off_p > 0 or self.noise_p > 0

    @property
    def delivery_enabled(self) -> bool:
        return (self.drop_p > 0 or self.duplicate_p > 0 or self.reorder_p > 0
                or self.jitter_ms > 0)

    @property
    def enabled(self) -> bool:
        return self.signal_enabled or self.delivery_enabled


NO_FAULTS = FaultConfig()


@dataclass(slots=True)
class FaultCounts:
    """What was injected; shared by all devices of a simulator (metrics hook)."""

    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    lead_off_chunks: int = 0
    noisy_chunks: int = 0
    jittered: int = 0


@dataclass(slots=True)
class FaultState:
    """Per-device fault state carried from chunk to chunk."""

    rng: np.random.Generator
    counts: FaultCounts = field(default_factory=FaultCounts)
    lead_off_left: int = 0        # samples of the current lead-off episode still to apply
    noise_left: int = 0           # samples of the current noise burst still to apply
    noise_pos: int = 0            # read position in the noise record (samples)
    held: SampleChunk | None = None   # chunk held back to be sent after the next one


def new_state(cfg: FaultConfig, device_id: str, counts: FaultCounts | None = None) -> FaultState:
    rng = np.random.default_rng([cfg.seed, zlib.crc32(device_id.encode())])
    return FaultState(rng=rng, counts=counts if counts is not None else FaultCounts())


# --------------------------------------------------------------------------- signal faults


def flat_line(adc: np.ndarray, baseline: tuple[int, ...], start: int, stop: int) -> np.ndarray:
    """Copy of ``adc`` (n_leads, n) with samples [start, stop) of every lead at 0 mV."""
    out = np.array(adc, dtype=np.int16, copy=True)
    out[:, start:stop] = np.asarray(baseline, dtype=np.int16)[:, None]
    return out


def mix_noise(adc: np.ndarray, noise_counts: np.ndarray, start: int) -> np.ndarray:
    """Copy of ``adc`` with ``noise_counts`` (n_leads, m) added from sample ``start``, clipped."""
    out = adc.astype(np.int32)
    out[:, start:start + noise_counts.shape[1]] += np.rint(noise_counts).astype(np.int32)
    return np.clip(out, _INT16.min, _INT16.max).astype(np.int16)


def noise_scale(signal_mv: np.ndarray, noise_mv: np.ndarray, snr_db: float) -> np.ndarray:
    """Per-lead factor that puts ``noise_mv`` at ``snr_db`` below ``signal_mv``.

    As in PhysioNet's ``nst``: signal power is that of a sine with the QRS
    peak-to-peak amplitude, (pp)^2 / 8; pp is estimated robustly as the spread
    between the 0.1th and 99.9th percentile of each lead. Shapes: (n_leads, n)
    and (n_noise_leads, m); noise leads are reused cyclically.
    """
    pp = np.percentile(signal_mv, 99.9, axis=1) - np.percentile(signal_mv, 0.1, axis=1)
    s_power = pp**2 / 8.0
    n_var = np.var(noise_mv, axis=1)
    n_var = n_var[np.arange(signal_mv.shape[0]) % noise_mv.shape[0]]
    return np.sqrt(s_power / (np.maximum(n_var, 1e-12) * 10.0 ** (snr_db / 10.0)))


@dataclass(frozen=True, slots=True)
class NoiseSource:
    """An NSTDB noise record in mV (n_noise_leads, m) and the device's per-lead scale."""

    noise_mv: np.ndarray
    scale: np.ndarray           # (n_leads,) multiplies noise_mv, result in mV

    def counts(self, gain: tuple[float, ...], pos: int, n: int) -> np.ndarray:
        """(n_leads, n) noise in ADC counts, read cyclically from ``pos``."""
        idx = (pos + np.arange(n)) % self.noise_mv.shape[1]
        leads = np.arange(len(gain)) % self.noise_mv.shape[0]
        seg = self.noise_mv[leads][:, idx]
        return seg * (self.scale * np.asarray(gain))[:, None]


def _episode(rng: np.random.Generator, left: int, p: float, n: int,
             length: int) -> tuple[int, int, int]:
    """(start, stop, left_after) of an episode inside a chunk of ``n`` samples."""
    if left > 0:
        stop = min(n, left)
        return 0, stop, left - stop
    if p > 0 and rng.random() < p:
        start = int(rng.integers(0, n))
        stop = min(n, start + length)
        return start, stop, length - (stop - start)
    return 0, 0, 0


def apply_signal_faults(chunk: SampleChunk, cfg: FaultConfig, state: FaultState,
                        noise: NoiseSource | None) -> SampleChunk:
    """Chunk with lead-off and noise episodes applied (the same object when none is active)."""
    n, fs = chunk.n_samples, chunk.fs_hz
    adc = chunk.adc
    if noise is not None:
        start, stop, state.noise_left = _episode(state.rng, state.noise_left, cfg.noise_p, n,
                                                 round(cfg.noise_s * fs))
        if stop > start:
            adc = mix_noise(adc, noise.counts(chunk.gain, state.noise_pos, stop - start), start)
            state.noise_pos += stop - start
            state.counts.noisy_chunks += 1
    start, stop, state.lead_off_left = _episode(state.rng, state.lead_off_left, cfg.lead_off_p,
                                                n, round(cfg.lead_off_s * fs))
    if stop > start:
        adc = flat_line(adc, chunk.baseline, start, stop)
        state.counts.lead_off_chunks += 1
    return chunk if adc is chunk.adc else replace(chunk, adc=adc)


# --------------------------------------------------------------------------- delivery faults


def jitter(chunk: SampleChunk, cfg: FaultConfig, state: FaultState) -> SampleChunk:
    """Chunk with Gaussian jitter (std ``jitter_ms``) on its device timestamp."""
    if cfg.jitter_ms <= 0:
        return chunk
    delta = round(float(state.rng.normal(0.0, cfg.jitter_ms * 1000.0)))
    state.counts.jittered += 1
    return replace(chunk, t0_us=chunk.t0_us + delta)


def deliver(chunk: SampleChunk, cfg: FaultConfig, state: FaultState) -> list[SampleChunk]:
    """The chunks to send now, in order, given drop / reorder / duplicate faults."""
    rng = state.rng
    if cfg.drop_p > 0 and rng.random() < cfg.drop_p:
        state.counts.dropped += 1
        return []
    if state.held is not None:
        out = [chunk, state.held]
        state.held = None
    elif cfg.reorder_p > 0 and rng.random() < cfg.reorder_p:
        state.held = chunk
        state.counts.reordered += 1
        return []
    else:
        out = [chunk]
    if cfg.duplicate_p > 0 and rng.random() < cfg.duplicate_p:
        state.counts.duplicated += 1
        out.append(out[-1])
    return out


def flush_held(state: FaultState) -> list[SampleChunk]:
    """The chunk still held back for reordering when a stream ends."""
    held, state.held = state.held, None
    return [held] if held is not None else []
