"""Warm-up selection: the last warmup_s of each device, started on its segment's grid."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cardiostream.schemas import SampleChunk, encode_chunk
from streamer.warmup import _select

S = 1_700_000_000_000_000          # the device's segment started here (device µs)
HOP_US = 2_000_000


def records(device: str, first: int, stop: int):
    """Chunks ``first..stop-1`` (0.5 s each) of a stream whose chunk 0 starts at S."""
    out = []
    for seq in range(first, stop):
        c = SampleChunk(device, seq, S + seq * 500_000, 360.0, ("MLII",), (200.0,), (0,),
                        np.zeros((1, 180), np.int16))
        out.append(SimpleNamespace(key=device.encode(), value=encode_chunk(c), offset=seq))
    return out


def seqs(chosen):
    return [r.offset for r in chosen]


def test_without_an_anchor_the_last_warmup_seconds_are_kept():
    chosen, hints = _select(records("a", 0, 40), 10.0, lambda d: None, HOP_US)
    assert seqs(chosen) == list(range(20, 40)) and hints == {}


def test_with_an_anchor_the_re_read_starts_on_the_rhythm_grid():
    # Device time of chunk k is S + k*0.5 s; the grid is every 2 s = every 4 chunks.
    rec = records("a", 0, 42)                 # last 10 s: chunks 22..41; grid: 24, 28, ...
    chosen, hints = _select(rec, 10.0, lambda d: S, HOP_US)
    assert seqs(chosen) == list(range(24, 42)) and hints == {"a": S}


def test_devices_are_selected_independently_and_stale_anchors_ignored():
    rec = records("a", 0, 40) + records("b", 0, 40)
    later = S + 250_000                       # b's anchor is not on its chunk grid at all
    chosen, hints = _select(rec, 10.0, {"a": S, "b": later}.get, HOP_US)
    by_dev = {d: [r.offset for r in chosen if r.key == d.encode()] for d in ("a", "b")}
    assert by_dev == {"a": list(range(20, 40)), "b": list(range(20, 40))}
    assert hints == {"a": S}
