"""One single-node Kafka broker (KRaft, broker + controller in one JVM) from Maven Central jars.

The jars are resolved once by ``mvn dependency:copy-dependencies`` from
``infra/kafka/pom.xml`` into ``<cache_dir>/kafka-<version>/jars`` (outside git);
the broker runs as ``java -cp '<jars>/*' kafka.Kafka server.properties`` with
its config, data and logs under ``<run_dir>/kafka`` (``kafka-secure`` for the
SASL/SCRAM broker of ``--secure``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from cardiostream.infra import procs
from cardiostream.infra.errors import InfraError
from cardiostream.settings import REPO_ROOT, Settings

INFRA_DIR = REPO_ROOT / "infra" / "kafka"
SCRAM_MECHANISM = "SCRAM-SHA-512"
JAVA_HINT = "install a JDK 17+ (apt-get install -y openjdk-17-jdk-headless)"


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One broker's ports, folder and (for the secured one) SCRAM credentials."""

    name: str
    port: int
    controller_port: int
    home: Path
    username: str | None = None
    password: str | None = None

    @property
    def secure(self) -> bool:
        return self.username is not None

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def proc(self) -> procs.Proc:
        return procs.Proc(self.name, self.home / "kafka.pid", self.home / "logs" / "stdout.log",
                          marker=str(self.properties))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def node(settings: Settings, secure: bool = False) -> KafkaNode:
    """The plain broker, or the SASL/SCRAM one with credentials from ``settings.kafka``."""
    run = settings.paths.run_dir
    if not secure:
        return KafkaNode("kafka", settings.infra.kafka_port, settings.infra.kafka_controller_port,
                         run / "kafka")
    user, secret = settings.kafka.sasl_username, settings.kafka.sasl_password
    if not user or secret is None or not secret.get_secret_value():
        raise InfraError("--secure needs CARDIOSTREAM_KAFKA__SASL_USERNAME and "
                         "CARDIOSTREAM_KAFKA__SASL_PASSWORD in the environment")
    return KafkaNode("kafka-secure", settings.infra.kafka_secure_port,
                     settings.infra.kafka_secure_controller_port, run / "kafka-secure",
                     user, secret.get_secret_value())


def jars_dir(settings: Settings) -> Path:
    return settings.paths.cache_dir / f"kafka-{settings.infra.kafka_version}" / "jars"


def resolve_jars(settings: Settings) -> float:
    """Copy the broker's jars from Maven Central into the cache; seconds spent (0 if cached)."""
    jars = jars_dir(settings)
    pom = INFRA_DIR / "pom.xml"
    stamp = jars.parent / "resolved.sha256"
    digest = hashlib.sha256(pom.read_bytes() + settings.infra.kafka_version.encode()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest and any(jars.glob("kafka_2.13-*")):
        return 0.0
    mvn = procs.require_tool("mvn", "install Maven (apt-get install -y maven)")
    procs.require_tool("java", JAVA_HINT)
    jars.parent.mkdir(parents=True, exist_ok=True)
    log = jars.parent / "mvn.log"
    start = time.monotonic()
    cmd = [mvn, "-B", "-q", "-f", str(pom), f"-Dkafka.version={settings.infra.kafka_version}",
           "dependency:copy-dependencies", f"-DoutputDirectory={jars}"]
    with open(log, "wb") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        raise InfraError(f"mvn could not resolve Kafka {settings.infra.kafka_version} "
                         f"(exit {rc}); see {log}")
    stamp.write_text(digest + "\n")
    return time.monotonic() - start


def _cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, URL-safe base64, no padding, no leading '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _render(settings: Settings, kafka: KafkaNode) -> None:
    kafka.home.mkdir(parents=True, exist_ok=True)
    (kafka.home / "logs").mkdir(exist_ok=True)
    ctl = f"CONTROLLER://127.0.0.1:{kafka.controller_port}"
    proto = "SASL_PLAINTEXT" if kafka.secure else "PLAINTEXT"
    values = {
        "controller_port": kafka.controller_port,
        "listeners": f"{proto}://{kafka.bootstrap},{ctl}",
        "advertised_listeners": f"{proto}://{kafka.bootstrap}",
        "protocol_map": f"CONTROLLER:PLAINTEXT,{proto}:{proto}",
        "inter_broker_listener": proto,
        "log_dirs": kafka.data_dir,
        "partitions": settings.topics.partitions,
        "extra": _sasl_lines(kafka),
    }
    text = Template((INFRA_DIR / "server.properties").read_text()).substitute(values)
    kafka.properties.write_text(text)
    kafka.properties.chmod(0o600)
    (kafka.home / "log4j2.properties").write_bytes((INFRA_DIR / "log4j2.properties").read_bytes())


def _sasl_lines(kafka: KafkaNode) -> str:
    if not kafka.secure:
        return ""
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{kafka.username}" password="{kafka.password}";')
    return "\n".join([
        "# Secured mode: every client authenticates with SCRAM (users made at format time).",
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
        f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config={jaas}",
    ])


def _java(settings: Settings, kafka: KafkaNode, main: str, *args: str) -> list[str]:
    java = procs.require_tool("java", JAVA_HINT)
    heap = settings.infra.kafka_heap
    return [java, "-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={kafka.home / 'logs'}",
            f"-Dlog4j2.configurationFile={kafka.home / 'log4j2.properties'}",
            "-cp", f"{jars_dir(settings)}/*", main, *args]


def _format(settings: Settings, kafka: KafkaNode) -> float:
    """Format the KRaft storage once (a meta.properties marks it done); seconds spent."""
    if (kafka.data_dir / "meta.properties").exists():
        return 0.0
    start = time.monotonic()
    args = ["format", "--config", str(kafka.properties), "--cluster-id", _cluster_id(),
            "--ignore-formatted"]
    if kafka.secure:
        args += ["--add-scram",
                 f"{SCRAM_MECHANISM}=[name={kafka.username},password={kafka.password}]"]
    log = kafka.home / "logs" / "format.log"
    with open(log, "wb") as out:
        rc = subprocess.run(_java(settings, kafka, "kafka.tools.StorageTool", *args),
                            stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        raise InfraError(f"{kafka.name}: storage format failed (exit {rc}); see {log}")
    return time.monotonic() - start


def admin_kwargs(kafka: KafkaNode) -> dict[str, object]:
    """kafka-python client arguments for this broker (SASL ones for the secured broker)."""
    kwargs: dict[str, object] = {"bootstrap_servers": kafka.bootstrap,
                                 "client_id": "cardiostream-infra", "request_timeout_ms": 5000,
                                 "bootstrap_timeout_ms": 5000}
    if kafka.secure:
        kwargs.update(security_protocol="SASL_PLAINTEXT", sasl_mechanism=SCRAM_MECHANISM,
                      sasl_plain_username=kafka.username, sasl_plain_password=kafka.password)
    return kwargs


def _metadata_ok(kafka: KafkaNode) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(**admin_kwargs(kafka))
    except (KafkaError, OSError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def start(settings: Settings, secure: bool = False) -> dict[str, float]:
    """Resolve the jars, format the storage and start the broker. Idempotent.

    Returns the seconds spent per step (``mvn``, ``format``, ``start``).
    """
    kafka = node(settings, secure)
    timings = {"mvn": resolve_jars(settings)}
    if procs.running_pid(kafka.proc) is None:
        if procs.port_open(kafka.port) or procs.port_open(kafka.controller_port):
            raise InfraError(f"{kafka.name}: port {kafka.port} or {kafka.controller_port} "
                             "is used by a process this run folder did not start")
        _render(settings, kafka)
        if kafka.secure and kafka.data_dir.exists():
            # SCRAM users exist only from format time on, so the secured broker is ephemeral:
            # formatted afresh with the current credentials at each start.
            shutil.rmtree(kafka.data_dir)
        timings["format"] = _format(settings, kafka)
        t0 = time.monotonic()
        procs.spawn(kafka.proc, _java(settings, kafka, "kafka.Kafka", str(kafka.properties)),
                    env={**os.environ, "LOG_DIR": str(kafka.home / "logs")})
        procs.wait_until(kafka.proc, lambda: _metadata_ok(kafka), 120, "a metadata request",
                         poll_s=0.5)
        timings["start"] = time.monotonic() - t0
    return timings


def stop(settings: Settings, secure: bool = False) -> bool:
    """Stop the broker (controlled shutdown on SIGTERM). True if it was running."""
    kafka = _node_for_stop(settings, secure)
    return procs.stop(kafka.proc, grace_s=30.0)


def _node_for_stop(settings: Settings, secure: bool) -> KafkaNode:
    # Stopping needs no credentials: only the folder and the ports.
    if not secure:
        return node(settings)
    return KafkaNode("kafka-secure", settings.infra.kafka_secure_port,
                     settings.infra.kafka_secure_controller_port,
                     settings.paths.run_dir / "kafka-secure")


def status(settings: Settings, secure: bool = False) -> tuple[int | None, KafkaNode]:
    """(pid or None, node) of the plain or secured broker."""
    kafka = _node_for_stop(settings, secure)
    return procs.running_pid(kafka.proc), kafka
