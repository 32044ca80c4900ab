"""`cardiostream demo`: a ward of MIT-BIH patients at real time, watched live.

Starts Kafka and Redis, a processor and an inference worker (the committed
default models: no training needed), a simulator with one device per patient,
and the rich central station. Ctrl-C stops everything and prints a summary.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from cardiostream.records import NON_PACED
from cardiostream.settings import Settings
from pipeline.central_station import StationFeed, render
from pipeline.launcher import Launcher
from pipeline.stack import infra_up, start_workers, wait_workers_settled

# Records with something to show first (VT, AF, bigeminy, pauses), then the rest.
SHOWCASE = ("207", "203", "208", "210", "233", "201", "202", "119", "221", "106", "200",
            "222", "219", "232", "223", "100")


@dataclass(frozen=True, slots=True)
class DemoConfig:
    patients: int = 16
    speed: str = "1"
    unit: str = "ward-1"
    duration_s: float | None = None      # None: until Ctrl-C
    refresh_s: float = 0.5


def demo_records(n: int) -> list[str]:
    extra = [r for r in NON_PACED if r not in SHOWCASE]
    return list((SHOWCASE + tuple(extra))[:max(1, n)])


def run_demo(settings: Settings, cfg: DemoConfig, console: Console) -> dict:
    from streamer.simulator import assign_devices

    console.print("[bold]cardiostream demo[/]: starting Kafka and Redis …")
    infra_up(settings)
    records = demo_records(cfg.patients)
    devices = assign_devices(records, cfg.patients, unit=cfg.unit)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    with Launcher(settings) as launcher:
        console.print("starting the stream processor and the inference worker …")
        start_workers(launcher)
        wait_workers_settled(launcher)
        launcher.start("simulator", "simulate", *records, "--devices", str(cfg.patients),
                       "--speed", cfg.speed, "--loop", "--unit", cfg.unit)
        feed = StationFeed(settings, [d.device_id for d in devices], cfg.unit,
                           {"processor": settings.metrics.processor_port,
                            "inference": settings.metrics.inference_port})
        try:
            _watch(feed, launcher, cfg, stop, started, console)
        finally:
            feed.close()
            console.print("stopping workers …")
    signal.signal(signal.SIGINT, previous)
    return {"patients": cfg.patients, "seconds": round(time.monotonic() - started, 1),
            "alarms_raised": dict(feed.alarm_count), "alarm_log": len(feed.alarm_log),
            "assignment": {d.device_id: d.record for d in devices}}


def _watch(feed: StationFeed, launcher: Launcher, cfg: DemoConfig, stop: threading.Event,
           started: float, console: Console) -> None:
    with Live(console=console, refresh_per_second=4, screen=False) as live:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if cfg.duration_s is not None and elapsed >= cfg.duration_s:
                break
            feed.poll()
            alive = {w.name: w.alive for w in launcher.workers}
            live.update(render(list(feed.patients.values()), feed.alarm_log,
                               feed.health(alive), elapsed))
            stop.wait(cfg.refresh_s)


def summary_table(result: dict) -> Table:
    table = Table(title="demo summary")
    table.add_column("what")
    table.add_column("value")
    table.add_row("patients", str(result["patients"]))
    table.add_row("ran for", f"{result['seconds']} s")
    for severity, n in result["alarms_raised"].items():
        table.add_row(f"{severity} alarms raised", str(n))
    table.add_row("alarm transitions seen", str(result["alarm_log"]))
    return table
