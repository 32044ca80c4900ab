"""Bring up the local pipeline: infrastructure, fresh topics, processor and inference workers.

Replay and benchmarks run in their own namespace (topic names, consumer groups
and Faust app id suffixed with a run id) so their results are theirs alone and
a previous run's offsets or changelogs cannot leak in; the demo uses the
configured names.
"""

from __future__ import annotations

import time

from cardiostream.settings import Settings
from pipeline.launcher import Launcher


def isolated(settings: Settings, run_id: str) -> Settings:
    """The same settings with topics, consumer groups and app id suffixed by ``run_id``."""
    doc = settings.model_dump()
    for key, value in doc["topics"].items():
        if isinstance(value, str):
            doc["topics"][key] = f"{value}.{run_id}"
    doc["inference"]["group_id"] = f"{settings.inference.group_id}-{run_id}"
    doc["processor"]["app_id"] = f"{settings.processor.app_id}-{run_id}"
    return Settings.model_validate(doc)


def infra_up(settings: Settings) -> None:
    """Kafka and Redis running (idempotent), and this namespace's topics created."""
    from cardiostream.infra import stack, topics

    stack.up(settings, ["kafka", "redis"])
    topics.ensure(settings)


def start_workers(launcher: Launcher, processors: int = 1, inference: int = 1,
                  metrics: bool = True) -> None:
    """``processors`` Faust workers and ``inference`` workers as subprocesses.

    With ``metrics`` the first of each serves /metrics on the configured port
    (the central station reads it); the others pick any free port.
    """
    ports = launcher.settings.metrics
    for i in range(processors):
        port = ports.processor_port if (metrics and i == 0) else 0
        launcher.start(f"processor-{i}", "process", "--metrics-port", str(port))
    for i in range(inference):
        port = ports.inference_port if (metrics and i == 0) else 0
        launcher.start(f"inference-{i}", "infer", "--metrics-port", str(port))


def wait_workers_settled(launcher: Launcher, seconds: float = 8.0) -> None:
    """Give the consumer groups time to join before devices start sending; fail fast if a
    worker died on start-up (its log says why)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dead = launcher.check_alive()
        if dead:
            logs = ", ".join(str(w.log_path) for w in launcher.workers if w.name in dead)
            raise RuntimeError(f"worker(s) {dead} exited on start-up; see {logs}")
        time.sleep(0.5)
