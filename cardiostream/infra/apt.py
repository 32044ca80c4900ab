"""Install a missing Debian package (redis-server, prometheus) with apt-get.

Debian's postinst scripts start the packaged service on its default port; a
``policy-rc.d`` that answers 101 ("action forbidden") keeps them from doing so,
so nothing but what `cardiostream infra up` starts is ever left running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cardiostream.infra import procs
from cardiostream.infra.errors import InfraError

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def ensure(binary: str, package: str, log_file: Path) -> str:
    """Path of ``binary``, installing Debian ``package`` first when it is missing."""
    found = shutil.which(binary)
    if found is not None:
        return found
    apt = procs.require_tool("apt-get", f"install {package} by hand ({binary} is missing)")
    if os.geteuid() != 0:
        raise InfraError(f"{binary} is missing and installing {package} needs root: "
                         f"sudo apt-get install -y {package}")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with _services_forbidden():
        if _install(apt, package, log_file) != 0:
            _run([apt, "update"], log_file)
            if _install(apt, package, log_file) != 0:
                raise InfraError(f"apt-get install {package} failed; see {log_file}")
    found = shutil.which(binary)
    if found is None:
        raise InfraError(f"{package} installed but {binary} is not on PATH")
    return found


def _install(apt: str, package: str, log_file: Path) -> int:
    return _run([apt, "install", "-y", "--no-install-recommends", package], log_file)


def _run(argv: list[str], log_file: Path) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log_file, "ab") as log:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, env=env, check=False).returncode


class _services_forbidden:  # noqa: N801 - used as a context manager
    """Temporarily forbid service starts during apt-get unless a policy already exists."""

    def __enter__(self) -> None:
        self.created = not POLICY_RC_D.exists()
        if self.created:
            POLICY_RC_D.write_text("#!/bin/sh\n# cardiostream infra: no service starts\nexit 101\n")
            POLICY_RC_D.chmod(0o755)

    def __exit__(self, *exc: object) -> None:
        if self.created:
            POLICY_RC_D.unlink(missing_ok=True)
