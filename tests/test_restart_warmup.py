"""A restart in process (no broker): the worker dies after record k-1; its acks were
held by ``streamer.ackgate`` as the agent holds them, so the committed offset is the
first record not acked; a new worker re-reads what ``streamer.warmup`` would re-read
(10 s per device) and continues at that offset. Asserts behaviour, not timing: no
rhythm window and no beat after the resume point is lost, none is invented or moved
(windows after the commit come twice, identical in the fields consumers key on), and
resumed windows keep the segment id.

The same mechanism is tested through the real broker in
tests/integration/test_processor_restarts.py; this one runs in a second and pins the
parts that are pure: the re-read selection, the hints and the DSP.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest

from cardiostream.records import load_record
from cardiostream.schemas import decode_window, encode_chunk
from cardiostream.signal import DEFAULT_SPEC
from streamer.ackgate import AckGate
from streamer.deadletter import DeadLetters
from streamer.pipeline import Pipeline
from streamer.sequencing import SequencerConfig
from streamer.simulator import iter_chunks
from streamer.warmup import _select

# Device clock of the record's first sample: 0.25 s off the 2 s rhythm grid, so a restart
# at a chunk boundary can fall 0.25 s after a rhythm window's end, before it was sent.
START_US = 1_700_000_000_250_000
WARMUP_S = 10.0                           # Settings().processor.warmup_s default
_US = 1_000_000


def records(data_dir, name: str, seconds: float) -> list[SimpleNamespace]:
    rec = load_record(data_dir / "mitdb", name, sampto=round(seconds * 360))
    return [SimpleNamespace(key=c.device_id.encode(), value=encode_chunk(c), offset=i)
            for i, c in enumerate(iter_chunks(rec, f"bed-{name}", START_US, 0.5))]


def pipeline() -> Pipeline:
    return Pipeline(DEFAULT_SPEC, SequencerConfig(), DeadLetters("dl"))


def run(p: Pipeline, recs, gate: AckGate | None = None) -> tuple[list, list[int]]:
    """Windows of ``recs`` through ``p``, and the offsets acked, in order (as the agent
    does: each record joins the gate, then whatever the gate releases is acked)."""
    out, acked = [], []
    resumable = partial(p.resumable, lookback_us=round(WARMUP_S * _US))
    for r in recs:
        res = p.handle(r.key, r.value, "s", 0, r.offset)
        out += [decode_window(v) for _, v in res.windows]
        if gate is not None:
            gate.add(0, r.offset, res.holds, 0.0)
            acked += gate.release(0, resumable, 0.0)
    return out, acked


def restart(recs, k: int) -> tuple[list, list, list, int]:
    """Windows of: the whole stream; a worker that died after record k-1; its successor,
    which resumes at the first offset the first worker had not acked."""
    full, _ = run(pipeline(), recs)
    first = pipeline()
    before, acked = run(first, recs[:k], AckGate())
    assert acked == list(range(len(acked)))               # acked in order, from the front
    resume = len(acked)
    second = pipeline()
    chosen, hints = _select(recs[:resume], WARMUP_S,
                            {d: dev.segment for d, dev in first.devices.items()}.get)
    second.segment_hints.update(hints)
    for offset, key, value in chosen:
        second.handle(key, value, "s", 0, offset, None, emit=False)
    after, _ = run(second, recs[resume:])
    return full, before, after, resume


def rhythm(ws) -> list[tuple[int, int]]:
    return sorted((w.start_time_us, w.end_time_us) for w in ws if w.kind == "rhythm")


@pytest.mark.parametrize(("name", "crash_s"), [("100", 40.0), ("208", 62.0), ("119", 48.0)])
def test_a_restart_loses_no_window_after_the_resume_point(data_dir, name, crash_s):
    recs = records(data_dir, name, crash_s + 40.0)
    k = round(crash_s / 0.5)
    full, before, after, resume = restart(recs, k)
    resume_us = START_US + round(resume * 0.5 * _US)
    # the commit trails the crash by at most the rhythm decision delay and a chunk or two
    assert 0 < k - resume <= 4
    # every rhythm window comes out, on the same grid, old worker or new; those the old
    # worker sent after the commit come again from the successor (duplicates)
    assert set(rhythm(before)) | set(rhythm(after)) == set(rhythm(full))
    assert set(rhythm(after)) <= set(rhythm(full))
    # the window that ended 0.25 s before the crash was still waiting for its detector
    # decisions: it was not sent, and the successor, re-reading only 10 s, sends it
    crash_us = START_US + round(crash_s * _US)
    assert (crash_us - 250_000 - 10_000_000, crash_us - 250_000) in set(rhythm(after)) - \
        set(rhythm(before))
    # beats: those after the resume point are exactly the uninterrupted stream's
    beats = sorted(w.r_time_us for w in full if w.kind == "beat" and w.r_time_us >= resume_us)
    assert sorted(w.r_time_us for w in after
                  if w.kind == "beat" and w.r_time_us >= resume_us) == beats
    # and every window after the restart keeps the segment id the old worker used
    assert {w.segment for w in after} == {w.segment for w in before} == {START_US}


def test_the_re_read_is_bounded_per_device(data_dir):
    """What the successor re-reads: at most warmup_s of each device."""
    recs = records(data_dir, "100", 60.0)
    chosen, _ = _select(recs, WARMUP_S, lambda d: None)
    assert len(chosen) * 0.5 == WARMUP_S


def test_acks_trail_the_stream_by_the_rhythm_decision_delay_only(data_dir):
    """Why a hold is short: a 10 s rhythm window is sent with the first chunk that reaches
    its end plus the detector's decision delay (0.49 s), so the gate holds a record until
    the window that starts 10 s before its end has been sent. Measured on records with
    search-backs and ectopy (208, 203): never more than 4 chunks (2 s) behind."""
    worst = 0
    for name in ("208", "203"):
        p, gate, acked_upto = pipeline(), AckGate(), 0
        resumable = partial(p.resumable, lookback_us=round(WARMUP_S * _US))
        for r in records(data_dir, name, 120.0):
            res = p.handle(r.key, r.value, "s", 0, r.offset)
            gate.add(0, r.offset, res.holds, 0.0)
            acked_upto += len(gate.release(0, resumable, 0.0))
            worst = max(worst, r.offset + 1 - acked_upto)
        assert gate.forced == 0
    assert 1 <= worst <= 4
