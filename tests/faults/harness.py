"""Real worker processes, a paced replayer and topic/Redis readers for the reliability suite.

Workers are ``cardiostream process`` / ``cardiostream infer`` child processes, exactly as
operators (and compose) run them, with the Settings passed through ``CARDIOSTREAM_*``
variables (``pipeline.launcher._settings_env``). Each runs in its own working folder
and serves its metrics on a port of its own, which is how the suite watches them from
the outside.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cardiostream.metrics import scrape
from cardiostream.schemas import SampleChunk, encode_chunk
from cardiostream.settings import Settings
from pipeline.launcher import _settings_env
from streamer.harness import free_port

_US = 1_000_000


class Service:
    """One worker child process; ``kill()`` is SIGKILL, ``stop()`` SIGTERM then SIGKILL.

    ``extra_env`` (class-wide) goes into every child's environment: the suite sets
    ``PYTHONPATH`` to a frozen copy of the code (``freeze_code``), so a baseline and
    the fault runs compared with it, and every restart, run the very same code even
    while the shared checkout changes under them.
    """

    extra_env: dict[str, str] = {}

    def __init__(self, name: str, args: list[str], settings: Settings, workdir: Path) -> None:
        self.name, self.args, self.settings = name, args, settings
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{name}.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.killed = False     # killed on purpose: its exit is not a crash
        self.crashes = 0        # exits nobody asked for (restarted by ``supervise``)
        self.starts = 0
        self.closed = False     # stopped for good: a late restart (fault thread) is refused

    def start(self) -> Service:
        if self.closed:
            raise RuntimeError(f"{self.name} was stopped for good; not restarting it")
        argv = [sys.executable, "-m", "cardiostream.cli", *self.args,
                "--metrics-port", str(self.metrics_port)]
        with open(self.log_path, "ab") as log:
            env = {**_settings_env(self.settings), **self.extra_env}
            self.proc = subprocess.Popen(argv, env=env, cwd=self.workdir,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.killed = False
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: no shutdown hook runs, nothing is committed or flushed."""
        if self.alive:
            self.killed = True
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, grace_s: float = 20.0) -> int | None:
        self.closed = True
        if self.proc is None:
            return None
        if self.alive:
            self.killed = True
            self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def supervise(self) -> bool:
        """Restart after an unrequested exit (compose: ``restart: unless-stopped``)."""
        if self.proc is None or self.alive or self.killed:
            return False
        self.crashes += 1
        self.start()
        return True

    def metrics(self) -> dict[str, float]:
        """The child's /metrics as ``{'name{labels}': value}``; empty while it starts."""
        return scrape(self.metrics_port)

    def metric_sum(self, prefix: str) -> float:
        """Sum of every series whose name (with labels) starts with ``prefix``."""
        return sum(v for k, v in self.metrics().items() if k.startswith(prefix))

    def heartbeat(self) -> float:
        return self.metric_sum("cardiostream_worker_heartbeat_timestamp_seconds")

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Seconds until the worker's heartbeat is set (its loop runs)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.heartbeat() > 0:
                return time.monotonic() - t0
            if not self.alive:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); "
                                   f"see {self.log_path}")
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f} s; see {self.log_path}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


PACKAGES = ("cardiostream", "streamer", "inference", "pipeline", "dashboards", "training")


def freeze_code(repo: Path, dest: Path) -> str:
    """Copy the service packages as they are now to ``dest``; returns a description of the
    code (HEAD commit, and whether the tree had uncommitted changes)."""
    import shutil

    for pkg in PACKAGES:
        if (repo / pkg).is_dir():
            shutil.copytree(repo / pkg, dest / pkg,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", *PACKAGES],
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def processor(settings: Settings, workdir: Path, name: str = "processor") -> Service:
    return Service(name, ["process", "--loglevel", "info"], settings, workdir)


def inference(settings: Settings, workdir: Path, name: str = "inference") -> Service:
    return Service(name, ["infer", "--device", "cpu", "--loglevel", "INFO"], settings, workdir)


def kafka_producer(settings: Settings, linger_ms: int = 5):  # noqa: ANN201 - KafkaProducer
    """acks=all, idempotent (cardiostream.kafka_config), as the simulator uses."""
    from kafka import KafkaProducer

    from cardiostream.kafka_config import producer_kwargs

    return KafkaProducer(**producer_kwargs(settings.kafka, linger_ms=linger_ms))


@dataclass
class Replayer:
    """Sends every device's chunk ``k`` at ``k * chunk_s / speed`` wall seconds (a thread).

    ``sent_at[device][seq]`` is the wall time (``time.time()``) each chunk was handed to
    the producer; the suite maps device time back to wall time with it.
    """

    settings: Settings
    chunks: dict[str, list[SampleChunk]]
    speed: float
    tail: dict[str, SampleChunk] = field(default_factory=dict)   # sent once at the end
    sent_at: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    started_wall: float = 0.0
    finished_wall: float = 0.0

    def start(self) -> Replayer:
        threading.Thread(target=self._run, name="replayer", daemon=True).start()
        return self

    def _run(self) -> None:
        producer = kafka_producer(self.settings)
        topic = self.settings.topics.samples
        steps = max(len(c) for c in self.chunks.values())
        chunk_s = next(iter(self.chunks.values()))[0].n_samples / \
            next(iter(self.chunks.values()))[0].fs_hz
        self.started_wall = time.time()
        t0 = time.monotonic()
        try:
            for k in range(steps):
                delay = t0 + (k + 1) * chunk_s / self.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                for chunks in self.chunks.values():
                    if k < len(chunks):
                        self._send(producer, topic, chunks[k])
            for chunk in self.tail.values():
                self._send(producer, topic, chunk)
            producer.flush(timeout=180)
        finally:
            producer.close(timeout=30)
            self.finished_wall = time.time()
            self.done.set()

    def _send(self, producer, topic: str, chunk: SampleChunk) -> None:
        fut = producer.send(topic, key=chunk.device_id.encode(), value=encode_chunk(chunk))
        fut.add_errback(lambda exc, d=chunk.device_id, s=chunk.seq:
                        self.errors.append(f"{d} seq {s}: {exc!r}"))
        self.sent_at[chunk.device_id][chunk.seq] = time.time()

    def wall_of(self, device: str, data_time_us: int) -> float | None:
        """Wall time the chunk holding device time ``data_time_us`` was sent (None: never)."""
        for c in self.chunks[device]:
            if c.t0_us <= data_time_us < c.end_us:
                return self.sent_at[device].get(c.seq)
        return None

    def data_time_at(self, device: str, wall: float) -> int:
        """Device time (µs) of the newest sample sent by wall time ``wall``."""
        newest = self.chunks[device][0].t0_us
        for c in self.chunks[device]:
            sent = self.sent_at[device].get(c.seq)
            if sent is not None and sent <= wall:
                newest = max(newest, c.end_us)
        return newest


def terminator(last: SampleChunk, after_s: float = 60.0) -> SampleChunk:
    """A flat chunk ``after_s`` after ``last``: a time gap, so the processor ends the segment
    and flushes its last beats (a stream's end is otherwise indistinguishable from a pause)."""
    import numpy as np

    return SampleChunk(last.device_id, last.seq + 1, last.end_us + round(after_s * _US),
                       last.fs_hz, last.leads, last.gain, last.baseline,
                       np.zeros_like(last.adc), last.unit)


class TopicTail:
    """Collects every record of ``topic`` from the start, in a thread, until ``close()``."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from kafka import KafkaConsumer

        from cardiostream.kafka_config import consumer_kwargs

        self.records: list = []
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(topic, **consumer_kwargs(settings.kafka),
                                       reconnect_backoff_max_ms=2000)
        self._thread = threading.Thread(target=self._run, name=f"tail-{topic}", daemon=True)
        self._thread.start()
        self.last_new = time.monotonic()

    def _run(self) -> None:
        from kafka.errors import KafkaError

        while not self._stop.is_set():
            try:
                got = self._consumer.poll(timeout_ms=500)
            except KafkaError:       # broker restarting under the fault: poll again
                time.sleep(0.5)
                continue
            for batch in got.values():
                self.records += batch
                self.last_new = time.monotonic()

    def close(self) -> list:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()
        return self.records


def read_topic(settings: Settings, topic: str, expect: int, timeout_s: float,
               quiet_s: float = 5.0) -> list:
    """Records of ``topic`` from the start until ``expect`` arrived and none came for quiet_s."""
    tail = TopicTail(settings, topic)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if len(tail.records) >= expect and time.monotonic() - tail.last_new > quiet_s:
                break
            time.sleep(0.5)
    finally:
        records = tail.close()
    return records


def stream_alarm_ids(settings: Settings, units: set[str]) -> list[tuple[str, dict[str, str]]]:
    """Every entry of the care units' alarm streams: (alarm_id, fields), in stream order."""
    import redis

    from inference.sink import alarm_stream, make_client

    out = []
    client = make_client(settings.redis)
    try:
        for unit in sorted(units):
            for _eid, fields in client.xrange(alarm_stream(unit)):
                f = {k.decode(): v.decode() for k, v in fields.items()}
                out.append((f["alarm_id"], f))
    except redis.RedisError as exc:
        raise RuntimeError(f"could not read the alarm streams: {exc}") from exc
    finally:
        client.close()
    return out
