"""A processor worker as a child process, for the integration tests and the benchmark.

The child is exactly what operators run (``cardiostream process``); it gets its
Settings through ``CARDIOSTREAM_*`` environment variables (the entry point
builds the Settings, library code never reads the environment) and serves its
Prometheus metrics on a port of its own, which is how the tests read the
processor's counters from the outside.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cardiostream.metrics import scrape
from cardiostream.settings import Settings

ENV_GROUPS = ("kafka", "topics", "processor")


def settings_env(settings: Settings) -> dict[str, str]:
    """``CARDIOSTREAM_<GROUP>__<FIELD>`` variables reproducing ``settings``' broker groups."""
    env: dict[str, str] = {}
    for group in ENV_GROUPS:
        model = getattr(settings, group)
        for name in type(model).model_fields:
            value = getattr(model, name)
            if value is None:
                continue
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            env[f"CARDIOSTREAM_{group.upper()}__{name.upper()}"] = str(value)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_assigned(workers: list[WorkerProcess], partitions: int, timeout_s: float = 120.0
                  ) -> list[set[int]]:
    """Wait until the workers own all ``partitions`` between them, each at least one."""
    deadline = time.monotonic() + timeout_s
    owned: list[set[int]] = []
    while time.monotonic() < deadline:
        owned = [w.partitions() for w in workers]
        if all(owned) and set().union(*owned) == set(range(partitions)) \
                and sum(map(len, owned)) == partitions:
            return owned
        time.sleep(0.5)
    raise TimeoutError(f"partitions not assigned within {timeout_s} s: {owned}")


class WorkerProcess:
    """``cardiostream process`` in a child process; ``kill()`` is SIGKILL (no clean-up)."""

    def __init__(self, settings: Settings, log_path: Path, loglevel: str = "info",
                 command: list[str] | None = None) -> None:
        self.settings = settings
        self.log_path = log_path
        self.loglevel = loglevel
        self.command = command or [sys.executable, "-m", "cardiostream.cli", "process"]
        self.metrics_port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **settings_env(self.settings)}
        cmd = [*self.command, "--metrics-port", str(self.metrics_port),
               "--loglevel", self.loglevel]
        log = open(self.log_path, "ab")   # noqa: SIM115 - the child owns it until it exits
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (clean shutdown, offsets committed), SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return None
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def metrics(self) -> dict[str, float]:
        """The child's /metrics as ``{'name{labels}': value}``; empty while it starts."""
        return scrape(self.metrics_port)

    def metric(self, name: str, default: float = 0.0) -> float:
        return self.metrics().get(name, default)

    def partitions(self) -> set[int]:
        """Samples-topic partitions the worker owns now (its lag gauge series)."""
        prefix = 'cardiostream_consumer_lag{component="processor",partition="'
        return {int(k[len(prefix):].split('"', 1)[0]) for k in self.metrics()
                if k.startswith(prefix)}

    def wait_for(self, name: str, target: float, timeout_s: float, poll_s: float = 0.5) -> float:
        """Poll metric ``name`` until it reaches ``target``; returns the last value."""
        deadline = time.monotonic() + timeout_s
        value = 0.0
        while time.monotonic() < deadline:
            value = self.metric(name)
            if value >= target:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; "
                                   f"see {self.log_path}")
            time.sleep(poll_s)
        return value
