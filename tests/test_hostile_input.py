"""Property tests: hostile bytes into the processor's decode + sequencing path.

``streamer.pipeline.Pipeline.handle`` is what the Faust agent calls for every
samples-topic record. Whatever the key and value, it must return (never raise),
refuse anything it cannot decode with exactly one dead letter whose reason is a
known code and whose raw bytes are the record's, and leave every other device's
stream exactly as it would have been without the hostile records. The DSP is a
recorder here: what reaches it per device (chunks and segment resets) is the
thing hostile input must not change.
"""

from __future__ import annotations

import base64
import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardiostream.schemas import SampleChunk, SchemaError, decode_dead_letter, encode_chunk
from cardiostream.signal import DEFAULT_SPEC
from streamer.deadletter import KNOWN_REASONS, DeadLetters, decode_record
from streamer.pipeline import Dsp, Pipeline
from streamer.sequencing import SequencerConfig
from tests.faults.hostile import Hostile

T0 = 1_700_000_000_000_000
NOW = T0 + 3_600_000_000
VICTIM = "bed-7"


def _recorder() -> tuple[Dsp, list]:
    fed: list = []

    def new_state(spec, device_id, unit, fs_in_hz, leads, t0_us, segment=0):
        fed.append((device_id, "reset", segment, fs_in_hz, leads))
        return {"device_id": device_id}

    def step(state, samples_mv, t0_us):
        fed.append((state["device_id"], t0_us, samples_mv.tobytes()))
        return state, [], []

    return Dsp(new_state, step), fed


def _pipeline() -> tuple[Pipeline, list]:
    dsp, fed = _recorder()
    return Pipeline(DEFAULT_SPEC, SequencerConfig(), DeadLetters("dl"), dsp), fed


def _victim_chunks(n: int = 12) -> list[SampleChunk]:
    rng = np.random.default_rng(7)
    return [SampleChunk(VICTIM, k, T0 + k * 500_000, 360.0, ("MLII", "V1"), (200.0, 200.0),
                        (1024, 1024), rng.integers(0, 2048, (2, 180)).astype(np.int16))
            for k in range(n)]


def _check_refusal(out, key, value) -> None:
    """At most one dead letter, a known reason, the raw bytes kept."""
    assert len(out.dead) <= 1
    for dl_key, dl_value in out.dead:
        letter = decode_dead_letter(dl_value)
        assert letter.reason in KNOWN_REASONS
        assert base64.b64decode(letter.raw_b64) == (value or b"")
        assert base64.b64decode(letter.key_b64) == (key or b"")
        assert dl_key == key


@st.composite
def mutated_chunk(draw) -> bytes:
    """A valid encoded chunk with bytes flipped, overwritten, cut or appended."""
    raw = bytearray(encode_chunk(_victim_chunks(1)[0]))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "set", "cut", "append", "insert")))
        pos = draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos:]
        elif op == "append":
            raw += draw(st.binary(max_size=16))
        else:
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(raw)


hostile_value = st.one_of(st.binary(max_size=256), mutated_chunk(), st.none())
hostile_key = st.one_of(st.none(), st.binary(max_size=24), st.just(VICTIM.encode()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=hostile_key, value=hostile_value)
def test_any_record_is_processed_or_dead_lettered_never_raised(key, value) -> None:
    pipe, _ = _pipeline()
    out = pipe.handle(key, value, "samples", 1, 99, NOW)
    _check_refusal(out, key, value)
    try:
        decode_record(key, value, NOW)
        decodes = True
    except SchemaError:
        decodes = False
    assert (len(out.dead) == 0) == decodes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile=st.lists(st.tuples(hostile_key, hostile_value, st.integers(0, 11)),
                        max_size=30))
def test_hostile_records_leave_a_valid_device_unchanged(hostile) -> None:
    chunks = _victim_chunks()
    clean, clean_fed = _pipeline()
    for c in chunks:
        clean.handle(VICTIM.encode(), encode_chunk(c), "samples", 1, c.seq, NOW)

    mixed, fed = _pipeline()
    by_slot: dict[int, list] = {}
    for key, value, slot in hostile:
        try:
            c = decode_record(key, value, NOW)
            if c.device_id == VICTIM:   # a well-formed record of the victim itself is data
                continue
        except SchemaError:
            pass
        by_slot.setdefault(slot, []).append((key, value))
    for c in chunks:
        mixed.handle(VICTIM.encode(), encode_chunk(c), "samples", 1, c.seq, NOW)
        for key, value in by_slot.get(c.seq, []):
            _check_refusal(mixed.handle(key, value, "samples", 1, 1000, NOW), key, value)
    assert [f for f in fed if f[0] == VICTIM] == [f for f in clean_fed if f[0] == VICTIM]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60))
def test_flood_generator_reasons_match_the_processor(seed: int, n: int) -> None:
    """The flood's malformed records get exactly the reason they were built to have."""
    gen = Hostile(seed, victims=[VICTIM])
    pipe, _ = _pipeline()
    for _ in range(n):
        bad = gen.next()
        out = pipe.handle(bad.key, bad.value, "samples", 0, 1, _now_us())
        assert [decode_dead_letter(v).reason for _, v in out.dead] == [bad.reason], bad


@settings(max_examples=40, deadline=None)
@given(replays=st.lists(st.integers(0, 11), max_size=20), seed=st.integers(0, 1000))
def test_duplicates_and_replays_are_dropped_and_counted(replays, seed) -> None:
    chunks = _victim_chunks()
    clean, clean_fed = _pipeline()
    for c in chunks:
        clean.handle(VICTIM.encode(), encode_chunk(c), "samples", 1, c.seq, NOW)
    mixed, fed = _pipeline()
    rng = random.Random(seed)
    sent_dups = 0
    for c in chunks:
        mixed.handle(VICTIM.encode(), encode_chunk(c), "samples", 1, c.seq, NOW)
        for r in replays:
            if r <= c.seq and rng.random() < 0.5:
                out = mixed.handle(VICTIM.encode(), encode_chunk(chunks[r]), "samples", 1, 0,
                                   NOW)
                assert not out.dead and not out.windows
                sent_dups += 1
    assert fed == clean_fed
    assert mixed.stats["duplicate"] + mixed.stats["late"] == sent_dups


def _now_us() -> int:
    import time

    return time.time_ns() // 1000
