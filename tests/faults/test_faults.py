"""Fault injection: the pipeline under kill -9, broker and Redis outages, and a rebalance.

Four devices replay the first ``SLICE_S`` seconds of MIT-BIH records with known
episodes (207: VT/VFL/bigeminy, 203: AF with VT runs, 233: VT, couplets and
bigeminy, 119: bigeminy/trigeminy) at ``SPEED`` x real time through the real
processor and inference worker (child processes) on a private broker and Redis.
A clean run of the same input is the baseline; each fault run must hold every
baseline alarm exactly once (deterministic alarm ids: device, condition, onset,
state), invent none, and lose no beat result outside the documented warm-up band.
Rows go to docs/bench/reliability.json (``python -m tests.faults.report``
renders them into docs/reliability.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cardiostream.records import load_record
from cardiostream.schemas import SampleChunk
from streamer.simulator import iter_chunks
from tests.faults import harness as H
from tests.faults import report
from tests.faults import scenario as S

_US = 1_000_000
RECORDS = {"bed-01": "207", "bed-02": "203", "bed-03": "233", "bed-04": "119"}
SLICE_S = 150.0
SPEED = 3.0
FAULT_S = 20.0
START_US = (time.time_ns() // 1000 // _US - 3600) * _US   # one hour ago, whole seconds

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def replay_input(data_dir: Path) -> tuple[dict[str, list[SampleChunk]], dict[str, SampleChunk]]:
    """(chunks per device, a terminator per device: a chunk 60 s later that ends the segment
    so the processor flushes its last beats)."""
    chunks, tail = {}, {}
    for dev, name in RECORDS.items():
        rec = load_record(data_dir / "mitdb", name, sampto=round(SLICE_S * 360))
        chunks[dev] = list(iter_chunks(rec, dev, START_US))
        tail[dev] = H.terminator(chunks[dev][-1])
    return chunks, tail


@pytest.fixture(scope="module")
def baseline(run_settings, rule_models, fault_stack, replay_input, tmp_path_factory,
             frozen_code):
    chunks, tail = replay_input
    s = run_settings(rule_models)
    base = S.run("baseline", s, fault_stack, tmp_path_factory.mktemp("baseline"), chunks,
                 tail, SPEED)
    row = S.compare(base, base, s.processor.warmup_s) | {"code": frozen_code}
    report.record("faults", "baseline", row)
    assert row["alarms_expected"] > 0, "the baseline raised no alarm: nothing to compare"
    assert not base.replayer.errors, base.replayer.errors[:5]
    return base


# ----------------------------------------------------------------------------- faults


def _kill_restart(which: str):
    def fault(ctx: S.Ctx) -> None:
        svc = ctx.processors[0] if which == "processor" else ctx.inference
        ctx.fault_start = time.time()
        svc.kill()
        time.sleep(2.0)
        svc.start()
        ctx.fault_end = time.time()
    return fault


def _service_down(service: str):
    def fault(ctx: S.Ctx) -> None:
        from cardiostream.infra import kafka, redis, topics

        ctx.fault_start = time.time()
        if service == "kafka":
            kafka.stop(ctx.stack)
        else:
            redis.stop(ctx.stack)
        time.sleep(max(0.0, ctx.fault_start + FAULT_S - time.time()))
        restart = time.time()
        if service == "kafka":
            kafka.start(ctx.stack)
            topics.ensure(ctx.stack)
        else:
            redis.start(ctx.stack)
        ctx.fault_end = time.time()
        ctx.notes.append(f"{service} stopped {restart - ctx.fault_start:.1f} s, "
                         f"back after {ctx.fault_end - restart:.1f} s of start-up")
    return fault


def _kill_one_of_two(ctx: S.Ctx) -> None:
    ctx.fault_start = time.time()
    ctx.processors[1].kill()          # not restarted: its partitions move to the survivor
    ctx.fault_end = time.time()


def _no_fault(ctx: S.Ctx) -> None:
    """Control: a second clean run, to show what run-to-run variation there is."""
    ctx.fault_start = ctx.fault_end = time.time()


FAULTS = {
    "control: no fault": (_no_fault, 1),
    "kill -9 processor": (_kill_restart("processor"), 1),
    "kill -9 inference": (_kill_restart("inference"), 1),
    "kafka down 20 s": (_service_down("kafka"), 1),
    "redis down 20 s": (_service_down("redis"), 1),
    "rebalance: 2 processors, kill one": (_kill_one_of_two, 2),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_loses_and_duplicates_no_alarm(name: str, baseline: S.RunResult, run_settings,
                                             rule_models, fault_stack, replay_input,
                                             tmp_path: Path, frozen_code: str) -> None:
    chunks, tail = replay_input
    fault, n_proc = FAULTS[name]
    s = run_settings(rule_models)
    got = S.run(name, s, fault_stack, tmp_path, chunks, tail, SPEED, fault, n_proc)
    row = S.compare(baseline, got, s.processor.warmup_s) | {"code": frozen_code}
    report.record("faults", name, row)
    assert not [n for n in got.notes if n.startswith("fault injection failed")], got.notes
    assert row["alarms_lost"] == 0, row
    assert row["alarms_duplicated"] == 0, row
    assert row["alarms_extra"] == 0, row
    assert row["beats_missing_after_warmup"] == 0, row
    assert row["recovery_s"] is not None, "some device never got results after the fault"
    unexpected = {k: v for k, v in got.crashes.items() if v}
    assert not unexpected, f"workers exited without being asked: {unexpected}"
