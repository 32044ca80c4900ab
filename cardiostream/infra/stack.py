"""The local stack as a whole: which services exist, bring them up, down, and report on them.

Service names: ``kafka``, ``redis``, ``prometheus`` and, for secured mode,
``kafka-secure`` and ``redis-secure``. The fault-injection suite stops and
starts single services by name (``cardiostream infra down kafka``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cardiostream.infra import kafka, prometheus, redis, topics
from cardiostream.infra.errors import InfraError
from cardiostream.settings import Settings

SERVICES = ("kafka", "redis", "prometheus", "kafka-secure", "redis-secure")
# Stop order: consumers of the broker's data first, the broker last.
STOP_ORDER = ("prometheus", "redis-secure", "kafka-secure", "redis", "kafka")


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    pid: int | None
    address: str
    detail: str
    log: Path


def check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise InfraError(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    return names


def default_up(with_prometheus: bool, secure: bool) -> list[str]:
    names = ["kafka", "redis"]
    if with_prometheus:
        names.append("prometheus")
    if secure:
        names += ["kafka-secure", "redis-secure"]
    return names


def up(settings: Settings, names: Iterable[str],
       targets: dict[str, list[str]] | None = None) -> dict[str, dict[str, float]]:
    """Start each named service (idempotent); seconds spent per service and step."""
    starters = {
        "kafka": lambda: _kafka_up(settings, secure=False),
        "redis": lambda: redis.start(settings),
        "prometheus": lambda: prometheus.start(settings, targets),
        "kafka-secure": lambda: _kafka_up(settings, secure=True),
        "redis-secure": lambda: redis.start(settings, secure=True),
    }
    names = check_names(names)
    if "kafka-secure" in names:
        kafka.node(settings, secure=True)  # fail on missing credentials before starting anything
    if "redis-secure" in names:
        redis.node(settings, secure=True)
    return {name: starters[name]() for name in names}


def _kafka_up(settings: Settings, secure: bool) -> dict[str, float]:
    timings = kafka.start(settings, secure)
    t0 = time.monotonic()
    topics.ensure(settings, kafka.node(settings, secure))
    timings["topics"] = time.monotonic() - t0
    return timings


def down(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Stop the named services (all by default); the names that were running."""
    wanted = set(check_names(names)) if names is not None else set(SERVICES)
    stoppers = {
        "prometheus": lambda: prometheus.stop(settings),
        "redis-secure": lambda: redis.stop(settings, secure=True),
        "kafka-secure": lambda: kafka.stop(settings, secure=True),
        "redis": lambda: redis.stop(settings),
        "kafka": lambda: kafka.stop(settings),
    }
    return [name for name in STOP_ORDER if name in wanted and stoppers[name]()]


def running(settings: Settings) -> set[str]:
    """Names of the services whose process is alive (pid files only, no health probes)."""
    pids = {"kafka": kafka.status(settings)[0], "kafka-secure": kafka.status(settings, True)[0],
            "redis": redis.status(settings)[0], "redis-secure": redis.status(settings, True)[0],
            "prometheus": prometheus.status(settings)}
    return {name for name, pid in pids.items() if pid is not None}


def status(settings: Settings) -> list[ServiceStatus]:
    """One row per service, with a live health probe for the plain ones."""
    rows = []
    for secure in (False, True):
        pid, k = kafka.status(settings, secure)
        rows.append(ServiceStatus(k.name, pid, k.bootstrap, _kafka_detail(settings, pid, secure),
                                  k.proc.log_file.parent / "server.log"))
        pid, r = redis.status(settings, secure)
        detail = ("PING ok" if redis.ping(r) else "no PING") if pid and not secure else ""
        rows.append(ServiceStatus(r.name, pid, f"127.0.0.1:{r.port}", detail, r.home / "redis.log"))
        if not secure:
            rows.append(_prometheus_row(settings))
    return rows


def _kafka_detail(settings: Settings, pid: int | None, secure: bool) -> str:
    if pid is None or secure:
        return ""
    from kafka.errors import KafkaError

    try:
        counts = topics.partition_counts(settings)
    except (KafkaError, OSError) as err:
        return f"no metadata ({type(err).__name__})"
    ours = [t for t in topics.topic_names(settings) if t in counts]
    return f"{len(ours)} topics, {sum(counts[t] for t in ours)} partitions"


def _prometheus_row(settings: Settings) -> ServiceStatus:
    pid = prometheus.status(settings)
    detail = ""
    if pid is not None and prometheus.ready(settings):
        targets = prometheus.active_targets(settings)
        healthy = sum(t.get("health") == "up" for t in targets)
        detail = f"ready, {healthy}/{len(targets)} targets up"
    addr = f"127.0.0.1:{settings.infra.prometheus_port}"
    return ServiceStatus("prometheus", pid, addr, detail, prometheus.proc(settings).log_file)
