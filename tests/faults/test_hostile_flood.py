"""100,000 malformed records mixed with valid traffic, into a real processor on the real broker.

Three valid devices replay 120 s of MIT-BIH records; 100,000 hostile records
(``tests.faults.hostile``: random bytes, wrong version, truncated, NaN/Inf gain,
absurd sample counts, leads and rates, timestamps far past/future, keys that differ
from the payload's device id, missing keys, tombstones, bad ids and JSON, and
replays of the valid devices' recent chunks) are interleaved with them at full
speed. Then: the worker never exits and its heartbeat keeps advancing; every
malformed record is in the dead-letter topic, at its own partition/offset, with
the reason it was built to have; replays are dropped by sequencing and counted
as duplicates (not dead-lettered); and the valid devices' beat windows equal
those of a clean run of the same valid traffic.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cardiostream.records import load_record
from cardiostream.schemas import SampleChunk, decode_dead_letter, decode_window, encode_chunk
from cardiostream.settings import Settings
from streamer.simulator import iter_chunks
from tests.faults import harness as H
from tests.faults import report
from tests.faults.hostile import Hostile, replay_of

_US = 1_000_000
N_HOSTILE = 100_000
REPLAY_SHARE = 0.03
RECORDS = {"ok-100": "100", "ok-119": "119", "ok-208": "208"}
SLICE_S = 120.0
START_US = (time.time_ns() // 1000 // _US - 3600) * _US

pytestmark = pytest.mark.timeout(1200)


def _valid(data_dir: Path) -> dict[str, list[SampleChunk]]:
    out = {}
    for dev, name in RECORDS.items():
        rec = load_record(data_dir / "mitdb", name, sampto=round(SLICE_S * 360))
        chunks = list(iter_chunks(rec, dev, START_US))
        last = chunks[-1]
        chunks.append(SampleChunk(dev, last.seq + 1, last.end_us + 60 * _US, last.fs_hz,
                                  last.leads, last.gain, last.baseline,
                                  np.zeros_like(last.adc), last.unit))  # ends the segment
        out[dev] = chunks
    return out


def _settings(topic_factory) -> Settings:
    s = topic_factory(4)
    app_id = f"flood-{s.topics.samples.rsplit('.', 1)[-1]}"
    return s.model_copy(update={"processor": s.processor.model_copy(update={"app_id": app_id})})


def _beats(records) -> dict[str, list]:
    out: dict[str, dict[int, object]] = {}
    for rec in records:
        win = decode_window(rec.value)
        if win.kind == "beat":
            out.setdefault(win.device_id, {})[win.r_time_us] = win
    return {d: [w[t] for t in sorted(w)] for d, w in out.items()}


def _wait_windows(settings: Settings, valid, proc: H.Service, timeout_s: float,
                  extra_done=lambda: True, watch=lambda: None) -> list:
    tail = H.TopicTail(settings, settings.topics.windows)
    ends = {d: c[-2].end_us for d, c in valid.items()}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            time.sleep(1.0)
            watch()
            newest: dict[str, int] = {}
            for r in tail.records:
                w = decode_window(r.value)
                if w.kind == "beat":
                    newest[w.device_id] = max(newest.get(w.device_id, 0), w.r_time_us)
            near_end = all(newest.get(d, 0) >= e - 3 * _US for d, e in ends.items())
            if near_end and extra_done() and time.monotonic() - tail.last_new > 5:
                break
    finally:
        records = tail.close()
    return records


def test_flood_of_malformed_records(topic_factory, data_dir, tmp_path, frozen_code) -> None:
    valid = _valid(data_dir)
    # ------------------------------------------------------------------ clean run
    clean_s = _settings(topic_factory)
    producer = H.kafka_producer(clean_s)
    for chunks in valid.values():
        for c in chunks:
            producer.send(clean_s.topics.samples, key=c.device_id.encode(),
                          value=encode_chunk(c))
    producer.flush()
    clean_proc = H.processor(clean_s, tmp_path, "clean").start()
    try:
        clean = _beats(_wait_windows(clean_s, valid, clean_proc, 300))
    finally:
        clean_proc.stop()

    # ------------------------------------------------------------------ flood run
    s = _settings(topic_factory)
    proc = H.processor(s, tmp_path, "flood").start()
    dead_tail = None

    def watch() -> None:
        assert proc.alive, f"processor exited under the flood; see {proc.log_path}"
        beats_seen.append(proc.heartbeat())

    try:
        proc.wait_ready()
        beats_seen: list[float] = [proc.heartbeat()]
        t0 = time.monotonic()
        sent, n_replays, per_kind = _produce_flood(s, valid)
        produce_s = time.monotonic() - t0
        expected = Counter(sent.values())
        dead_tail = H.TopicTail(s, s.topics.dead_letter)
        flood_windows = _wait_windows(s, valid, proc, 900,
                                      lambda: len(dead_tail.records) >= len(sent), watch)
        drain_s = time.monotonic() - t0
        dead = dead_tail.close()
        duplicates = proc.metric_sum("cardiostream_duplicates_total")
        rss_kb = _peak_rss_kb(proc)
        assert proc.alive
    finally:
        if dead_tail is not None:
            dead_tail.close()
        proc.stop()

    letters = [decode_dead_letter(r.value) for r in dead]
    got = {(d.partition, d.offset): d.reason for d in letters}
    wrong = {k: (sent[k], got.get(k)) for k in sent if got.get(k) != sent[k]}
    by_reason = Counter(d.reason for d in letters)
    flood = _beats(flood_windows)
    row = {"hostile_records": N_HOSTILE, "replays": n_replays,
           "dead_lettered": len(letters), "expected_dead_letters": len(sent),
           "wrong_or_missing_reason": len(wrong), "duplicates_counted": duplicates,
           "by_reason_expected": dict(sorted(expected.items())),
           "by_reason_dead_letter_topic": dict(sorted(by_reason.items())),
           "by_kind_sent": dict(sorted(per_kind.items())),
           "valid_devices_equal_clean_run": _same(clean, flood),
           "produce_s": round(produce_s, 1), "drain_s": round(drain_s, 1),
           "heartbeat_advanced_s": round(beats_seen[-1] - beats_seen[0], 1),
           "processor_peak_rss_mb": round(rss_kb / 1024, 1), "crashes": 0, "code": frozen_code}
    report.record("flood", "100k malformed + 3 valid devices", row)

    assert not wrong, list(wrong.items())[:10]
    assert len(letters) == len(sent), "dead letters for records that were not malformed"
    assert by_reason == expected
    assert duplicates == n_replays
    assert beats_seen[-1] > beats_seen[0], "heartbeat did not advance"
    assert set(flood) == set(RECORDS) and row["valid_devices_equal_clean_run"], \
        {d: (len(clean.get(d, [])), len(flood.get(d, []))) for d in RECORDS}
    assert "Traceback" not in proc.log_text()


def _produce_flood(s: Settings, valid) -> tuple[dict[tuple[int, int], str], int, Counter]:
    """Interleave the hostile records with the valid chunks; (partition, offset) -> reason."""
    producer = H.kafka_producer(s, linger_ms=20)
    gen = Hostile(seed=8, victims=list(valid))
    steps = max(len(c) for c in valid.values())
    per_step = -(-N_HOSTILE // steps)
    futures, per_kind, n_bad, n_replays = [], Counter(), 0, 0
    for k in range(steps):
        for chunks in valid.values():
            if k < len(chunks) - 1 or k == steps - 1:
                c = chunks[min(k, len(chunks) - 1)]
                producer.send(s.topics.samples, key=c.device_id.encode(), value=encode_chunk(c))
        for _ in range(min(per_step, N_HOSTILE - n_bad)):
            n_bad += 1
            if gen.rng.random() < REPLAY_SHARE and k > 0:
                chunks = valid[gen.rng.choice(list(valid))]
                bad = replay_of(chunks[gen.rng.randrange(max(0, k - 32), min(k, len(chunks) - 1))])
                n_replays += 1
            else:
                bad = gen.next()
            per_kind[bad.kind] += 1
            fut = producer.send(s.topics.samples, key=bad.key, value=bad.value)
            if bad.reason is not None:
                futures.append((fut, bad.reason))
    producer.flush(timeout=120)
    producer.close()
    sent = {}
    for fut, reason in futures:
        meta = fut.get(timeout=30)
        sent[(meta.partition, meta.offset)] = reason
    return sent, n_replays, per_kind


def _same(clean: dict[str, list], flood: dict[str, list]) -> bool:
    for dev in RECORDS:
        a, b = clean.get(dev, []), flood.get(dev, [])
        if [w.r_time_us for w in a] != [w.r_time_us for w in b]:
            return False
        if not all(np.array_equal(x.samples, y.samples) and x.rr_prev_s == y.rr_prev_s
                   for x, y in zip(a, b, strict=True)):
            return False
    return True


def _peak_rss_kb(proc: H.Service) -> int:
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
