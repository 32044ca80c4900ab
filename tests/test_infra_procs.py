"""The infra shell's own logic, without Kafka or Redis: pid files, stop, targets, error lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cardiostream.infra import procs
from cardiostream.infra.errors import InfraError
from cardiostream.infra.prometheus import parse_targets


def _sleeper(tmp_path: Path, trap_term: bool = False) -> procs.Proc:
    marker = str(tmp_path / "sleeper-marker")
    proc = procs.Proc("sleeper", tmp_path / "s.pid", tmp_path / "s.log", marker=marker)
    body = "import signal,time\n"
    if trap_term:
        body += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    body += "time.sleep(60)\n"
    procs.spawn(proc, [sys.executable, "-c", body, marker])
    return proc


def test_spawned_process_is_found_then_stopped(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path)
    pid = procs.running_pid(proc)
    assert pid is not None and os.getpgid(pid) == pid  # own session: survives its parent
    assert procs.stop(proc, grace_s=5) is True
    assert procs.running_pid(proc) is None and not proc.pid_file.exists()
    assert procs.stop(proc) is False


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path, trap_term=True)
    assert procs.running_pid(proc) is not None
    assert procs.stop(proc, grace_s=1.0) is True
    assert procs.running_pid(proc) is None


def test_stale_or_foreign_pid_file_is_ignored(tmp_path: Path) -> None:
    proc = procs.Proc("x", tmp_path / "x.pid", tmp_path / "x.log", marker="no-such-marker-123")
    proc.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not ours: never signalled
    assert procs.running_pid(proc) is None
    assert not proc.pid_file.exists()


def test_missing_tool_is_one_line_error() -> None:
    with pytest.raises(InfraError) as err:
        procs.require_tool("no-such-tool-xyz", "install it")
    assert str(err.value) == "no-such-tool-xyz not found on PATH: install it"


@pytest.mark.parametrize(("spec", "jobs"), [
    ("127.0.0.1:9102", {"cardiostream": ["127.0.0.1:9102"]}),
    ("processor=127.0.0.1:9102,processor=localhost:9112,inference=127.0.0.1:9103",
     {"processor": ["127.0.0.1:9102", "localhost:9112"], "inference": ["127.0.0.1:9103"]}),
])
def test_parse_targets(spec: str, jobs: dict[str, list[str]]) -> None:
    assert parse_targets(spec) == jobs


@pytest.mark.parametrize("spec", ["", "nohostport", "a=b=c:1", "h:0", "h:99999", "x y:1"])
def test_parse_targets_rejects(spec: str) -> None:
    with pytest.raises(InfraError):
        parse_targets(spec)


def test_cli_reports_missing_mvn_in_one_line(tmp_path: Path) -> None:
    """With an empty cache and no mvn on PATH, `infra up kafka` says so and exits 1."""
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin"),
           "CARDIOSTREAM_PATHS__RUN_DIR": str(tmp_path / "run"),
           "CARDIOSTREAM_PATHS__CACHE_DIR": str(tmp_path / "cache"),
           "CARDIOSTREAM_INFRA__KAFKA_PORT": "29992",
           "CARDIOSTREAM_INFRA__KAFKA_CONTROLLER_PORT": "29993"}
    done = subprocess.run([sys.executable, "-m", "cardiostream.cli", "infra", "up", "kafka"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: mvn not found on PATH: install Maven (apt-get install -y maven)"]


def test_cli_rejects_unknown_service(tmp_path: Path) -> None:
    env = {**os.environ, "CARDIOSTREAM_PATHS__RUN_DIR": str(tmp_path / "run")}
    done = subprocess.run([sys.executable, "-m", "cardiostream.cli", "infra", "down", "zookeeper"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert "unknown service zookeeper" in done.stderr
