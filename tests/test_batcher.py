"""Batcher timelines: (time s, items added) -> batches closed, written out by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.batcher import Batcher

Timeline = list[tuple[float, list[int]]]


def run(batcher: Batcher[int], timeline: Timeline) -> Timeline:
    out = []
    for now, items in timeline:
        for batch in batcher.extend(items, now):
            out.append((now, batch))
    return out


def test_size_closes_batch_before_deadline() -> None:
    b: Batcher[int] = Batcher(max_size=3, max_wait_s=0.05)
    assert run(b, [(0.0, [1, 2]), (0.01, [3, 4]), (0.02, [5, 6])]) == [
        (0.01, [1, 2, 3]),
        (0.02, [4, 5, 6]),
    ]
    assert len(b) == 0


def test_deadline_closes_quiet_ward_batch() -> None:
    b: Batcher[int] = Batcher(max_size=256, max_wait_s=0.05)
    assert run(b, [(0.0, [1]), (0.03, [2]), (0.049, [])]) == []
    assert b.time_left(0.049) == pytest.approx(0.001)
    assert b.poll(0.05) == [[1, 2]]
    assert b.poll(1.0) == []  # nothing pending, nothing due


def test_deadline_counts_from_oldest_item_of_the_new_batch() -> None:
    b: Batcher[int] = Batcher(max_size=2, max_wait_s=0.05)
    assert run(b, [(0.0, [1, 2]), (0.04, [3])]) == [(0.0, [1, 2])]
    assert b.poll(0.08) == []          # item 3 arrived at 0.04, due at 0.09
    assert b.poll(0.09) == [[3]]


def test_zero_wait_is_unbatched() -> None:
    b: Batcher[int] = Batcher(max_size=8, max_wait_s=0.0)
    assert run(b, [(0.0, [1]), (0.0, [2])]) == [(0.0, [1]), (0.0, [2])]


def test_time_left_when_empty_is_full_wait_and_flush_empties() -> None:
    b: Batcher[int] = Batcher(max_size=4, max_wait_s=0.05)
    assert b.time_left(123.0) == 0.05
    b.add(7, 0.0)
    assert b.flush() == [7]
    assert b.flush() == []


@pytest.mark.parametrize("size,wait", [(0, 0.1), (1, -1.0), (1, float("nan"))])
def test_rejects_bad_limits(size: int, wait: float) -> None:
    with pytest.raises(ValueError):
        Batcher(max_size=size, max_wait_s=wait)


@given(st.integers(1, 16), st.lists(st.tuples(st.floats(0, 0.2), st.integers(0, 20)), max_size=40))
def test_every_item_once_in_order_and_no_batch_too_big(size: int, steps: list) -> None:
    b: Batcher[int] = Batcher(max_size=size, max_wait_s=0.05)
    now, counter, seen = 0.0, 0, []
    for dt, n in steps:
        now += dt
        items = list(range(counter, counter + n))
        counter += n
        for batch in b.extend(items, now):
            assert 1 <= len(batch) <= size
            seen.extend(batch)
    seen.extend(b.flush())
    assert seen == list(range(counter))
