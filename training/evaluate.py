"""`cardiostream evaluate`: annotate records with a model, score them the EC57 way.

Runs ``cardiostream.annotate.annotate_record`` (the stream's DSP) with the model's
labeller (``cardiostream.classify``), scores with ``cardiostream.scoring`` in both
class conventions, and writes OUT/report.json, OUT/report.md, OUT/confusion-*.png
and OUT/annotations/RECORD.cs. The model card is rendered from that JSON only, so
its numbers are exactly what this command printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cardiostream.signal import SignalSpec

# Acceptance floors of issue 4 (DS2 gross, de Chazal convention), percent.
TARGETS = {"veb_se": 92.0, "veb_ppv": 92.0, "sveb_se": 80.0, "sveb_ppv": 60.0, "n_se": 95.0}


def spec_of(metadata: dict) -> SignalSpec:
    raw = {k: tuple(v) if isinstance(v, list) else v for k, v in metadata["spec"].items()}
    spec = SignalSpec(**raw)
    if spec.spec_id != metadata["spec_id"]:
        raise ValueError(f"metadata spec_id {metadata['spec_id']} != its spec {spec.spec_id}")
    return spec


def _out_of_fold(rhythm_home: Path, records: Sequence[str], mode: str) -> bool:
    """``auto``: out of fold exactly when the rhythm model was trained on one of ``records``
    (the beats' rhythm context and the AF episodes must not come from a model that has
    seen the patient); ``out-of-fold`` / ``exported`` force one or the other."""
    if mode not in ("auto", "out-of-fold", "exported"):
        raise ValueError(f"rhythm_context={mode!r}; choose auto, out-of-fold or exported")
    if mode != "auto":
        return mode == "out-of-fold"
    return bool(rhythm_trained_on(rhythm_home, records))


def rhythm_trained_on(rhythm_home: Path, records: Sequence[str]) -> list[str]:
    """Those of ``records`` that the rhythm model in RHYTHM_HOME/rhythm was trained on."""
    meta = Path(rhythm_home) / "rhythm" / "metadata.json"
    if not meta.exists():
        return []
    return sorted(set(json.loads(meta.read_text()).get("training_records", {})) & set(records))


def headline(report_json: dict) -> dict:
    """The acceptance figures from the de Chazal report (gross, percent)."""
    dc = report_json["dechazal"]
    g, classes = dc["gross"], dc["classes"]
    return {"veb_se": g.get("veb_se"), "veb_ppv": g.get("veb_ppv"),
            "sveb_se": g.get("sveb_se"), "sveb_ppv": g.get("sveb_ppv"),
            "n_se": classes["N"]["se"], "qrs_se": g.get("qrs_se"), "qrs_ppv": g.get("qrs_ppv")}


def evaluate(model_dir: Path, records: Sequence[str], out_dir: Path, data_dir: Path,
             on_record: Callable[[str, int], None] | None = None,
             rhythm_dir: Path | None = None, rhythm_context: str = "auto") -> dict:
    """Annotate + score ``records``; returns {"report": ..., "headline": ..., "seconds"}."""
    from cardiostream.annotate import annotate_record
    from cardiostream.classify import ModelLabeller
    from cardiostream.records import load_record
    from cardiostream.score_report import write_outputs
    from cardiostream.scoring import score_records

    t0 = time.perf_counter()
    out_of_fold = _out_of_fold(Path(rhythm_dir or model_dir), records, rhythm_context)
    labeller = ModelLabeller(model_dir, rhythm_dir=rhythm_dir, out_of_fold=out_of_fold)
    spec = spec_of(labeller.beat.metadata)
    out_dir = Path(out_dir)
    ann_dir = out_dir / "annotations"
    for name in records:
        _, windows = annotate_record(load_record(data_dir, name), data_dir, ann_dir, spec,
                                     "cs", labeller)
        if on_record:
            on_record(name, len(windows.beats))
    reports = [score_records(data_dir, ann_dir, list(records), "cs", convention=c)
               for c in ("dechazal", "bxb")]
    write_outputs(reports, out_dir / "report.json", out_dir / "report.md",
                  out_dir / "confusion.png")
    data = json.loads((out_dir / "report.json").read_text())
    summary = {"model": str(model_dir), "model_version": labeller.version,
               "rhythm_model": str(rhythm_dir or model_dir),
               "rhythm_out_of_fold": out_of_fold,
               "records": list(records), "headline": headline(data), "targets": TARGETS,
               "seconds": round(time.perf_counter() - t0, 1)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
