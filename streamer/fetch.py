"""Faust's Kafka consumer with a bounded fetch wait.

Why: faust-streaming's aiokafka driver builds the worker's consumer with
``fetch_max_wait_ms=1500``, hard-coded. At a real-time load that left one
worker CPU half idle while ~1.5 s of records waited on the broker, in a
sawtooth of about 5 s: a standing backlog of ~125 records (8 partitions x ~10
gateway bundles/s x 1.5 s) and window latency p50 <= 2.5-5 s instead of <= 0.5 s,
in 4 of 5 paced runs (bench/bench_processor_realtime.py, docs/benchmarks.md).
With the wait capped at 100 ms the same runs kept the lag under ~30 records and
latency p50 <= 0.5 s, p99 <= 1 s. An alarm pipeline must not hold signal back
for a fetch timer: ``kafka.fetch_max_wait_ms`` (default 100) sets it, for the
kafka-python consumers too (``cardiostream.kafka_config``).

The cap is applied through Faust's own extension points: a Transport whose
Consumer's thread creates the aiokafka consumer as Faust does, then sets the
wait before the consumer starts (aiokafka hands it to its fetcher at start).
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms   # read at consumer start
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(driver.Transport):
    """Faust's aiokafka Transport; its consumers wait at most ``fetch_max_wait_ms``."""

    Consumer = _Consumer
    fetch_max_wait_ms: int = 1500         # Faust's own value until set


def transport_with_fetch_wait(app: Any, fetch_max_wait_ms: int) -> FetchWaitTransport:
    """The Transport for ``app``'s brokers with the fetch wait capped (``app.transport``)."""
    transport = FetchWaitTransport(app.conf.broker_consumer, app)
    transport.fetch_max_wait_ms = int(fetch_max_wait_ms)
    return transport
