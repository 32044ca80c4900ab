"""A real Prometheus (Debian's ``prometheus``) scraping the workers' /metrics ports.

Targets are ``job=host:port`` pairs (a bare ``host:port`` goes to job ``cardiostream``).
By default the three workers' ports from ``settings.metrics`` are scraped as jobs
``simulator``, ``processor`` and ``inference``; ``cardiostream infra prometheus
--targets ...`` rewrites the config and reloads a running Prometheus in place.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from string import Template

from cardiostream.infra import apt, procs
from cardiostream.infra.errors import InfraError
from cardiostream.settings import REPO_ROOT, Settings

TEMPLATE = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"
_TARGET = re.compile(r"^(?:(?P<job>[A-Za-z_][\w-]*)=)?(?P<host>[\w.-]+):(?P<port>\d{1,5})$")


def home(settings: Settings) -> Path:
    return settings.paths.run_dir / "prometheus"


def proc(settings: Settings) -> procs.Proc:
    h = home(settings)
    return procs.Proc("prometheus", h / "prometheus.pid", h / "prometheus.log",
                      marker=str(h / "prometheus.yml"))


def url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.infra.prometheus_port}"


def default_targets(settings: Settings) -> dict[str, list[str]]:
    m = settings.metrics
    return {"simulator": [f"127.0.0.1:{m.simulator_port}"],
            "processor": [f"127.0.0.1:{m.processor_port}"],
            "inference": [f"127.0.0.1:{m.inference_port}"]}


def parse_targets(spec: str) -> dict[str, list[str]]:
    """``"processor=127.0.0.1:9102,127.0.0.1:9200"`` -> ``{job: [host:port, ...]}``."""
    jobs: dict[str, list[str]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        m = _TARGET.match(item)
        if m is None or not 0 < int(m["port"]) < 65536:
            raise InfraError(f"bad Prometheus target {item!r}: expected [job=]host:port")
        jobs.setdefault(m["job"] or "cardiostream", []).append(f"{m['host']}:{m['port']}")
    if not jobs:
        raise InfraError("no Prometheus targets given")
    return jobs


def write_config(settings: Settings, jobs: dict[str, list[str]]) -> Path:
    """Render the config for ``jobs`` into the run folder; returns its path."""
    interval = f"{settings.infra.prometheus_scrape_s:g}s"
    scrape = [{"job_name": job, "static_configs": [{"targets": targets}]}
              for job, targets in sorted(jobs.items())]
    text = Template(TEMPLATE.read_text()).substitute(
        scrape_interval=interval, scrape_timeout=interval, scrape_configs=json.dumps(scrape))
    path = home(settings) / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _http(settings: Settings, path: str, method: str = "GET", timeout_s: float = 2.0) -> bytes:
    req = urllib.request.Request(url(settings) + path, method=method)
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return resp.read()


def ready(settings: Settings) -> bool:
    try:
        _http(settings, "/-/ready")
        return True
    except (urllib.error.URLError, OSError):
        return False


def start(settings: Settings, targets: dict[str, list[str]] | None = None,
          config: Path | None = None) -> dict[str, float]:
    """Start (or reconfigure) Prometheus. Without targets or config a running one is kept."""
    binary = apt.ensure("prometheus", "prometheus", settings.paths.run_dir / "apt.log")
    running = procs.running_pid(proc(settings)) is not None
    if running and targets is None and config is None:
        return {}
    if config is not None:
        if not config.is_file():
            raise InfraError(f"Prometheus config {config} does not exist")
        home(settings).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config, home(settings) / "prometheus.yml")
    else:
        write_config(settings, targets or default_targets(settings))
    if running:
        return _reload(settings)
    return _spawn(settings, binary)


def _spawn(settings: Settings, binary: str) -> dict[str, float]:
    if procs.port_open(settings.infra.prometheus_port):
        raise InfraError(f"prometheus: port {settings.infra.prometheus_port} is used by a "
                         "process this run folder did not start")
    h = home(settings)
    argv = [binary, f"--config.file={h / 'prometheus.yml'}",
            f"--storage.tsdb.path={h / 'data'}", "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{settings.infra.prometheus_port}",
            "--web.enable-lifecycle", "--log.level=warn"]
    t0 = time.monotonic()
    procs.spawn(proc(settings), argv)
    procs.wait_until(proc(settings), lambda: ready(settings), 60, "/-/ready")
    return {"start": time.monotonic() - t0}


def _reload(settings: Settings) -> dict[str, float]:
    t0 = time.monotonic()
    try:
        _http(settings, "/-/reload", method="POST", timeout_s=10)
    except urllib.error.HTTPError as err:
        raise InfraError(f"prometheus rejected the new config ({err.code}); "
                         f"see {proc(settings).log_file}") from err
    return {"reload": time.monotonic() - t0}


def query(settings: Settings, expr: str) -> list[dict]:
    """Instant PromQL query; the ``data.result`` list (each has ``metric`` and ``value``)."""
    body = json.loads(_http(settings, "/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    if body.get("status") != "success":
        raise InfraError(f"prometheus query {expr!r} failed: {body.get('error')}")
    return body["data"]["result"]


def active_targets(settings: Settings) -> list[dict]:
    """The scrape targets Prometheus knows, each with ``labels`` and ``health``."""
    body = json.loads(_http(settings, "/api/v1/targets?state=active"))
    return body["data"]["activeTargets"]


def stop(settings: Settings) -> bool:
    return procs.stop(proc(settings), grace_s=20.0)


def status(settings: Settings) -> int | None:
    return procs.running_pid(proc(settings))
