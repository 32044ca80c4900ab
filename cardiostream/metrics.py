"""The one catalogue of Prometheus metrics shared by every cardiostream worker.

The simulator, the Faust processor and the inference worker import these
objects and never define their own, so a dashboard query names a metric that
exists in exactly one place (``dashboards/definitions/*.json`` are checked
against this file in ``tests/test_dashboards.py``).

Registry choice: the metrics live in prometheus-client's *default* registry.
Each worker is its own process (its own container under compose), so one
registry per process is what the default already gives, and it comes with the
``process_*`` and ``python_*`` collectors for free. The ``component`` label
(``simulator`` | ``processor`` | ``inference``) tells workers apart when a
test runs several of them in one Python process; Prometheus' ``instance``
label tells scaled replicas apart.

Cardinality is bounded by construction: every label below takes values from a
small closed set (components, stages, dead-letter reasons, Kafka partitions,
alarm types, AAMI classes, rhythm codes). The only per-patient series are the
live ``cardiostream_patient_*`` gauges, written through :class:`PatientGauges`,
which refuses new devices beyond ``Settings().metrics.max_patient_series`` and
forgets devices that fell silent.

Ports: ``Settings().metrics.simulator_port`` (9101), ``processor_port`` (9102),
``inference_port`` (9103); call :func:`start_metrics_server` once at start-up.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.registry import CollectorRegistry

from cardiostream.labels import AAMI_CLASSES, RHYTHM_CODES

COMPONENTS: tuple[str, ...] = ("simulator", "processor", "inference")
LATENCY_STAGES: tuple[str, ...] = ("processor", "inference", "alarm")
ALARM_SEVERITIES: tuple[str, ...] = ("technical", "yellow", "red")
# Numeric level of a patient's worst active alarm (Grafana maps it back to words).
ALARM_LEVEL: dict[str, int] = {"none": 0, "technical": 1, "yellow": 2, "red": 3}

# Device time of the last sample -> moment the stage finished it; 10 ms .. 30 s.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
INFERENCE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# ------------------------------------------------------------------ throughput
CHUNKS = Counter("cardiostream_chunks", "Sample chunks sent (simulator) or consumed (processor).",
                 ["component"])
SAMPLES = Counter("cardiostream_samples", "ECG samples (per lead-time point) sent or consumed.",
                  ["component"])
WINDOWS = Counter("cardiostream_windows", "Windows emitted by the processor, by kind.", ["kind"])
BEATS = Counter("cardiostream_beats", "Beats classified by the inference worker, by AAMI class.",
                ["label"])
DEAD_LETTERS = Counter("cardiostream_dead_letters",
                       "Messages refused and sent to the dead-letter topic (reason = SchemaError"
                       " reason or a policy name).", ["stage", "reason"])

# ------------------------------------------------------------------ stream integrity
DUPLICATES = Counter("cardiostream_duplicates", "Chunks dropped as redelivered duplicates.")
REORDERED = Counter("cardiostream_reordered", "Chunks that arrived out of order.")
GAPS = Counter("cardiostream_gaps", "Gaps in a device's sample sequence (segment restarted).")
UNKNOWN_LEADS = Counter("cardiostream_segments_unknown_leads",
                        "Device segments started with none of the leads the models read "
                        "(SignalSpec.first_leads): the models read the device's first lead.")

# ------------------------------------------------------------------ lag, latency, batching
CONSUMER_LAG = Gauge("cardiostream_consumer_lag",
                     "Messages between the partition end and the committed/consumed position.",
                     ["component", "partition"])
E2E_LATENCY = Histogram("cardiostream_e2e_latency_seconds",
                        "Wall time now minus the wall time the stage's newest sample was produced.",
                        ["stage"], buckets=LATENCY_BUCKETS_S)
BATCH_SIZE = Histogram("cardiostream_batch_size", "Windows per inference batch.",
                       buckets=BATCH_BUCKETS)
INFERENCE_SECONDS = Histogram("cardiostream_inference_seconds",
                              "Model forward time per batch (seconds).", ["kind"],
                              buckets=INFERENCE_BUCKETS_S)

# ------------------------------------------------------------------ alarms and devices
ALARMS = Counter("cardiostream_alarms", "Alarm transitions written, by type, severity and state"
                 " (raised or cleared).", ["type", "severity", "state"])
ALARMS_ACTIVE = Gauge("cardiostream_alarms_active",
                      "Alarms currently raised, by type and severity.", ["type", "severity"])
DEVICES_ACTIVE = Gauge("cardiostream_devices_active",
                       "Devices seen by this worker within its activity horizon.", ["component"])
HEARTBEAT = Gauge("cardiostream_worker_heartbeat_timestamp_seconds",
                  "Unix time of the worker's last processing-loop iteration; a stalled Faust"
                  " consumer stops advancing it.", ["component"])

# ------------------------------------------------------------------ per patient (capped)
PATIENT_HEART_RATE = Gauge("cardiostream_patient_heart_rate_bpm",
                           "Latest heart rate per device (beats per minute).", ["device_id"])
PATIENT_RHYTHM = Gauge("cardiostream_patient_rhythm",
                       "1 for the device's current rhythm code (one series per device).",
                       ["device_id", "rhythm"])
PATIENT_SIGNAL_QUALITY = Gauge("cardiostream_patient_signal_quality_ratio",
                               "Fraction of the device's leads with good signal quality (0..1).",
                               ["device_id"])
PATIENT_ALARM_LEVEL = Gauge("cardiostream_patient_alarm_level",
                            "Worst active alarm: 0 none, 1 technical, 2 yellow, 3 red.",
                            ["device_id"])
PATIENT_SERIES_REFUSED = Counter("cardiostream_patient_series_refused",
                                 "Per-patient updates refused because the series cap was reached.")

CATALOGUE = (CHUNKS, SAMPLES, WINDOWS, BEATS, DEAD_LETTERS, DUPLICATES, REORDERED, GAPS,
             UNKNOWN_LEADS, CONSUMER_LAG, E2E_LATENCY, BATCH_SIZE, INFERENCE_SECONDS, ALARMS,
             ALARMS_ACTIVE, DEVICES_ACTIVE, HEARTBEAT, PATIENT_HEART_RATE, PATIENT_RHYTHM,
             PATIENT_SIGNAL_QUALITY, PATIENT_ALARM_LEVEL, PATIENT_SERIES_REFUSED)


_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def catalogue() -> list[tuple[str, str, tuple[str, ...], str]]:
    """``(name, type, label names, help)`` of every metric, for docs and the CLI."""
    rows = []
    for metric in CATALOGUE:
        for family in metric.describe():
            rows.append((family.name, family.type, tuple(metric._labelnames), family.documentation))
    return rows


def exposed_names() -> set[str]:
    """Series names Prometheus sees (``_total``, ``_bucket``, ``_sum``, ``_count`` added)."""
    return {name + suffix for name, kind, _labels, _doc in catalogue()
            for suffix in _SUFFIXES[kind]}


def init_component(component: str, dead_letter_reasons: tuple[str, ...] = (),
                   alarm_types: tuple[str, ...] = ()) -> None:
    """Create ``component``'s labelled series at zero and mark it alive.

    A labelled metric has no series until first used, so a quiet worker would
    look like a missing metric to Prometheus and to the dashboards; this is the
    usual "initialise your metrics" step. Call once at start-up.
    """
    _closed(component, COMPONENTS, "component")
    heartbeat(component)
    DEVICES_ACTIVE.labels(component)
    if component in ("simulator", "processor"):
        CHUNKS.labels(component)
        SAMPLES.labels(component)
    if component != "simulator":
        E2E_LATENCY.labels(component)
        for reason in dead_letter_reasons:
            DEAD_LETTERS.labels(component, reason)
    if component == "processor":
        for kind in ("beat", "rhythm"):
            WINDOWS.labels(kind)
    if component == "inference":
        E2E_LATENCY.labels("alarm")
        for kind in ("beat", "rhythm"):
            INFERENCE_SECONDS.labels(kind)
        for label in AAMI_CLASSES:
            BEATS.labels(label)
        for alarm_type in alarm_types:
            for severity in ALARM_SEVERITIES:
                ALARMS_ACTIVE.labels(alarm_type, severity)
                for state in ("raised", "cleared"):
                    ALARMS.labels(alarm_type, severity, state)


def heartbeat(component: str) -> None:
    """Mark ``component`` alive now; call once per processing-loop iteration."""
    HEARTBEAT.labels(component=_closed(component, COMPONENTS, "component")).set_to_current_time()


def observe_latency(stage: str, produced_wall_s: float, now_s: float | None = None) -> None:
    """Record end-to-end latency of ``stage`` for data produced at ``produced_wall_s`` (unix s)."""
    now = time.time() if now_s is None else now_s
    E2E_LATENCY.labels(stage=_closed(stage, LATENCY_STAGES, "stage")).observe(
        max(0.0, now - produced_wall_s))


def rhythm_label(code: str) -> str:
    """A rhythm code as a bounded label value: known MIT-BIH codes, else ``other``."""
    return code if code in RHYTHM_CODES else "other"


def beat_label(label: str) -> str:
    """An AAMI class as a bounded label value, else ``other``."""
    return label if label in AAMI_CLASSES else "other"


def _closed(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")
    return value


class PatientGauges:
    """Per-device gauges with a hard cap on how many devices have series.

    Policy: a device already tracked is always updated; a new device beyond
    ``max_series`` is refused (counted in ``cardiostream_patient_series_refused_total``)
    rather than evicting another patient, so a ward screen never flaps. Devices
    silent for ``idle_s`` seconds are dropped, freeing their slot. Thread-safe.
    """

    def __init__(self, max_series: int, idle_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_series < 0 or idle_s <= 0:
            raise ValueError(f"max_series={max_series} must be >= 0 and idle_s={idle_s} > 0")
        self._max = max_series
        self._idle_s = idle_s
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()   # device_id -> last update
        self._rhythm: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def tracked(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._seen)

    def set_heart_rate(self, device_id: str, bpm: float) -> bool:
        """Set the device's heart rate (bpm); False when refused by the cap."""
        return self._update(device_id, lambda: PATIENT_HEART_RATE.labels(device_id).set(bpm))

    def set_signal_quality(self, device_id: str, good_ratio: float) -> bool:
        """Set the fraction (0..1) of the device's leads with good quality."""
        if not 0.0 <= good_ratio <= 1.0:
            raise ValueError(f"good_ratio={good_ratio} is outside 0..1")
        return self._update(device_id,
                            lambda: PATIENT_SIGNAL_QUALITY.labels(device_id).set(good_ratio))

    def set_alarm_level(self, device_id: str, severity: str) -> bool:
        """Set the device's worst active alarm: ``none`` | ``technical`` | ``yellow`` | ``red``."""
        level = ALARM_LEVEL.get(severity)
        if level is None:
            raise ValueError(f"severity={severity!r} is not one of {tuple(ALARM_LEVEL)}")
        return self._update(device_id, lambda: PATIENT_ALARM_LEVEL.labels(device_id).set(level))

    def set_rhythm(self, device_id: str, code: str) -> bool:
        """Make ``code`` the device's only rhythm series (the previous one is removed)."""
        label = rhythm_label(code)

        def write() -> None:
            old = self._rhythm.get(device_id)
            if old is not None and old != label:
                PATIENT_RHYTHM.remove(device_id, old)
            PATIENT_RHYTHM.labels(device_id, label).set(1)
            self._rhythm[device_id] = label

        return self._update(device_id, write)

    def forget(self, device_id: str) -> None:
        """Remove every series of ``device_id`` (patient discharged or device silent)."""
        with self._lock:
            self._forget_locked(device_id)

    def _update(self, device_id: str, write: Callable[[], None]) -> bool:
        now = self._clock()
        with self._lock:
            self._expire_locked(now)
            if device_id not in self._seen and len(self._seen) >= self._max:
                PATIENT_SERIES_REFUSED.inc()
                return False
            self._seen[device_id] = now
            self._seen.move_to_end(device_id)
            write()
            return True

    def _expire_locked(self, now: float) -> None:
        while self._seen:
            device_id, last = next(iter(self._seen.items()))
            if now - last < self._idle_s:
                return
            self._forget_locked(device_id)

    def _forget_locked(self, device_id: str) -> None:
        self._seen.pop(device_id, None)
        rhythm = self._rhythm.pop(device_id, None)
        if rhythm is not None:
            PATIENT_RHYTHM.remove(device_id, rhythm)
        for gauge in (PATIENT_HEART_RATE, PATIENT_SIGNAL_QUALITY, PATIENT_ALARM_LEVEL):
            try:
                gauge.remove(device_id)
            except KeyError:
                continue  # this gauge was never set for the device


def start_metrics_server(port: int, addr: str = "0.0.0.0",
                         registry: CollectorRegistry = REGISTRY) -> int:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the bound port.

    ``port=0`` binds a free port (tests). Raises ``OSError`` if the port is taken,
    naming it, so a second worker on one host fails loudly instead of silently.
    """
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise OSError(exc.errno, f"metrics port {addr}:{port} unavailable: {exc.strerror}") from exc
    return int(server.server_address[1])


def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 2.0) -> dict[str, float]:
    """A worker's /metrics as ``{'name{labels}': value}``; empty while it is not listening.

    What tests, benchmarks and the central station read from a running worker, so they
    see exactly what Prometheus would scrape.
    """
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
