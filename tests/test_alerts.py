"""Prometheus config and alert rules, checked and unit-tested with Debian's promtool.

``promtool test rules`` evaluates the rules over synthetic series, so each case
states what a stalled or healthy worker looks like and whether the alert fires.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cardiostream.settings import REPO_ROOT

PROM_DIR = REPO_ROOT / "infra" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
HB = "cardiostream_worker_heartbeat_timestamp_seconds"
P = {"component": "processor", "instance": "p:9102", "job": "processor"}

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool missing (Debian `prometheus`, installed by "
                                       "`cardiostream infra up --with-prometheus`)")


def _series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def _run_cases(tmp_path: Path, series: list[dict], cases: list[tuple[str, str, list[dict]]]):
    doc = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series,
                      "alert_rule_test": [{"eval_time": t, "alertname": name, "exp_alerts": exp}
                                          for t, name, exp in cases]}]}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(doc))
    return _promtool("test", "rules", str(path))


def test_compose_config_and_rules_are_valid() -> None:
    result = _promtool("check", "config", str(PROM_DIR / "prometheus.compose.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_stalled_heartbeat_fires_and_live_one_does_not(tmp_path: Path) -> None:
    # Heartbeat value = unix time of the beat. The stalled worker beats until 3 min,
    # then stops; the live one keeps up with the clock.
    live = {**P, "instance": "q:9102"}
    series = [_series(HB, P, "0+60x3 180x10"), _series(HB, live, "0+60x13")]
    stalled_alert = {"exp_labels": {**P, "severity": "page"}, "exp_annotations": {
        "summary": "processor p:9102 has not made progress for 4m 0s"}}   # 420 s - 180 s
    result = _run_cases(tmp_path, series, [
        ("3m", "CardiostreamWorkerStalled", []),
        ("5m", "CardiostreamWorkerStalled", []),          # 120 s stale, pending for 'for: 1m'
        ("7m", "CardiostreamWorkerStalled", [stalled_alert]),
    ])
    assert result.returncode == 0, result.stdout + result.stderr


def test_growing_lag_fires_and_draining_lag_does_not(tmp_path: Path) -> None:
    lag = "cardiostream_consumer_lag"
    draining = {**P, "instance": "q:9102"}
    series = [_series(lag, {**P, "partition": "0"}, "0+500x30"),
              _series(lag, {**draining, "partition": "0"}, "30000-500x30")]
    expected = {"exp_labels": {"component": "processor", "instance": "p:9102",
                               "severity": "page"},
                "exp_annotations": {"summary": "processor p:9102 is 7500 messages behind and "
                                               "falling further behind"}}   # 15 min x 500
    result = _run_cases(tmp_path, series, [
        ("4m", "CardiostreamConsumerLagGrowing", []),
        ("15m", "CardiostreamConsumerLagGrowing", [expected]),
    ])
    assert result.returncode == 0, result.stdout + result.stderr


def test_target_down_fires_after_a_minute(tmp_path: Path) -> None:
    series = [_series("up", {"job": "inference", "instance": "i:9103"}, "1 1 0 0 0 0")]
    down = {"exp_labels": {"job": "inference", "instance": "i:9103", "severity": "page"},
            "exp_annotations": {"summary": "inference i:9103 is not answering /metrics"}}
    result = _run_cases(tmp_path, series, [
        ("1m", "CardiostreamWorkerDown", []),
        ("4m", "CardiostreamWorkerDown", [down]),
    ])
    assert result.returncode == 0, result.stdout + result.stderr
