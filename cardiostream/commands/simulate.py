"""`cardiostream simulate RECORD...`: simulated bedside monitors replaying MIT-BIH records."""

from __future__ import annotations

import math
from typing import Annotated

import typer

Opt = typer.Option


def parse_speed(text: str) -> float:
    """``1`` (real time), ``N`` (N times real time) or ``max`` (as fast as possible)."""
    if text.strip().lower() == "max":
        return math.inf
    try:
        speed = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use a positive number or 'max'") from None
    if not (math.isfinite(speed) and speed > 0):
        raise typer.BadParameter(f"{text!r}: use a positive number or 'max'")
    return speed


def simulate(
    records: Annotated[list[str], typer.Argument(
        help="MIT-BIH record names or sets (DS1, DS2, ALL, MITDB); comma lists work too.")],
    devices: Annotated[int | None, Opt(min=1, help="Devices (default: one per record; "
                                       "records are reused cyclically).")] = None,
    speed: Annotated[str, Opt(help="1 (real time), N (N x real time) or max.")] = "1",
    loop: Annotated[bool, Opt("--loop/--once", help="Replay forever or once.")] = True,
    chunk_s: Annotated[float, Opt(min=0.001, help="Seconds of signal per message.")] = 0.5,
    unit: Annotated[str, Opt(help="Care unit of every device.")] = "ward-1",
    fs: Annotated[float | None, Opt(help=(
        "Resample records to this rate, as a device at that rate would send them "
        "(100-2000 Hz: 125, 250, 257, 300, 500 ...; cardiostream.schemas.supported_fs)."))] = None,
    seconds: Annotated[float | None, Opt(min=0.01, help="Replay only the first SECONDS "
                                         "of each record.")] = None,
    duration_s: Annotated[float | None, Opt(min=0.0, help="Stop after this wall time.")] = None,
    topic: Annotated[str | None, Opt(help="Samples topic (default: settings).")] = None,
    bootstrap_servers: Annotated[str | None, Opt(help="host:port[,host:port].")] = None,
    compression: Annotated[str, Opt(help="auto|none|gzip|lz4|zstd|snappy.")] = "auto",
    linger_ms: Annotated[int, Opt(min=0, help="Producer batching delay.")] = 50,
    gateway_bundle: Annotated[int, Opt(min=0, help="Act as a telemetry gateway: send the "
                                       "chunks as one record per partition of at most N "
                                       "chunks, after at most the linger (0: one record per "
                                       "chunk, keyed by device).")] = 0,
    gateway_linger_ms: Annotated[float, Opt(min=0.0, help="With --gateway-bundle: how long "
                                            "a chunk may wait for its bundle to fill.")] = 100.0,
    seed: Annotated[int, Opt(help="Seed of every fault generator.")] = 0,
    fault_drop: Annotated[float, Opt(help="P(chunk dropped).")] = 0.0,
    fault_duplicate: Annotated[float, Opt(help="P(chunk sent twice).")] = 0.0,
    fault_reorder: Annotated[float, Opt(help="P(chunk sent after the next).")] = 0.0,
    fault_lead_off: Annotated[float, Opt(help="P(lead-off episode starts) per chunk.")] = 0.0,
    fault_lead_off_s: Annotated[float, Opt(help="Lead-off episode length, s.")] = 5.0,
    fault_noise: Annotated[float, Opt(help="P(noise burst starts) per chunk.")] = 0.0,
    fault_noise_s: Annotated[float, Opt(help="Noise burst length, s.")] = 10.0,
    fault_noise_kind: Annotated[str, Opt(help="NSTDB noise: ma (muscle) or bw "
                                         "(baseline wander).")] = "ma",
    fault_noise_snr_db: Annotated[float, Opt(help="Noise burst SNR, dB.")] = 6.0,
    fault_jitter_ms: Annotated[float, Opt(help="Std dev of device clock jitter, ms.")] = 0.0,
    metrics_port: Annotated[int | None, Opt(help="Prometheus port (default: settings; "
                                            "0 = any, -1 = off).")] = None,
) -> None:
    """Replay WFDB records as simulated devices into the samples topic (kafka-python)."""
    import logging
    import signal
    import threading

    from cardiostream.kafka_config import KafkaConfigError
    from cardiostream.records import expand_records
    from cardiostream.settings import load_settings
    from streamer.faults import FaultConfig
    from streamer.simulator import Simulator, assign_devices

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    names = expand_records(records)
    try:
        faults = FaultConfig(seed, fault_drop, fault_duplicate, fault_reorder, fault_lead_off,
                             fault_lead_off_s, fault_noise, fault_noise_s, fault_noise_kind,
                             fault_noise_snr_db, fault_jitter_ms)  # type: ignore[arg-type]
        settings = load_settings(kafka__bootstrap_servers=bootstrap_servers,
                                 topics__samples=topic)
        specs = assign_devices(names, devices or len(names), fs_hz=fs, unit=unit)
        sim = Simulator(settings, specs, speed=parse_speed(speed), loop=loop, faults=faults,
                        chunk_s=chunk_s, duration_s=duration_s, record_s=seconds,
                        compression=compression, linger_ms=linger_ms,
                        gateway_bundle=gateway_bundle,
                        gateway_linger_s=gateway_linger_ms / 1000.0)
    except (ValueError, KafkaConfigError) as exc:
        raise typer.BadParameter(str(exc)) from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        typer.echo(f"signal {signum}: stopping, flushing the producer", err=True)
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C stops at once

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    typer.echo(f"{len(specs)} devices -> {settings.topics.samples} at "
               f"{settings.kafka.bootstrap_servers}, speed {speed}, "
               f"{'loop' if loop else 'once'}", err=True)
    exporter = _export_metrics(sim, settings, metrics_port)
    try:
        stats = _run(sim, stop)
    finally:
        if exporter is not None:
            exporter.stop()
    typer.echo(f"sent {stats.chunks_sent} chunks, {stats.samples_sent} samples, "
               f"{stats.bytes_sent} bytes in {stats.wall_s:.1f} s; send errors "
               f"{stats.send_errors}; faults {stats.faults}", err=True)
    if stats.send_errors:
        raise typer.Exit(1)


def _export_metrics(sim, settings, port: int | None):  # noqa: ANN001, ANN202 - lazy types
    """Serve /metrics and copy the simulator's live counters into it; None when off."""
    from cardiostream.metrics import start_metrics_server
    from streamer.simulator_metrics import StatsExporter

    port = settings.metrics.simulator_port if port is None else port
    if port < 0:
        return None
    exporter = StatsExporter(sim.stats).start()
    typer.echo(f"simulator metrics on :{start_metrics_server(port)}/metrics", err=True)
    return exporter


def _run(sim, stop):  # noqa: ANN001, ANN202 - lazily imported types
    from kafka.errors import KafkaError

    try:
        return sim.run(stop)
    except KafkaError as exc:
        typer.echo(f"error: Kafka at {sim.settings.kafka.bootstrap_servers}: {exc} "
                   "(is it up? `cardiostream infra up`)", err=True)
        raise typer.Exit(2) from None
    except (FileNotFoundError, ValueError) as exc:   # missing record, chunk_s vs fs, ...
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
