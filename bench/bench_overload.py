"""Overload: 3x the processor's measured capacity for 60 s, then drain.

1. Capacity (unless ``--capacity`` is given): pre-produce ``--cap-devices`` x
   ``--cap-seconds`` of MIT-BIH signal to fresh topics, start one ``cardiostream
   process`` worker and read its ``cardiostream_samples_total`` counter: the steady
   rate in samples/s / 360 is the number of 360 Hz devices it sustains in real time.
2. Overload: one processor and one inference worker (rule-based test models on CPU)
   on fresh topics; the simulator replays ``--factor`` x capacity devices at 1x for
   ``--seconds``. Every second: each worker's RSS (VmRSS) and liveness, and both
   consumer groups' lag (committed offsets vs end offsets, from the broker).
3. Drain: seconds from the end of the overload until both groups' lag is 0.

    nice python bench/bench_overload.py            # measures capacity first
    nice python bench/bench_overload.py --capacity 150

Prints a summary and merges it into docs/bench/reliability.json (section
``overload``); ``python -m tests.faults.report`` renders docs/reliability.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cardiostream.infra import kafka as kafka_infra  # noqa: E402
from cardiostream.infra import topics  # noqa: E402
from cardiostream.settings import Settings, load_settings  # noqa: E402
from tests.faults import harness as H  # noqa: E402
from tests.faults import report  # noqa: E402

SAMPLES = 'cardiostream_samples_total{component="processor"}'


def fresh(base: Settings, model_dir: Path) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    names = {f: f"{v}.{suffix}" for f, v in base.topics.model_dump().items()
             if isinstance(v, str)}
    s = base.model_copy(update={
        "topics": base.topics.model_copy(update=names),
        "processor": base.processor.model_copy(update={"app_id": f"overload-{suffix}"}),
        "inference": base.inference.model_copy(update={"group_id": f"overload-inf-{suffix}",
                                                       "device": "cpu"}),
        "paths": base.paths.model_copy(update={"model_dir": model_dir}),
    })
    topics.ensure(s)
    return s


def group_lag(s: Settings, group: str, topic: str) -> int | None:
    """End offsets minus the group's committed offsets over ``topic`` (None: not yet)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    from cardiostream.kafka_config import client_kwargs

    admin = KafkaAdminClient(**client_kwargs(s.kafka))
    consumer = KafkaConsumer(**client_kwargs(s.kafka))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})   # kafka-python 3 API
        committed = {tp: m.offset for tp, m in offsets.items() if tp.topic == topic}
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    finally:
        admin.close()
        consumer.close()
    if not committed and any(ends.values()):
        return None
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())


def rss_mb(svc: H.Service) -> float:
    try:
        for line in Path(f"/proc/{svc.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def measure_capacity(base: Settings, model_dir: Path, devices: int, seconds: float,
                     work: Path) -> float:
    from bench.bench_processor import device_chunks
    from cardiostream.schemas import encode_chunk

    s = fresh(base, model_dir)
    start_us = (time.time_ns() // 1000) - 3_600_000_000
    producer = H.kafka_producer(s, linger_ms=20)
    for chunks in device_chunks(s, devices, seconds, 0.5, start_us):
        for c in chunks:
            producer.send(s.topics.samples, key=c.device_id.encode(), value=encode_chunk(c))
    producer.flush()
    producer.close()
    total = devices * seconds * 360
    proc = H.processor(s, work, "capacity").start()
    try:
        proc.wait_ready()
        points = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = proc.metrics().get(SAMPLES, 0.0)
            points.append((time.monotonic(), n))
            if n >= 0.9 * total:
                break
            time.sleep(1.0)
    finally:
        proc.stop()
        topics.delete(topics.topic_names(s), kafka_infra.node(s))
    steady = [(t, n) for t, n in points if 0.1 * total <= n <= 0.9 * total]
    if len(steady) < 2:
        raise RuntimeError(f"too few points to measure a rate: {points[-3:]}")
    (t0, n0), (t1, n1) = steady[0], steady[-1]
    return (n1 - n0) / (t1 - t0) / 360.0


def overload(base: Settings, model_dir: Path, devices: int, seconds: float, work: Path) -> dict:
    from cardiostream.records import NON_PACED
    from streamer.simulator import Simulator, assign_devices

    s = fresh(base, model_dir)
    proc, inf = H.processor(s, work, "processor"), H.inference(s, work, "inference")
    samples: list[dict] = []
    try:
        for svc in (proc, inf):
            svc.start()
        for svc in (proc, inf):
            svc.wait_ready()
        sim = Simulator(s, assign_devices(list(NON_PACED), devices), speed=1.0, loop=True,
                        duration_s=seconds, record_s=120.0)
        thread = threading.Thread(target=sim.run, daemon=True)
        t0 = time.monotonic()
        thread.start()
        end_load, drained = None, None
        while time.monotonic() - t0 < seconds + 900:
            time.sleep(1.0)
            lag_p = group_lag(s, s.processor.app_id, s.topics.samples)
            lag_i = group_lag(s, s.inference.group_id, s.topics.windows)
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_processor_mb":
                            rss_mb(proc), "rss_inference_mb": rss_mb(inf), "lag_processor":
                            lag_p, "lag_inference": lag_i, "alive": proc.alive and inf.alive})
            if not (proc.alive and inf.alive):
                break
            if end_load is None and not thread.is_alive():
                end_load = time.monotonic()
            if end_load is not None and lag_p == 0 and lag_i == 0:
                drained = time.monotonic() - end_load
                break
        stats = sim.stats
    finally:
        for svc in (proc, inf):
            svc.stop()
        topics.delete(topics.topic_names(s), kafka_infra.node(s))
    peak_lag = max((x["lag_processor"] or 0) for x in samples)
    return {"devices": devices, "seconds": seconds, "chunks_sent": stats.chunks_sent,
            "send_errors": stats.send_errors,
            "peak_rss_processor_mb": round(max(x["rss_processor_mb"] for x in samples), 1),
            "peak_rss_inference_mb": round(max(x["rss_inference_mb"] for x in samples), 1),
            "rss_processor_end_of_load_mb": round(_at(samples, seconds, "rss_processor_mb"), 1),
            "peak_lag_processor_records": peak_lag,
            "peak_lag_inference_records": max((x["lag_inference"] or 0) for x in samples),
            "drain_s": None if drained is None else round(drained, 1),
            "crashes": proc.crashes + inf.crashes + int(not all(x["alive"] for x in samples)),
            "processor_log_errors": proc.log_text().count("Traceback"),
            "inference_log_errors": inf.log_text().count("Traceback"),
            "timeline_every_10s": samples[::10]}


def _at(samples: list[dict], t: float, key: str) -> float:
    near = [x for x in samples if x["t"] <= t]
    return near[-1][key] if near else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capacity", type=float, help="devices one worker sustains (skip step 1)")
    ap.add_argument("--cap-devices", type=int, default=200)
    ap.add_argument("--cap-seconds", type=float, default=20.0)
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    from tests.inference_models import write_model_dir

    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="cs-overload-") as tmp:
        work = Path(tmp)
        models = write_model_dir(work / "models")
        capacity = args.capacity or measure_capacity(base, models, args.cap_devices,
                                                     args.cap_seconds, work)
        devices = max(1, round(args.factor * capacity))
        print(f"capacity {capacity:.0f} devices; overload with {devices} devices "
              f"({args.factor}x) for {args.seconds:.0f} s", flush=True)
        row = {"capacity_devices": round(capacity, 1),
               "capacity_measured": args.capacity is None, "factor": args.factor,
               **overload(base, models, devices, args.seconds, work)}
    report.record("overload", f"{args.factor:g}x capacity for {args.seconds:.0f} s", row)
    for k, v in row.items():
        if k != "timeline_every_10s":
            print(f"{k}: {v}")
    return 0 if row["crashes"] == 0 and row["drain_s"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
