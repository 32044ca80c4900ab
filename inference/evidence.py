"""The ECG a nurse sees with an alarm: the last seconds of lead 0, per patient.

Rhythm windows (10 s, 2 s hop, decimated to ``RhythmWindow.fs_hz``) tile the
past continuously; beat windows (span around each R peak, at the model rate)
arrive up to one hop earlier than the rhythm window that will cover them, so
they extend the strip up to the newest beat. Between beat windows further apart
than their span the strip is bridged linearly (a short flat segment, documented
in docs/alarms.md) -- those stretches are replaced by the real signal in the
live view as soon as the covering rhythm window arrives, but an alarm's strip is
frozen at the moment it is raised.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

_US = 1_000_000
KEEP_S = 30.0          # history kept per patient; > strip length + one rhythm hop
MAX_SNIPPETS = 64      # beat windows newer than the rhythm buffer (>= 2 s at 300 bpm)


@dataclass(slots=True)
class StripBuffer:
    """Lead-0 history: a contiguous rhythm part plus beat snippets beyond its end."""

    fs_hz: float = 0.0
    start_us: int = 0
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    snippets: deque = field(default_factory=lambda: deque(maxlen=MAX_SNIPPETS))

    @property
    def end_us(self) -> int:
        """Device time just after the last rhythm sample (start when empty)."""
        if self.fs_hz <= 0:
            return self.start_us
        return self.start_us + round(len(self.samples) * _US / self.fs_hz)

    def add_rhythm(self, start_us: int, fs_hz: float, lead0: np.ndarray) -> None:
        """Append the part of a rhythm window that is newer than the buffer; (n,) mV."""
        if fs_hz != self.fs_hz or start_us > self.end_us or len(self.samples) == 0:
            self.fs_hz, self.start_us = fs_hz, start_us
            self.samples = np.asarray(lead0, np.float32).copy()
        else:
            skip = round((self.end_us - start_us) * fs_hz / _US)
            self.samples = np.concatenate([self.samples, lead0[skip:]]).astype(np.float32)
        excess = len(self.samples) - round(KEEP_S * self.fs_hz)
        if excess > 0:
            self.samples = self.samples[excess:]
            self.start_us += round(excess * _US / self.fs_hz)
        end = self.end_us
        while self.snippets and self.snippets[0][0][-1] < end:
            self.snippets.popleft()

    def add_beat(self, r_time_us: int, fs_hz: float, pre: int, lead0: np.ndarray) -> None:
        """Keep a beat window's lead 0 (``pre`` samples before the R peak) for the strip."""
        t = r_time_us + (np.arange(len(lead0)) - pre) * (_US / fs_hz)
        if t[-1] >= self.end_us:
            self.snippets.append((t.astype(np.int64), np.asarray(lead0, np.float32)))

    def strip(self, center_us: int, length_s: float, out_fs_hz: float) -> tuple[int, np.ndarray]:
        """(start_us, (n,) mV) about ``length_s`` long around ``center_us``, at ``out_fs_hz``.

        When the signal after ``center_us`` is not there yet the strip slides back
        to end at the newest sample, so it is always as long as history allows.
        """
        times, values = self._timeline()
        if len(times) < 2:
            return center_us, np.zeros(0, np.float32)
        half = round(length_s * _US / 2)
        end = min(center_us + half, int(times[-1]))
        start = max(end - 2 * half, int(times[0]))
        grid = np.arange(start, end, _US / out_fs_hz)
        return int(start), np.interp(grid, times, values).astype(np.float32)

    def _timeline(self) -> tuple[np.ndarray, np.ndarray]:
        parts_t, parts_v = [], []
        if len(self.samples):
            parts_t.append(self.start_us + np.arange(len(self.samples)) * (_US / self.fs_hz))
            parts_v.append(self.samples)
        end = self.end_us if len(self.samples) else -np.inf
        for t, v in self.snippets:
            keep = t >= end
            parts_t.append(t[keep].astype(np.float64))
            parts_v.append(v[keep])
            if keep.any():
                end = t[-1] + 1
        if not parts_t:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(parts_t), np.concatenate(parts_v)
