"""Causal SOS filtering with the state carried between chunks.

The processor filters each device chunk by chunk; training filters whole
records with the same function (in chunks too), so a window cut offline equals
the window the stream produced.  ``sosfilt`` with a carried ``zi`` is exactly
the one-shot filter: the parity is a property test (tests/test_filters.py).

Filters are designed once per ``SignalSpec`` (cached) and shared read-only by
every device state; a state holds only its delays.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from cardiostream.signal import SignalSpec

try:  # the C kernel behind scipy.signal.sosfilt: same arithmetic, without ~40 us of checks
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - a scipy that moved it: fall back to the public API
    _sosfilt_kernel = None

NOTCH_Q = 30.0          # -3 dB width fs/Q: 1.7 Hz at 50 Hz, 2 Hz at 60 Hz
HIGHPASS_ORDER = 2      # Butterworth; low order keeps the ST segment's phase error small
LOWPASS_ORDER = 4


@lru_cache(maxsize=32)
def _design(fs_hz: float, highpass_hz: float, lowpass_hz: float,
            notch_hz: tuple[float, ...]) -> np.ndarray:
    parts = [sps.butter(HIGHPASS_ORDER, highpass_hz, "highpass", fs=fs_hz, output="sos")]
    for f0 in notch_hz:
        if 0 < f0 < fs_hz / 2:
            b, a = sps.iirnotch(f0, NOTCH_Q, fs=fs_hz)
            parts.append(sps.tf2sos(b, a))
    parts.append(sps.butter(LOWPASS_ORDER, lowpass_hz, "lowpass", fs=fs_hz, output="sos"))
    sos = np.vstack(parts)
    return sos


def design_sos(spec: SignalSpec) -> np.ndarray:
    """(n_sections, 6) cascade: high-pass (baseline wander), notches (mains), low-pass (EMG)."""
    return _design(spec.fs_hz, spec.highpass_hz, spec.lowpass_hz, tuple(spec.notch_hz))


@lru_cache(maxsize=32)
def _zi_unit(sos_key: bytes, n_sections: int) -> np.ndarray:
    sos = np.frombuffer(sos_key).reshape(n_sections, 6)
    zi = sps.sosfilt_zi(sos)
    zi.setflags(write=False)
    return zi


def steady_state_zi(sos: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Delays as if each lead had sat at its first value forever: (n_sections, n_leads, 2).

    Causal seeding (no look at later samples): a step at t=0 produces no transient
    through the high-pass, whatever the electrode offset.
    """
    zi = _zi_unit(np.ascontiguousarray(sos).tobytes(), sos.shape[0])
    return zi[:, None, :] * np.asarray(first, dtype=np.float64)[None, :, None]


def sos_step(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """Filter rows of ``x`` (n_signals, n) with delays ``zi`` (n_signals, n_sections, 2),
    updating ``zi`` in place; returns a new array.  ``sos`` must be C-contiguous float64.

    This is exactly ``scipy.signal.sosfilt(sos, x, axis=-1, zi=...)`` with the state
    kept in the kernel's own layout, so the per-chunk overhead is a copy, not a validation.
    """
    y = np.array(x, dtype=np.float64, order="C")
    sos_filter_inplace(sos, y, zi)
    return y


def sos_filter_inplace(sos: np.ndarray, y: np.ndarray, zi: np.ndarray) -> None:
    """``sos_step`` writing over ``y`` (C-contiguous float64 (n_signals, n)) instead of a
    copy: for callers that already hold a private buffer, one copy fewer per chunk."""
    if _sosfilt_kernel is not None:
        _sosfilt_kernel(sos, y, zi)
        return
    y[...], zi_new = sps.sosfilt(sos, y, axis=-1, zi=np.moveaxis(zi, 0, 1))
    zi[...] = np.moveaxis(zi_new, 1, 0)


@dataclass(slots=True)
class FilterState:
    """One device's filter delays. ``sos`` is shared and read-only."""

    sos: np.ndarray               # (n_sections, 6)
    n_leads: int
    zi: np.ndarray | None = None  # (n_leads, n_sections, 2); None until the first sample
    n_seen: int = 0               # samples filtered so far in this segment


def new_filter_state(sos: np.ndarray, n_leads: int) -> FilterState:
    if sos.ndim != 2 or sos.shape[1] != 6:
        raise ValueError(f"sos must be (n_sections, 6), got {sos.shape}")
    if n_leads < 1:
        raise ValueError(f"n_leads must be >= 1, got {n_leads}")
    return FilterState(sos=sos, n_leads=n_leads)


def filter_step(state: FilterState, x: np.ndarray) -> tuple[FilterState, np.ndarray]:
    """Filter one chunk ``x`` (n_leads, n) → (state, y (n_leads, n)).

    The state is updated in place and returned (bytewax-style step).  An empty
    chunk returns an empty output and leaves the state untouched.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != state.n_leads:
        raise ValueError(f"chunk must be ({state.n_leads}, n), got {x.shape}")
    if x.shape[1] == 0:
        return state, np.empty_like(x)
    if state.zi is None:
        state.zi = np.ascontiguousarray(np.moveaxis(steady_state_zi(state.sos, x[:, 0]), 1, 0))
    y = sos_step(state.sos, x, state.zi)
    state.n_seen += x.shape[1]
    return state, y


def filter_offline(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The one-shot causal reference: what ``filter_step`` over any chunking must equal."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] == 0:
        return np.empty_like(x)
    y, _ = sps.sosfilt(sos, x, axis=-1, zi=steady_state_zi(sos, x[:, 0]))
    return y
