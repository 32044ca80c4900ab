"""The local broker, Redis and Prometheus that `cardiostream infra up` starts, used for real."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from cardiostream.infra import kafka, topics
from cardiostream.settings import Settings
from tests.conftest import unique_id


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cardiostream.cli", "infra", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_kafka_python_metadata_and_round_trip(fresh_topics: Settings) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    boot = fresh_topics.kafka.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=boot)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [
        ("127.0.0.1", fresh_topics.infra.kafka_port)]

    topic = fresh_topics.topics.samples
    producer = KafkaProducer(bootstrap_servers=boot, acks="all", enable_idempotence=True)
    for i in range(10):
        producer.send(topic, key=b"dev-1", value=f"m{i}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=boot, auto_offset_reset="earliest",
                             group_id=unique_id("g"))
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(got) < 10 and time.monotonic() < deadline:
        got += [m.value for msgs in consumer.poll(timeout_ms=500).values() for m in msgs]
    consumer.close()
    assert got == [f"m{i}".encode() for i in range(10)]  # one key -> one partition -> in order


def test_aiokafka_metadata_and_round_trip(fresh_topics: Settings) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    boot, topic = fresh_topics.kafka.bootstrap_servers, fresh_topics.topics.windows

    async def run() -> tuple[list[str], list[bytes]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=boot)
        await admin.start()
        try:
            names = await admin.list_topics()
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=boot, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for i in range(5):
                await producer.send_and_wait(topic, f"w{i}".encode(), key=b"dev-2")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=boot, auto_offset_reset="earliest",
                                    group_id=unique_id("g"))
        await consumer.start()
        try:
            got: list[bytes] = []
            while len(got) < 5:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 20)
                got += [m.value for msgs in batch.values() for m in msgs]
        finally:
            await consumer.stop()
        return names, got

    names, got = asyncio.run(run())
    assert topic in names
    assert got == [f"w{i}".encode() for i in range(5)]


def test_topics_exist_with_configured_partitions(infra: Settings) -> None:
    counts = topics.partition_counts(infra)
    expected = {t: infra.topics.partitions for t in topics.topic_names(infra)}
    assert {t: counts.get(t) for t in expected} == expected


def test_topic_factory_makes_requested_partition_counts(topic_factory) -> None:  # noqa: ANN001
    cfg = topic_factory(partitions=3)
    counts = topics.partition_counts(cfg)
    assert all(counts[t] == 3 for t in topics.topic_names(cfg))


def test_topics_are_not_auto_created(infra: Settings) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    ghost = unique_id("ghost")
    producer = KafkaProducer(bootstrap_servers=infra.kafka.bootstrap_servers, max_block_ms=2000)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send(ghost, b"x").get(timeout=5)
    finally:
        producer.close()
    assert ghost not in topics.partition_counts(infra)


def test_redis_ping(infra: Settings) -> None:
    import redis

    with redis.Redis.from_url(infra.redis.url) as client:
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_up_is_idempotent_and_status_reports_running(infra: Settings) -> None:
    from cardiostream.infra import stack

    before = {n: pid for n, pid in _pids(infra).items() if n in ("kafka", "redis")}
    again = _cli("up")
    assert again.returncode == 0, again.stderr
    assert "redis: already running" in again.stdout.splitlines()
    assert "kafka: already running" in again.stdout.splitlines()
    assert {n: pid for n, pid in _pids(infra).items() if n in before} == before
    assert {"kafka", "redis"} <= stack.running(infra)
    status = _cli("status")
    assert status.returncode == 0, status.stderr
    lines = {line.split("│")[1].strip(): line for line in status.stdout.splitlines()
             if line.count("│") > 3}
    assert "running" in lines["kafka"] and "partitions" in lines["kafka"]
    assert "running" in lines["redis"] and "PING ok" in lines["redis"]


def _pids(settings: Settings) -> dict[str, int | None]:
    from cardiostream.infra import stack

    return {row.name: row.pid for row in stack.status(settings)}


def test_prometheus_scrapes_given_targets(prometheus: Settings) -> None:
    """`infra prometheus --targets` reconfigures the running Prometheus, which then scrapes."""
    from cardiostream.infra import prometheus as prom

    registry = CollectorRegistry()
    Counter("cardiostream_infra_probe", "Probe counter for the infra test.",
            registry=registry).inc(3)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_address[1]
    try:
        done = _cli("prometheus", "--targets", f"infraprobe=127.0.0.1:{port}")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        result: list[dict] = []
        while time.monotonic() < deadline and not result:
            result = prom.query(prometheus, 'cardiostream_infra_probe_total{job="infraprobe"}')
            time.sleep(0.5)
        assert result and float(result[0]["value"][1]) == 3.0
    finally:
        server.shutdown()
        thread.join(5)
        restored = _cli("prometheus")  # back to the workers' default targets
        assert restored.returncode == 0, restored.stderr


def test_secured_broker_and_redis_require_credentials(secure_infra: Settings) -> None:
    import redis
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    k = secure_infra.kafka
    password = k.sasl_password.get_secret_value()
    sasl = dict(bootstrap_servers=k.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username)
    admin = KafkaAdminClient(sasl_plain_password=password, **sasl)
    try:
        assert secure_infra.topics.samples in admin.list_topics()
    finally:
        admin.close()
    with pytest.raises(KafkaError):
        KafkaAdminClient(sasl_plain_password=password + "x", bootstrap_timeout_ms=3000, **sasl)
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=k.bootstrap_servers, bootstrap_timeout_ms=3000)

    r = secure_infra.redis
    with redis.Redis.from_url(r.url, username=r.username,
                              password=r.password.get_secret_value()) as client:
        assert client.ping() is True
    with pytest.raises(redis.AuthenticationError), redis.Redis.from_url(r.url) as anonymous:
        anonymous.ping()


def test_secured_broker_accepts_aiokafka_with_scram(secure_infra: Settings) -> None:
    from aiokafka import AIOKafkaProducer

    k = secure_infra.kafka

    async def send() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
            sasl_plain_password=k.sasl_password.get_secret_value(), acks="all")
        await producer.start()
        try:
            meta = await producer.send_and_wait(secure_infra.topics.samples, b"x", key=b"d")
        finally:
            await producer.stop()
        return meta.offset

    assert asyncio.run(send()) >= 0
    assert kafka.node(secure_infra, secure=True).port == secure_infra.infra.kafka_secure_port
