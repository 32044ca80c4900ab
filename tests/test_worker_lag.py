"""The inference worker's lag gauge is best effort: a broker outage must not kill the worker."""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from cardiostream.settings import Settings
from inference.worker import COMPONENT, LAG_EVERY_S, InferenceWorker

TOPIC = "ecg.windows.lag-test"


class OutageConsumer:
    """Partition 0 has a position; partition 1 needs the broker for it, which is down."""

    def assignment(self):
        return {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)}

    def highwater(self, tp):
        return 100

    def position(self, tp):
        if tp.partition == 1:
            raise KafkaConnectionError("111 ECONNREFUSED")
        return 40


def _lag(partition: int) -> float | None:
    return REGISTRY.get_sample_value("cardiostream_consumer_lag",
                                     {"component": COMPONENT, "partition": str(partition)})


def test_lag_report_survives_a_broker_outage_and_reports_what_it_can(caplog):
    now = [1000.0]
    worker = InferenceWorker(Settings(), OutageConsumer(), producer=None, predictor=None,
                             sink=None, decider=None, clock=lambda: now[0])
    before = _lag(1)
    worker._report_lag()                                  # must not raise
    assert _lag(0) == pytest.approx(60.0)
    assert _lag(1) == before                              # not reported, not invented
    assert "lag of ecg.windows.lag-test[1] not reported" in caplog.text
    worker.consumer.position = lambda tp: 90              # the broker is back
    now[0] += LAG_EVERY_S
    worker._report_lag()
    assert _lag(1) == pytest.approx(10.0)
