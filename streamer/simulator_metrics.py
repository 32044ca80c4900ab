"""Prometheus export of a running simulator's live counters (``SimulatorStats``).

The simulator's send loop only bumps plain integers in ``SimulatorStats`` (no
metric calls on the hot path). A daemon thread copies them into the shared
catalogue (``cardiostream.metrics``) once per ``period_s``: counters advance by
the delta since the last copy, and the heartbeat moves only when chunks were
sent since then, so a stalled send loop shows up as a stale heartbeat.
"""

from __future__ import annotations

import threading

from cardiostream import metrics

COMPONENT = "simulator"


class StatsExporter:
    """Copies ``stats`` (a ``SimulatorStats``) into the metric catalogue every ``period_s``."""

    def __init__(self, stats: object, period_s: float = 1.0) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s={period_s} must be > 0")
        self.stats = stats
        self.period_s = period_s
        self._chunks = 0
        self._samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulator-metrics", daemon=True)
        metrics.init_component(COMPONENT)

    def start(self) -> StatsExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Publish the final counts and end the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5 * self.period_s)
        self.publish()

    def publish(self) -> None:
        chunks, samples = int(self.stats.chunks_sent), int(self.stats.samples_sent)
        if chunks > self._chunks:
            metrics.CHUNKS.labels(COMPONENT).inc(chunks - self._chunks)
            metrics.heartbeat(COMPONENT)
        if samples > self._samples:
            metrics.SAMPLES.labels(COMPONENT).inc(samples - self._samples)
        self._chunks, self._samples = chunks, samples
        metrics.DEVICES_ACTIVE.labels(COMPONENT).set(int(self.stats.devices))

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.publish()
