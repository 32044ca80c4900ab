"""One pipeline run (processor(s) + inference worker over a paced replay) with an optional fault.

A run starts the workers, replays the input at ``speed`` x real time, injects the
fault from a thread ``FAULT_AT_S`` wall seconds into the replay while the main
loop supervises the workers (an unrequested exit is a crash: counted, then
restarted as compose's ``restart: unless-stopped`` would), waits until every
device's results reached the end of its input and went quiet, and collects the
results topic and the alarm streams. ``compare`` scores a faulted run against the
clean baseline of the same input.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cardiostream.schemas import SampleChunk, SchemaError, decode_result
from cardiostream.settings import Settings
from tests.faults import harness as H

_US = 1_000_000
FAULT_AT_S = 10.0          # wall seconds into the replay when the fault starts
DONE_MARGIN_S = 3.0        # the last beats lie within this of the end of the input
QUIET_S = 8.0
RUN_TIMEOUT_S = 300.0


@dataclass
class Ctx:
    """What a fault may act on, and where it writes down when it started and ended."""

    stack: Settings
    processors: list[H.Service]
    inference: H.Service
    fault_start: float = 0.0
    fault_end: float = 0.0
    notes: list[str] = field(default_factory=list)


Fault = Callable[[Ctx], None]


@dataclass
class RunResult:
    name: str
    alarms: list[tuple[str, dict[str, str]]]
    results: list                      # kafka ConsumerRecords of the results topic
    replayer: H.Replayer
    fault_start: float
    fault_end: float
    crashes: dict[str, int]
    wall_s: float
    notes: list[str]
    logs: dict[str, str]


def run(name: str, settings: Settings, stack: Settings, workdir: Path,
        chunks: dict[str, list[SampleChunk]], tail: dict[str, SampleChunk], speed: float,
        fault: Fault | None = None, n_processors: int = 1) -> RunResult:
    workdir.mkdir(parents=True, exist_ok=True)
    procs = [H.processor(settings, workdir, f"processor-{i}") for i in range(n_processors)]
    infer = H.inference(settings, workdir)
    services = [*procs, infer]
    ctx = Ctx(stack, procs, infer)
    results = None
    t_start = time.monotonic()
    try:
        for s in services:
            s.start()
        for s in services:
            s.wait_ready()
        _wait_assigned(infer, ctx.notes)
        results = H.TopicTail(settings, settings.topics.results)
        replay = H.Replayer(settings, chunks, speed, tail).start()
        fault_thread = _fault_thread(fault, ctx)
        _supervise_until_done(services, replay, fault_thread, results, chunks)
        records = results.close()
        results = None
        for s in services:
            s.stop()
        alarms = H.stream_alarm_ids(settings, {c[0].unit for c in chunks.values()})
    finally:
        if results is not None:
            results.close()
        for s in services:
            s.stop()
    return RunResult(name, alarms, records, replay, ctx.fault_start, ctx.fault_end,
                     {s.name: s.crashes for s in services}, time.monotonic() - t_start,
                     ctx.notes + replay.errors[:5], {s.name: s.log_text() for s in services})


def _wait_assigned(infer: H.Service, notes: list[str], timeout_s: float = 30.0) -> None:
    """Wait until the inference worker owns partitions of the windows topic.

    Seen here: a worker that joined while the (new) topic had no metadata yet got an
    empty assignment, rejoined, and then stayed in the join forever (kafka-python
    3.0.12, both threads spinning, nothing consumed). That is noted and the worker
    restarted, so the scenario measures its fault and not this start-up hang.
    """
    for attempt in range(3):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "inference.worker: assigned [(" in infer.log_text():
                return
            time.sleep(0.5)
        notes.append(f"inference worker not assigned {timeout_s:.0f} s after start "
                     f"(attempt {attempt + 1}): restarted")
        infer.kill()
        infer.start()
        infer.wait_ready()
    raise RuntimeError(f"inference worker never got partitions; see {infer.log_path}")


def _fault_thread(fault: Fault | None, ctx: Ctx) -> threading.Thread | None:
    if fault is None:
        return None

    def go() -> None:
        time.sleep(FAULT_AT_S)
        try:
            fault(ctx)
        except Exception as exc:  # noqa: BLE001 - reported as a run note, the test then fails
            ctx.notes.append(f"fault injection failed: {exc!r}")
            ctx.fault_end = ctx.fault_end or time.time()

    thread = threading.Thread(target=go, name="fault", daemon=True)
    thread.start()
    return thread


def _supervise_until_done(services, replay: H.Replayer, fault_thread, results: H.TopicTail,
                          chunks: dict[str, list[SampleChunk]]) -> None:
    ends = {d: c[-1].end_us for d, c in chunks.items()}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(0.5)
        for s in services:
            s.supervise()
        if not replay.done.is_set() or (fault_thread is not None and fault_thread.is_alive()):
            continue
        if time.monotonic() - results.last_new < QUIET_S:
            continue
        newest = _newest_beat(results.records)
        if all(newest.get(d, 0) >= end - DONE_MARGIN_S * _US for d, end in ends.items()):
            return


def _newest_beat(records) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        res = _result(r)
        if res is not None and res.kind == "beat":
            out[res.device_id] = max(out.get(res.device_id, 0), res.r_time_us)
    return out


def _result(record):  # noqa: ANN202 - BeatResult | RhythmResult | None
    try:
        return decode_result(record.value)
    except SchemaError:
        return None


# ----------------------------------------------------------------------------- scoring


def beat_times(run_: RunResult) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for r in run_.results:
        res = _result(r)
        if res is not None and res.kind == "beat":
            out.setdefault(res.device_id, set()).add(res.r_time_us)
    return out


def beat_labels(run_: RunResult) -> dict[tuple[str, int], set[tuple[str, str]]]:
    """(device, r_time_us) -> every (label, quality) the run's results gave that beat."""
    out: dict[tuple[str, int], set[tuple[str, str]]] = {}
    for r in run_.results:
        res = _result(r)
        if res is not None and res.kind == "beat":
            out.setdefault((res.device_id, res.r_time_us), set()).add((res.label, res.quality))
    return out


def label_diffs(base: RunResult, run_: RunResult) -> list[str]:
    """Beats both runs have whose class or quality differ (or vary within one run)."""
    a, b = beat_labels(base), beat_labels(run_)
    origin = {d: c[0].t0_us for d, c in run_.replayer.chunks.items()}
    return [f"{d}@{(t - origin[d]) / _US:.2f}s {sorted(a[(d, t)])}->{sorted(b[(d, t)])}"
            for d, t in sorted(set(a) & set(b)) if a[(d, t)] != b[(d, t)]]


def recovery_s(run_: RunResult) -> float | None:
    """Wall seconds from the end of the fault until every device has a result for data
    sent after it (None: no fault, or some device never got one)."""
    if run_.fault_end == 0:
        return None
    first: dict[str, float] = {}
    for r in run_.results:
        res = _result(r)
        if res is None:
            continue
        sent = run_.replayer.wall_of(res.device_id, res.last_sample_time_us - 1)
        if sent is not None and sent >= run_.fault_end:
            t = r.timestamp / 1000.0
            first[res.device_id] = min(first.get(res.device_id, t), t)
    if set(first) != set(run_.replayer.chunks):
        return None
    return max(first.values()) - run_.fault_end


def compare(base: RunResult, run_: RunResult, warmup_s: float) -> dict:
    """Alarms expected/received/duplicated/lost/extra and beats missing, as a JSON row."""
    expected = Counter(a for a, _ in base.alarms)
    received = Counter(a for a, _ in run_.alarms)
    lost = sorted(a for a in expected if a not in received)
    extra = sorted(a for a in received if a not in expected)
    origin = {d: c[0].t0_us for d, c in run_.replayer.chunks.items()}
    describe = {a: _describe(f, origin) for a, f in [*base.alarms, *run_.alarms]}
    missing_out, missing_in, invented = [], 0, 0
    base_beats, got_beats = beat_times(base), beat_times(run_)
    for dev, want in base_beats.items():
        fault_data = run_.replayer.data_time_at(dev, run_.fault_start)
        lo, hi = fault_data - 5 * _US, fault_data + round(warmup_s * _US)
        got = got_beats.get(dev, set())
        for t in want - got:
            if lo <= t <= hi:
                missing_in += 1
            else:
                missing_out.append(f"{dev}@{(t - origin[dev]) / _US:.2f}s")
        invented += len(got - want)
    return {
        "fault": run_.name,
        "alarms_expected": sum(expected.values()),
        "alarms_received": len(set(received) & set(expected)),
        "alarms_duplicated": sum(c - 1 for c in received.values() if c > 1),
        "alarms_lost": len(lost),
        "alarms_extra": len(extra),
        "lost": [describe.get(a, a) for a in lost],
        "extra": [describe.get(a, a) for a in extra],
        "beats_expected": sum(len(v) for v in base_beats.values()),
        "beats_missing_after_warmup": len(missing_out),
        "missing_beats": sorted(missing_out)[:20],
        "fault_at_data_s": round((run_.replayer.data_time_at(next(iter(origin)), run_.fault_start)
                                  - next(iter(origin.values()))) / _US, 1)
        if run_.fault_start else None,
        "beats_missing_in_warmup": missing_in,
        "beats_invented": invented,
        "beat_label_diffs": len(diffs := label_diffs(base, run_)),
        "label_diff_examples": diffs[:8],
        "fault_duration_s": round(run_.fault_end - run_.fault_start, 1),
        "recovery_s": None if (r := recovery_s(run_)) is None else round(r, 1),
        "crashes": sum(run_.crashes.values()),
        "wall_s": round(run_.wall_s, 1),
        "notes": run_.notes,
    }


def _describe(fields: dict[str, str], origin: dict[str, int]) -> str:
    """``bed-01 afib raised onset 12.0s`` (onset in seconds of the device's input)."""
    import json

    onset = json.loads(fields["alarm"])["onset_time_us"]
    dev = fields["device_id"]
    rel = (onset - origin[dev]) / _US if dev in origin else onset / _US
    return f"{dev} {fields['type']} {fields['state']} onset {rel:.1f}s"
