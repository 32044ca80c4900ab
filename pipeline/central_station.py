"""A terminal central station: what a telemetry nurse sees, drawn with rich.

Per patient: heart rate, rhythm, signal quality, a small live trace and the
active alarms (from Redis, written by the inference worker); below, the alarm
log as alarms fire and the pipeline's health (throughput, lag, latency) read
from the workers' own Prometheus endpoints. The render functions are pure; the
``StationFeed`` shell does the I/O.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from inference.alarms import lead_of

SPARK = "▁▂▃▄▅▆▇█"
SEVERITY_STYLE = {"red": "bold white on red", "yellow": "black on yellow",
                  "technical": "black on cyan"}


@dataclass(slots=True)
class PatientView:
    device_id: str
    hr_bpm: float | None = None
    rhythm: str = "?"
    quality: tuple[str, ...] = ()
    active: tuple[str, ...] = ()
    leads: tuple[str, ...] = ()       # names of the rows that quality and per-lead alarms index
    trace: deque = field(default_factory=lambda: deque(maxlen=1440))  # 4 s at 360 Hz


@dataclass(slots=True)
class Health:
    chunks_per_s: float = 0.0
    windows_per_s: float = 0.0
    beats_per_s: float = 0.0
    lag: float = 0.0
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    dead_letters: float = 0.0
    workers_alive: dict[str, bool] = field(default_factory=dict)


def sparkline(samples: np.ndarray, width: int = 36) -> str:
    """Min/max-preserving downsample of a trace to ``width`` block characters."""
    if samples.size < 2:
        return " " * width
    edges = np.linspace(0, samples.size, width + 1).astype(int)
    cols = [samples[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    peaks = np.array([c[np.argmax(np.abs(c - np.median(samples)))] for c in cols])
    lo, hi = np.percentile(samples, 1), np.percentile(samples, 99.5)
    scaled = np.clip((peaks - lo) / max(hi - lo, 1e-6), 0, 1) * (len(SPARK) - 1)
    return "".join(SPARK[int(round(v))] for v in scaled).ljust(width)


def alarm_label(key: str, leads: tuple[str, ...]) -> str:
    """An active alarm key for the screen. Per-lead keys carry the lead's name
    (``noisy:V1``, inference/alarms.py ``lead_key``); a key with a row index (version 2
    windows, or an alarm raised before the names) is shown with the name of that row when
    the patient's state lists one, since rows are in the models' lead order, not the
    device's: the reading of ``inference.alarms.lead_of``, the one rule for such keys."""
    kind, sep, _ = key.partition(":")
    _, name = lead_of(key, leads)
    return f"{kind}:{name}" if sep and name else key


def _patient_row(p: PatientView) -> tuple:
    hr = f"{p.hr_bpm:5.0f}" if p.hr_bpm else "  ---"
    quality = ",".join(p.quality) or "?"
    q_style = "green" if p.quality and all(q == "good" for q in p.quality) else "yellow"
    active = " ".join(alarm_label(k, p.leads) for k in p.active)
    alarms = Text(active or "-", style="bold red" if p.active else "dim")
    trace = sparkline(np.asarray(p.trace, dtype=np.float64))
    return (p.device_id, hr, p.rhythm, Text(quality, style=q_style), Text(trace, "green"), alarms)


def render(patients: list[PatientView], alarm_log: list[dict], health: Health,
           elapsed_s: float) -> Group:
    """The whole screen, pure: patients table, alarm log and pipeline health."""
    table = Table(title=f"cardiostream central station — {len(patients)} patients, "
                        f"{elapsed_s:5.0f} s", expand=True)
    for col in ("bed", "HR", "rhythm", "quality", "ECG (lead 0, 4 s)", "active alarms"):
        table.add_column(col, no_wrap=True)
    for p in patients:
        table.add_row(*_patient_row(p))
    log = Text()
    for a in alarm_log[-8:]:
        style = SEVERITY_STYLE.get(a.get("severity", ""), "")
        log.append(f"{a.get('clock', '')} {a.get('device_id', '?'):>8} ", style="dim")
        log.append(f" {a.get('state', '')} {a.get('type', '')} ", style=style)
        log.append(f" {a.get('message', '')}\n")
    alive = " ".join(f"{k}:{'up' if v else 'DOWN'}" for k, v in health.workers_alive.items())
    lat = ("-" if health.latency_p50_s is None else
           f"p50 {health.latency_p50_s:.2f} s  p99 {health.latency_p99_s:.2f} s")
    pipe = Text(f"chunks/s {health.chunks_per_s:7.0f}   windows/s {health.windows_per_s:6.0f}   "
                f"beats/s {health.beats_per_s:5.0f}   lag {health.lag:6.0f}   "
                f"alarm latency {lat}   dead letters {health.dead_letters:.0f}   {alive}")
    return Group(table, Panel(log, title="alarms"), Panel(pipe, title="pipeline health"))


def parse_metrics(text: str) -> dict[str, float]:
    """Sum every sample of each Prometheus metric (by sample name) in one exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_bucket"):
                key = f"{s.name}|{s.labels.get('le')}|{s.labels.get('stage', '')}"
                totals[key] = totals.get(key, 0.0) + s.value
            totals[s.name] = totals.get(s.name, 0.0) + s.value
    return totals


def histogram_quantile(totals: dict[str, float], name: str, stage: str, q: float
                       ) -> float | None:
    """Quantile of a cumulative Prometheus histogram, as PromQL's histogram_quantile does."""
    buckets = sorted((float(k.split("|")[1]), v) for k, v in totals.items()
                     if k.startswith(f"{name}_bucket|") and k.endswith(f"|{stage}"))
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_le, prev_count = le, count
    return None


class StationFeed:
    """Pulls patient state and alarms from Redis, traces from the samples topic, health
    from the workers' /metrics endpoints."""

    def __init__(self, settings, device_ids: list[str], unit: str,
                 metrics_ports: dict[str, int]) -> None:
        from inference.sink import make_client

        self.settings = settings
        self.redis = make_client(settings.redis)
        self.patients = {d: PatientView(d) for d in device_ids}
        self.unit = unit
        self.alarm_log: list[dict] = []
        self.alarm_count = {"red": 0, "yellow": 0, "technical": 0}
        self._last_id = f"{int(time.time() * 1000)}-0"   # only alarms from now on
        self.metrics_ports = metrics_ports
        self._prev: tuple[float, dict[str, float]] | None = None
        self._stop = threading.Event()
        self._trace_thread = threading.Thread(target=self._follow_samples, daemon=True)
        self._trace_thread.start()

    def _follow_samples(self) -> None:
        from kafka import KafkaConsumer

        from cardiostream.kafka_config import client_kwargs
        from cardiostream.schemas import SchemaError, decode_chunk

        consumer = KafkaConsumer(self.settings.topics.samples, auto_offset_reset="latest",
                                 enable_auto_commit=False, group_id=None,
                                 **client_kwargs(self.settings.kafka))
        while not self._stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                for rec in records:
                    try:
                        chunk = decode_chunk(rec.value)
                    except SchemaError:
                        continue  # the processor dead-letters it; the screen just skips it
                    p = self.patients.get(chunk.device_id)
                    if p is not None:
                        p.trace.extend(chunk.millivolts()[0].tolist())
        consumer.close()

    def poll(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for d in self.patients:
            pipe.hgetall(f"cs:patient:{d}")
        for d, raw in zip(self.patients, pipe.execute(), strict=True):
            fields = {k.decode(): json.loads(v) for k, v in raw.items()}
            p = self.patients[d]
            p.hr_bpm = fields.get("hr_bpm") or None
            p.rhythm = fields.get("rhythm") or "?"
            p.quality = tuple(fields.get("quality") or ())
            p.active = tuple(fields.get("active") or ())
            p.leads = tuple(fields.get("leads") or ())
        entries = self.redis.xread({f"cs:alarms:{self.unit}": self._last_id}, count=500) or []
        for _stream, items in entries:
            for entry_id, data in items:
                self._last_id = entry_id
                alarm = json.loads(data[b"alarm"])
                if alarm.get("device_id") not in self.patients:
                    continue   # another ward's screen, sharing the care unit's stream
                alarm["clock"] = time.strftime("%H:%M:%S")
                self.alarm_log.append(alarm)
                if alarm.get("state") == "raised":
                    self.alarm_count[alarm["severity"]] = (
                        self.alarm_count.get(alarm["severity"], 0) + 1)

    def health(self, alive: dict[str, bool]) -> Health:
        totals: dict[str, float] = {}
        for port in self.metrics_ports.values():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    for k, v in parse_metrics(r.read().decode()).items():
                        totals[k] = totals.get(k, 0.0) + v
            except OSError:
                continue
        now = time.monotonic()
        h = Health(workers_alive=alive, lag=totals.get("cardiostream_consumer_lag", 0.0),
                   dead_letters=totals.get("cardiostream_dead_letters_total", 0.0))
        h.latency_p50_s = histogram_quantile(totals, "cardiostream_e2e_latency_seconds",
                                             "inference", 0.5)
        h.latency_p99_s = histogram_quantile(totals, "cardiostream_e2e_latency_seconds",
                                             "inference", 0.99)
        if self._prev is not None:
            dt = max(now - self._prev[0], 1e-3)
            old = self._prev[1]

            def rate(name: str) -> float:
                return max(0.0, totals.get(name, 0.0) - old.get(name, 0.0)) / dt

            # the simulator and the processor both count chunks: show the processor's half
            h.chunks_per_s = rate("cardiostream_chunks_total") / 2
            h.windows_per_s = rate("cardiostream_windows_total")
            h.beats_per_s = rate("cardiostream_beats_total")
        self._prev = (now, totals)
        return h

    def close(self) -> None:
        self._stop.set()
        self._trace_thread.join(timeout=3)
