"""The simulator's counters reach the metric catalogue as deltas; the heartbeat tracks sends."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import REGISTRY

from streamer.simulator_metrics import StatsExporter


def _get(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"component": "simulator"}) or 0.0


def test_publish_adds_deltas_and_beats_only_when_chunks_were_sent() -> None:
    stats = SimpleNamespace(chunks_sent=0, samples_sent=0, devices=3)
    exporter = StatsExporter(stats, period_s=60.0)
    chunks0, samples0 = _get("cardiostream_chunks_total"), _get("cardiostream_samples_total")

    stats.chunks_sent, stats.samples_sent = 10, 1800
    exporter.publish()
    beat1 = _get("cardiostream_worker_heartbeat_timestamp_seconds")
    stats.chunks_sent, stats.samples_sent = 25, 4500
    exporter.publish()
    assert _get("cardiostream_chunks_total") - chunks0 == 25
    assert _get("cardiostream_samples_total") - samples0 == 4500
    assert _get("cardiostream_devices_active") == 3

    beat2 = _get("cardiostream_worker_heartbeat_timestamp_seconds")
    exporter.publish()                                  # nothing sent since: no beat
    assert _get("cardiostream_worker_heartbeat_timestamp_seconds") == beat2 >= beat1


def test_thread_publishes_final_counts_on_stop() -> None:
    stats = SimpleNamespace(chunks_sent=0, samples_sent=0, devices=1)
    exporter = StatsExporter(stats, period_s=0.01).start()
    before = _get("cardiostream_chunks_total")
    stats.chunks_sent = 7
    exporter.stop()
    assert _get("cardiostream_chunks_total") - before == 7
