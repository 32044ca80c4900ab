"""ColumnHistory (in-place appends) against the np.concatenate history it replaces."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiostream.history import ColumnHistory


@settings(max_examples=80, deadline=None)
@given(sizes=st.lists(st.integers(0, 50), min_size=1, max_size=40),
       keep=st.integers(1, 120), spare=st.integers(0, 60), rows=st.integers(1, 4))
def test_view_equals_concatenated_tail(sizes, keep, spare, rows):
    """After every append the view is exactly ``concatenate([old[:, -keep:], new])``."""
    rng = np.random.default_rng(len(sizes) * 1000 + keep)
    h = ColumnHistory(rows, np.float32)
    ref = None
    for n in sizes:
        block = rng.standard_normal((rows, n))
        h.extend(n, keep, spare)[...] = block
        new = block.astype(np.float32)
        ref = new if ref is None else np.concatenate([ref[:, -keep:], new], axis=1)
        np.testing.assert_array_equal(h.view(), ref)
        assert h.view().dtype == np.float32 and h.width == ref.shape[1]


def test_keep_can_change_between_appends():
    """The detector keeps everything while learning, then a fixed tail."""
    h = ColumnHistory(1)
    for i in range(5):
        h.extend(10, h.width, 4)[...] = np.arange(10 * i, 10 * i + 10)
    assert h.width == 50
    h.extend(3, 7, 4)[...] = [50, 51, 52]
    np.testing.assert_array_equal(h.view()[0], np.arange(43, 53))
