"""Secured mode end to end: the real processor and inference worker on a SASL/SCRAM broker
and an ACL Redis, credentials only from the environment, never in a log or an argv.

``secure_infra`` (tests/conftest.py) restarts ``kafka-secure`` and ``redis-secure``
with credentials made for this session. Two devices replay 60 s of records with
ventricular ectopy (233, 119) through ``cardiostream process`` and ``cardiostream
infer`` child processes that get those credentials as ``CARDIOSTREAM_*`` variables
only. Then: results and alarms arrive (so both workers authenticated to both
services), a record whose key is not the payload's device (a device publishing for
another) is dead-lettered with ``key_mismatch``, and neither password appears in any
worker log, command line, or the dead-letter and results topics.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cardiostream.records import load_record
from cardiostream.schemas import decode_dead_letter, encode_chunk
from cardiostream.settings import Settings
from streamer.simulator import iter_chunks
from tests.faults import harness as H
from tests.faults import report
from tests.faults import scenario as S
from tests.faults.hostile import small_chunk

_US = 1_000_000
RECORDS = {"sec-01": "233", "sec-02": "119"}
SLICE_S = 60.0
START_US = (time.time_ns() // 1000 // _US - 3600) * _US

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def secured(secure_infra: Settings, rule_models: Path) -> Settings:
    from cardiostream.infra import kafka, topics
    from inference.sink import make_client

    s = S_fresh(secure_infra, rule_models)
    topics.ensure(s, kafka.node(s, secure=True))
    with make_client(s.redis) as client:
        stale = client.keys("cs:*")
        if stale:
            client.delete(*stale)
    return s


def S_fresh(base: Settings, model_dir: Path) -> Settings:  # noqa: N802 - mirrors run_settings
    import uuid

    suffix = uuid.uuid4().hex[:10]
    names = {f: f"{v}.{suffix}" for f, v in base.topics.model_dump().items()
             if isinstance(v, str)}
    return base.model_copy(update={
        "topics": base.topics.model_copy(update={**names, "partitions": 2}),
        "paths": base.paths.model_copy(update={"model_dir": model_dir}),
        "processor": base.processor.model_copy(update={"app_id": f"sec-{suffix}"}),
        "inference": base.inference.model_copy(update={"group_id": f"sec-inf-{suffix}",
                                                       "device": "cpu", "max_wait_ms": 20.0}),
    })


def test_pipeline_runs_on_sasl_broker_and_acl_redis_without_leaking_secrets(
        secured: Settings, data_dir: Path, tmp_path: Path, frozen_code: str) -> None:
    s = secured
    chunks = {}
    for dev, name in RECORDS.items():
        rec = load_record(data_dir / "mitdb", name, sampto=round(SLICE_S * 360))
        chunks[dev] = list(iter_chunks(rec, dev, START_US))
    tail = {dev: H.terminator(c[-1]) for dev, c in chunks.items()}
    producer = H.kafka_producer(s)   # a device publishing for another one
    producer.send(s.topics.samples, key=b"sec-01",
                  value=encode_chunk(small_chunk("impostor-1", START_US))).get(30)
    producer.close()
    run = S.run("secured", s, s, tmp_path, chunks, tail, speed=6.0)
    dead = H.read_topic(s, s.topics.dead_letter, expect=1, timeout_s=30, quiet_s=1)
    reasons = [decode_dead_letter(r.value).reason for r in dead]

    secrets = {"kafka": s.kafka.sasl_password.get_secret_value(),
               "redis": s.redis.password.get_secret_value()}
    logs = dict(run.logs)
    leaks = {f"{name} log": [k for k, v in secrets.items() if v in text]
             for name, text in logs.items()}
    leaks["results topic"] = [k for k, v in secrets.items()
                              if any(v.encode() in r.value for r in run.results)]
    leaks["dead-letter topic"] = [k for k, v in secrets.items()
                                  if any(v.encode() in r.value for r in dead)]
    leaks = {k: v for k, v in leaks.items() if v}
    row = {"results": len(run.results), "alarms": len(run.alarms),
           "dead_letter_reasons": reasons, "secret_leaks": leaks,
           "kafka": f"{s.kafka.security_protocol} {s.kafka.sasl_mechanism}",
           "redis": "ACL user, default user off", "notes": run.notes, "code": frozen_code}
    report.record("security", "secured pipeline", row)

    assert run.results, "no results: a worker could not authenticate"
    assert run.alarms, "no alarms in the ACL Redis"
    assert reasons == ["key_mismatch"]
    assert not leaks, leaks
    assert not any(run.crashes.values()), run.crashes
