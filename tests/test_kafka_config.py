"""kafka-python arguments from Settings: security settings pass through, bad ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from cardiostream.kafka_config import (
    KafkaConfigError,
    client_kwargs,
    consumer_kwargs,
    pick_compression,
    producer_kwargs,
    subscribe_when_known,
)
from cardiostream.settings import KafkaSettings


def test_plaintext_defaults() -> None:
    kw = client_kwargs(KafkaSettings(bootstrap_servers="a:1, b:2"))
    assert kw["bootstrap_servers"] == ["a:1", "b:2"] and kw["security_protocol"] == "PLAINTEXT"
    assert not {"sasl_mechanism", "sasl_plain_password", "ssl_cafile"} & kw.keys()


def test_sasl_ssl_credentials_and_ca_reach_kafka_python(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    kw = client_kwargs(KafkaSettings(security_protocol="SASL_SSL", sasl_username="sim",
                                     sasl_password=SecretStr("s3cret"), ssl_cafile=ca))
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_username"] == "sim"
    assert kw["sasl_plain_password"] == "s3cret" and kw["ssl_cafile"] == str(ca)


@pytest.mark.parametrize("settings", [
    KafkaSettings(security_protocol="SASL_PLAINTEXT"),
    KafkaSettings(security_protocol="SASL_SSL", sasl_username="sim"),
    KafkaSettings(security_protocol="SSL", ssl_cafile=Path("/nonexistent/ca.pem")),
    KafkaSettings(bootstrap_servers=" , "),
])
def test_incomplete_security_settings_are_refused(settings: KafkaSettings) -> None:
    with pytest.raises(KafkaConfigError):
        client_kwargs(settings)


def test_producer_is_durable_and_compressed() -> None:
    kw = producer_kwargs(KafkaSettings())
    assert kw["acks"] == "all" and kw["enable_idempotence"] is True
    assert kw["compression_type"] in ("zstd", "lz4", "gzip")
    assert producer_kwargs(KafkaSettings(), compression="none")["compression_type"] is None


def test_compression_choice_is_checked() -> None:
    assert pick_compression("gzip") == "gzip"
    with pytest.raises(KafkaConfigError, match="choose one of"):
        pick_compression("brotli")


def test_consumer_commits_only_with_a_group() -> None:
    assert consumer_kwargs(KafkaSettings())["enable_auto_commit"] is False
    assert consumer_kwargs(KafkaSettings(), group_id="g")["enable_auto_commit"] is True


class _SlowMetadataConsumer:
    """Answers partitions_for_topic with nothing until its n-th call (metadata in flight)."""

    config = {"bootstrap_servers": ["127.0.0.1:1"]}

    def __init__(self, known_after: int) -> None:
        self.calls, self.known_after, self.subscribed = 0, known_after, None

    def partitions_for_topic(self, topic: str) -> set[int]:
        self.calls += 1
        return {0, 1} if self.calls >= self.known_after else set()

    def subscribe(self, topics, listener=None) -> None:
        self.subscribed = (topics, listener)

    def unsubscribe(self) -> None:
        self.subscribed = None

    def topics(self) -> set[str]:
        return set()


def test_subscribe_returns_once_the_partitions_are_known() -> None:
    consumer = _SlowMetadataConsumer(known_after=3)
    subscribe_when_known(consumer, ["windows"], listener="L", timeout_s=5)
    assert consumer.calls == 3 and consumer.subscribed == (["windows"], "L")


def test_subscribe_to_a_missing_topic_says_so_instead_of_idling() -> None:
    consumer = _SlowMetadataConsumer(known_after=10**9)
    with pytest.raises(KafkaConfigError, match="no partitions"):
        subscribe_when_known(consumer, ["windows"], timeout_s=0.3)
    assert consumer.subscribed is None
