"""`cardiostream score REF_DIR TEST_DIR --ext cs`: EC57 beat-by-beat (and AF episode) scores.

Figures equal PhysioNet's ``bxb -L ... -f 5:0`` + ``sumstats`` on the same files
(tests/test_scoring.py checks all 44 MIT-BIH records against bxb's own output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_CONVENTIONS = ("bxb", "dechazal", "both")


def register(app: typer.Typer) -> None:
    app.command("score")(score)


RefDir = Annotated[Path, typer.Argument(exists=True, file_okay=False, help=(
    "Reference annotations and headers (e.g. mitdb)."))]
TestDir = Annotated[Path, typer.Argument(exists=True, file_okay=False, help=(
    "Test annotation files RECORD.EXT."))]
Records = Annotated[list[str] | None, typer.Option("--records", help=(
    "Records, comma lists or sets (DS1, DS2, ALL); repeatable. Default: the 44 "
    "non-paced MIT-BIH records present in TEST_DIR."))]


def score(
    ref_dir: RefDir,
    test_dir: TestDir,
    ext: str = typer.Option("cs", "--ext", help="Test annotator (file extension)."),
    ref_ext: str = typer.Option("atr", "--ref-ext", help="Reference annotator."),
    records: Records = None,
    convention: str = typer.Option("bxb", help=(
        "Class convention: bxb (e, j, n are S; PhysioNet's figures), dechazal (e, j, n "
        "relabelled N; the inter-patient literature), or both.")),
    start: float = typer.Option(300.0, "--start", min=0.0, help="Score from this time, s."),
    window: float = typer.Option(0.15, "--window", min=0.001, help="Match window, s."),
    json_path: Annotated[Path | None, typer.Option("--json", help="JSON report path.")] = None,
    md_path: Annotated[Path | None, typer.Option("--md", help="Markdown report path.")] = None,
    png_path: Annotated[Path | None, typer.Option("--png", help="Confusion PNG path.")] = None,
    text_path: Annotated[Path | None, typer.Option("--text", help=(
        "bxb line-format report + sumstats summary, diffable with PhysioNet's."))] = None,
) -> None:
    """Score test beat annotations against the reference with bxb's EC57 rules."""
    from cardiostream.records import expand_records
    from cardiostream.score_report import bxb_text, write_outputs
    from cardiostream.scoring import ScoringError, score_records

    if convention not in _CONVENTIONS:
        raise typer.BadParameter(f"{convention!r}; choose one of {', '.join(_CONVENTIONS)}",
                                 param_hint="--convention")
    names = expand_records(records) if records else None
    wanted = ("bxb", "dechazal") if convention == "both" else (convention,)
    try:
        reports = [score_records(ref_dir, test_dir, names, ext, ref_ext, start, window, c)
                   for c in wanted]
    except (ScoringError, OSError, ValueError) as exc:
        typer.secho(f"score failed: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    for rep in reports:
        _print(rep)
    write_outputs(reports, json_path, md_path, png_path)
    if text_path:
        text_path.write_text("".join(bxb_text(r) for r in reports))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _print(report) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = ("qrs_se", "qrs_ppv", "veb_se", "veb_ppv", "sveb_se", "sveb_ppv")
    table = Table(title=f"EC57 beat-by-beat, convention {report.convention} "
                        f"(from {report.start_s:g} s, {report.window_s * 1000:g} ms window)")
    for col in ("record", "beats", "QRS Se", "QRS +P", "VEB Se", "VEB +P", "SVEB Se",
                "SVEB +P", "RR err ms"):
        table.add_column(col, justify="right")
    for r in report.records:
        st = r.stats
        table.add_row(r.record, str(int(r.matrix[:5].sum())), *(_fmt(st[k]) for k in keys),
                      _fmt(r.rr_error_ms))
    table.add_section()
    table.add_row("Gross", str(report.totals["qrs"]), *(_fmt(report.gross[k]) for k in keys), "")
    table.add_row("Average", "", *(_fmt(report.average[k]) for k in keys),
                  _fmt(report.average["rr_error_ms"]))
    classes = Table(title=f"Per class, gross ({report.convention})")
    for col in ("class", "Se", "+P", "FPR", "TP", "FN", "FP"):
        classes.add_column(col, justify="right")
    for c, d in report.gross_classes.items():
        classes.add_row(c, _fmt(d["se"]), _fmt(d["ppv"]), _fmt(d["fpr"]), str(d["tp"]),
                        str(d["fn"]), str(d["fp"]))
    console = Console(width=max(Console().width, 110))  # the table needs ~100 columns
    console.print(table)
    console.print(classes)
    eps = report.episodes
    if eps is not None:
        console.print(f"AF episodes (AFIB+AFL): Se {_fmt(eps.se)}  +P {_fmt(eps.ppv)}  "
                      f"duration Se {_fmt(eps.duration_se)}  duration +P "
                      f"{_fmt(eps.duration_ppv)}  (ref {eps.ref_s:.0f} s, test {eps.test_s:.0f} s)")
