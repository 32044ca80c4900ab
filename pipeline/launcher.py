"""Start and stop the pipeline's worker processes (processor, inference, simulator).

Each worker is its own `cardiostream …` subprocess, exactly as compose runs
them, so replay and the demo exercise the real deployment shape. Logs go to
``run_dir/logs/<name>.log``; stopping is SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cardiostream.settings import Settings


@dataclass(slots=True)
class Worker:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _settings_env(settings: Settings) -> dict[str, str]:
    """The settings as CARDIOSTREAM_* variables, so child processes see the same configuration."""
    env = dict(os.environ)
    for group, values in settings.model_dump(mode="json").items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if value is None:
                continue
            env[f"CARDIOSTREAM_{group.upper()}__{key.upper()}"] = str(value)
    for group, key in (("kafka", "sasl_password"), ("redis", "password")):
        secret = getattr(getattr(settings, group), key)
        if secret is not None:
            env[f"CARDIOSTREAM_{group.upper()}__{key.upper()}"] = secret.get_secret_value()
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(slots=True)
class Launcher:
    """Owns a set of worker subprocesses; a context manager that always stops them."""

    settings: Settings
    workers: list[Worker] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Worker:
        log_dir = self.settings.paths.run_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "cardiostream.cli", *args]
        worker = Worker(name, argv, log_dir / f"{name}.log")
        log = worker.log_path.open("ab")
        worker.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       env=_settings_env(self.settings), start_new_session=True)
        log.close()
        self.workers.append(worker)
        return worker

    def check_alive(self) -> list[str]:
        """Names of workers that exited unexpectedly."""
        return [w.name for w in self.workers if w.proc is not None and not w.alive]

    def stop(self, grace_s: float = 10.0) -> None:
        for worker in reversed(self.workers):
            if worker.alive:
                os.killpg(worker.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for worker in reversed(self.workers):
            if worker.proc is None:
                continue
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait()
        self.workers.clear()

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
