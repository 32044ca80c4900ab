"""A restart in process (no broker): the worker dies after record k, a new one re-reads
what ``streamer.warmup`` would re-read and continues at record k. Asserts behaviour,
not timing: no rhythm window and no beat after the resume point is lost, none is
invented or moved, and resumed windows keep the segment id.

The same mechanism is tested through the real broker in
tests/integration/test_processor_restarts.py; this one runs in a second and pins the
parts that are pure: the re-read selection, the hints and the DSP.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cardiostream.qrs import DEFAULT_QRS, plan_for
from cardiostream.records import load_record
from cardiostream.schemas import decode_window, encode_chunk
from cardiostream.signal import DEFAULT_SPEC
from cardiostream.windowing import _geometry
from streamer.deadletter import DeadLetters
from streamer.pipeline import Pipeline
from streamer.sequencing import SequencerConfig
from streamer.simulator import iter_chunks
from streamer.warmup import RHYTHM_SLACK_S, _select

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


def run(p: Pipeline, recs) -> list:
    out = []
    for r in recs:
        out += [decode_window(v) for _, v in p.handle(r.key, r.value, "s", 0, r.offset).windows]
    return out


def restart(recs, k: int) -> tuple[list, list, list]:
    """Windows of: the whole stream; a worker that died after record k-1; its successor."""
    full = run(pipeline(), recs)
    first = pipeline()
    before = run(first, recs[:k])
    second = pipeline()
    chosen, hints = _select(recs[:k], WARMUP_S,
                            {d: dev.segment for d, dev in first.devices.items()}.get)
    second.segment_hints.update(hints)
    for offset, key, value in chosen:
        second.handle(key, value, "s", 0, offset, None, emit=False)
    return full, before, run(second, recs[k:])


@pytest.mark.parametrize(("name", "resume_s"), [("100", 40.0), ("208", 62.0), ("119", 48.0)])
def test_a_restart_loses_no_window_after_the_resume_point(data_dir, name, resume_s):
    recs = records(data_dir, name, resume_s + 40.0)
    k = round(resume_s / 0.5)
    full, before, after = restart(recs, k)
    resume_us = START_US + round(resume_s * _US)

    def rhythm(ws):
        return sorted((w.start_time_us, w.end_time_us) for w in ws if w.kind == "rhythm")

    # every rhythm window comes out exactly once, on the same grid, old worker or new;
    # the one that ended 0.25 s before the resume point was still waiting for its
    # detector decisions and comes from the successor
    assert sorted(rhythm(before) + rhythm(after)) == rhythm(full)
    assert rhythm(after)[0][1] == resume_us - 250_000
    assert any(end > resume_us for _, end in rhythm(after))
    # beats: those after the resume point are exactly the uninterrupted stream's
    beats = sorted(w.r_time_us for w in full if w.kind == "beat" and w.r_time_us >= resume_us)
    assert sorted(w.r_time_us for w in after
                  if w.kind == "beat" and w.r_time_us >= resume_us) == beats
    # and every window after the restart keeps the segment id the old worker used
    assert {w.segment for w in after} == {w.segment for w in before} == {START_US}


def test_the_re_read_is_bounded_per_device(data_dir):
    """What the successor re-reads: at most warmup_s + the rhythm slack of each device."""
    recs = records(data_dir, "100", 60.0)
    chosen, _ = _select(recs, WARMUP_S, lambda d: None)
    assert len(chosen) * 0.5 == WARMUP_S + RHYTHM_SLACK_S


def test_rhythm_windows_are_sent_within_the_slack_after_their_end(data_dir):
    """Why the re-read reaches RHYTHM_SLACK_S past warmup_s: a 10 s rhythm window waits
    for the detector's decisions up to its end plus a fixed delay (the window margin plus
    the QRS look-ahead, 0.49 s), so one that ended up to that long before the committed
    offset may be unsent; the successor must re-read its whole span. Measured here on
    records with search-backs and ectopy: the delay never exceeds it."""
    lookahead = plan_for(DEFAULT_QRS, DEFAULT_SPEC.fs_hz).half
    delay_s = (_geometry(DEFAULT_SPEC, lookahead).margin + lookahead) / DEFAULT_SPEC.fs_hz
    assert DEFAULT_SPEC.rhythm_window_s + delay_s <= WARMUP_S + RHYTHM_SLACK_S
    worst = 0.0
    for name in ("208", "203"):
        p = pipeline()
        for r in records(data_dir, name, 120.0):
            wins = [decode_window(v) for _, v in p.handle(r.key, r.value, "s", 0, r.offset)
                    .windows]
            chunk_end = START_US + round((r.offset + 1) * 0.5 * _US)
            worst = max([worst] + [(chunk_end - w.end_time_us) / _US for w in wins
                                   if w.kind == "rhythm"])
    # sent with the first 0.5 s chunk that reaches end + delay: at a commit, only windows
    # that ended less than delay_s before it can be unsent
    assert delay_s <= worst < delay_s + 0.5
