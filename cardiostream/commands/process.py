"""`cardiostream process`: run the Faust stream processor (samples -> windows).

Equivalent to ``faust -A streamer.app worker -l info``; this command adds the
Prometheus endpoint and ``--workers N`` (N worker processes in one consumer
group, each with its own metrics port: ``--metrics-port``, +1, +2, ...).
"""

from __future__ import annotations

import signal
import subprocess
import sys

import typer


def register(app: typer.Typer) -> None:
    app.command("process")(process)


def process(
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (one consumer group)."),
    app_id: str = typer.Option(None, help="Faust app id = consumer group (default: settings)."),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers host:port[,host:port]."),
    metrics_port: int = typer.Option(None, help="Prometheus port (default: settings; 0 = any, "
                                                "-1 = off)."),
    loglevel: str = typer.Option("info", help="Faust/worker log level."),
) -> None:
    """Consume device chunks, run the online DSP per device, produce beat/rhythm windows."""
    from cardiostream.settings import load_settings

    settings = load_settings(processor__app_id=app_id, kafka__bootstrap_servers=bootstrap)
    port = settings.metrics.processor_port if metrics_port is None else metrics_port
    if workers > 1:
        raise typer.Exit(_run_children(workers, port, loglevel))
    _run_worker(settings, port, loglevel)


def _run_worker(settings, port: int, loglevel: str) -> None:
    from cardiostream.metrics import start_metrics_server
    from streamer.app import create_app, worker
    from streamer.segments import ensure_topic

    ensure_topic(settings)
    app = create_app(settings)
    if port >= 0:
        bound = start_metrics_server(port)
        typer.echo(f"processor metrics on :{bound}/metrics", err=True)
    worker(app, loglevel).execute_from_commandline()


def _run_children(workers: int, port: int, loglevel: str) -> int:
    """Start ``workers`` single-worker processes (same env), forward SIGINT/SIGTERM, wait."""
    children = []
    for i in range(workers):
        child_port = port + i if port > 0 else port
        cmd = [sys.executable, "-m", "cardiostream.cli", "process", "--workers", "1",
               "--metrics-port", str(child_port), "--loglevel", loglevel]
        children.append(subprocess.Popen(cmd))

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return max(child.wait() for child in children)
