"""The recent columns of a (rows, n) stream, appended in place.

The detector and the windows each keep the last few seconds of every device's
signal.  ``np.concatenate([hist[:, -keep:], chunk])`` per chunk copies the whole
history each time (a few µs per device-chunk); this buffer has spare columns, so a
chunk is written once where it belongs and the kept tail moves to the front only
when the spare is used up (every few chunks).  ``view()`` is then exactly the array
the concatenation would have built.
"""

from __future__ import annotations

import numpy as np


class ColumnHistory:
    """Columns ``[start, end)`` of ``buf`` hold the history, oldest first."""

    __slots__ = ("rows", "dtype", "buf", "start", "end")

    def __init__(self, rows: int, dtype: type = np.float64) -> None:
        self.rows, self.dtype = rows, dtype
        self.buf: np.ndarray | None = None
        self.start = self.end = 0

    @property
    def width(self) -> int:
        return self.end - self.start

    def extend(self, n: int, keep: int, spare: int) -> np.ndarray:
        """Keep only the newest ``keep`` columns, append ``n`` and return those (rows, n)
        columns for the caller to fill.  ``spare`` extra columns are allocated when the
        buffer is (re)allocated, so that many later columns fit before the next compaction."""
        buf = self.buf
        if buf is not None and self.end + n <= buf.shape[1]:     # the usual case: room left
            self.start = max(self.start, self.end - keep)
            self.end += n
            return buf[:, self.end - n:self.end]
        keep = min(keep, self.width)                  # full: move the kept tail to the front
        size = keep + n + spare
        if buf is None or not size <= buf.shape[1] <= size + spare:   # grow, or shrink once
            self.buf = np.empty((self.rows, size), dtype=self.dtype)      # keep got smaller
        if keep:
            self.buf[:, :keep] = buf[:, self.end - keep:self.end]
        self.end = keep
        self.start = self.end - keep
        self.end += n
        return self.buf[:, self.end - n:self.end]

    def view(self) -> np.ndarray:
        """(rows, width): the kept history (a view: valid until the next ``extend``)."""
        return self.buf[:, self.start:self.end]
