"""The processor's Kafka consumer waits at most ``kafka.fetch_max_wait_ms`` per fetch
(Faust hard-codes 1.5 s; streamer/fetch.py says why)."""

from __future__ import annotations

import asyncio

from cardiostream.settings import load_settings
from streamer.app import create_app
from streamer.fetch import FetchWaitTransport


def test_worker_consumer_gets_the_configured_fetch_wait() -> None:
    settings = load_settings()
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"fetch_max_wait_ms": 80})})

    async def build():
        app = create_app(settings, app_id="test-fetch-wait")
        assert isinstance(app.transport, FetchWaitTransport)
        thread = app.consumer._thread
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(build())
    assert consumer._fetch_max_wait_ms == 80
    assert consumer._fetch_min_bytes == 1          # answers as soon as any record is there


def test_default_cap_is_well_under_fausts_hard_coded_wait() -> None:
    assert load_settings().kafka.fetch_max_wait_ms <= 100


def test_kafka_python_consumers_get_the_same_cap() -> None:
    from cardiostream.kafka_config import consumer_kwargs

    assert consumer_kwargs(load_settings().kafka)["fetch_max_wait_ms"] == \
        load_settings().kafka.fetch_max_wait_ms
