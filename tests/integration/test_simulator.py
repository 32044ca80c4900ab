"""Simulated devices against the real broker: every sample arrives exactly once, in order."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pytest
import wfdb

from cardiostream.kafka_config import client_kwargs, consumer_kwargs
from cardiostream.records import ALL_MITDB
from cardiostream.schemas import decode_chunk
from cardiostream.settings import Settings
from streamer.simulator import Simulator, assign_devices

RECORD_S = 60.0


def read_all(settings: Settings, expected: int, timeout_s: float = 120.0) -> list:
    """Every message of the samples topic from the beginning, in partition-offset order."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**consumer_kwargs(settings.kafka))
    try:
        topic = settings.topics.samples
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: list = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000, max_records=5000).values():
                out.extend(batch)
        for batch in consumer.poll(timeout_ms=2000).values():  # anything beyond `expected`
            out.extend(batch)
        return out
    finally:
        consumer.close()


@pytest.mark.slow
def test_fifty_devices_deliver_every_sample_exactly_once_in_order(topic_factory, data_dir):
    settings = topic_factory(partitions=8)
    records = list(ALL_MITDB) + list(ALL_MITDB[:2])     # 48 distinct + 2 repeats
    devices = assign_devices(records, 50)
    assert len({d.device_id for d in devices}) == 50
    assert not any(d.record in d.device_id for d in devices)   # ids never reveal the record

    stats = Simulator(settings, devices, speed=math.inf, record_s=RECORD_S).run()
    assert stats.send_errors == 0

    n = round(RECORD_S * 360)
    per_chunk = round(0.5 * 360)
    messages = read_all(settings, expected=50 * n // per_chunk)
    by_device: dict[str, list] = defaultdict(list)
    for msg in messages:
        chunk = decode_chunk(msg.value, now_us=round(time.time() * 1e6))
        assert msg.key == chunk.device_id.encode()
        by_device[chunk.device_id].append(chunk)
    assert sorted(by_device) == sorted(d.device_id for d in devices)
    assert len(messages) == stats.chunks_sent == 50 * n // per_chunk

    for dev in devices:
        chunks = by_device[dev.device_id]
        assert [c.seq for c in chunks] == list(range(len(chunks)))        # once, in order
        start = chunks[0].t0_us
        sample_index = [round((c.t0_us - start) * 360 / 1e6) for c in chunks]
        assert sample_index == [k * per_chunk for k in range(len(chunks))]
        got = np.concatenate([c.adc for c in chunks], axis=1)           # (leads, n)
        oracle = wfdb.rdrecord(str(data_dir / "mitdb" / dev.record), sampto=n, physical=False)
        assert got.shape == oracle.d_signal.T.shape
        np.testing.assert_array_equal(got, oracle.d_signal.T, err_msg=dev.device_id)
        assert chunks[0].leads == tuple(oracle.sig_name) and chunks[0].fs_hz == oracle.fs


def test_devices_reach_a_sasl_broker_with_settings_credentials(secure_infra, data_dir):
    """The producer's and consumer's SASL/SCRAM arguments come from Settings().kafka."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = f"sim-sasl.{time.time_ns()}"
    settings = secure_infra.model_copy(update={
        "topics": secure_infra.topics.model_copy(update={"samples": topic})})
    admin = KafkaAdminClient(**client_kwargs(settings.kafka))
    try:
        admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=30_000)
        stats = Simulator(settings, assign_devices(["100", "101"], 2), speed=math.inf,
                          record_s=5.0).run()
        assert stats.send_errors == 0 and stats.chunks_sent == 2 * 10
        assert len(read_all(settings, expected=20, timeout_s=60)) == 20
    finally:
        admin.delete_topics([topic], timeout_ms=30_000)
        admin.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_flushes_everything_it_sent_on_ctrl_c_and_sigterm(topic_factory, data_dir, sig):
    settings = topic_factory(partitions=4)
    cmd = [sys.executable, "-m", "cardiostream.cli", "simulate", "100", "101", "--devices", "4",
           "--speed", "20", "--loop", "--topic", settings.topics.samples,
           "--bootstrap-servers", settings.kafka.bootstrap_servers]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:        # records loaded, producer connected: let it stream
            if "devices ->" in line:
                break
        time.sleep(3.0)
        proc.send_signal(sig)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 0, rest
    finally:
        proc.kill()
    sent = int(re.search(r"sent (\d+) chunks", rest).group(1))
    assert sent > 4 * 20                 # ~3 s at 20x: 4 devices x ~120 chunks
    assert len(read_all(settings, expected=sent, timeout_s=60)) == sent



def test_faulty_devices_deliver_exactly_what_the_pure_generator_predicts(topic_factory, data_dir):
    """Seeded faults are reproducible end to end: Kafka carries the generator's sequence."""
    from cardiostream.records import load_record
    from streamer.faults import FaultConfig
    from streamer.simulator import iter_chunks

    settings = topic_factory(partitions=2)
    faults = FaultConfig(seed=11, drop_p=0.1, duplicate_p=0.1, reorder_p=0.1, lead_off_p=0.05,
                         lead_off_s=1.0)
    devices = assign_devices(["100", "119", "208"], 3)
    stats = Simulator(settings, devices, speed=math.inf, record_s=20.0, faults=faults).run()
    assert stats.faults.dropped and stats.faults.duplicated and stats.faults.reordered
    got: dict[str, list] = defaultdict(list)
    for msg in read_all(settings, expected=stats.chunks_sent):
        chunk = decode_chunk(msg.value)
        got[chunk.device_id].append(chunk)
    for dev in devices:
        rec = load_record(data_dir / "mitdb", dev.record, sampto=round(20 * 360))
        want = list(iter_chunks(rec, dev.device_id, 0, 0.5, faults))
        assert [c.seq for c in got[dev.device_id]] == [c.seq for c in want]
        for a, b in zip(got[dev.device_id], want, strict=True):
            np.testing.assert_array_equal(a.adc, b.adc)
