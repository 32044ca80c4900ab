"""Inference throughput: windows per second against batch size (CPU, and CUDA when present).

Two levels, on real MIT-BIH windows cut by ``process_record`` and mixed as a
ward produces them (every beat and rhythm window of a record, in stream order):

* ``model``: ``Predictor.predict`` alone -- input preparation (``features``),
  host-to-device copy, TorchScript forward, result objects.
* ``worker``: the whole worker on the real broker and Redis (``cardiostream infra
  up``): poll, decode, predict, alarm state machines, results producer flushed
  (acks=all), Redis pipeline, offset commit -- ``max_batch`` = the batch size.

Batch size 1 is the unbatched baseline in both. Each row also splits the
main thread's CPU time per window by phase (``time.thread_time`` around the
predictor's feature preparation and forward pass, and around the worker's
predict, alarm, send, Redis, poll and commit calls; the wrappers cost about
1 µs per call); ``other threads`` is kafka-python's I/O threads.

    nice python bench/bench_inference.py --mode both --out docs/bench/inference_cpu.json

Models: ``--model-dir`` (default settings.paths.model_dir) when it holds beat/ and
rhythm/; otherwise untrained networks of the training module's architectures
exported to TorchScript (same arithmetic, so the same speed), and the JSON says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from itertools import zip_longest
from pathlib import Path

import torch

import inference.predictor as predictor_module
from cardiostream.processing import process_record
from cardiostream.records import load_record
from cardiostream.settings import Settings
from inference.decider import model_spec
from inference.predictor import Predictor

SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
WORKER_SIZES = (1, 8, 32, 128, 256, 512)
BENCH_REDIS_DB = 3          # the services use 0, the tests 1
LOAD_AT_START: list[float] = []


def shipped_beat_members() -> int:
    """How many BeatNets the shipped beat program averages (1 for a single model)."""
    import json

    meta = json.loads((Settings().paths.model_dir / "beat" / "metadata.json").read_text())
    return len(meta.get("ensemble_seeds", [0]))


def stand_in_models(folder: Path) -> Path:
    """Untrained models shaped like the shipped ones (a BeatEnsemble of as many BeatNets,
    a RhythmNet), exported with training.export: the cost, not the weights, matters."""
    from cardiostream.features import RHYTHM_FEATURES
    from cardiostream.signal import DEFAULT_SPEC
    from training.export import base_metadata, export_model
    from training.models import BeatEnsemble, BeatNet, RhythmNet

    spec = DEFAULT_SPEC
    torch.manual_seed(0)
    members = shipped_beat_members()
    # 2 input channels: lead 0, then lead 0 minus the patient's template (beat_channels)
    beat = BeatEnsemble([BeatNet(2, 7, 5, suppressed=[3]) for _ in range(members)])
    meta = base_metadata("beat", spec, 0) | {"classes": list("NSVFQ"), "leads_used": [0]}
    export_model(beat, (torch.zeros(2, 2, spec.beat_span), torch.ones(2, 7)), folder / "beat", meta)
    rhythm = RhythmNet(len(RHYTHM_FEATURES), 8)
    n = round(spec.rhythm_window_s * spec.rhythm_fs_hz)
    meta = base_metadata("rhythm", spec, 0) | {
        "classes": ["N", "AFIB", "AFL", "VT", "VFL", "SVTA", "B", "T"], "leads_used": [0]}
    export_model(rhythm, (torch.zeros(2, 1, n), torch.ones(2, len(RHYTHM_FEATURES))),
                 folder / "rhythm", meta)
    return folder


def windows_of(record: str, settings: Settings, spec, n: int | None) -> list:
    """The record's windows in stream order, repeated up to ``n`` (None: once)."""
    rec = load_record(settings.paths.mitdb, record)
    out = process_record(rec, spec, device_id=f"rec-{record}")
    ws = sorted([*out.beats, *out.rhythms], key=lambda w: w.last_sample_time_us)
    return ws if n is None else (ws * (n // len(ws) + 1))[:n]


class PhaseClock:
    """Main-thread CPU seconds spent inside wrapped callables, by phase name."""

    def __init__(self) -> None:
        self.cpu: Counter[str] = Counter()

    def timed(self, inner: Callable, phase: str) -> Callable:
        def call(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.cpu[phase] += time.thread_time() - t0
        return call

    def wrap(self, obj: object, attr: str, phase: str) -> None:
        setattr(obj, attr, self.timed(getattr(obj, attr), phase))

    def per_window(self, n: int, thread_s: float, process_s: float, rest: str) -> dict:
        """µs per window by phase; ``rest`` = main thread outside the wrapped calls."""
        out = {k: round(v / n * 1e6, 1) for k, v in self.cpu.items()}
        out[rest] = round((thread_s - sum(self.cpu.values())) / n * 1e6, 1)
        out["other threads"] = round((process_s - thread_s) / n * 1e6, 1)
        return out


def model_clock(pred: Predictor) -> PhaseClock:
    """Time the predictor's feature preparation and forward pass (module names patched)."""
    clock = PhaseClock()
    for name in ("beat_inputs", "rhythm_inputs"):
        setattr(predictor_module, name, clock.timed(getattr(predictor_module, name),
                                                    "features"))
    clock.wrap(pred, "_forward", "forward")
    return clock


def throughput(pred: Predictor, clock: PhaseClock, windows: list, size: int,
               min_s: float) -> tuple[float, float, dict]:
    """(windows per wall second, CPU µs per window, phases) in batches of ``size``."""
    pred.predict(windows[:size])                                # warm-up (allocations, JIT)
    clock.cpu.clear()
    done, t0, c0, m0 = 0, time.perf_counter(), time.process_time(), time.thread_time()
    while True:
        for i in range(0, len(windows) - size + 1, size):
            pred.predict(windows[i:i + size])
            done += size
            if time.perf_counter() - t0 >= min_s and done >= 4 * size:
                cpu = time.process_time() - c0
                return (done / (time.perf_counter() - t0), cpu / done * 1e6,
                        clock.per_window(done, time.thread_time() - m0, cpu,
                                         "result objects, rest"))


def ward_order(windows: list, prefix: str, devices: int) -> list:
    """Split stream-ordered windows into ``devices`` patients (contiguous blocks, so each
    patient's device time rises) and interleave them as a ward's traffic."""
    block = -(-len(windows) // devices)
    pats = [[replace(w, device_id=f"{prefix}-{k}") for w in windows[k * block:(k + 1) * block]]
            for k in range(devices)]
    return [w for group in zip_longest(*pats) for w in group if w is not None]


def worker_clock(worker) -> PhaseClock:
    clock = PhaseClock()
    for obj, attr, phase in ((worker.predictor, "predict", "predict"),
                             (worker.decider, "feed", "alarm state machines"),
                             (worker.producer, "send", "results send"),
                             (worker.producer, "flush", "results flush"),
                             (worker.sink, "write", "redis"),
                             (worker.consumer, "poll", "poll"),
                             (worker.consumer, "commit", "commit")):
        clock.wrap(obj, attr, phase)
    return clock


def worker_rate(settings: Settings, windows: list, size: int) -> tuple[float, float, dict]:
    """(windows/s, worker-process CPU µs per window, phases) with ``max_batch=size``
    (joining the group and the first batch excluded)."""
    from kafka import KafkaProducer

    from cardiostream.infra import kafka as infra_kafka
    from cardiostream.infra import topics
    from cardiostream.schemas import encode_window
    from inference.worker import build_worker

    tag = uuid.uuid4().hex[:8]
    names = {f: f"{v}.bench{tag}" for f, v in settings.topics.model_dump().items()
             if isinstance(v, str)}
    s = settings.model_copy(update={
        "topics": settings.topics.model_copy(update=names),
        "redis": settings.redis.model_copy(update={"url": settings.redis.url.rsplit("/", 1)[0]
                                                   + f"/{BENCH_REDIS_DB}"}),
        "inference": settings.inference.model_copy(update={
            "max_batch": size, "group_id": f"bench-{tag}", "device": "cpu"})})
    topics.ensure(s)
    try:
        producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, linger_ms=20)
        for w in ward_order(windows, f"bench{tag}", 32):
            producer.send(s.topics.windows, key=w.device_id.encode(), value=encode_window(w))
        producer.flush()
        producer.close()
        worker = build_worker(s)
        clock = worker_clock(worker)
        while worker.processed == 0:                      # join the group, first batch
            worker.step()
        clock.cpu.clear()
        start_n, t0 = worker.processed, time.perf_counter()
        c0, m0 = time.process_time(), time.thread_time()
        while worker.processed < len(windows):
            worker.step()
        n = worker.processed - start_n
        cpu_s, thread_s = time.process_time() - c0, time.thread_time() - m0
        rate = n / (time.perf_counter() - t0)
        phases = clock.per_window(n, thread_s, cpu_s, "decode, encode, rest")
        worker.producer.close(timeout=10)
        worker.consumer.close(autocommit=False)
        return rate, cpu_s / n * 1e6, phases
    finally:
        topics.delete(topics.topic_names(s), infra_kafka.node(s))


def sweep(level: str, sizes: tuple[int, ...], repeats: int,
          measure: Callable[[int], tuple[float, float, dict]]) -> list[dict]:
    """Every size once per repeat (so load drift hits all sizes alike); per size the median
    run by windows/s, every run's rate and 1-min load, and the per-repeat ratio to size 1."""
    runs: dict[int, list[tuple[float, float, dict, float]]] = {size: [] for size in sizes}
    for _ in range(repeats):
        for size in sizes:
            wps, cpu, phases = measure(size)
            runs[size].append((wps, cpu, phases, os.getloadavg()[0]))
            print(f"{level:6s} batch {size:4d}: {wps:10.1f} windows/s", file=sys.stderr,
                  flush=True)
    def median(size: int) -> tuple[float, float, dict, float]:
        return sorted(runs[size], key=lambda r: r[0])[len(runs[size]) // 2]

    base = median(sizes[0])[0]
    rows = []
    for size in sizes:
        wps, cpu, phases, _ = median(size)
        rows.append({"level": level, "batch": size, "windows_per_s": round(wps, 1),
                     "cpu_us_per_window": round(cpu, 1), "phases_cpu_us": phases,
                     "speedup_vs_unbatched": round(wps / base, 2),
                     "runs_windows_per_s": [round(r[0], 1) for r in runs[size]],
                     "runs_speedup": [round(r[0] / u[0], 2)
                                      for r, u in zip(runs[size], runs[sizes[0]], strict=True)],
                     "runs_load_1min": [round(r[3], 2) for r in runs[size]]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--record", default="208")
    ap.add_argument("--windows", type=int, default=4096)
    ap.add_argument("--min-s", type=float, default=2.0, help="seconds timed per batch size")
    ap.add_argument("--half", action="store_true", help="fp16 (CUDA only)")
    ap.add_argument("--out", type=Path, default=Path("docs/bench/inference_cpu.json"))
    ap.add_argument("--mode", default="both", choices=("model", "worker", "both"))
    ap.add_argument("--repeats", type=int, default=3, help="sweeps; the median run is kept")
    ap.add_argument("--worker-windows", type=int, default=3000, help="per batch size (÷10 at 1)")
    args = ap.parse_args(argv)
    global LOAD_AT_START
    LOAD_AT_START = [round(x, 2) for x in os.getloadavg()]
    settings = Settings()
    model_dir = args.model_dir or settings.paths.model_dir
    stand_in = not (model_dir / "beat" / "model.ts").exists()
    if stand_in:
        model_dir = stand_in_models(Path(tempfile.mkdtemp(prefix="cs-bench-models-")))
    pred = Predictor(model_dir, device=args.device, half=args.half, threads=args.threads)
    windows = windows_of(args.record, settings, model_spec(pred.beat.metadata), args.windows)
    beats = sum(w.kind == "beat" for w in windows)
    rows = []
    if args.mode in ("model", "both"):
        rows += sweep("model", SIZES, args.repeats,
                      lambda size, clock=model_clock(pred): throughput(pred, clock, windows,
                                                                       size, args.min_s))
    if args.mode in ("worker", "both"):
        ws = windows_of(args.record, settings, model_spec(pred.beat.metadata), None)
        wsettings = settings.model_copy(update={"paths": settings.paths.model_copy(
            update={"model_dir": model_dir})})
        rows += sweep("worker", WORKER_SIZES, args.repeats, lambda size: worker_rate(
            wsettings, ws[:args.worker_windows // (10 if size == 1 else 1)], size))
    device = (torch.cuda.get_device_name(0) if args.device == "cuda"
              else f"{platform.processor() or platform.machine()} CPU, {args.threads} thread(s)")
    doc = {"device": device, "half": pred.half, "models": "stand-in (untrained, same "
           "architecture)" if stand_in else str(model_dir), "model_version": pred.version,
           "record": args.record, "windows": len(windows),
           "beat_share": round(beats / len(windows), 3),
           "torch": torch.__version__, "load_average_at_start": LOAD_AT_START, "rows": rows,
           "command": "python bench/bench_inference.py " + " ".join(argv or sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print("| level | batch | windows/s | x unbatched | CPU µs/window |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['level']} | {r['batch']} | {r['windows_per_s']:.0f} | "
              f"{r['speedup_vs_unbatched']:.1f} | {r['cpu_us_per_window']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
