"""`cardiostream annotate RECORD... --out DIR`: the stream's DSP over whole WFDB records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate)


def annotate(
    records: Annotated[list[str], typer.Argument(help=(
        "Record names, comma lists or sets (DS1, DS2, ALL = the 44 non-paced MIT-BIH)."))],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Output folder.")],
    ext: str = typer.Option("cs", "--ext", help="Annotator name (file extension)."),
    data: Annotated[Path | None, typer.Option("--data", file_okay=False, help=(
        "Folder holding the records (default: <paths.data_dir>/mitdb)."))] = None,
    model: Annotated[Path | None, typer.Option("--model", file_okay=False, help=(
        "Model folder for beat labels (default: unlabelled, every beat Q)."))] = None,
    chunk_s: float = typer.Option(0.5, "--chunk-s", min=0.01, help=(
        "Chunk length fed to the processor, s (the result does not depend on it).")),
) -> None:
    """Write OUT/RECORD.EXT (one annotation per detected beat) and copy RECORD.hea."""
    from cardiostream.annotate import annotate_record, unlabelled
    from cardiostream.records import expand_records, load_record
    from cardiostream.settings import load_settings
    from cardiostream.signal import DEFAULT_SPEC

    labeller = unlabelled
    if model is not None:
        from cardiostream.classify import ModelLabeller
        from cardiostream.features import ModelLoadError

        try:
            labeller = ModelLabeller(model)
        except (ModelLoadError, OSError, RuntimeError) as exc:
            typer.secho(f"--model {model}: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
    source = data or load_settings().paths.mitdb
    names = expand_records(records)
    if not names:
        raise typer.BadParameter("no records given", param_hint="RECORD")
    for name in names:
        try:
            record = load_record(source, name)
            path, windows = annotate_record(record, source, out, DEFAULT_SPEC, ext, labeller,
                                            chunk_s)
        except (FileNotFoundError, ValueError, OSError) as exc:
            typer.secho(f"annotate {name}: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"{name}: {len(windows.beats)} beats -> {path}")
