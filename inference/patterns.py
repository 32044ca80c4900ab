"""Beat-sequence patterns behind the arrhythmia alarms: pure functions on (time, label).

A beat is ``(r_time_us, label)`` with label an AAMI class (N S V F Q) or ``?``
for a beat on a signal that is not of good quality; ``?`` breaks every pattern,
so noise can neither make nor extend a run. Sequences are oldest first.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Beat = tuple[int, str]
_US = 1e6
NORMAL_LIKE = frozenset("NS")     # "non-V" beats in bigeminy/trigeminy/couplet patterns


def trailing_run(beats: Sequence[Beat], label: str) -> list[Beat]:
    """The longest run of ``label`` beats at the end of ``beats``."""
    n = 0
    for _, lab in reversed(beats):
        if lab != label:
            break
        n += 1
    return list(beats[len(beats) - n:])


def rate_bpm(run: Sequence[Beat]) -> float:
    """Rate inside a run from the median of its n-1 intervals (bpm); 0 for < 2 beats.

    The median lets one long interval inside a ventricular run (a blocked or missed
    beat) not hide the run's rate; for 3 beats it equals the mean.
    """
    rr = [b[0] - a[0] for a, b in zip(run[:-1], run[1:], strict=True)]
    med = statistics.median(rr) if rr else 0
    return 60.0 * _US / med if med > 0 else 0.0


def _token(label: str) -> str:
    return "n" if label in NORMAL_LIKE else label


def repeating(beats: Sequence[Beat], unit: str, cycles: int) -> list[Beat] | None:
    """Beats of the newest ``cycles`` repetitions of ``unit`` (e.g. ``"nV"``), else None.

    The pattern may end at the newest beat or up to ``len(unit) - 1`` beats
    before it (bigeminy is still on while the next normal beat is in).
    """
    span = len(unit) * cycles
    beats = list(beats[-(span + len(unit) - 1):])        # all that can match
    tokens = [_token(lab) for _, lab in beats]
    for shift in range(len(unit)):
        stop = len(tokens) - shift
        if stop - span < 0:
            break
        if "".join(tokens[stop - span:stop]) == unit * cycles and all(
                t == unit[i % len(unit)] for i, t in enumerate(tokens[stop:])):
            return list(beats[stop - span:stop])
    return None


def couplet(beats: Sequence[Beat]) -> list[Beat] | None:
    """The two V beats of a couplet just closed by a non-V beat (``n V V n``), else None."""
    if len(beats) < 4 or "".join(_token(lab) for _, lab in beats[-4:]) != "nVVn":
        return None
    return list(beats[-3:-1])


def heart_rate_bpm(beats: Sequence[Beat], n_intervals: int) -> float | None:
    """60 / median of the newest ``n_intervals`` RR between consecutive good beats."""
    tail = beats[-(2 * n_intervals + 2):]                # enough unless half are "?"
    rr = [(b[0] - a[0]) / _US for a, b in zip(tail[:-1], tail[1:], strict=True)
          if a[1] != "?" and b[1] != "?"]
    if len(rr) < n_intervals:
        return None
    med = statistics.median(rr[-n_intervals:])    # 8 values: faster than numpy
    return 60.0 / med if med > 0 else None


def count_since(beats: Sequence[Beat], label: str, since_us: int) -> int:
    """Number of ``label`` beats at or after ``since_us``."""
    n = 0
    for t, lab in reversed(beats):
        if t < since_us:
            break
        n += lab == label
    return n
