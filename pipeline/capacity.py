"""`cardiostream bench capacity`: how many real-time patients one machine can watch.

Ramps 360 Hz two-lead simulated devices (MIT-BIH records, 1x, looping) through
the whole local pipeline — simulator → Kafka → Faust processor → Kafka →
inference → Redis — and at each level holds long enough to measure sustained
throughput, end-to-end latency (device time of the last sample a decision
needed → the result in Redis, from the inference worker's histogram), consumer
lag at the start and end of the hold, and CPU per component from /proc.
A level "keeps up" when p99 ≤ 1 s and lag does not grow.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cardiostream.settings import Settings
from pipeline.central_station import histogram_quantile, parse_metrics
from pipeline.launcher import Launcher
from pipeline.stack import infra_up, isolated, start_workers, wait_workers_settled

CLK_TCK = os.sysconf("SC_CLK_TCK")
LATENCY = "cardiostream_e2e_latency_seconds"


@dataclass(frozen=True, slots=True)
class CapacityConfig:
    levels: tuple[int, ...]
    hold_s: float = 60.0
    out: Path = Path("docs/bench")
    warmup_s: float = 20.0
    p99_limit_s: float = 1.0


@dataclass(slots=True)
class LevelResult:
    devices: int
    samples_per_s: float = 0.0
    windows_per_s: float = 0.0
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    lag_start: float = 0.0
    lag_end: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)   # cores used, per component
    keeps_up: bool = False


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def _scrape(port: int) -> dict[str, float]:
    """Summed by sample name (and bucket), as histogram_quantile expects."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return parse_metrics(r.read().decode())


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _pids(settings: Settings, launcher: Launcher) -> dict[str, int]:
    from cardiostream.infra import kafka, procs, redis

    pids = {w.name: w.proc.pid for w in launcher.workers if w.alive}
    for name, mod in (("kafka", kafka), ("redis", redis)):
        pid = procs.running_pid(mod.node(settings).proc) if name == "kafka" else \
            procs.running_pid(mod.node(settings, need_credentials=False).proc)
        if pid:
            pids[name] = pid
    return pids


def measure_level(settings: Settings, launcher: Launcher, n: int, cfg: CapacityConfig,
                  console: Console) -> LevelResult:
    sim = launcher.start(f"simulator-{n}", "simulate", "ALL", "--devices", str(n),
                         "--speed", "1", "--loop", "--duration-s",
                         str(cfg.warmup_s + cfg.hold_s + 5), "--metrics-port", "-1")
    time.sleep(cfg.warmup_s)
    ports = settings.metrics
    pids = _pids(settings, launcher)
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    proc0, inf0, t0 = _scrape(ports.processor_port), _scrape(ports.inference_port), time.time()
    res = LevelResult(n, lag_start=proc0.get("cardiostream_consumer_lag", 0.0)
                      + inf0.get("cardiostream_consumer_lag", 0.0))
    time.sleep(cfg.hold_s)
    proc1, inf1, t1 = _scrape(ports.processor_port), _scrape(ports.inference_port), time.time()
    dt = t1 - t0
    res.cpu = {k: round((cpu_seconds(p) - cpu0[k]) / dt, 3) for k, p in pids.items()
               if Path(f"/proc/{p}").exists()}
    dp, di = _delta(proc1, proc0), _delta(inf1, inf0)
    res.samples_per_s = dp.get("cardiostream_samples_total", 0.0) / dt
    res.windows_per_s = dp.get("cardiostream_windows_total", 0.0) / dt
    res.p50_s, res.p95_s, res.p99_s = (histogram_quantile(di, LATENCY, "inference", q)
                                       for q in (0.5, 0.95, 0.99))
    res.lag_end = proc1.get("cardiostream_consumer_lag", 0.0) + \
        inf1.get("cardiostream_consumer_lag", 0.0)
    expected = n * 360.0 * 0.97
    res.keeps_up = (res.p99_s is not None and res.p99_s <= cfg.p99_limit_s
                    and res.lag_end <= max(res.lag_start * 1.5, n)
                    and res.samples_per_s >= expected)
    sim.proc.wait()
    console.print(f"{n:5d} devices: {res.samples_per_s:9.0f} samples/s  p99 {res.p99_s}  "
                  f"lag {res.lag_start:.0f}->{res.lag_end:.0f}  cpu {res.cpu}  "
                  f"{'OK' if res.keeps_up else 'FALLS BEHIND'}")
    return res


def run_capacity(settings: Settings, cfg: CapacityConfig, console: Console) -> list[LevelResult]:
    settings = isolated(settings, uuid.uuid4().hex[:8])
    infra_up(settings)
    results: list[LevelResult] = []
    with Launcher(settings) as launcher:
        start_workers(launcher)
        wait_workers_settled(launcher)
        for n in cfg.levels:
            results.append(measure_level(settings, launcher, n, cfg, console))
            if not results[-1].keeps_up and len(results) >= 2 and not results[-2].keeps_up:
                break      # two levels in a row fall behind: the ceiling is found
    write_report(results, cfg, console)
    return results


def write_report(results: list[LevelResult], cfg: CapacityConfig, console: Console) -> None:
    cfg.out.mkdir(parents=True, exist_ok=True)
    ok = [r.devices for r in results if r.keeps_up]
    doc = {"machine": f"{os.cpu_count()} cores", "hold_s": cfg.hold_s,
           "capacity_devices": max(ok) if ok else 0, "levels": [asdict(r) for r in results]}
    (cfg.out / "capacity.json").write_text(json.dumps(doc, indent=1) + "\n")
    table = Table(title=f"capacity: {doc['capacity_devices']} devices keep up")
    for col in ("devices", "samples/s", "windows/s", "p50 s", "p95 s", "p99 s", "lag start→end",
                "CPU (cores)", "keeps up"):
        table.add_column(col)
    for r in results:
        table.add_row(str(r.devices), f"{r.samples_per_s:.0f}", f"{r.windows_per_s:.0f}",
                      *(f"{x:.3f}" if x is not None else "-" for x in (r.p50_s, r.p95_s, r.p99_s)),
                      f"{r.lag_start:.0f}→{r.lag_end:.0f}",
                      " ".join(f"{k}={v:.2f}" for k, v in sorted(r.cpu.items())),
                      "yes" if r.keeps_up else "no")
    console.print(table)
    _plot(results, cfg.out / "capacity.png")


def _plot(results: list[LevelResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r.devices for r in results]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for q, label in (("p50_s", "p50"), ("p95_s", "p95"), ("p99_s", "p99")):
        ax[0].plot(n, [getattr(r, q) or float("nan") for r in results], marker="o", label=label)
    ax[0].axhline(1.0, color="red", linestyle="--", linewidth=1)
    ax[0].set(xlabel="real-time devices", ylabel="end-to-end latency (s)", yscale="log")
    ax[0].legend()
    ax[1].plot(n, [r.samples_per_s for r in results], marker="o", label="processed")
    ax[1].plot(n, [d * 360 for d in n], linestyle="--", label="offered")
    ax[1].set(xlabel="real-time devices", ylabel="samples/s per lead")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
