"""A real Prometheus scrapes the three workers; every dashboard metric exists in it.

The pipeline runs for real: the simulator replays MIT-BIH records into fresh
topics on the local broker, the Faust processor turns them into windows, the
inference worker classifies them and writes alarms to Redis. Each runs as its
own subprocess with its own /metrics port. Debian's ``prometheus`` (started by
``cardiostream infra``) is pointed at those ports, and the test then asks
Prometheus itself, through ``/api/v1/series``, for every metric that any panel
or variable of ``dashboards/definitions/*.json`` queries.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardiostream.infra import prometheus as prom
from cardiostream.settings import Settings
from dashboards.catalog import all_metric_names, load_dashboards, panel_queries
from tests.conftest import unique_id

pytestmark = pytest.mark.slow

WORKERS = ("simulator", "processor", "inference")
TARGETS_UP_S = 90.0
METRICS_PRESENT_S = 240.0
RECORDS = ("100", "119", "201", "203")      # normal, bigeminy (V), AF, noisy AF/VT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(settings: Settings, ports: dict[str, int], model_dir: Path) -> dict[str, str]:
    """The isolated test Settings as environment variables for the worker subprocesses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDIOSTREAM_")}
    for field, value in settings.topics.model_dump().items():
        env[f"CARDIOSTREAM_TOPICS__{field.upper()}"] = str(value)
    env["CARDIOSTREAM_KAFKA__BOOTSTRAP_SERVERS"] = settings.kafka.bootstrap_servers
    env["CARDIOSTREAM_REDIS__URL"] = settings.redis.url
    env["CARDIOSTREAM_PATHS__DATA_DIR"] = str(settings.paths.data_dir)
    env["CARDIOSTREAM_PATHS__MODEL_DIR"] = str(model_dir)
    env["CARDIOSTREAM_PROCESSOR__APP_ID"] = unique_id("proc")
    env["CARDIOSTREAM_INFERENCE__GROUP_ID"] = unique_id("infer")
    for worker, port in ports.items():
        env[f"CARDIOSTREAM_METRICS__{worker.upper()}_PORT"] = str(port)
    return env


def _commands(ports: dict[str, int]) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "cardiostream.cli"]
    return {
        "simulator": [*cli, "simulate", ",".join(RECORDS), "--devices", "8", "--speed", "4",
                      "--metrics-port", str(ports["simulator"])],
        "processor": [*cli, "process", "--metrics-port", str(ports["processor"])],
        "inference": [*cli, "infer", "--metrics-port", str(ports["inference"])],
    }


def _model_dir(tmp_path: Path) -> Path:
    """The default models when both are there, else the tests' tiny TorchScript stand-ins."""
    default = Settings().paths.model_dir
    if all((default / kind / name).is_file() for kind in ("beat", "rhythm")
           for name in ("model.ts", "metadata.json")):
        return default
    from tests.inference_models import write_model_dir

    return write_model_dir(tmp_path / "models")


@pytest.fixture
def pipeline(prometheus: Settings, isolated: Settings, data_dir: Path,
             tmp_path: Path) -> Iterator[dict[str, int]]:
    """The three workers running on fresh topics, Prometheus scraping their ports."""
    ports = {w: _free_port() for w in WORKERS}
    env = _env(isolated, ports, _model_dir(tmp_path))
    procs: dict[str, subprocess.Popen] = {}
    try:
        for worker, argv in _commands(ports).items():
            with (tmp_path / f"{worker}.log").open("wb") as log:   # the child keeps its copy
                procs[worker] = subprocess.Popen(argv, env=env, stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
        prom.start(prometheus, {w: [f"127.0.0.1:{p}"] for w, p in ports.items()})
        _PROCS.clear()
        _PROCS.update(procs)
        yield ports
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        prom.start(prometheus, prom.default_targets(prometheus))


_PROCS: dict[str, subprocess.Popen] = {}    # the running pipeline's workers, for _alive()


def _alive(tmp_path: Path) -> None:
    """Fail at once, with the logs, when a worker has exited instead of waiting out a deadline."""
    dead = {w: p.returncode for w, p in _PROCS.items() if p.poll() is not None}
    if dead:
        pytest.fail(f"workers exited early {dead}\n{_logs(tmp_path)}", pytrace=False)


def _api(settings: Settings, path: str, **params: str) -> dict:
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{prom.url(settings)}{path}?{query}", timeout=5) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as err:      # 400/422 carry Prometheus' JSON error
        body = json.load(err)
    if body.get("status") != "success":
        raise PromQLError(f"prometheus {path} {params}: {body.get('error', body)}")
    return body["data"]


class PromQLError(RuntimeError):
    """Prometheus refused a query (the message carries its error text)."""


def _targets_up(settings: Settings, ports: dict[str, int]) -> dict[str, str]:
    wanted = {f"127.0.0.1:{p}": w for w, p in ports.items()}
    health = {}
    for target in prom.active_targets(settings):
        instance = target["labels"].get("instance")
        if instance in wanted:
            health[wanted[instance]] = target["health"]
    return health


def _missing(settings: Settings, names: set[str], ports: dict[str, int], since: float) -> set[str]:
    """Names without a series from this test's workers since ``since`` (unix s)."""
    instances = "|".join(f"127.0.0.1:{p}" for p in ports.values())
    missing = set()
    for name in sorted(names):
        selector = f'{{__name__="{name}", instance=~"{instances}"}}'
        if not _api(settings, "/api/v1/series", **{"match[]": selector}, start=f"{since:.3f}"):
            missing.add(name)
    return missing


def _logs(tmp_path: Path) -> str:
    tails = []
    for worker in WORKERS:
        path = tmp_path / f"{worker}.log"
        text = path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"
        tails.append(f"--- {worker} ---\n{text}")
    return "\n".join(tails)


def test_prometheus_scrapes_all_workers_and_has_every_dashboard_metric(
        prometheus: Settings, pipeline: dict[str, int], tmp_path: Path) -> None:
    since = time.time() - 5
    deadline = time.monotonic() + TARGETS_UP_S
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = _targets_up(prometheus, pipeline)
        if health == dict.fromkeys(WORKERS, "up"):
            break
        _alive(tmp_path)
        time.sleep(1.0)
    assert health == dict.fromkeys(WORKERS, "up"), f"scrape health {health}\n{_logs(tmp_path)}"
    up = _api(prometheus, "/api/v1/query", query="up")["result"]
    scraped = {r["metric"]["job"] for r in up if r["value"][1] == "1"}
    assert set(WORKERS) <= scraped

    names = all_metric_names(load_dashboards()) - {"up"}
    deadline = time.monotonic() + METRICS_PRESENT_S
    missing = names
    while time.monotonic() < deadline:
        missing = _missing(prometheus, missing, pipeline, since)
        if not missing:
            break
        _alive(tmp_path)
        time.sleep(3.0)
    assert not missing, (f"dashboard metrics absent from Prometheus: {sorted(missing)}\n"
                         f"{_logs(tmp_path)}")

    # Every panel query is valid PromQL that Prometheus evaluates (Grafana variables filled in).
    refused = []
    for dashboard in load_dashboards().values():
        for q in panel_queries(dashboard):
            try:
                _api(prometheus, "/api/v1/query", query=_grafana_vars(q.expr))
            except PromQLError as err:
                refused.append(f"{q.dashboard_uid} / {q.panel_title} {q.ref_id}: {err}")
    assert not refused, "\n".join(refused)

    # The series are not just initialised zeros: data went through every stage.
    flowing = {}
    while time.monotonic() < deadline:
        flowing = {expr: _value(prometheus, expr, pipeline) for expr in FLOW_CHECKS}
        if all(v > 0 for v in flowing.values()):
            break
        _alive(tmp_path)
        time.sleep(3.0)
    assert all(v > 0 for v in flowing.values()), f"no data through: {flowing}\n{_logs(tmp_path)}"


# Queries (``$I`` = this test's instances) that must become positive once data flows.
FLOW_CHECKS = (
    'sum(cardiostream_chunks_total{component="simulator", $I})',
    'sum(cardiostream_chunks_total{component="processor", $I})',
    'sum(cardiostream_windows_total{kind="beat", $I})',
    'sum(cardiostream_beats_total{$I})',
    'count(cardiostream_patient_heart_rate_bpm{$I})',
)


def _grafana_vars(expr: str) -> str:
    """Substitute the Grafana variables our dashboards use with concrete values."""
    return expr.replace("$__rate_interval", "1m").replace("$device", ".*")


def _value(settings: Settings, expr: str, ports: dict[str, int]) -> float:
    instances = "|".join(f"127.0.0.1:{p}" for p in ports.values())
    query = expr.replace("$I", f'instance=~"{instances}"')
    result = _api(settings, "/api/v1/query", query=query)["result"]
    return float(result[0]["value"][1]) if result else 0.0
