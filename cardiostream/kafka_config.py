"""kafka-python client arguments built from ``Settings().kafka``, for every kafka-python client.

One place turns the typed settings (bootstrap servers, SASL/SSL) into the keyword
arguments kafka-python expects, so the simulator, the benchmarks and the tests
connect the same way. Secrets leave their ``SecretStr`` only here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cardiostream.settings import KafkaSettings

# Preference order when compression is "auto": cheapest CPU per byte first.
_AUTO_ORDER = ("zstd", "lz4", "gzip")
COMPRESSIONS = ("auto", "none", *_AUTO_ORDER, "snappy")


class KafkaConfigError(ValueError):
    """Settings that cannot make a working kafka-python client; the message says which."""


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security arguments common to producers, consumers and admin clients."""
    servers = [s.strip() for s in kafka.bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise KafkaConfigError("kafka.bootstrap_servers is empty (host:port[,host:port])")
    kw: dict[str, Any] = {"bootstrap_servers": servers, "client_id": kafka.client_id,
                          "security_protocol": kafka.security_protocol}
    if kafka.security_protocol.startswith("SASL"):
        if not kafka.sasl_username or kafka.sasl_password is None:
            raise KafkaConfigError(f"security_protocol={kafka.security_protocol} needs "
                                   "kafka.sasl_username and kafka.sasl_password")
        kw.update(sasl_mechanism=kafka.sasl_mechanism,
                  sasl_plain_username=kafka.sasl_username,
                  sasl_plain_password=kafka.sasl_password.get_secret_value())
    if kafka.security_protocol.endswith("SSL") and kafka.ssl_cafile is not None:
        if not kafka.ssl_cafile.is_file():
            raise KafkaConfigError(f"kafka.ssl_cafile {kafka.ssl_cafile} is not a file")
        kw["ssl_cafile"] = str(kafka.ssl_cafile)
    return kw


def _codec_available(name: str) -> bool:
    """True when both kafka-python (producer) and aiokafka (Faust consumer) can use ``name``."""
    from kafka import codec as kcodec

    ok = bool(getattr(kcodec, f"has_{name}")())
    try:
        from aiokafka import codec as acodec
    except ImportError:  # no aiokafka consumer in this environment: kafka-python decides
        return ok
    return ok and bool(getattr(acodec, f"has_{name}", lambda: True)())


def pick_compression(preference: str = "auto") -> str | None:
    """kafka-python ``compression_type``: ``auto`` takes zstd, then lz4, then gzip.

    gzip needs only zlib, so ``auto`` always succeeds; naming a codec whose
    library is missing raises with what is available.
    """
    if preference not in COMPRESSIONS:
        raise KafkaConfigError(f"compression {preference!r}: choose one of {COMPRESSIONS}")
    if preference == "none":
        return None
    if preference == "auto":
        return next(c for c in _AUTO_ORDER if _codec_available(c))
    if not _codec_available(preference):
        usable = [c for c in (*_AUTO_ORDER, "snappy") if _codec_available(c)]
        raise KafkaConfigError(f"compression {preference!r} needs a library that is not "
                               f"installed; usable here: {usable}")
    return preference


def producer_kwargs(kafka: KafkaSettings, *, compression: str = "auto", linger_ms: int = 50,
                    batch_size: int = 256 * 1024) -> dict[str, Any]:
    """A durable producer: acks from all in-sync replicas, idempotent (no duplicates on retry)."""
    if linger_ms < 0 or batch_size <= 0:
        raise KafkaConfigError("linger_ms must be >= 0 and batch_size > 0")
    return {**client_kwargs(kafka), "acks": "all", "enable_idempotence": True,
            "compression_type": pick_compression(compression), "linger_ms": linger_ms,
            "batch_size": batch_size}


def consumer_kwargs(kafka: KafkaSettings, *, group_id: str | None = None,
                    auto_offset_reset: str = "earliest") -> dict[str, Any]:
    """A consumer that reads committed data only and starts where ``auto_offset_reset`` says."""
    return {**client_kwargs(kafka), "group_id": group_id,
            "auto_offset_reset": auto_offset_reset, "isolation_level": "read_committed",
            "enable_auto_commit": group_id is not None,
            "fetch_max_wait_ms": kafka.fetch_max_wait_ms}


def subscribe_when_known(consumer: Any, topics: list[str], listener: Any = None,
                         timeout_s: float = 30.0) -> None:
    """Subscribe, then make sure this client's metadata knows every topic's partitions
    before its first poll joins the group.

    kafka-python 3.0 lets the group leader run the assignor before its first
    metadata response for a just-subscribed topic has arrived ("No partition
    metadata for topic" from the range assignor): it hands out no partitions,
    and when the metadata arrives its snapshot differs from the one the
    assignment used, so the member rejoins. Each such rejoin is a chance to hit
    the client's rebalance bugs (an empty assignment that stays empty: 6 of 19
    joins under 3 busy loops on 2 cores; a SyncGroup that never completes), and
    the first poll would join with the stale snapshot. A metadata round trip
    after ``subscribe`` refreshes the coordinator's snapshot, so the group is
    joined once, with every partition known.
    """
    import time

    consumer.subscribe(topics, listener=listener)
    deadline = time.monotonic() + timeout_s
    while True:
        consumer.topics()          # a metadata round trip; the coordinator's snapshot follows it
        missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        if not missing:
            return
        if time.monotonic() > deadline:
            consumer.unsubscribe()
            raise KafkaConfigError(f"topic(s) {missing} have no partitions on "
                                   f"{consumer.config['bootstrap_servers']} after "
                                   f"{timeout_s:.0f} s: create them (cardiostream infra up)")
        time.sleep(0.2)


@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, n_partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as the Java
    client, kafka-python and aiokafka do). A gateway sending a chunk bundle to an explicit
    partition uses it so each device lands where its keyed records would, and the
    processor checks every bundle member with it. Cached: murmur2 in Python costs ~3-8 µs
    a call, and the same few thousand device ids come back twice a second."""
    from kafka.partitioner.default import murmur2

    if n_partitions < 1:
        raise KafkaConfigError(f"n_partitions must be >= 1, got {n_partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % n_partitions
