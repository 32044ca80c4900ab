"""The beat-by-beat comparison walk of PhysioNet's ``bxb``, reproduced rule for rule.

``bxb`` (WFDB Software Package, app/bxb.c, G. Moody, last revised 2020) is the
comparator ANSI/AAMI EC57 names. Its counts depend on details no summary of the
standard states (which of two close beats is paired, what happens to beats near
the start time, VF and shutdown intervals, which codes are beats), so this module
follows bxb.c's own control flow instead of re-deriving the rules:

* ``_Stream.advance`` is bxb's ``getref()``/``gettest()``: it shifts the "next"
  beat into "current", computes the RR interval that ends at the new current beat
  (0 when the previous time is 0, at end of file, or when VF or shutdown lies in
  between), then reads annotations until the next beat, handling shutdown (NOISE
  with subtype bits 4 and 5 set) and VF (everything between VFON and VFOFF is
  skipped) on the way.
* ``compare`` is bxb's ``main()``: skip to the first reference beat at or after
  ``start`` and the last test beat before it, apply the start-of-test rules, then
  the four-case loop that pairs beats within the match window.

All times are in samples of the reference record; ``match_dt`` and ``start`` are
converted from seconds by the caller exactly as bxb's ``strtim`` does.
docs/scoring.md explains every rule with the line of bxb.c it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HUGE_TIME = 2**63 - 1              # WFDB_TIME_MAX: "no more beats"
K_OTHER, K_BEAT, K_NOISE, K_VFON, K_VFOFF = range(5)
SHUTDOWN_BITS = 0x30               # NOISE subtype bits 4 and 5: both signals unreadable

# Confusion rows (reference) and columns (test). 'O': no beat there (an extra test
# beat's row, a missed reference beat's column); 'X': inside a shutdown interval.
ROWS: tuple[str, ...] = ("N", "S", "V", "F", "Q", "O", "X")
_INDEX = {c: i for i, c in enumerate(ROWS)}


@dataclass(frozen=True, slots=True)
class AnnStream:
    """One annotation file as bxb reads it: every annotation, in file order.

    ``kind`` is one of K_* ; ``label`` is the AAMI class letter of a beat (``O`` for
    a QRS code with no AAMI class, e.g. ``!``) and ``""`` otherwise.
    """

    time: tuple[int, ...]
    kind: tuple[int, ...]
    label: tuple[str, ...]
    subtype: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BxbCounts:
    """Outcome of one record's comparison.

    ``matrix[i, j]`` counts reference class ``ROWS[i]`` paired with test class
    ``ROWS[j]`` (7x7 int64; the O/X x O/X corner is always 0).
    """

    matrix: np.ndarray
    rr_sum_sq: float          # sum of squared RR interval errors, samples^2
    rr_n: int                 # number of RR errors summed
    shutdown_s: int           # test annotator's shutdown duration, whole seconds


class _Stream:
    """bxb's getref()/gettest() state for one annotation file."""

    __slots__ = ("times", "kinds", "labels", "subs", "n", "i", "T", "Tp", "A", "Ap", "RR",
                 "sdon", "sdoff", "vfon", "vfoff", "psdon", "psdoff", "pvfon", "pvfoff",
                 "is_test", "match_dt", "end_time", "shut_down")

    def __init__(self, ann: AnnStream, match_dt: int, end_time: int, is_test: bool,
                 shut_down: int) -> None:
        self.times, self.kinds, self.labels, self.subs = (
            ann.time, ann.kind, ann.label, ann.subtype)
        self.n, self.i = len(ann.time), 0
        self.T = self.Tp = 0
        self.A: str | int = 0
        self.Ap: str | int = 0
        self.RR = 0
        self.sdon = self.sdoff = self.vfon = self.vfoff = -1
        self.psdon = self.psdoff = self.pvfon = self.pvfoff = -1
        self.is_test, self.match_dt, self.end_time = is_test, match_dt, end_time
        self.shut_down = shut_down

    def advance(self) -> None:
        TT = self.T
        self.T, self.A = self.Tp, self.Ap
        T = self.T
        if (TT == 0 or T == HUGE_TIME or TT <= self.vfon < T or TT <= self.sdon < T
                or TT <= self.pvfon < T or TT <= self.psdon < T):
            self.RR = 0
        else:
            self.RR = T - TT
        while self.i < self.n:
            i = self.i
            self.i += 1
            kind = self.kinds[i]
            if kind == K_BEAT:
                self.Tp, self.Ap = self.times[i], self.labels[i]
                return
            if kind == K_NOISE and (self.subs[i] & SHUTDOWN_BITS) == SHUTDOWN_BITS:
                if self._shutdown(self.times[i]):
                    return
            elif kind == K_VFON and self._ventricular_fibrillation(self.times[i]):
                return
        self.Tp, self.Ap = HUGE_TIME, "*"

    def _shutdown(self, onset: int) -> bool:
        """A shutdown NOISE annotation was read; True when the file ended inside it."""
        self.psdon, self.psdoff = self.sdon, self.sdoff
        self.sdon = onset
        if self.i >= self.n:                      # EOF before the end of shutdown
            self.Tp, self.Ap = HUGE_TIME, "*"
            if not self.is_test:
                self.sdoff = HUGE_TIME
            elif self.end_time > 0:
                self.shut_down += self.end_time - self.sdon
            return True
        j = self.i
        self.i += 1
        if self.kinds[j] == K_NOISE and (self.subs[j] & SHUTDOWN_BITS) != SHUTDOWN_BITS:
            self.sdoff = self.times[j]
        else:                                     # AHA style: one mark mid-shutdown
            cur = self.T
            self.sdon = (self.vfoff if self.vfoff > cur else cur) + self.match_dt
            self.sdoff = self.times[j] - self.match_dt
            self.sdon = min(self.sdon, self.sdoff)
            self.i = j                            # ungetann()
        if self.is_test:
            self.shut_down += self.sdoff - self.sdon
        return False

    def _ventricular_fibrillation(self, onset: int) -> bool:
        """VFON read: skip to VFOFF; True when the file ended first."""
        self.pvfon, self.pvfoff = self.vfon, self.vfoff
        self.vfon = onset
        while True:
            if self.i >= self.n:
                self.Tp, self.Ap = HUGE_TIME, "*"
                return True
            j = self.i
            self.i += 1
            if self.kinds[j] == K_VFOFF:
                self.vfoff = self.times[j]
                return False


def _rpann(ref: _Stream, t: int) -> str:
    """Pseudo-label of the reference for an unmatched test beat at t."""
    if ((ref.vfon != -1 and ref.vfon <= t and (t <= ref.vfoff or ref.vfoff == -1))
            or (ref.pvfon != -1 and ref.pvfon <= t <= ref.pvfoff)):
        return "*"                                 # inside reference VF: not counted
    if ((ref.sdon != -1 and ref.sdon <= t and (t <= ref.sdoff or ref.sdoff == -1))
            or (ref.psdon != -1 and ref.psdon <= t <= ref.psdoff)):
        return "X"
    return "O"


def _tpann(test: _Stream, t: int) -> str:
    """Pseudo-label of the test for an unmatched reference beat at t."""
    if ((test.sdon != -1 and test.sdon <= t and (t <= test.sdoff or test.sdoff == -1))
            or (test.psdon != -1 and test.psdon <= t <= test.psdoff)):
        return "X"
    return "O"


def _loop_continues(T: int, t: int, end_time: int) -> bool:
    return ((end_time > 0 and (T <= end_time or t <= end_time))
            or (end_time == -1 and T != HUGE_TIME)
            or (end_time == 0 and T != HUGE_TIME and t != HUGE_TIME))


def compare(ref: AnnStream, test: AnnStream, *, start: int, match_dt: int, end_time: int,
            fs_hz: float) -> BxbCounts:
    """Run bxb's comparison of ``test`` against ``ref`` from sample ``start``.

    ``end_time``: record length in samples (bxb's ``strtim("e")``), -1 when unknown
    (the walk then stops at the end of the reference file), 0 to stop at the end of
    either file.
    """
    matrix = np.zeros((7, 7), dtype=np.int64)
    rr = [0.0, 0]
    R = _Stream(ref, match_dt, end_time, False, 0)
    S = _Stream(test, match_dt, end_time, True, int(0.5 * fs_hz + 0.5))

    def pair(r: str | int, s: str | int) -> None:
        i, j = _INDEX.get(r), _INDEX.get(s)        # '*' and 0 are not counted
        if i is not None and j is not None and not (i >= 5 and j >= 5):
            matrix[i, j] += 1
        if R.RR > 0 and S.RR > 0:
            rr[0] += float(R.RR - S.RR) ** 2
            rr[1] += 1

    R.advance()
    while R.T < start:
        R.advance()
    S.advance()
    while S.Tp < start:
        S.advance()
    if R.T - S.T < abs(R.T - S.Tp) and R.T - S.T <= match_dt:
        if R.A != 0 or S.A != 0:
            pair(R.A, S.A)
        R.advance()
        S.advance()
    else:                          # skip an unmatched first test beat inside the window
        S.advance()
        if S.T - start <= match_dt and abs(R.T - S.Tp) < abs(R.T - S.T):
            S.advance()
    while _loop_continues(R.T, S.T, end_time):
        T, Tp, t, tp = R.T, R.Tp, S.T, S.Tp
        if t < T:
            if T - t <= match_dt and (T - t < abs(T - tp) or abs(Tp - tp) < abs(T - tp)):
                pair(R.A, S.A)
                R.advance()
                S.advance()
            else:
                pair(_rpann(R, t), S.A)
                S.advance()
        elif t - T <= match_dt and (t - T < abs(t - Tp) or abs(tp - Tp) < abs(t - Tp)):
            pair(R.A, S.A)
            S.advance()
            R.advance()
        else:
            pair(R.A, _tpann(S, T))
            R.advance()
    fs_samples = int(fs_hz + 0.5)
    return BxbCounts(matrix, rr[0], int(rr[1]), int(S.shut_down / fs_samples))
