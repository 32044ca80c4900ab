"""Start, find and stop the local infrastructure processes.

Each service is one detached process (its own session, so it outlives the
`cardiostream infra up` that started it) with a pid file and a log file under
the run folder. A pid file is trusted only while ``/proc/<pid>/cmdline`` still
contains the service's marker (its config path), so a recycled pid is never
signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cardiostream.infra.errors import InfraError


@dataclass(frozen=True, slots=True)
class Proc:
    """Where one managed process keeps its pid and log, and how to recognise it."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str  # a string that must appear in the process's command line


def require_tool(tool: str, hint: str) -> str:
    """Absolute path of ``tool`` on PATH, else a one-line InfraError with an install hint."""
    found = shutil.which(tool)
    if found is None:
        raise InfraError(f"{tool} not found on PATH: {hint}")
    return found


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # A zombie (state Z, after the comm field in parentheses) has exited already.
    if stat.rpartition(")")[2].split()[0] == "Z":
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def running_pid(proc: Proc) -> int | None:
    """The live pid of ``proc`` or None; removes a stale pid file."""
    try:
        pid = int(proc.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    cmd = _cmdline(pid)
    for _ in range(50):
        # Right after fork/exec the kernel may briefly show an empty command line.
        if cmd != "":
            break
        time.sleep(0.01)
        cmd = _cmdline(pid)
    if cmd is None or proc.marker not in cmd:
        proc.pid_file.unlink(missing_ok=True)
        return None
    return pid


def spawn(proc: Proc, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached, output appended to the log file; returns the pid."""
    proc.log_file.parent.mkdir(parents=True, exist_ok=True)
    proc.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(proc.log_file, "ab") as log:
        child = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env,
        )
    proc.pid_file.write_text(f"{child.pid}\n")
    return child.pid


def stop(proc: Proc, grace_s: float = 20.0) -> bool:
    """SIGTERM, wait up to ``grace_s`` seconds, then SIGKILL. True if it was running."""
    pid = running_pid(proc)
    if pid is None:
        return False
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, grace_s):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    proc.pid_file.unlink(missing_ok=True)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _cmdline(pid) is None:
            return True
        time.sleep(0.1)
    return _cmdline(pid) is None


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(
    proc: Proc, ready: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.25
) -> float:
    """Poll ``ready()`` until true; seconds waited. Fails fast if the process died."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if ready():
            return time.monotonic() - start
        if running_pid(proc) is None:
            raise InfraError(f"{proc.name} exited while waiting for {what}; see {proc.log_file}")
        time.sleep(poll_s)
    raise InfraError(f"{proc.name}: {what} not ready after {timeout_s:.0f} s; see {proc.log_file}")


def tail(path: Path, n_lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n_lines:])
    except FileNotFoundError:
        return ""
