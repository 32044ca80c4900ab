"""Stateful rational resampler: any supported device rate → ``spec.fs_hz``.

Output sample ``m`` sits at input position ``s = m * down / up`` (input-sample
units), so output time = segment start + m / fs_out exactly, whatever the chunk
boundaries.  Each output is a windowed-sinc interpolation over the ``2*half``
input samples around ``s`` (a polyphase FIR; the table has one row per phase).
Because every output is computed from the same inputs by the same arithmetic
however the input was chunked, chunked == one-shot bit for bit.

Latency: output ``m`` waits for input ``floor(s) + half`` (``half / fs_in``
seconds, e.g. 64 ms at 250 Hz).  Inputs before the first sample are taken equal
to it (causal seeding, no start-up transient).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import upfirdn

HALF_TAPS = 16          # one-sided kernel length in input samples (before widening)
CUTOFF = 0.90           # fraction of the lower Nyquist kept (transition band above)
KAISER_BETA = 8.0


@lru_cache(maxsize=32)
def _table(up: int, down: int) -> tuple[np.ndarray, int]:
    """Polyphase table (up, 2*half): row p = weights for inputs floor(s)-half+1 .. floor(s)+half."""
    c = CUTOFF * min(1.0, up / down)          # cutoff in cycles per input sample * 2
    half = int(np.ceil(HALF_TAPS / min(1.0, up / down)))
    t = np.arange(-half + 1, half + 1, dtype=np.float64)          # tap offsets n - floor(s)
    frac = np.arange(up, dtype=np.float64)[:, None] / up          # s - floor(s)
    u = frac - t[None, :]                                          # s - n
    w = np.kaiser(2 * half + 1, KAISER_BETA)
    win = np.interp(u, np.arange(-half, half + 1), w, left=0.0, right=0.0)
    h = c * np.sinc(c * u) * win
    h /= h.sum(axis=1, keepdims=True)                             # unit DC gain per phase
    h.setflags(write=False)
    return h, half


@lru_cache(maxsize=32)
def _full_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """The polyphase table as one FIR at fs_in*up for ``upfirdn``, delayed by ``s`` outputs.

    upfirdn's output j = sum_k h[k] x_up[j*down - k]; with ``h[p - t*up + s*down] =
    table[p, t]`` its output ``m + s`` is our output m (p = m*down mod up, t = tap offset).
    """
    table, half = _table(up, down)
    s = -(-(half * up) // down)                       # ceil(half*up / down)
    d = s * down
    h = np.zeros(d + half * up)
    p = np.arange(up)[:, None]
    t = np.arange(-half + 1, half + 1)[None, :]
    h[p - t * up + d] = table
    h.setflags(write=False)
    return h, s


def ratio(fs_in_hz: float, fs_out_hz: float) -> tuple[int, int]:
    """(up, down) in lowest terms; rejects rates that are not a rational of small terms."""
    fr = Fraction(fs_in_hz).limit_denominator(1000) / Fraction(fs_out_hz).limit_denominator(1000)
    fr = 1 / fr
    if fr.numerator > 1000 or fr.denominator > 1000 or fr <= 0:
        raise ValueError(f"cannot resample {fs_in_hz} Hz -> {fs_out_hz} Hz with a small ratio")
    return fr.numerator, fr.denominator


@dataclass(slots=True)
class ResamplerState:
    up: int
    down: int
    n_leads: int
    hist: np.ndarray | None = None  # (n_leads, k) recent inputs, seeded with the first sample
    hist_start: int = 0             # input index of hist[:, 0] (may be negative: seeding)
    n_in: int = 0                   # inputs consumed in this segment
    n_out: int = 0                  # outputs produced in this segment

    @property
    def identity(self) -> bool:
        return self.up == self.down


def new_resampler(fs_in_hz: float, fs_out_hz: float, n_leads: int) -> ResamplerState:
    up, down = ratio(fs_in_hz, fs_out_hz)
    return ResamplerState(up=up, down=down, n_leads=n_leads)


def latency_s(state: ResamplerState, fs_in_hz: float) -> float:
    """How long an output waits for future input (0 for the identity)."""
    return 0.0 if state.identity else _table(state.up, state.down)[1] / fs_in_hz


def resample_step(state: ResamplerState, x: np.ndarray) -> tuple[ResamplerState, np.ndarray]:
    """Consume ``x`` (n_leads, n) at fs_in; return every output now computable (n_leads, m)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != state.n_leads:
        raise ValueError(f"chunk must be ({state.n_leads}, n), got {x.shape}")
    if state.identity:
        state.n_in += x.shape[1]
        state.n_out += x.shape[1]
        return state, x
    if x.shape[1] == 0:
        return state, x
    h, half = _table(state.up, state.down)
    up, down = state.up, state.down
    if state.hist is None:                         # seed: the first sample, forever before
        start = (-2 * half // down) * down
        state.hist = np.repeat(x[:, :1], -start, axis=1)
        state.hist_start = start
    buf = np.concatenate([state.hist, x], axis=1)
    state.n_in += x.shape[1]
    # outputs m with floor(m*down/up) + half <= n_in - 1
    m_end = max(((state.n_in - half) * up + down - 1) // down, state.n_out)
    if m_end > state.n_out:
        # buffer from an input index n0 that is a multiple of `down`, so upfirdn's output
        # grid falls on ours; every output sums the same taps in the same order however
        # the input was chunked (bit-identical)
        n0 = _aligned_start(state.n_out, up, down, half)
        hf, s = _full_filter(up, down)
        y_all = upfirdn(hf, buf[:, n0 - state.hist_start:], up, down, axis=1)
        j0 = state.n_out + s - n0 * up // down
        y = y_all[:, j0:j0 + m_end - state.n_out]
        state.n_out = m_end
    else:
        y = np.empty((state.n_leads, 0))
    cut = _aligned_start(state.n_out, up, down, half) - state.hist_start
    state.hist, state.hist_start = buf[:, cut:], state.hist_start + cut
    return state, y


def _aligned_start(m: int, up: int, down: int, half: int) -> int:
    """Largest multiple of ``down`` <= the first input output ``m`` needs."""
    return (((m * down) // up - half + 1) // down) * down
