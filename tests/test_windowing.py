"""Beat and rhythm windows as timelines: which chunk emits what, with which content.

The signal's value at every sample is its own sample index, so the content of
a window proves exactly which samples it holds.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiostream.qrs import Beat
from cardiostream.signal import DEFAULT_SPEC
from cardiostream.windowing import new_window_state, window_flush, window_step

SPEC = DEFAULT_SPEC
FS = SPEC.fs_hz
LOOKAHEAD = 72
T0 = 1_700_000_000_000_000


def beat(r: int, committed: int | None = None) -> Beat:
    return Beat(r=r, peak=r + 20, committed=committed or r + 20 + LOOKAHEAD, height=1.0,
                searchback=False)


def run(beats: list[Beat], n_total: int, chunk: int = 100, flush: bool = False):
    """Feed index-valued samples in chunks; give each beat once its commit sample arrived.
    Returns [(n_after_chunk, beat_windows, rhythm_windows)]."""
    ws = new_window_state(SPEC, 2, "dev-1", "ward-1", 0, T0, 0, LOOKAHEAD)
    todo, log = list(beats), []
    for lo in range(0, n_total, chunk):
        hi = min(n_total, lo + chunk)
        x = np.vstack([np.arange(lo, hi), -np.arange(lo, hi)]).astype(np.float64)
        due = [b for b in todo if b.committed < hi]
        todo = todo[len(due):]
        ws, bw, rw = window_step(ws, x, x, due, hi - LOOKAHEAD)
        log.append((hi, bw, rw))
    if flush:
        ws, bw = window_flush(ws)
        log.append((n_total, bw, []))
    return log


def emitted_at(log) -> dict[int, int]:
    return {round((w.r_time_us - T0) * FS / 1e6): n for n, bws, _ in log for w in bws}


# timeline: (R sample, commit sample) -> chunk end (n) at which its window comes out
@pytest.mark.parametrize("beats, expected", [
    # next beat's commit arrives after the post-R span: emitted with the next beat
    ([(1000, None), (1300, None), (1600, None)], {1000: 1400, 1300: 1700}),
    # next beat committed before the post-R span (R+162) is there: wait for the samples
    ([(1000, None), (1080, 1110), (1700, None)], {1000: 1200, 1080: 1800}),
])
def test_beat_window_emission_timeline(beats, expected):
    log = run([beat(r, c) for r, c in beats], 2500)
    assert emitted_at(log) == expected


def test_beat_window_content_rr_and_times():
    log = run([beat(1000), beat(1300), beat(1660)], 2500, flush=True)
    wins = [w for _, bws, _ in log for w in bws]
    assert [w.beat_index for w in wins] == [0, 1, 2]
    w = wins[1]
    np.testing.assert_array_equal(w.samples[0], np.arange(1300 - SPEC.beat_pre,
                                                          1300 - SPEC.beat_pre + SPEC.beat_span))
    assert w.samples.shape == (2, SPEC.beat_span) and w.samples.dtype == np.float32
    assert w.rr_prev_s == pytest.approx(300 / FS) and w.rr_next_s == pytest.approx(360 / FS)
    assert w.r_time_us == T0 + round(1300 * 1e6 / FS)
    assert w.last_sample_time_us == T0 + round((1660 + 20 + LOOKAHEAD) * 1e6 / FS)
    assert wins[0].rr_prev_s == 0.0 and wins[2].rr_next_s == 0.0   # unknown ends


def test_rr_local_and_long_means_against_numpy():
    rng = np.random.default_rng(1)
    r = np.cumsum(rng.integers(150, 500, 400)) + 200
    log = run([beat(int(x)) for x in r], int(r[-1]) + 600, chunk=997)
    wins = {w.beat_index: w for _, bws, _ in log for w in bws}
    rr = np.diff(r) / FS
    for i in (1, 5, 11, 250, 350):
        w = wins[i]
        assert w.rr_prev_s == pytest.approx(rr[i - 1])
        assert w.rr_local_s == pytest.approx(rr[max(0, i - SPEC.local_rr_beats):i].mean())
        assert w.rr_long_s == pytest.approx(rr[max(0, i - SPEC.long_rr_beats):i].mean())


def test_first_beat_window_before_segment_start_is_edge_padded():
    log = run([beat(30), beat(400)], 1200)
    w = [w for _, bws, _ in log for w in bws][0]
    assert w.samples[0, 0] == 0.0 and w.samples[0, SPEC.beat_pre - 30] == 0.0
    assert w.samples[0, SPEC.beat_pre] == 30.0


def test_rhythm_windows_timeline_content_and_beats():
    beats = [beat(r) for r in range(100, 9000, 300)]
    log = run(beats, 9000)
    rws = [(n, w) for n, _, r in log for w in r]
    hop, win = round(SPEC.rhythm_hop_s * FS), round(SPEC.rhythm_window_s * FS)
    decim = round(FS / SPEC.rhythm_fs_hz)
    assert [w.window_index for _, w in rws] == list(range(len(rws)))
    for n, w in rws:
        start = round((w.start_time_us - T0) * FS / 1e6)
        assert start % hop == 0 and w.end_time_us == T0 + round((start + win) * 1e6 / FS)
        np.testing.assert_array_equal(w.samples[0], np.arange(start, start + win, decim))
        expect = tuple(T0 + round(b.r * 1e6 / FS) for b in beats if start <= b.r < start + win)
        assert w.beat_times_us == expect
        assert n - LOOKAHEAD >= start + win          # never before the detector decided its end
    assert len(rws) == (9000 - LOOKAHEAD - win - 126) // hop + 1


def test_rhythm_fs_must_divide_model_rate():
    from cardiostream.signal import SignalSpec

    with pytest.raises(ValueError):
        new_window_state(SignalSpec(rhythm_fs_hz=70.0), 2, "d", "u", 0, 0, 0, 72)
