"""`cardiostream infer`: run the inference worker (windows -> models -> alarms in Redis)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("infer")(infer)


def infer(
    model_dir: str = typer.Option(None, help="Model folder with beat/ and rhythm/ "
                                              "(default: settings.paths.model_dir)."),
    max_batch: int = typer.Option(None, min=1, help="Largest batch (windows)."),
    max_wait_ms: float = typer.Option(None, min=0, help="Longest wait to fill a batch (ms)."),
    device: str = typer.Option(None, help="auto | cpu | cuda."),
    group_id: str = typer.Option(None, help="Kafka consumer group."),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers host:port[,host:port]."),
    redis_url: str = typer.Option(None, help="Redis URL."),
    metrics_port: int = typer.Option(None, help="Prometheus port (default: settings; 0 = any, "
                                                "-1 = off)."),
    loglevel: str = typer.Option("info", help="Log level."),
) -> None:
    """Consume beat/rhythm windows, classify them in micro-batches, raise alarms in Redis."""
    import logging
    import signal

    from cardiostream.metrics import start_metrics_server
    from cardiostream.settings import load_settings
    from inference.worker import serve

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: "
                                                       "%(message)s")
    settings = load_settings(paths__model_dir=Path(model_dir) if model_dir else None,
                             inference__max_batch=max_batch,
                             inference__max_wait_ms=max_wait_ms, inference__device=device,
                             inference__group_id=group_id, kafka__bootstrap_servers=bootstrap,
                             redis__url=redis_url)
    port = settings.metrics.inference_port if metrics_port is None else metrics_port
    if port >= 0:
        typer.echo(f"inference metrics on :{start_metrics_server(port)}/metrics", err=True)
    stopping: list[int] = []

    def stop(signum, _frame) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    done = serve(settings, lambda: bool(stopping))
    typer.echo(f"inference stopped after {done} windows", err=True)
