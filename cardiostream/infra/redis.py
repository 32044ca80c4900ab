"""Redis from Debian's ``redis-server``, loopback only, its config and AOF under the run folder.

``--secure`` starts a second instance on ``redis_secure_port`` whose default user
is disabled and whose only user is the ACL user from ``settings.redis``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

from cardiostream.infra import apt, procs
from cardiostream.infra.errors import InfraError
from cardiostream.settings import REPO_ROOT, Settings

TEMPLATE = REPO_ROOT / "infra" / "redis" / "redis.conf"


@dataclass(frozen=True, slots=True)
class RedisNode:
    """One Redis instance's port, folder and (for the secured one) ACL user."""

    name: str
    port: int
    home: Path
    username: str | None = None
    password: str | None = None

    @property
    def conf(self) -> Path:
        return self.home / "redis.conf"

    @property
    def proc(self) -> procs.Proc:
        return procs.Proc(self.name, self.home / "redis.pid", self.home / "stdout.log",
                          marker=f"127.0.0.1:{self.port}")


def node(settings: Settings, secure: bool = False, need_credentials: bool = True) -> RedisNode:
    """The plain instance, or the ACL one with credentials from ``settings.redis``."""
    run = settings.paths.run_dir
    if not secure:
        return RedisNode("redis", settings.infra.redis_port, run / "redis")
    user, secret = settings.redis.username, settings.redis.password
    if need_credentials and (not user or secret is None or not secret.get_secret_value()):
        raise InfraError("--secure needs CARDIOSTREAM_REDIS__USERNAME and "
                         "CARDIOSTREAM_REDIS__PASSWORD in the environment")
    return RedisNode("redis-secure", settings.infra.redis_secure_port, run / "redis-secure",
                     user, secret.get_secret_value() if secret is not None else None)


def _render(r: RedisNode) -> None:
    (r.home / "data").mkdir(parents=True, exist_ok=True)
    acl = ""
    if r.username is not None:
        acl = (f"user default off\n"
               f"user {r.username} on >{r.password} ~* &* +@all")
    text = Template(TEMPLATE.read_text()).substitute(
        port=r.port, data_dir=r.home / "data", log_file=r.home / "redis.log", acl=acl)
    r.conf.write_text(text)
    r.conf.chmod(0o600)


def client(r: RedisNode):  # noqa: ANN201 - redis.Redis, imported lazily
    import redis

    return redis.Redis(host="127.0.0.1", port=r.port, username=r.username, password=r.password,
                       socket_timeout=2, socket_connect_timeout=1)


def ping(r: RedisNode) -> bool:
    import redis

    try:
        with client(r) as c:
            return bool(c.ping())
    except redis.RedisError:
        return False


def start(settings: Settings, secure: bool = False) -> dict[str, float]:
    """Install redis-server when missing, then start the instance. Idempotent; seconds spent."""
    r = node(settings, secure)
    server = apt.ensure("redis-server", "redis-server", settings.paths.run_dir / "apt.log")
    if procs.running_pid(r.proc) is not None:
        return {}
    if procs.port_open(r.port):
        raise InfraError(f"{r.name}: port {r.port} is used by a process this run folder "
                         "did not start")
    _render(r)
    t0 = time.monotonic()
    # The bind address:port in argv is the pid-file marker (redis rewrites its process title).
    procs.spawn(r.proc, [server, str(r.conf), "--bind", "127.0.0.1", "--port", str(r.port)])
    procs.wait_until(r.proc, lambda: ping(r), 30, "PING")
    return {"start": time.monotonic() - t0}


def stop(settings: Settings, secure: bool = False) -> bool:
    """SIGTERM (Redis flushes its AOF and exits). True if it was running."""
    return procs.stop(node(settings, secure, need_credentials=False).proc, grace_s=20.0)


def status(settings: Settings, secure: bool = False) -> tuple[int | None, RedisNode]:
    r = node(settings, secure, need_credentials=False)
    return procs.running_pid(r.proc), r
