"""Processor capacity: cost per chunk, and devices one worker sustains through the broker.

Part 1 (in process, no broker): the CPU time per chunk (``time.process_time``,
so other jobs on the machine do not inflate it) of each stage on MIT-BIH
chunks: decode+validate, DSP step (resample, filter, QRS, windows, quality),
window encoding, and the whole ``Pipeline.handle``.

Part 2 (real broker): pre-produce ``--devices`` devices x ``--seconds`` of
MIT-BIH signal (360 Hz, two leads, ``--chunk-s`` chunks, devices cycling over
the non-paced records) to fresh topics at maximum speed, then start one
``cardiostream process`` worker and read its ``cardiostream_samples_total``
and ``process_cpu_seconds_total`` every second. The steady rate (between 10 %
and 90 % of the records) in samples per wall second divided by 360 is the
number of devices it sustained on this (shared) machine; samples per worker
CPU second / 360 is the number one free core would sustain. ``--null-dsp-too``
repeats the run with a worker whose DSP does nothing (Faust, Kafka, decode and
sequencing only).

    nice python bench/bench_processor.py --devices 2000 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from cardiostream.records import NON_PACED
from cardiostream.schemas import decode_chunk, encode_chunk, encode_window
from cardiostream.settings import Settings, load_settings
from cardiostream.signal import DEFAULT_SPEC
from streamer.simulator import RecordCache, iter_chunks

REPO = Path(__file__).resolve().parent.parent
SAMPLES_METRIC = 'cardiostream_samples_total{component="processor"}'


def device_chunks(settings: Settings, devices: int, seconds: float, chunk_s: float,
                  start_us: int) -> list[list]:
    """Per device, its chunks in order (device i replays record i mod 44)."""
    cache = RecordCache(settings.paths.mitdb, record_s=seconds)
    return [list(iter_chunks(cache.get(NON_PACED[i % len(NON_PACED)]), f"bench-{i:05d}",
                             start_us, chunk_s)) for i in range(devices)]


def cost_per_chunk(settings: Settings, devices: int, seconds: float, chunk_s: float) -> dict:
    from cardiostream import processing
    from streamer.deadletter import DeadLetters
    from streamer.pipeline import Pipeline
    from streamer.sequencing import SequencerConfig

    start_us = time.time_ns() // 1000
    per_dev = device_chunks(settings, devices, seconds, chunk_s, start_us)
    order = [c for k in range(len(per_dev[0])) for dev in per_dev if k < len(dev)
             for c in [dev[k]]]
    raw = [encode_chunk(c) for c in order]
    t = time.process_time()
    for r in raw:
        decode_chunk(r, start_us)
    decode_us = (time.process_time() - t) / len(raw) * 1e6
    states: dict[str, object] = {}
    wins = []
    t = time.process_time()
    for c in order:
        st = states.get(c.device_id) or processing.new_device_state(
            DEFAULT_SPEC, c.device_id, c.unit, c.fs_hz, c.leads, c.t0_us)
        states[c.device_id], b, r = processing.process_chunk(st, c.millivolts(), c.t0_us)
        wins += b + r
    dsp_us = (time.process_time() - t) / len(order) * 1e6
    t = time.process_time()
    for w in wins:
        encode_window(w)
    encode_us = (time.process_time() - t) / len(order) * 1e6
    pipe = Pipeline(DEFAULT_SPEC, SequencerConfig(), DeadLetters("dl"))
    t = time.process_time()
    for i, r in enumerate(raw):
        pipe.handle(order[i].device_id.encode(), r, "samples", 0, i, start_us)
    handle_us = (time.process_time() - t) / len(raw) * 1e6
    return {"chunks": len(raw), "chunk_s": chunk_s, "windows_per_chunk": len(wins) / len(raw),
            "decode_us": decode_us, "dsp_us": dsp_us, "encode_windows_us": encode_us,
            "pipeline_handle_us": handle_us, "cost_devices": devices,
            "cost_seconds": seconds,
            "devices_per_core_in_process": chunk_s * 1e6 / handle_us}


def warmup_fidelity(settings: Settings, names: tuple[str, ...] = ("100", "119", "208"),
                    resume_s: float = 60.0, warmup_s: float = 10.0) -> list[dict]:
    """Windows after a restart warmed on ``warmup_s`` of signal vs the uninterrupted stream."""
    from cardiostream import processing
    from cardiostream.records import load_record

    out = []
    for name in names:
        rec = load_record(settings.paths.mitdb, name, sampto=round((resume_s + 60) * 360))
        x, fs = rec.millivolts(), rec.fs_hz

        def run(first: int, rec=rec, x=x, fs=fs) -> dict:
            st = processing.new_device_state(DEFAULT_SPEC, "d", "u", fs, rec.leads,
                                             round(first * 1e6 / fs))
            beats = {}
            for i in range(first, x.shape[1], 180):
                st, b, _ = processing.process_chunk(st, x[:, i:i + 180], round(i * 1e6 / fs))
                beats.update((w.r_time_us, w) for w in b if w.r_time_us > resume_s * 1e6)
            return beats

        full, warm = run(0), run(round((resume_s - warmup_s) * fs))
        common = sorted(set(full) & set(warm))
        out.append({"record": name, "beats_after_resume": len(full),
                    "same_positions": set(full) == set(warm),
                    "max_abs_sample_diff_mv": max(float(abs(full[t].samples - warm[t].samples)
                                                        .max()) for t in common),
                    "max_abs_rr_long_diff_s": max(abs(full[t].rr_long_s - warm[t].rr_long_s)
                                                  for t in common)})
    return out


def preproduce(settings: Settings, devices: int, seconds: float, chunk_s: float,
               bundle: int = 0) -> int:
    """Produce every chunk; returns the number of chunks. ``bundle`` > 0: as a gateway
    would (``streamer.gateway.GatewayBundler``), the chunks of one tick are sent as
    bundles of at most ``bundle`` chunks, one record per partition."""
    from kafka import KafkaProducer

    from cardiostream.kafka_config import producer_kwargs
    from streamer.gateway import GatewayBundler
    from streamer.simulator import GATEWAY_KEY

    producer = KafkaProducer(**producer_kwargs(settings.kafka, linger_ms=50))
    per_dev = device_chunks(settings, devices, seconds, chunk_s, time.time_ns() // 1000)
    gateway = GatewayBundler(bundle, settings.topics.partitions) if bundle else None
    n = 0
    for k in range(max(len(d) for d in per_dev)):
        tick = [dev[k] for dev in per_dev if k < len(dev)]
        n += len(tick)
        if gateway is None:
            for chunk in tick:
                producer.send(settings.topics.samples, key=chunk.device_id.encode(),
                              value=encode_chunk(chunk))
            continue
        for part, value, _ in gateway.pack([(c.device_id, encode_chunk(c)) for c in tick]):
            producer.send(settings.topics.samples, key=GATEWAY_KEY, partition=part, value=value)
    producer.flush()
    producer.close()
    return n


def serve_null_dsp(argv: list[str]) -> None:
    """A worker whose DSP does nothing: the Faust + Kafka + decode + sequencing overhead."""
    from cardiostream.metrics import start_metrics_server
    from streamer.app import create_app, worker
    from streamer.pipeline import Dsp
    from streamer.segments import ensure_topic

    ap = argparse.ArgumentParser()
    ap.add_argument("--metrics-port", type=int)
    ap.add_argument("--loglevel", default="warning")
    args = ap.parse_args(argv)
    null = Dsp(lambda *a, **k: None, lambda state, x, t0: (state, [], []))
    settings = load_settings()
    ensure_topic(settings)
    app = create_app(settings, dsp=null)
    start_metrics_server(args.metrics_port)
    worker(app, args.loglevel).execute_from_commandline()


def isolated_settings(base: Settings, tag: str) -> tuple[Settings, str]:
    """``base`` with fresh topics and consumer group (``name.TAG.SUFFIX``), and the suffix:
    a run never reads another run's records or committed offsets."""
    suffix = uuid.uuid4().hex[:8]
    names = {f: f"{v}.{tag}.{suffix}" for f, v in base.topics.model_dump().items()
             if isinstance(v, str)}
    return base.model_copy(update={
        "topics": base.topics.model_copy(update=names),
        "processor": base.processor.model_copy(update={"app_id": f"{tag}-{suffix}"})}), suffix


def through_broker(base: Settings, devices: int, seconds: float, chunk_s: float,
                   timeout_s: float, null_dsp: bool = False, bundle: int = 0) -> dict:
    from cardiostream.infra import kafka, topics
    from streamer.harness import WorkerProcess

    settings, suffix = isolated_settings(base, "bench")
    topics.ensure(settings)
    try:
        t = time.perf_counter()
        n_chunks = preproduce(settings, devices, seconds, chunk_s, bundle)
        produce_s = time.perf_counter() - t
        log = Path(tempfile.gettempdir()) / f"bench-processor-{suffix}.log"
        command = [sys.executable, __file__, "--serve-null-dsp"] if null_dsp else None
        worker = WorkerProcess(settings, log, loglevel="warning", command=command).start()
        try:
            series = _watch(worker, n_chunks, timeout_s)
        finally:
            worker.stop()
        total_samples = series[-1][1]
    finally:
        topics.delete(topics.topic_names(settings), kafka.node(settings))
    rate, per_cpu_s = _steady_rate(series)
    return {"dsp": "none" if null_dsp else "cardiostream.processing",
            "devices": devices, "seconds": seconds, "chunk_s": chunk_s, "chunks": n_chunks,
            "bundle": bundle,
            "produce_s": produce_s, "samples_processed": total_samples,
            "wall_s": series[-1][0], "samples_per_s": rate,
            "chunks_per_s": rate / (chunk_s * 360.0), "devices_sustained": rate / 360.0,
            "worker_cpu_share": rate / per_cpu_s if per_cpu_s else 0.0,
            "samples_per_cpu_s": per_cpu_s, "cpu_us_per_chunk": 1e6 * chunk_s * 360 / per_cpu_s
            if per_cpu_s else 0.0, "devices_per_free_core": per_cpu_s / 360.0,
            "partitions": settings.topics.partitions, "log": str(log)}


def _watch(worker, n_chunks: int, timeout_s: float) -> list[tuple[float, float, float, float]]:
    """(t, samples, chunks, worker CPU s) every second until all chunks are processed."""
    series: list[tuple[float, float, float, float]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        m = worker.metrics()
        chunks = m.get('cardiostream_chunks_total{component="processor"}', 0.0)
        series.append((time.monotonic() - t0, m.get(SAMPLES_METRIC, 0.0), chunks,
                       m.get("process_cpu_seconds_total", 0.0)))
        if chunks >= n_chunks:
            break
        if not worker.running:
            raise RuntimeError(f"worker died; see {worker.log_path}")
        time.sleep(1.0)
    return series


def _steady_rate(series: list[tuple[float, float, float, float]]) -> tuple[float, float]:
    """Samples per wall second and per worker CPU second, between 10 % and 90 % of the
    final count (start-up and tail excluded)."""
    final = series[-1][1]
    inside = [row for row in series if 0.1 * final <= row[1] <= 0.9 * final]
    if len(inside) < 2:
        return 0.0, 0.0
    (ta, sa, _, ca), (tb, sb, _, cb) = inside[0], inside[-1]
    wall = (sb - sa) / (tb - ta) if tb > ta else 0.0
    cpu = (sb - sa) / (cb - ca) if cb > ca else 0.0
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--chunk-s", type=float, default=0.5)
    ap.add_argument("--cost-devices", type=int, default=44)
    ap.add_argument("--cost-seconds", type=float, default=60.0)
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--skip-broker", action="store_true")
    ap.add_argument("--repeats", type=int, default=1,
                    help="broker runs of each kind (CPU per chunk varies run to run here)")
    ap.add_argument("--bundle", default="0",
                    help="comma list of N: 0 = one record per chunk, as a device sends; N > 0 = "
                         "each tick's chunks as gateway bundles of at most N chunks, one record "
                         "per partition. Each N is measured (e.g. 0,64)")
    ap.add_argument("--null-dsp-too", action="store_true",
                    help="also measure a worker whose DSP does nothing (framework overhead)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench" / "processor.json")
    ap.add_argument("--docs", action="store_true",
                    help="write the processor section of docs/benchmarks.md from --out")
    args = ap.parse_args(argv)
    if args.docs:
        from processor_docs import render, replace_section  # bench/ is the script's path

        replace_section(REPO / "docs" / "benchmarks.md", "processor",
                        render(json.loads(args.out.read_text())))
        return 0
    settings = load_settings()
    result = {"command": "nice python bench/bench_processor.py " + " ".join(sys.argv[1:]),
              "cost": cost_per_chunk(settings, args.cost_devices, args.cost_seconds,
                                     args.chunk_s)}
    print(json.dumps(result["cost"], indent=2))
    result["chunk_scan"] = [
        {k: v for k, v in cost_per_chunk(settings, args.cost_devices, args.cost_seconds, cs)
         .items() if k in ("chunk_s", "dsp_us", "pipeline_handle_us",
                           "devices_per_core_in_process")} for cs in (1.0, 2.0)]
    print(json.dumps(result["chunk_scan"], indent=2))
    result["warmup_fidelity"] = warmup_fidelity(settings)
    print(json.dumps(result["warmup_fidelity"], indent=2))
    if not args.skip_broker:
        # full and no-op-DSP runs alternate, so both see the same spells of machine load;
        # the run with the median CPU per chunk is the headline, every run is kept
        kinds = []
        for bundle in (int(b) for b in args.bundle.split(",")):
            key = "broker" if bundle == 0 else "broker_bundle"
            kinds += [(key, False, bundle)]
            kinds += [(f"{key}_null_dsp", True, bundle)] if args.null_dsp_too else []
        for _ in range(args.repeats):
            for key, null, bundle in kinds:
                run = through_broker(settings, args.devices, args.seconds, args.chunk_s,
                                     args.timeout_s, null, bundle)
                run["load_avg_1m"] = _machine()["load_avg_1m"]
                result.setdefault(f"{key}_runs", []).append(run)
                print(json.dumps(run, indent=2))
        for key, _, _ in kinds:
            runs = sorted(result[f"{key}_runs"], key=lambda r: r["cpu_us_per_chunk"])
            result[key] = runs[(len(runs) - 1) // 2]
    result["machine"] = _machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _machine() -> dict:
    import os
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0], "numpy": np.__version__,
            "note": "broker, worker and benchmark share the same cores"}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-null-dsp"]:
        serve_null_dsp(sys.argv[2:])
    else:
        raise SystemExit(main())
