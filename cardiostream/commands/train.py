"""`cardiostream train beats|rhythm` and `cardiostream evaluate --model DIR`.

Training imports torch and the training package lazily, inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

train_app = typer.Typer(no_args_is_help=True, help="Train the beat and rhythm models.")

OutDir = Annotated[Path | None, typer.Option("--out", file_okay=False, help=(
    "Model folder to write (DIR/beat, DIR/rhythm). Default: paths.model_dir."))]
DataDir = Annotated[Path | None, typer.Option("--data", file_okay=False, help=(
    "MIT-BIH folder (default: <paths.data_dir>/mitdb)."))]


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("evaluate")(evaluate)


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn())


@train_app.command("beats")
def beats(
    out: OutDir = None,
    data: DataDir = None,
    seed: int = typer.Option(0, help="Random seed (weights, batches, augmentation)."),
    epochs: int = typer.Option(4, min=1, help="Training epochs (best validation epoch kept)."),
    imbalance: str = typer.Option("focal", help=(
        "weighted | focal | sampler (focal won on the DS1 validation patients, "
        "docs/training_sweep.md).")),
    augment: bool = typer.Option(True, help="Amplitude/baseline/NSTDB noise augmentation."),
    amp_with_template: bool = typer.Option(True, help=(
        "Scale each beat's template with the beat in the amplitude augmentation, as a "
        "device's gain does (training/augment.py; won on the DS1 validation patients with "
        "features v3, docs/training_selection.md).")),
    suppress: str = typer.Option("F", help=(
        "Comma-separated classes trained on but never decided ('' for none). F: DS1 holds "
        "its fusion beats almost only in record 208, and on the DS1 validation patients "
        "98.5 % of F decisions were wrong (docs/training_selection.md).")),
    premature_aug: float = typer.Option(0.02, min=0.0, max=0.5, help=(
        "Share of each batch's N beats copied as synthetic premature S beats "
        "(0.02 won on the DS1 validation patients, docs/training_selection.md).")),
    members: int = typer.Option(3, min=1, max=9, help=(
        "Seeds seed, seed+1, ... averaged into one program (BeatEnsemble).")),
) -> None:
    """Train the AAMI beat classifier on DS1 (patient-level validation inside DS1)."""
    import time

    from rich.console import Console

    from cardiostream.settings import load_settings
    from cardiostream.signal import DEFAULT_SPEC
    from training.export import export_beats
    from training.train import BeatTrainConfig, train_beat_ensemble

    if imbalance not in ("weighted", "focal", "sampler"):
        raise typer.BadParameter(f"{imbalance!r}: weighted, focal or sampler",
                                 param_hint="--imbalance")
    t0 = time.perf_counter()
    settings = load_settings()
    suppressed = tuple(c.strip() for c in suppress.split(",") if c.strip())
    if unknown := [c for c in suppressed if c not in "NSVFQ" or len(c) != 1]:
        raise typer.BadParameter(f"{unknown}: classes are N, S, V, F, Q", param_hint="--suppress")
    cfg = BeatTrainConfig(seed=seed, epochs=epochs, imbalance=imbalance, augment=augment,
                          amp_with_template=amp_with_template, suppressed=suppressed,
                          premature_aug=premature_aug)
    with _progress() as progress:
        result = train_beat_ensemble(cfg, members, data or settings.paths.mitdb,
                                     settings.paths.cache_dir, DEFAULT_SPEC, progress)
    folder = export_beats(result, out or settings.paths.model_dir, DEFAULT_SPEC)
    Console().print(f"wrote {folder}; validation (DS1 patients {', '.join(cfg.val_records)}): "
                  f"score {result.val_metrics['score']:.4f}; wall {time.perf_counter() - t0:.1f} s")


@train_app.command("rhythm")
def rhythm(
    out: OutDir = None,
    data: DataDir = None,
    seed: int = typer.Option(0, help="Random seed."),
    folds: int = typer.Option(5, min=2, help="Patient-level cross-validation folds."),
    records: Annotated[list[str] | None, typer.Option("--records", help=(
        "Records or sets to train on (default ALL: the 44 non-paced records; DS1 gives "
        "a rhythm model that has not seen DS2, for evaluate --rhythm-model)."))] = None,
) -> None:
    """Train the rhythm detector (patient-level CV report, final fit on all its records)."""
    import json
    import time

    from cardiostream.records import NON_PACED, expand_records
    from cardiostream.settings import load_settings
    from cardiostream.signal import DEFAULT_SPEC
    from training.rhythm import RhythmTrainConfig, export_rhythm, train_rhythm

    t0 = time.perf_counter()
    settings = load_settings()
    out_dir = out or settings.paths.model_dir
    chosen = tuple(expand_records(records)) if records else NON_PACED
    result = train_rhythm(RhythmTrainConfig(seed=seed, folds=folds, records=chosen),
                          data or settings.paths.mitdb, settings.paths.cache_dir, DEFAULT_SPEC,
                          cv_dir=settings.paths.run_dir / "rhythm-cv")
    folder = export_rhythm(result, out_dir, DEFAULT_SPEC)
    typer.echo(json.dumps(result.cv_summary, indent=1))
    typer.echo(f"wrote {folder}; wall {time.perf_counter() - t0:.1f} s")


def evaluate(
    model: Annotated[Path, typer.Option("--model", exists=True, file_okay=False, help=(
        "Model folder (DIR/beat, DIR/rhythm)."))],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Report folder.")],
    records: Annotated[list[str] | None, typer.Option("--records", help=(
        "Records or sets (default DS2: the held-out test patients)."))] = None,
    data: DataDir = None,
    card: bool = typer.Option(True, help="Write MODEL_CARD.md into the model folder."),
    rhythm_model: Annotated[Path | None, typer.Option("--rhythm-model", exists=True,
                                                      file_okay=False, help=(
        "Take the rhythm model (rhythm annotations and the beats' AF context) from "
        "DIR/rhythm instead: one trained without the test patients, e.g. by "
        "'cardiostream train rhythm --records DS1 --out DIR' for DS2."))] = None,
    rhythm_context: str = typer.Option("auto", help=(
        "auto: each record's rhythm (annotations and the beats' AF context) from the "
        "cross-validation fold model that never saw that patient whenever the rhythm "
        "model was trained on the records evaluated; out-of-fold / exported force it.")),
) -> None:
    """Annotate with the model, score EC57 (both conventions), write JSON/Markdown/PNG."""
    import json

    from cardiostream.records import expand_records
    from cardiostream.settings import load_settings
    from training.evaluate import evaluate as run
    from training.model_card import write_card

    names = expand_records(records or ["DS2"])
    source = data or load_settings().paths.mitdb
    summary = run(model, names, out, source,
                  on_record=lambda n, k: typer.echo(f"{n}: {k} beats annotated"),
                  rhythm_dir=rhythm_model, rhythm_context=rhythm_context)
    typer.echo((out / "report.md").read_text())
    typer.echo(json.dumps(summary["headline"], indent=1))
    if card:
        typer.echo(f"model card: {write_card(model, out)}")
