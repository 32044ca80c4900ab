"""The Faust agent through ``agent.test_context()`` (no broker): wiring, not DSP.

Sends are captured instead of produced and the DSP is the stub of
tests/test_pipeline.py; the real broker path is tests/integration/test_processor.py.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from cardiostream.schemas import SampleChunk, decode_dead_letter, decode_window, encode_chunk
from cardiostream.settings import load_settings
from streamer import agents
from streamer.app import create_app
from streamer.pipeline import Dsp
from tests.test_pipeline import stub_new_state, stub_step

T0 = time.time_ns() // 1000 - 60_000_000   # a minute ago: passes the time checks


def chunk(seq: int, device: str = "bed-1") -> SampleChunk:
    return SampleChunk(device, seq, T0 + seq * 500_000, 360.0, ("MLII", "V1"), (200.0, 200.0),
                       (0, 0), np.zeros((2, 180), np.int16))


@pytest.fixture()
def harness(monkeypatch):
    settings = load_settings(processor__warmup_s=10.0)
    app = create_app(settings, app_id="test-agents", dsp=Dsp(stub_new_state, stub_step))
    proc = app.processor
    sent: list[tuple[str, bytes | None, bytes]] = []
    warmups: list[tuple[int, int]] = []

    async def fake_send(out):
        sent.extend(("windows", k, v) for k, v in out.windows)
        sent.extend(("dead", k, v) for k, v in out.dead)
        sent.extend(("segments", k, v) for k, v, _ in out.segments)

    async def fake_warm_up(settings, pipeline, topic, partition, end_offset, timestamp_ms):
        warmups.append((partition, end_offset))

    monkeypatch.setattr(proc, "_send", fake_send)
    monkeypatch.setattr(agents, "warm_up", fake_warm_up)
    return SimpleNamespace(app=app, proc=proc, sent=sent, warmups=warmups,
                           agent=app.agents["process-samples"])


def run(coro):
    return asyncio.run(coro)


def test_agent_emits_windows_and_dead_letters(harness):
    async def scenario():
        async with harness.agent.test_context() as ag:
            await ag.put(encode_chunk(chunk(0)), key=b"bed-1")
            await ag.put(encode_chunk(chunk(1)), key=b"bed-1")
            await ag.put(b"\x00garbage", key=b"bed-1")
            await ag.put(encode_chunk(chunk(2)), key=b"bed-9")
    run(scenario())
    windows = [v for kind, _, v in harness.sent if kind == "windows"]
    dead = [decode_dead_letter(v).reason for kind, _, v in harness.sent if kind == "dead"]
    assert [decode_window(v).beat_index for v in windows] == [1, 2]
    assert dead == ["bad_magic", "key_mismatch"]
    assert harness.proc.records == 4


def test_first_record_of_a_partition_triggers_one_warm_up(harness):
    async def scenario():
        async with harness.agent.test_context() as ag:
            for s in range(3):
                await ag.put(encode_chunk(chunk(s)), key=b"bed-1")
    run(scenario())
    # test_context numbers offsets from 0: the first record has nothing before it.
    assert harness.warmups == []
    assert harness.proc.warm == {0}


def test_partition_moved_away_is_forgotten_and_warmed_again(harness):
    proc = harness.proc

    async def scenario():
        async with harness.agent.test_context() as ag:
            await ag.put(encode_chunk(chunk(0)), key=b"bed-1")
            proc.on_assigned(set())                   # rebalance took partition 0 away
            assert not proc.pipeline.devices and not proc.warm
            await ag.put(encode_chunk(chunk(1)), key=b"bed-1")
    run(scenario())
    assert harness.warmups == [(0, 1)]               # re-read everything before offset 1


def test_a_failed_warm_up_leaves_the_devices_cold_and_processing_going(harness, monkeypatch):
    async def broken_warm_up(*args, **kwargs):
        raise OSError("broker unreachable")

    monkeypatch.setattr(agents, "warm_up", broken_warm_up)
    proc = harness.proc

    async def scenario():
        async with harness.agent.test_context() as ag:
            await ag.put(encode_chunk(chunk(0)), key=b"bed-1")
            proc.on_assigned(set())
            await ag.put(encode_chunk(chunk(1)), key=b"bed-1")
    run(scenario())
    assert proc.pipeline.stats["warmup_failed"] == 1
    assert proc.records == 2 and proc.warm == {0}
    assert proc.pipeline.stats["reset_start"] == 2          # cold restart = new segment


def test_segment_starts_are_produced_once_per_segment(harness):
    async def scenario():
        async with harness.agent.test_context() as ag:
            await ag.put(encode_chunk(chunk(0)), key=b"bed-1")
            await ag.put(encode_chunk(chunk(1)), key=b"bed-1")
    run(scenario())
    assert [(k, v) for kind, k, v in harness.sent if kind == "segments"] == \
        [(b"bed-1", str(T0).encode())]


def test_acks_wait_until_a_restart_could_re_emit_the_pending_windows(harness):
    """A record is acked (its offset may be committed) only once a successor re-reading
    warmup_s (10 s) before it could still emit every window pending for its device."""
    pending_from = {"bed-1": T0}            # a window of bed-1 still needs samples from T0
    harness.proc.pipeline.dsp = Dsp(stub_new_state, stub_step,
                                    needed_from=lambda st: pending_from[st["device_id"]])
    events = []
    on_record = harness.proc.on_record

    async def spy(event):
        events.append(event)
        await on_record(event)

    harness.proc.on_record = spy

    async def scenario():
        async with harness.agent.test_context() as ag:
            for s in range(30):             # chunk s ends at T0 + (s + 1) * 0.5 s
                await ag.put(encode_chunk(chunk(s)), key=b"bed-1")
            assert [e.message.acked for e in events] == [True] * 20 + [False] * 10
            pending_from["bed-1"] = T0 + 5_000_000       # the window was sent: 5 s later
            for done in harness.proc.gate.release_all(harness.proc._resumable,
                                                      time.monotonic()):
                done.ack()
            assert [e.message.acked for e in events] == [True] * 30
    run(scenario())
