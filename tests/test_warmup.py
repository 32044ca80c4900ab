"""Warm-up selection: the last warmup_s of each device, and segment-id hints."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cardiostream.schemas import SampleChunk, encode_chunk
from streamer.warmup import _select

S = 1_700_000_000_000_000          # the device's segment started here (device µs)


def records(device: str, first: int, stop: int):
    """Chunks ``first..stop-1`` (0.5 s each) of a stream whose chunk 0 starts at S."""
    out = []
    for seq in range(first, stop):
        c = SampleChunk(device, seq, S + seq * 500_000, 360.0, ("MLII",), (200.0,), (0,),
                        np.zeros((1, 180), np.int16))
        out.append(SimpleNamespace(key=device.encode(), value=encode_chunk(c), offset=seq))
    return out


def seqs(chosen, device: str = "a"):
    return [offset for offset, key, _ in chosen if key == device.encode()]


def test_the_last_warmup_seconds_are_kept():
    chosen, hints = _select(records("a", 0, 40), 10.0, lambda d: None)
    assert seqs(chosen) == list(range(20, 40))          # 10 s = 20 chunks of 0.5 s
    assert hints == {}


def test_a_recorded_segment_start_before_the_re_read_becomes_a_hint():
    rec = records("a", 0, 40) + records("b", 30, 60) + records("c", 0, 40)
    starts = {"a": S, "b": S + 25 * 500_000, "c": S + 30 * 500_000}
    chosen, hints = _select(rec, 10.0, starts.get)
    assert hints == {"a": S, "b": S + 25 * 500_000}      # c's start is newer than its re-read
    assert seqs(chosen, "b") == list(range(40, 60))
