"""The project's topics on a local broker: created from ``settings.topics``, never auto-created."""

from __future__ import annotations

import time

from cardiostream.infra.errors import InfraError
from cardiostream.infra.kafka import KafkaNode, admin_kwargs, node
from cardiostream.settings import Settings


def topic_names(settings: Settings) -> list[str]:
    """Every topic name in ``settings.topics`` (each string-valued field is one topic)."""
    return [v for v in settings.topics.model_dump().values() if isinstance(v, str)]


def ensure(settings: Settings, kafka: KafkaNode | None = None) -> None:
    """Create missing topics with the configured partitions; grow any that have fewer."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    want = settings.topics.partitions
    admin = KafkaAdminClient(**admin_kwargs(kafka or node(settings)))
    try:
        have = _partition_counts(admin)
        missing = [NewTopic(t, want, settings.topics.replication_factor)
                   for t in topic_names(settings) if t not in have]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=30_000)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another `infra up`: that is the goal
        grow = {t: NewPartitions(want) for t in topic_names(settings) if 0 < have.get(t, 0) < want}
        if grow:
            admin.create_partitions(grow)
        if missing or grow:
            _wait_led(admin, topic_names(settings), want)
    finally:
        admin.close()


def _wait_led(admin, names: list[str], partitions: int, timeout_s: float = 30.0) -> None:  # noqa: ANN001
    """Block until every partition of ``names`` has a leader in the broker's metadata.

    CreateTopics returns once the controller has the topic; producers that start
    before the broker's metadata cache catches up see NOT_LEADER errors.
    """
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            described = admin.describe_topics(names)
        except KafkaError:
            described = []
        led = {t.get("name", t.get("topic")) for t in described
               if t["error_code"] == 0 and len(t["partitions"]) >= partitions
               and all(p["leader_id"] >= 0 for p in t["partitions"])}
        if led >= set(names):
            return
        time.sleep(0.1)
    raise InfraError(f"topics {', '.join(names)} have no leader after {timeout_s:.0f} s")


def delete(names: list[str], kafka: KafkaNode) -> None:
    """Delete topics (the tests' uuid-suffixed ones) so the broker stays small."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**admin_kwargs(kafka))
    try:
        admin.delete_topics(names, timeout_ms=30_000)
    finally:
        admin.close()


def partition_counts(settings: Settings, kafka: KafkaNode | None = None) -> dict[str, int]:
    """Topic name -> partition count on the running broker."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**admin_kwargs(kafka or node(settings)))
    try:
        return _partition_counts(admin)
    finally:
        admin.close()


def _partition_counts(admin) -> dict[str, int]:  # noqa: ANN001 - kafka-python has no types
    names = admin.list_topics()
    if not names:
        return {}
    # kafka-python 3 names the field "name" (2.x said "topic").
    return {t.get("name", t.get("topic")): len(t["partitions"])
            for t in admin.describe_topics(names)}
