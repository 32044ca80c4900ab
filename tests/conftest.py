"""Shared fixtures: settings, the MIT-BIH data folder, and the real local infrastructure.

Integration tests (everything under tests/integration/, marked ``integration``
automatically) use ``infra``: a session fixture that runs ``cardiostream infra
up`` (idempotent) and returns the Settings. When it had to start services
itself, it stops them again at the end of the session; when they were already
running (``make test`` starts them first), it leaves them to whoever started them.

Tests must not collide on topics or Redis keys: ``fresh_topics`` gives a
Settings whose topics are new uuid-suffixed ones (deleted afterwards), and
``isolated`` adds a flushed Redis database on top.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cardiostream.settings import Settings, load_settings

INTEGRATION_DIR = Path(__file__).parent / "integration"
INFRA_TIMEOUT_S = 300
# Redis databases for ``isolated`` tests (the services use database 0); one is drawn at random
# per test so that two developers' sessions sharing one Redis rarely meet.
TEST_REDIS_DBS = range(1, 16)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def unique_id(prefix: str = "t") -> str:
    """A short collision-free name for topics, groups and device ids in tests."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _infra_cli(*args: str, env: dict[str, str] | None = None) -> str:
    cmd = [sys.executable, "-m", "cardiostream.cli", "infra", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=INFRA_TIMEOUT_S,
                          env=env, check=False)
    if done.returncode != 0:
        pytest.fail(f"`cardiostream infra {' '.join(args)}` failed:\n{done.stdout}{done.stderr}",
                    pytrace=False)
    return done.stdout


def _running(settings: Settings, names: tuple[str, ...]) -> set[str]:
    from cardiostream.infra import stack

    return stack.running(settings) & set(names)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, as a service's entry point would build them."""
    return load_settings()


@pytest.fixture(scope="session")
def data_dir(settings: Settings) -> Path:
    """The read-only MIT-BIH/NSTDB folder; skips the test cleanly when it is not there."""
    path = settings.paths.data_dir
    if not (path / "mitdb").is_dir():
        pytest.skip(f"MIT-BIH data not found at {path}/mitdb (expected ../shared/data beside "
                    "the repo; set CARDIOSTREAM_PATHS__DATA_DIR)")
    return path


def _session_services(request: pytest.FixtureRequest, settings: Settings,
                      names: tuple[str, ...]) -> None:
    before = _running(settings, names)
    _infra_cli("up", *names)
    started = [n for n in names if n not in before]
    if started and os.environ.get("CARDIOSTREAM_KEEP_INFRA") != "1":
        request.addfinalizer(lambda: _infra_cli("down", *started))


@pytest.fixture(scope="session")
def infra(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Kafka (topics created) and Redis running on loopback; returns the Settings."""
    _session_services(request, settings, ("kafka", "redis"))
    return settings


@pytest.fixture(scope="session")
def prometheus(request: pytest.FixtureRequest, infra: Settings) -> Settings:
    """Also a real Prometheus on settings.infra.prometheus_port scraping settings.metrics ports.

    Point it elsewhere with ``cardiostream.infra.prometheus.start(settings, targets)``.
    """
    _session_services(request, infra, ("prometheus",))
    return infra


@pytest.fixture
def topic_factory(infra: Settings) -> Iterator[Callable[..., Settings]]:
    """``make(partitions=None) -> Settings`` whose topics are fresh uuid-suffixed ones."""
    from cardiostream.infra import kafka, topics

    made: list[str] = []

    def make(partitions: int | None = None) -> Settings:
        suffix = uuid.uuid4().hex[:10]
        names = {field: f"{value}.{suffix}" for field, value in infra.topics.model_dump().items()
                 if isinstance(value, str)}
        if partitions is not None:
            names["partitions"] = partitions
        fresh = infra.model_copy(update={"topics": infra.topics.model_copy(update=names)})
        topics.ensure(fresh)
        made.extend(topics.topic_names(fresh))
        return fresh

    yield make
    if made:
        topics.delete(made, kafka.node(infra))


@pytest.fixture
def fresh_topics(topic_factory: Callable[..., Settings]) -> Settings:
    """Settings whose topics exist only for this test (configured partition counts)."""
    return topic_factory()


@pytest.fixture
def isolated(fresh_topics: Settings) -> Iterator[Settings]:
    """Fresh topics plus an empty Redis database (one of TEST_REDIS_DBS), flushed around it."""
    import redis

    base = fresh_topics.redis.url.rsplit("/", 1)[0]
    db = secrets.choice(TEST_REDIS_DBS)
    cfg = fresh_topics.model_copy(update={
        "redis": fresh_topics.redis.model_copy(update={"url": f"{base}/{db}"})})
    with redis.Redis.from_url(cfg.redis.url) as client:
        client.flushdb()
        yield cfg
        client.flushdb()


@pytest.fixture(scope="session")
def secure_infra(request: pytest.FixtureRequest, infra: Settings) -> Settings:
    """The SASL/SCRAM broker and the ACL Redis, with credentials made for this session.

    Returns Settings pointing at them (bootstrap, SASL user/password, Redis URL and
    ACL user). Both are restarted so that the credentials are this session's own,
    and stopped at the end of the session.
    """
    user, kafka_pw, redis_pw = unique_id("cs"), secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    env = {**os.environ,
           "CARDIOSTREAM_KAFKA__SASL_USERNAME": user, "CARDIOSTREAM_KAFKA__SASL_PASSWORD": kafka_pw,
           "CARDIOSTREAM_REDIS__USERNAME": user, "CARDIOSTREAM_REDIS__PASSWORD": redis_pw}
    _infra_cli("down", "kafka-secure", "redis-secure")
    _infra_cli("up", "kafka-secure", "redis-secure", env=env)
    request.addfinalizer(lambda: _infra_cli("down", "kafka-secure", "redis-secure"))
    i = infra.infra
    return infra.model_copy(update={
        "kafka": infra.kafka.model_copy(update={
            "bootstrap_servers": f"127.0.0.1:{i.kafka_secure_port}",
            "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": user, "sasl_password": _secret(kafka_pw)}),
        "redis": infra.redis.model_copy(update={
            "url": f"redis://127.0.0.1:{i.redis_secure_port}/0",
            "username": user, "password": _secret(redis_pw)}),
    })


def _secret(value: str):  # noqa: ANN202 - pydantic.SecretStr
    from pydantic import SecretStr

    return SecretStr(value)
