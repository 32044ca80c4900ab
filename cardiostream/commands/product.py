"""`cardiostream demo`, `cardiostream replay` and `cardiostream bench capacity`."""

from __future__ import annotations

from pathlib import Path

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks of the whole pipeline.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("replay")(replay)
    app.add_typer(bench_app, name="bench")


def demo(
    patients: int = typer.Option(16, min=1, help="Patients on the ward (one device each)."),
    speed: str = typer.Option("1", help="1 (real time), N or max."),
    unit: str = typer.Option("ward-1", help="Care unit."),
    duration_s: float = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
) -> None:
    """Stream a ward of MIT-BIH patients through the whole pipeline and watch it live."""
    from rich.console import Console

    from cardiostream.settings import load_settings
    from pipeline.demo import DemoConfig, run_demo, summary_table

    console = Console()
    result = run_demo(load_settings(), DemoConfig(patients, speed, unit, duration_s), console)
    console.print(summary_table(result))


def replay(
    records: list[str] = typer.Option(["DS2"], "--records", help="Records or sets (DS1, DS2)."),
    data: Path = typer.Option(None, help="Folder of the WFDB records (default: settings mitdb)."),
    speed: str = typer.Option("max", help="1, N or max."),
    out: Path = typer.Option(Path("out/replay"), help="Annotation files and the score report."),
    model: Path = typer.Option(None, help="Model folder (default: settings)."),
    ext: str = typer.Option("cs", help="Annotation file extension."),
    seconds: float = typer.Option(None, help="Replay only the first SECONDS of each record."),
    compare: Path = typer.Option(None, help="evaluate's JSON report to compare figures with."),
) -> None:
    """Replay records as devices through Kafka → Faust → inference → Redis and score it."""
    from rich.console import Console

    from cardiostream.records import expand_records
    from cardiostream.settings import load_settings
    from pipeline.replay import ReplayConfig, run_replay

    settings = load_settings(paths__model_dir=model)
    if data is not None:
        settings = load_settings(paths__model_dir=model, paths__data_dir=data.parent)
    cfg = ReplayConfig(expand_records(records), speed, out, ext, seconds, compare)
    code = run_replay(settings, cfg, Console())
    raise typer.Exit(code)


@bench_app.command("capacity")
def capacity(
    levels: str = typer.Option("250,500,1000,1500,2000,2500",
                               help="Comma list of device counts to hold, in order."),
    hold_s: float = typer.Option(60.0, help="Seconds held at each level."),
    out: Path = typer.Option(Path("docs/bench"), help="Folder for the JSON and PNG."),
) -> None:
    """Ramp real-time 360 Hz two-lead devices; report the largest level that keeps up."""
    from rich.console import Console

    from cardiostream.settings import load_settings
    from pipeline.capacity import CapacityConfig, run_capacity

    cfg = CapacityConfig(tuple(int(x) for x in levels.split(",")), hold_s, out)
    run_capacity(load_settings(), cfg, Console())
