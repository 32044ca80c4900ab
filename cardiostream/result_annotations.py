"""Classifier results → the WFDB annotations of one record (pure).

The one conversion used by offline evaluation (``cardiostream evaluate``) and by
live replay scoring (``cardiostream replay``), so both write the same file for
the same results: a beat label (N S V F Q) at each R peak's record sample, and
a ``+`` annotation with aux ``(CODE`` wherever the rhythm changes.

Rhythm placement: a rhythm window [start, end) speaks for the hop-long interval
centred in it (10 s windows, 2 s hop → the middle 2 s), so consecutive windows
tile the record without overlap and a change is dated to within one hop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cardiostream.annotate import Annotations
from cardiostream.schemas import BeatResult, RhythmResult

_US = 1_000_000


def to_sample(t_us: int, start_us: int, fs_hz: float) -> int:
    """Record sample of a device time, for a record replayed from ``start_us``."""
    return int(round((t_us - start_us) * fs_hz / _US))


def rhythm_marks(rhythms: Sequence[RhythmResult], start_us: int, fs_hz: float,
                 hop_s: float) -> list[tuple[int, str]]:
    """(record sample, code) at each rhythm change, from windows in time order."""
    marks: list[tuple[int, str]] = []
    current = None
    for res in sorted(rhythms, key=lambda r: (r.start_time_us, r.window_index)):
        centre = (res.start_time_us + res.end_time_us) / 2
        begin = to_sample(int(centre - hop_s * _US / 2), start_us, fs_hz)
        if res.rhythm != current:
            marks.append((max(begin, 0), res.rhythm))
            current = res.rhythm
    return marks


def annotations_from_results(beats: Sequence[BeatResult], rhythms: Sequence[RhythmResult],
                             start_us: int, fs_hz: float, hop_s: float = 2.0) -> Annotations:
    """One record's annotations; duplicate results (redelivery) collapse to one beat."""
    by_time = {b.r_time_us: b.label for b in beats}
    times = sorted(by_time)
    samples = [to_sample(t, start_us, fs_hz) for t in times]
    symbols = [by_time[t] for t in times]
    aux = [""] * len(times)
    for sample, code in rhythm_marks(rhythms, start_us, fs_hz, hop_s):
        samples.append(sample)
        symbols.append("+")
        aux.append(f"({code}")
    return Annotations(np.asarray(samples, dtype=np.int64), symbols, aux)
