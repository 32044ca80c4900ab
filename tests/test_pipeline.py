"""Pipeline: dead letters with reasons, sequencing counters, segments, warm-up mode.

The DSP is a stub (one beat window at every chunk start) so these tests are
about routing, not detection; detection parity is tests/integration.
"""

from __future__ import annotations

import base64

import numpy as np

from cardiostream.schemas import (
    BeatWindow,
    SampleChunk,
    chunk_to_json,
    decode_dead_letter,
    decode_window,
    encode_chunk,
)
from cardiostream.signal import DEFAULT_SPEC
from streamer.deadletter import DeadLetters
from streamer.pipeline import Dsp, Pipeline
from streamer.sequencing import SequencerConfig

T0 = 1_700_000_000_000_000


def stub_new_state(spec, device_id, unit, fs_in_hz, leads, t0_us, segment=0):
    return {"device_id": device_id, "unit": unit, "segment": segment, "chunks": 0}


def stub_step(state, samples_mv, t0_us):
    state = {**state, "chunks": state["chunks"] + 1}
    win = BeatWindow(state["device_id"], state["unit"], "spec-x", state["segment"],
                     state["chunks"], t0_us,
                     t0_us, 1.0, 1.0, 1.0, 1.0, "good",
                     np.asarray(samples_mv[:, :4], dtype=np.float32),
                     np.zeros((samples_mv.shape[0], 4), np.float32))
    return state, [win], []


def make_pipeline() -> Pipeline:
    return Pipeline(DEFAULT_SPEC, SequencerConfig(max_held=2, max_wait_s=5.0),
                    DeadLetters("dl"), Dsp(stub_new_state, stub_step))


def chunk(seq: int, device: str = "bed-1", slot: int | None = None) -> SampleChunk:
    slot = seq if slot is None else slot
    adc = np.full((2, 180), 1024 + seq, dtype=np.int16)
    return SampleChunk(device, seq, T0 + slot * 500_000, 360.0, ("MLII", "V1"),
                       (200.0, 200.0), (1024, 1024), adc)


def feed(p: Pipeline, c: SampleChunk, key: bytes | None = None, emit: bool = True):
    raw = encode_chunk(c)
    return p.handle(c.device_id.encode() if key is None else key, raw, "samples", 3, 42,
                    None, emit=emit)


def test_bad_records_go_to_dead_letters_with_reason_and_raw_bytes():
    p = make_pipeline()
    good = encode_chunk(chunk(0))
    cases = {
        b"garbage": "bad_magic",
        good[:20]: "truncated",
        b"{not json": "bad_json",
    }
    for raw, reason in cases.items():
        out = p.handle(b"bed-1", raw, "samples", 3, 7, None)
        assert not out.windows and len(out.dead) == 1
        letter = decode_dead_letter(out.dead[0][1])
        assert letter.reason == reason
        assert base64.b64decode(letter.raw_b64) == raw
        assert (letter.source_topic, letter.partition, letter.offset) == ("samples", 3, 7)
    mismatch = feed(p, chunk(0), key=b"bed-2")
    assert decode_dead_letter(mismatch.dead[0][1]).reason == "key_mismatch"
    missing = feed(p, chunk(0), key=b"")
    assert decode_dead_letter(missing.dead[0][1]).reason == "missing_key"
    assert p.dead.counts == {"bad_magic": 1, "truncated": 1, "bad_json": 1,
                             "key_mismatch": 1, "missing_key": 1}
    assert not p.devices


def test_json_and_binary_chunks_are_both_accepted():
    p = make_pipeline()
    c = chunk(0)
    out = p.handle(b"bed-1", chunk_to_json(c), "samples", 0, 0, None)
    assert len(out.windows) == 1 and not out.dead


def test_windows_carry_key_and_segment_and_counters_follow_sequencing():
    p = make_pipeline()
    outs = [feed(p, chunk(s)) for s in (0, 1, 1, 3, 2, 4)]   # dup 1, reorder 3/2
    assert [len(o.windows) for o in outs] == [1, 1, 0, 0, 2, 1]
    keys = {k for o in outs for k, _ in o.windows}
    assert keys == {b"bed-1"}
    segments = {decode_window(v).segment for o in outs for _, v in o.windows}
    assert segments == {T0}
    gap = feed(p, chunk(5, slot=60))          # device clock jumps 27.5 s: new segment
    assert decode_window(gap.windows[0][1]).segment == T0 + 60 * 500_000
    assert p.stats["duplicate"] == 1 and p.stats["reordered"] == 1
    assert p.stats["gaps"] == 1 and p.stats["reset_time_gap"] == 1
    assert p.stats["chunks"] == 6 and p.stats["windows_beat"] == 6


def test_devices_are_independent():
    p = make_pipeline()
    feed(p, chunk(0, "bed-1"))
    feed(p, chunk(0, "bed-2"))
    feed(p, chunk(1, "bed-2"))
    assert p.devices["bed-1"].dsp["chunks"] == 1 and p.devices["bed-2"].dsp["chunks"] == 2


def test_warm_up_mode_advances_state_without_emitting_or_counting():
    p = make_pipeline()
    for s in range(3):
        assert not feed(p, chunk(s), emit=False).windows
    assert p.stats["chunks"] == 0
    out = feed(p, chunk(3))
    assert len(out.windows) == 1
    assert p.devices["bed-1"].dsp["chunks"] == 4       # warm state carried on
    assert not feed(p, chunk(2)).windows                 # redelivery after warm-up: duplicate


def test_drop_partitions_forgets_only_those_devices():
    p = make_pipeline()
    feed(p, chunk(0, "bed-1"))
    p.handle(b"bed-2", encode_chunk(chunk(0, "bed-2")), "samples", 5, 0, None)
    assert p.drop_partitions({3}) == 1 and set(p.devices) == {"bed-2"}


def test_a_reset_emits_the_old_segments_pending_beats_first():
    def stub_flush(state):
        _, [win], _ = stub_step(state, np.zeros((2, 4)), -1)
        return state, [win]

    p = Pipeline(DEFAULT_SPEC, SequencerConfig(), DeadLetters("dl"),
                 Dsp(stub_new_state, stub_step, stub_flush))
    feed(p, chunk(0))
    out = feed(p, chunk(1, slot=50))           # time gap: flush segment T0, start a new one
    got = [(w.segment, w.r_time_us) for w in (decode_window(v) for _, v in out.windows)]
    assert got == [(T0, -1), (T0 + 50 * 500_000, T0 + 50 * 500_000)]
    assert not feed(p, chunk(2, slot=51), emit=False).windows


def test_idle_devices_are_flushed_then_forgotten():
    p = make_pipeline()
    feed(p, chunk(0))
    feed(p, chunk(2))                          # held behind hole 1
    assert not p.flush_idle(idle_s=3600).windows
    out = p.flush_idle(idle_s=0.0)             # device went quiet: the hole is a gap
    assert [decode_window(v).r_time_us for _, v in out.windows] == [T0 + 2 * 500_000]
    assert p.stats["reset_flush"] == 1
    p.expire_idle(idle_s=0.0)
    assert not p.devices and p.stats["devices_expired"] == 1


def test_a_dsp_failure_refuses_the_record_and_restarts_only_that_device():
    def fragile_step(state, samples_mv, t0_us):
        if samples_mv[0, 0] > 6.5 / 200:           # seq 7 and later (adc = baseline + seq)
            raise FloatingPointError("boom")
        return stub_step(state, samples_mv, t0_us)

    p = Pipeline(DEFAULT_SPEC, SequencerConfig(), DeadLetters("dl"),
                 Dsp(stub_new_state, fragile_step))
    feed(p, chunk(0, "bed-2"))
    feed(p, chunk(6))
    out = feed(p, chunk(7))
    assert not out.windows
    assert decode_dead_letter(out.dead[0][1]).reason == "dsp_error"
    assert "bed-1" not in p.devices and "bed-2" in p.devices
    assert p.stats["dsp_error"] == 1 and p.dead.counts["dsp_error"] == 1


def test_a_device_without_the_models_lead_is_counted_and_logged_once(caplog):
    from dataclasses import replace

    from prometheus_client import REGISTRY

    def unknown() -> float:
        return REGISTRY.get_sample_value("cardiostream_segments_unknown_leads_total") or 0.0

    p = make_pipeline()
    before = unknown()
    feed(p, chunk(0, device="bed-known"))
    assert unknown() == before
    for seq in range(3):
        feed(p, replace(chunk(seq, device="bed-odd"), leads=("ECG1", "ECG2")))
    assert unknown() == before + 1     # one segment, not 3 chunks
    warned = [r for r in caplog.records if "bed-odd" in r.getMessage()]
    assert len(warned) == 1 and "ECG1" in warned[0].getMessage()
