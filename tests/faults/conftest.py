"""Fixtures of the reliability suite (``pytest tests/faults``).

Everything here is ``integration`` and ``slow``. The fault scenarios stop and
restart the broker and Redis, so they get a PRIVATE stack (``fault_stack``): a
Kafka broker and a Redis started by ``cardiostream.infra`` in a temporary run
folder on free ports, never the shared instances other tests use. The hostile
flood only needs fresh topics on the shared broker (``topic_factory``).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cardiostream.settings import Settings
from streamer.harness import free_port

FAULTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FAULTS_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def frozen_code(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Workers import a copy of the code taken at session start (see ``Service.extra_env``)."""
    from cardiostream.settings import REPO_ROOT
    from tests.faults import harness as H

    dest = tmp_path_factory.mktemp("code")
    described = H.freeze_code(REPO_ROOT, dest)
    before = dict(H.Service.extra_env)
    H.Service.extra_env = {**before, "PYTHONPATH": str(dest)}
    yield described
    H.Service.extra_env = before


@pytest.fixture(scope="session")
def fault_stack(settings: Settings) -> Iterator[Settings]:
    """A private Kafka broker + Redis (AOF on) that the fault scenarios may stop and start."""
    from cardiostream.infra import stack

    run_dir = Path(tempfile.mkdtemp(prefix="cs-faults-"))
    infra = settings.infra.model_copy(update={
        "kafka_port": free_port(), "kafka_controller_port": free_port(),
        "redis_port": free_port(), "kafka_heap": "512m"})
    private = settings.model_copy(update={
        "infra": infra,
        "paths": settings.paths.model_copy(update={"run_dir": run_dir}),
        "kafka": settings.kafka.model_copy(update={
            "bootstrap_servers": f"127.0.0.1:{infra.kafka_port}"}),
        "redis": settings.redis.model_copy(update={
            "url": f"redis://127.0.0.1:{infra.redis_port}/0"}),
    })
    try:
        stack.up(private, ["kafka", "redis"])
        yield private
    finally:
        stack.down(private, ["kafka", "redis"])
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def run_settings(fault_stack: Settings) -> Callable[..., Settings]:
    """``make(model_dir, partitions=4) -> Settings``: fresh topics, a flushed Redis database,
    its own processor app id and inference group, on the private stack."""
    from cardiostream.infra import topics

    used_dbs: list[int] = []

    def make(model_dir: Path, partitions: int = 4) -> Settings:
        import redis

        suffix = uuid.uuid4().hex[:10]
        names = {f: f"{v}.{suffix}" for f, v in fault_stack.topics.model_dump().items()
                 if isinstance(v, str)}
        db = 1 + len(used_dbs) % 15
        used_dbs.append(db)
        base = fault_stack.redis.url.rsplit("/", 1)[0]
        s = fault_stack.model_copy(update={
            "topics": fault_stack.topics.model_copy(update={**names, "partitions": partitions}),
            "redis": fault_stack.redis.model_copy(update={"url": f"{base}/{db}"}),
            "paths": fault_stack.paths.model_copy(update={"model_dir": model_dir}),
            "processor": fault_stack.processor.model_copy(update={"app_id": f"rel-{suffix}"}),
            "inference": fault_stack.inference.model_copy(update={
                "group_id": f"rel-inf-{suffix}", "device": "cpu", "max_wait_ms": 20.0}),
        })
        topics.ensure(s)
        with redis.Redis.from_url(s.redis.url) as client:
            client.flushdb()
        return s

    return make


@pytest.fixture(scope="session")
def rule_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rule-based TorchScript test models (answers known by construction, deterministic
    on CPU): the suite tests the delivery of alarms, not the classifier."""
    from tests.inference_models import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("models"))
