"""The metric catalogue: bounded labels, the per-patient cap, /metrics over HTTP."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import REGISTRY

from cardiostream import metrics as m


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gauges(clock: FakeClock) -> m.PatientGauges:
    g = m.PatientGauges(max_series=2, idle_s=60.0, clock=clock)
    yield g
    for device in g.tracked:
        g.forget(device)


def test_cap_refuses_new_devices_but_updates_known_ones(gauges: m.PatientGauges) -> None:
    refused_before = _value("cardiostream_patient_series_refused_total") or 0.0
    assert gauges.set_heart_rate("t-a", 61.0) and gauges.set_heart_rate("t-b", 72.0)
    assert not gauges.set_heart_rate("t-c", 80.0)
    assert gauges.set_heart_rate("t-a", 65.0)
    assert _value("cardiostream_patient_heart_rate_bpm", device_id="t-a") == 65.0
    assert _value("cardiostream_patient_heart_rate_bpm", device_id="t-c") is None
    assert _value("cardiostream_patient_series_refused_total") == refused_before + 1


def test_silent_devices_free_their_slot(gauges: m.PatientGauges, clock: FakeClock) -> None:
    gauges.set_heart_rate("t-a", 61.0)
    gauges.set_alarm_level("t-a", "red")
    clock.now = 30.0
    gauges.set_heart_rate("t-b", 72.0)
    clock.now = 70.0  # t-a silent for 70 s > idle_s
    assert gauges.set_heart_rate("t-c", 90.0)
    assert set(gauges.tracked) == {"t-b", "t-c"}
    assert _value("cardiostream_patient_heart_rate_bpm", device_id="t-a") is None
    assert _value("cardiostream_patient_alarm_level", device_id="t-a") is None


def test_one_rhythm_series_per_device(gauges: m.PatientGauges) -> None:
    gauges.set_rhythm("t-a", "AFIB")
    gauges.set_rhythm("t-a", "N")
    gauges.set_rhythm("t-b", "not-a-code")
    assert _value("cardiostream_patient_rhythm", device_id="t-a", rhythm="AFIB") is None
    assert _value("cardiostream_patient_rhythm", device_id="t-a", rhythm="N") == 1.0
    assert _value("cardiostream_patient_rhythm", device_id="t-b", rhythm="other") == 1.0


def test_invalid_values_are_refused(gauges: m.PatientGauges) -> None:
    with pytest.raises(ValueError, match="good_ratio"):
        gauges.set_signal_quality("t-a", 1.5)
    with pytest.raises(ValueError, match="severity"):
        gauges.set_alarm_level("t-a", "purple")
    with pytest.raises(ValueError, match="component"):
        m.heartbeat("trainer")
    with pytest.raises(ValueError, match="stage"):
        m.observe_latency("kafka", 0.0)


def test_zero_cap_tracks_nobody() -> None:
    g = m.PatientGauges(max_series=0)
    assert not g.set_heart_rate("t-z", 60.0)


def test_latency_is_never_negative() -> None:
    before = _value("cardiostream_e2e_latency_seconds_bucket", stage="alarm", le="0.01") or 0.0
    m.observe_latency("alarm", produced_wall_s=105.0, now_s=100.0)   # clock skew
    assert _value("cardiostream_e2e_latency_seconds_bucket", stage="alarm", le="0.01") == (
        before + 1)


def test_server_exposes_initialised_series() -> None:
    m.init_component("processor", dead_letter_reasons=("bad_magic",))
    port = m.start_metrics_server(0, addr="127.0.0.1")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    # The default registry is per process: earlier tests in the same run may have counted
    # into these series already, so assert that each series exists, not its value.
    exposed = {line.rpartition(" ")[0] for line in body.splitlines() if not line.startswith("#")}
    for series in ('cardiostream_dead_letters_total{reason="bad_magic",stage="processor"}',
                   'cardiostream_windows_total{kind="rhythm"}',
                   'cardiostream_worker_heartbeat_timestamp_seconds{component="processor"}'):
        assert series in exposed


def test_catalogue_names_are_unique_and_prefixed() -> None:
    names = [row[0] for row in m.catalogue()]
    assert len(names) == len(set(names))
    assert all(n.startswith("cardiostream_") for n in names)
    labels = {label for row in m.catalogue() for label in row[2]}
    assert labels <= {"component", "kind", "label", "stage", "reason", "partition", "type",
                      "severity", "state", "device_id", "rhythm"}


def test_docs_carry_the_current_catalogue() -> None:
    from typer.testing import CliRunner

    from cardiostream.cli import app
    from cardiostream.settings import REPO_ROOT

    table = CliRunner().invoke(app, ["metrics", "catalogue", "--markdown"]).output.strip()
    docs = (REPO_ROOT / "docs" / "operations.md").read_text()
    assert table in docs, "regenerate with `cardiostream metrics catalogue --markdown`"
