"""Sequencing rules as timeline tables: chunks in arrival order -> what the DSP sees.

Each row: the chunk that arrives (seq, t0 in chunk periods), then the expected
released seqs with their new-segment reasons and the dropped seqs with reasons.
The expected values are written by hand from the rules in docs/processor.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiostream.schemas import SampleChunk
from streamer.sequencing import SequencerConfig, flush, step

FS = 360.0
N = 180                      # 0.5 s chunks
PERIOD_US = 500_000
T0 = 1_700_000_000_000_000
CFG = SequencerConfig(max_held=3, max_wait_s=2.1, time_tolerance_s=0.02)


def chunk(seq: int, slot: float | None = None, fs: float = FS,
          leads: tuple[str, ...] = ("MLII", "V1")) -> SampleChunk:
    """Chunk ``seq`` starting at ``slot`` chunk periods (default: slot = seq)."""
    slot = seq if slot is None else slot
    n = round(N * fs / FS)
    adc = np.zeros((len(leads), n), dtype=np.int16)
    return SampleChunk("dev-1", seq, T0 + round(slot * PERIOD_US), fs, leads,
                       (200.0,) * len(leads), (1024,) * len(leads), adc)


def run(rows):
    """Feed ``(chunk, released, dropped)`` rows; check each step's output."""
    state = None
    totals = {"reordered": 0, "missing": 0}
    for i, (c, released, dropped) in enumerate(rows):
        state, out = step(state, c, CFG)
        got_rel = [(x.seq, r) for x, r in out.released]
        got_drop = [(x.seq, r) for x, r in out.dropped]
        assert got_rel == released, f"row {i}: released {got_rel} != {released}"
        assert got_drop == dropped, f"row {i}: dropped {got_drop} != {dropped}"
        totals["reordered"] += out.reordered
        totals["missing"] += out.missing
    return state, totals


def test_in_order_stream_is_one_segment():
    rows = [(chunk(0), [(0, "start")], []),
            (chunk(1), [(1, None)], []),
            (chunk(2), [(2, None)], [])]
    _, totals = run(rows)
    assert totals == {"reordered": 0, "missing": 0}


def test_duplicates_are_dropped_released_or_held():
    rows = [(chunk(0), [(0, "start")], []),
            (chunk(1), [(1, None)], []),
            (chunk(1), [], [(1, "duplicate")]),      # redelivered after release
            (chunk(3), [], []),                      # held behind hole 2
            (chunk(3), [], [(3, "duplicate")]),      # redelivered while held
            (chunk(2), [(2, None), (3, None)], []),
            (chunk(0), [], [(0, "duplicate")])]
    _, totals = run(rows)
    assert totals == {"reordered": 1, "missing": 0}


def test_small_reorder_is_put_right_within_the_wait():
    rows = [(chunk(0), [(0, "start")], []),
            (chunk(2), [], []),
            (chunk(3), [], []),
            (chunk(1), [(1, None), (2, None), (3, None)], []),
            (chunk(4), [(4, None)], [])]
    _, totals = run(rows)
    assert totals == {"reordered": 1, "missing": 0}


def test_hole_past_the_chunk_bound_is_a_gap_and_late_arrival_dropped():
    # max_held=3: the 4th held chunk gives up on seq 1.
    rows = [(chunk(0), [(0, "start")], []),
            (chunk(2), [], []),
            (chunk(3), [], []),
            (chunk(4), [], []),
            (chunk(5), [(2, "seq_gap"), (3, None), (4, None), (5, None)], []),
            (chunk(1), [], [(1, "late")]),
            (chunk(6), [(6, None)], [])]
    _, totals = run(rows)
    assert totals == {"reordered": 0, "missing": 1}


def test_hole_past_the_time_bound_is_a_gap():
    # max_wait 2.1 s: chunk 5 ends 2.5 s after chunk 0 ended -> give up on 1..4.
    rows = [(chunk(0), [(0, "start")], []),
            (chunk(5), [(5, "seq_gap")], []),
            (chunk(6), [(6, None)], [])]
    _, totals = run(rows)
    assert totals["missing"] == 4


def test_time_jump_with_contiguous_seq_is_a_time_gap():
    rows = [(chunk(0), [(0, "start")], []),
            (chunk(1), [(1, None)], []),
            (chunk(2, slot=40), [(2, "time_gap")], []),     # device clock jumped 19 s
            (chunk(3, slot=41), [(3, None)], []),
            (chunk(4, slot=42.02), [(4, None)], []),         # 10 ms late: within tolerance
            (chunk(5, slot=30), [(5, "time_gap")], [])]      # clock went backwards
    run(rows)


def test_change_of_rate_or_leads_restarts_the_device():
    rows = [(chunk(0), [(0, "start")], []),
            (chunk(1, fs=250.0), [(1, "config_change")], []),
            (chunk(2, fs=250.0), [(2, None)], []),
            (chunk(3, fs=250.0, leads=("II",)), [(3, "config_change")], [])]
    run(rows)


def test_sequence_counter_reset_with_later_time_is_a_device_restart():
    rows = [(chunk(0, slot=10), [(0, "start")], []),
            (chunk(1, slot=11), [(1, None)], []),
            (chunk(0, slot=20), [(0, "seq_restart")], []),
            (chunk(1, slot=21), [(1, None)], [])]
    run(rows)


def test_flush_releases_held_chunks_as_new_segments():
    state, _ = run([(chunk(0), [(0, "start")], []),
                    (chunk(2), [], []),
                    (chunk(3), [], [])])
    state, out = flush(state, CFG)
    assert [(c.seq, r) for c, r in out.released] == [(2, "flush"), (3, None)]
    assert out.missing == 1 and not state.held


def test_released_stream_never_goes_back_in_time():
    """Property: whatever the arrival order, released chunks are contiguous within a segment."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        seqs = list(range(30))
        for i in range(len(seqs) - 1):            # local swaps and duplicates
            if rng.random() < 0.3:
                seqs[i], seqs[i + 1] = seqs[i + 1], seqs[i]
        seqs += list(rng.choice(30, size=5))
        seqs = [s for s in seqs if rng.random() > 0.05]   # some losses
        state, released = None, []
        for s in seqs:
            state, out = step(state, chunk(int(s)), CFG)
            released += out.released
        state, out = flush(state, CFG)
        released += out.released
        got = [c.seq for c, _ in released]
        assert got == sorted(got) and len(got) == len(set(got))
        for (a, _), (b, reason) in zip(released, released[1:], strict=False):
            assert reason is not None or b.seq == a.seq + 1


def test_config_rejects_nonsense_bounds():
    with pytest.raises(ValueError):
        SequencerConfig(max_held=-1)
