"""Rhythm windows sit on a device-time grid, so a restarted segment cuts the same windows.

A processor restart or rebalance starts a new DSP segment at the first chunk of
its warm-up. If rhythm windows were counted from the segment start, the 2 s grid
would move and every window-based alarm (noisy, AF, leads-off, asystole) would get
another onset, hence another alarm id (found by tests/faults, docs/reliability.md).
"""

from __future__ import annotations

import numpy as np

from cardiostream.processing import new_device_state, process_chunk
from cardiostream.signal import DEFAULT_SPEC

_US = 1_000_000
FS = 360.0
T0 = 1_764_000_000_300_000          # deliberately not on the 2 s grid


def _signal(seconds: float) -> np.ndarray:
    """Two leads: 75 bpm narrow spikes on a little noise, mV."""
    n = round(seconds * FS)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.02, (2, n))
    x[:, ::288] += 1.5
    return x


def _rhythms(x: np.ndarray, first_chunk: int, chunk: int = 180) -> list[tuple[int, int]]:
    t0 = T0 + round(first_chunk * chunk * _US / FS)
    st = new_device_state(DEFAULT_SPEC, "d", "u", FS, ("MLII", "V1"), t0, segment=t0)
    out = []
    for k in range(first_chunk, x.shape[1] // chunk):
        st, _, rhythms = process_chunk(st, x[:, k * chunk:(k + 1) * chunk],
                                       T0 + round(k * chunk * _US / FS))
        out += [(w.start_time_us, w.end_time_us) for w in rhythms]
    return out


def test_windows_start_on_the_hop_grid_in_device_time() -> None:
    hop_us = round(DEFAULT_SPEC.rhythm_hop_s * _US)
    wins = _rhythms(_signal(40), 0)
    assert wins
    assert all(abs(start - round(start / hop_us) * hop_us) <= _US / FS for start, _ in wins)


def test_a_segment_started_later_cuts_the_same_windows() -> None:
    x = _signal(60)
    whole = _rhythms(x, 0)
    for first in (1, 3, 40, 41):            # resume points 0.5 s apart: every grid phase
        resumed = _rhythms(x, first)
        assert resumed and set(resumed) <= set(whole), (first, resumed[:2], whole[:2])
