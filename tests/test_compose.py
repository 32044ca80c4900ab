"""docker-compose.yml: `docker compose config` accepts it; services, healthchecks, pinned tags.

Only the Docker client (with the compose plugin) is needed; the engine is not
installed here, so nothing is started. ``scripts/install-docker-compose.sh``
installs the plugin where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cardiostream.settings import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
CPU_OVERRIDE = REPO_ROOT / "docker-compose.cpu.yml"
SECRETS = {"GRAFANA_ADMIN_PASSWORD": "test-only-admin", "REDIS_PASSWORD": "test-only-redis"}
SERVICES = {"kafka", "topics", "redis", "prometheus", "grafana", "simulator", "processor",
            "inference"}
ONE_SHOT = {"topics"}
WORKERS = {"simulator": "simulator_port", "processor": "processor_port",
           "inference": "inference_port"}


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


needs_compose = pytest.mark.skipif(not _compose_available(),
                                   reason="docker compose plugin missing: "
                                          "run scripts/install-docker-compose.sh")


def _config(*files: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    args = ["docker", "compose"]
    for file in files:
        args += ["-f", str(file)]
    clean = {k: v for k, v in os.environ.items()
             if k not in SECRETS and not k.startswith("CARDIOSTREAM_")}
    return subprocess.run([*args, "config", "--format", "json"], cwd=REPO_ROOT,
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def config() -> dict:
    result = _config(COMPOSE, env=SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_compose
def test_services(config: dict) -> None:
    assert set(config["services"]) == SERVICES


@needs_compose
def test_every_long_running_service_has_a_healthcheck(config: dict) -> None:
    for name, svc in config["services"].items():
        if name in ONE_SHOT:
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"


@needs_compose
def test_images_are_pinned(config: dict) -> None:
    for name, svc in config["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: tag {tag!r} is not pinned"


@needs_compose
def test_depends_on_waits_for_health(config: dict) -> None:
    allowed = {"service_healthy", "service_completed_successfully"}
    for name, svc in config["services"].items():
        for dep, spec in svc.get("depends_on", {}).items():
            assert spec["condition"] in allowed, f"{name} -> {dep}: {spec['condition']}"
            if dep not in ONE_SHOT:
                assert spec["condition"] == "service_healthy", f"{name} -> {dep}"
    for worker in WORKERS:
        assert config["services"][worker]["depends_on"]["kafka"]["condition"] == "service_healthy"


@needs_compose
def test_processor_is_scalable(config: dict) -> None:
    processor = config["services"]["processor"]
    assert "container_name" not in processor and not processor.get("ports")
    partitions = int(processor["environment"]["CARDIOSTREAM_TOPICS__PARTITIONS"])
    topics_job = config["services"]["topics"]
    assert int(topics_job["environment"]["PARTITIONS"]) == partitions >= 4
    for topic in vars(Settings().topics).values():
        if isinstance(topic, str):
            assert topic in " ".join(topics_job["command"]), f"topics job misses {topic}"


@needs_compose
def test_named_volumes_for_state(config: dict) -> None:
    assert {"kafka-data", "redis-data", "prometheus-data", "grafana-data"} <= set(
        config["volumes"])
    for name in ("kafka", "redis", "prometheus", "grafana"):
        kinds = {v["type"] for v in config["services"][name]["volumes"]}
        assert "volume" in kinds, f"{name}: state not on a named volume"


@needs_compose
def test_inference_reserves_a_gpu_and_the_cpu_override_drops_it(config: dict) -> None:
    devices = config["services"]["inference"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    cpu = _config(COMPOSE, CPU_OVERRIDE, env=SECRETS)
    assert cpu.returncode == 0, cpu.stderr
    inference = json.loads(cpu.stdout)["services"]["inference"]
    assert "deploy" not in inference
    assert inference["environment"]["CARDIOSTREAM_INFERENCE__DEVICE"] == "cpu"


@needs_compose
def test_no_default_admin_password_and_no_anonymous_access(config: dict) -> None:
    missing = _config(COMPOSE, env={"REDIS_PASSWORD": "x"})
    assert missing.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in missing.stderr
    env = config["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_a_comment_above_every_service() -> None:
    lines = COMPOSE.read_text().splitlines()
    start = lines.index("services:")
    for i, line in enumerate(lines[start + 1:], start + 1):
        if re.fullmatch(r"  [a-z][a-z0-9-]*:", line):
            assert lines[i - 1].strip().startswith("#"), f"no comment above {line.strip()}"
        elif line and not line.startswith(" "):
            break


def test_prometheus_scrapes_every_worker_port() -> None:
    doc = yaml.safe_load((REPO_ROOT / "infra/prometheus/prometheus.compose.yml").read_text())
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    for worker, port_field in WORKERS.items():
        sd = jobs[f"cardiostream-{worker}"]["dns_sd_configs"][0]
        assert sd["names"] == [worker]
        assert sd["port"] == getattr(Settings().metrics, port_field)


def test_grafana_provisioning_uses_the_fixed_uids() -> None:
    root = REPO_ROOT / "dashboards/provisioning"
    grafana = Settings().grafana
    ds = yaml.safe_load((root / "datasources/cardiostream.yml").read_text())["datasources"]
    assert [d["uid"] for d in ds] == [grafana.datasource_uid]
    providers = yaml.safe_load((root / "dashboards/cardiostream.yml").read_text())["providers"]
    assert [p["folderUid"] for p in providers] == [grafana.folder_uid]


def test_one_dockerfile_with_cpu_torch_by_default() -> None:
    dockerfiles = [p for p in REPO_ROOT.rglob("Dockerfile*")
                   if ".git" not in p.parts and "node_modules" not in p.parts]
    assert dockerfiles == [REPO_ROOT / "Dockerfile"]
    text = dockerfiles[0].read_text()
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.M)


@needs_compose
def test_worker_commands_exist_in_the_cli(config: dict) -> None:
    from typer.testing import CliRunner

    from cardiostream.cli import app

    for worker in WORKERS:
        command = config["services"][worker]["command"]
        result = CliRunner().invoke(app, [command[0], "--help"])
        assert result.exit_code == 0, f"{worker}: `cardiostream {command[0]}` is not a command"
