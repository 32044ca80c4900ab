"""Does one processor worker keep up with N devices in real time? Paced, not catch-up.

``bench_processor.py`` measures CPU per chunk on a pre-produced backlog; this runs
the real thing: the simulator sends N 360 Hz two-lead MIT-BIH devices at 1x real
time (as devices, or behind gateways with ``--gateway-bundle``) while one
``cardiostream process`` worker consumes, for ``--seconds`` of wall time. Every
second it reads the worker's samples counter, consumer lag, CPU time and the
processor-latency histogram (device time of a window's newest sample -> produced).
Verdict: sustained when, after the first ``--settle-s``, the worker processed at
least 99 % of the samples sent and its lag did not grow (the largest lag of the last
third of the measured span within 10 % + 8 records of the first third's).

    nice python bench/bench_processor_realtime.py --devices 1200,1400,1700,2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAG = 'cardiostream_consumer_lag{component="processor",partition="'
SAMPLES = 'cardiostream_samples_total{component="processor"}'
LATENCY = "cardiostream_e2e_latency_seconds_bucket{"


def _latency_buckets(m: dict[str, float]) -> list[tuple[float, float]]:
    """(upper bound s, cumulative count) of the processor stage, ascending."""
    out = []
    for key, value in m.items():
        if key.startswith(LATENCY) and 'stage="processor"' in key:
            le = key.split('le="', 1)[1].split('"', 1)[0]
            out.append((float(le), value))
    return sorted(out)


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` (a conservative estimate)."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    target = q * buckets[-1][1]
    return next(le for le, count in buckets if count >= target)


def _delta(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list:
    before = dict(a)
    return [(le, count - before.get(le, 0.0)) for le, count in b]


def run(devices: int, seconds: float, gateway_bundle: int, settle_s: float) -> dict:
    from bench_processor import isolated_settings  # bench/ is the script's path

    from cardiostream.infra import kafka, topics
    from cardiostream.records import NON_PACED
    from cardiostream.settings import load_settings
    from streamer.harness import WorkerProcess, wait_assigned
    from streamer.simulator import Simulator, assign_devices

    settings, suffix = isolated_settings(load_settings(), "rt")
    topics.ensure(settings)
    log = Path(tempfile.gettempdir()) / f"bench-processor-rt-{suffix}.log"
    worker = WorkerProcess(settings, log, loglevel="warning").start()
    series: list[dict] = []
    try:
        wait_assigned([worker], settings.topics.partitions, timeout_s=120)
        sim = Simulator(settings, assign_devices(list(NON_PACED), devices), speed=1.0,
                        loop=True, duration_s=seconds, gateway_bundle=gateway_bundle)
        thread = threading.Thread(target=sim.run, daemon=True)
        t0 = time.monotonic()
        thread.start()
        while thread.is_alive() or time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            m = worker.metrics()
            series.append({
                "t": time.monotonic() - t0, "samples_sent": sim.stats.samples_sent,
                "samples_done": m.get(SAMPLES, 0.0),
                "lag": sum(v for k, v in m.items() if k.startswith(LAG)),
                "cpu_s": m.get("process_cpu_seconds_total", 0.0),
                "latency": _latency_buckets(m)})
            if not worker.running:
                raise RuntimeError(f"worker died; see {log}")
        thread.join(30)
        time.sleep(3.0)                       # let the worker drain what was sent last
        final = worker.metrics().get(SAMPLES, 0.0)
    finally:
        worker.stop()
        topics.delete(topics.topic_names(settings), kafka.node(settings))
    return _summary(series, final, sim.stats, devices, seconds, gateway_bundle, settle_s,
                    str(log))


def _summary(series, final, stats, devices, seconds, gateway_bundle, settle_s, log) -> dict:
    inside = [row for row in series if row["t"] >= settle_s]
    a, b = inside[0], inside[-1]
    third = max(1, len(inside) // 3)
    lag_first = max(r["lag"] for r in inside[:third])
    lag_last = max(r["lag"] for r in inside[-third:])
    sent = b["samples_sent"] - a["samples_sent"]
    done = b["samples_done"] - a["samples_done"]
    cpu = b["cpu_s"] - a["cpu_s"]
    lat = _delta(a["latency"], b["latency"])
    # a standing backlog is not falling behind; a growing one is (10 % + a few records)
    kept_up = done >= 0.99 * sent and lag_last <= 1.1 * lag_first + 8
    return {
        "devices": devices, "seconds": seconds, "gateway_bundle": gateway_bundle,
        "settle_s": settle_s, "span_s": b["t"] - a["t"],
        "samples_sent_per_s": sent / (b["t"] - a["t"]),
        "samples_done_per_s": done / (b["t"] - a["t"]),
        "devices_sent": sent / (b["t"] - a["t"]) / 360.0,
        "devices_done": done / (b["t"] - a["t"]) / 360.0,
        "worker_cpu_share": cpu / (b["t"] - a["t"]),
        "cpu_us_per_chunk": 1e6 * cpu / (done / 180.0) if done else float("nan"),
        "lag_records_first_third_max": lag_first, "lag_records_last_third_max": lag_last,
        "latency_p50_s": _quantile(lat, 0.5), "latency_p99_s": _quantile(lat, 0.99),
        "samples_done_after_drain": final, "samples_sent_total": stats.samples_sent,
        "send_errors": stats.send_errors, "max_late_s": stats.max_late_s,
        "sustained": kept_up, "load_avg_1m": os.getloadavg()[0], "log": log,
        "series": [{k: v for k, v in r.items() if k != "latency"} for r in series],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="2000", help="comma list: one run per level")
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--settle-s", type=float, default=20.0)
    ap.add_argument("--gateway-bundle", type=int, default=64)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench" /
                    "processor_realtime.json")
    args = ap.parse_args(argv)
    result = {"command": "nice python bench/bench_processor_realtime.py " +
              " ".join(sys.argv[1:]), "runs": []}
    for devices in (int(d) for d in args.devices.split(",")):
        one = run(devices, args.seconds, args.gateway_bundle, args.settle_s)
        print(json.dumps({k: v for k, v in one.items() if k != "series"}, indent=2))
        result["runs"].append(one)
    sustained = [r["devices"] for r in result["runs"] if r["sustained"]]
    result["largest_sustained"] = max(sustained, default=0)
    print(f"largest level sustained: {result['largest_sustained']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
