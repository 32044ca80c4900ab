"""`cardiostream infra up|down|status|prometheus`: local Kafka, Redis and Prometheus.

Everything lives under Settings().paths.run_dir (data, logs, pid files) and
listens on loopback only; the Kafka jars are cached under Settings().paths.cache_dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

infra_app = typer.Typer(no_args_is_help=True,
                        help="Local Kafka (KRaft), Redis and Prometheus for dev and tests.")

SERVICES_HELP = "Services to act on (kafka, redis, prometheus, kafka-secure, redis-secure)."
UpServices = Annotated[list[str] | None,
                       typer.Argument(help=SERVICES_HELP + " (default: kafka redis)")]
DownServices = Annotated[list[str] | None, typer.Argument(help=SERVICES_HELP + " (default: all)")]


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@infra_app.command("up")
def up(
    services: UpServices = None,
    with_prometheus: bool = typer.Option(False, "--with-prometheus",
                                         help="Also start Prometheus scraping the workers."),
    secure: bool = typer.Option(False, "--secure", help=(
        "Also start a SASL/SCRAM broker and an ACL Redis; credentials from "
        "CARDIOSTREAM_KAFKA__SASL_USERNAME/_PASSWORD and CARDIOSTREAM_REDIS__USERNAME/_PASSWORD.")),
    targets: str = typer.Option(None, help="Prometheus targets: job=host:port,... (job= optional)"),
) -> None:
    """Start the local infrastructure (idempotent: running services are left as they are)."""
    from cardiostream.infra import prometheus, stack
    from cardiostream.infra.errors import InfraError
    from cardiostream.settings import load_settings

    settings = load_settings()
    try:
        jobs = prometheus.parse_targets(targets) if targets else None
        names = services or stack.default_up(with_prometheus or jobs is not None, secure)
        timings = stack.up(settings, names, jobs)
    except InfraError as err:
        _fail(err)
    _warn_if_clients_look_elsewhere(settings)
    for name, steps in timings.items():
        if "start" not in steps and "reload" not in steps:
            typer.echo(f"{name}: already running")
            continue
        spent = ", ".join(f"{k} {v:.1f} s" for k, v in steps.items() if v > 0)
        typer.echo(f"{name}: up ({spent})")


def _warn_if_clients_look_elsewhere(settings) -> None:  # noqa: ANN001 - Settings
    """Clients read kafka.bootstrap_servers and redis.url, not the infra ports: flag a mismatch."""
    k, r = settings.infra.kafka_port, settings.infra.redis_port
    if settings.kafka.bootstrap_servers not in (f"127.0.0.1:{k}", f"localhost:{k}"):
        typer.secho(f"warning: CARDIOSTREAM_KAFKA__BOOTSTRAP_SERVERS="
                    f"{settings.kafka.bootstrap_servers} is not this broker (127.0.0.1:{k})",
                    fg=typer.colors.YELLOW, err=True)
    if f":{r}/" not in settings.redis.url:
        typer.secho(f"warning: CARDIOSTREAM_REDIS__URL does not use this Redis port ({r})",
                    fg=typer.colors.YELLOW, err=True)


@infra_app.command("down")
def down(services: DownServices = None) -> None:
    """Stop the services (SIGTERM, wait, then SIGKILL); data stays in the run folder."""
    from cardiostream.infra import stack
    from cardiostream.infra.errors import InfraError
    from cardiostream.settings import load_settings

    try:
        stopped = stack.down(load_settings(), services or None)
    except InfraError as err:
        _fail(err)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@infra_app.command("status")
def status() -> None:
    """A table of the services: state, pid, address, health and log file."""
    from rich.console import Console
    from rich.table import Table

    from cardiostream.infra import stack
    from cardiostream.settings import load_settings

    table = Table(title="cardiostream infra")
    for col in ("service", "state", "pid", "address", "health", "log"):
        table.add_column(col)
    for row in stack.status(load_settings()):
        state = "[green]running[/]" if row.pid else "[dim]stopped[/]"
        table.add_row(row.name, state, str(row.pid or "-"), row.address, row.detail, str(row.log))
    Console(width=160).print(table)


@infra_app.command("prometheus")
def prometheus_cmd(
    targets: str = typer.Option(None, help="Scrape targets: job=host:port,... (job= optional) "
                                           "(default: the workers' ports from settings.metrics)"),
    config: Annotated[Path | None, typer.Option(
        help="Use this prometheus.yml instead of generating one.")] = None,
) -> None:
    """(Re)configure Prometheus' scrape targets and start it, or reload it if it runs."""
    from cardiostream.infra import prometheus
    from cardiostream.infra.errors import InfraError
    from cardiostream.settings import load_settings

    settings = load_settings()
    try:
        jobs = prometheus.parse_targets(targets) if targets else None
        if jobs is None and config is None:
            jobs = prometheus.default_targets(settings)
        steps = prometheus.start(settings, jobs, config)
    except InfraError as err:
        _fail(err)
    scraped = "; ".join(f"{j}={','.join(t)}" for j, t in (jobs or {}).items()) or str(config)
    typer.echo(f"prometheus: {', '.join(steps)} at {prometheus.url(settings)}, scraping {scraped}")


def register(app: typer.Typer) -> None:
    app.add_typer(infra_app, name="infra")
