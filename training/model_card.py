"""MODEL_CARD.md rendered from an evaluation's JSON and the models' metadata only.

No figure is computed here: every number is read from OUT/report.json and
OUT/summary.json (written by ``cardiostream evaluate``) or from metadata.json
(written at training time), so the card equals what the commands printed.
"""

from __future__ import annotations

import json
from pathlib import Path

from cardiostream.beat_context import CONTEXT_WINDOWS
from training.evaluate import TARGETS, rhythm_trained_on


def _ensemble_lines(beat: dict, cfg: dict) -> list[str]:
    """How the beat program decides: members, suppressed classes, premature copies."""
    seeds = beat.get("ensemble_seeds", [beat["seed"]])
    out = []
    if len(seeds) > 1:
        out.append(f"- Ensemble of {len(seeds)} members (seeds {seeds}): the mean of their "
                   "class probabilities (docs/training_selection.md).")
    if beat.get("suppressed_classes"):
        why = ("DS1 holds fusion beats almost only in record 208; see "
               if "F" in beat["suppressed_classes"] else "see ")
        out.append(f"- Trained on but never decided: {beat['suppressed_classes']} "
                   f"({why}docs/training_selection.md).")
    if cfg.get("premature_aug"):
        out.append(f"- Synthetic premature S copies of {100 * cfg['premature_aug']:g} % of "
                   "each batch's N beats (`training.train.premature_copies`).")
    return out


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _classes_table(rep: dict) -> list[str]:
    out = ["| class | Se | +P | FPR | TP | FN | FP | avg Se | avg +P | avg FPR |",
           "|---|" + "---:|" * 9]
    for c, d in rep["classes"].items():
        a = rep["classes_average"][c]
        out.append(f"| {c} | {_f(d['se'])} | {_f(d['ppv'])} | {_f(d['fpr'])} | {d['tp']} | "
                   f"{d['fn']} | {d['fp']} | {_f(a['se'])} | {_f(a['ppv'])} | {_f(a['fpr'])} |")
    return out


def _matrix(rep: dict) -> list[str]:
    axes = rep["matrix_axes"]
    out = ["```", "ref\\test " + " ".join(f"{c.lower():>7}" for c in axes)]
    for name, row in zip(axes, rep["matrix"], strict=True):
        out.append(f"{name:>8} " + " ".join(f"{v:>7}" for v in row))
    return out + ["```"]


def _per_record(rep: dict) -> list[str]:
    out = ["| record | N Se | S Se | S +P | V Se | V +P | beats (ref N/S/V) |",
           "|---|" + "---:|" * 6]
    for r in rep["records"]:
        c = r["classes"]
        n = "/".join(str(c[k]["tp"] + c[k]["fn"]) for k in "NSV")
        out.append(f"| {r['record']} | {_f(c['N']['se'])} | {_f(c['S']['se'])} | "
                   f"{_f(c['S']['ppv'])} | {_f(c['V']['se'])} | {_f(c['V']['ppv'])} | {n} |")
    return out


def _episodes(eps: dict | None) -> list[str]:
    if not eps:
        return ["(no rhythm annotations scored)"]
    return ["| episode Se | episode +P | duration Se | duration +P | ref (s) | test (s) |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {_f(eps.get('se'))} | {_f(eps.get('ppv'))} | {_f(eps.get('duration_se'))} | "
            f"{_f(eps.get('duration_ppv'))} | {eps.get('ref_s', 0):.0f} | "
            f"{eps.get('test_s', 0):.0f} |"]


def _acceptance(head: dict) -> list[str]:
    out = ["| figure | DS2 | target | met |", "|---|---:|---:|---|"]
    for k, floor in TARGETS.items():
        v = head.get(k)
        met = "yes" if v is not None and v >= floor else "NO"
        out.append(f"| {k} | {_f(v)} | {floor:.0f} | {met} |")
    return out


def render(model_dir: Path, eval_dir: Path) -> str:
    report = json.loads((Path(eval_dir) / "report.json").read_text())
    summary = json.loads((Path(eval_dir) / "summary.json").read_text())
    beat = json.loads((Path(model_dir) / "beat" / "metadata.json").read_text())
    rpath = Path(model_dir) / "rhythm" / "metadata.json"
    rhythm = json.loads(rpath.read_text()) if rpath.exists() else None
    dc, bxb = report["dechazal"], report["bxb"]
    cfg = beat["config"]
    ctx_dir = Path(summary.get("rhythm_model") or model_dir)
    has_ctx = (ctx_dir / "rhythm" / "metadata.json").exists()
    oof = bool(summary.get("rhythm_out_of_fold"))
    seen = [] if oof else rhythm_trained_on(ctx_dir, summary["records"])
    source = (f"each record's cross-validation fold model of `{ctx_dir}/rhythm` (the fold "
              "whose training excluded that patient)" if oof else f"`{ctx_dir}/rhythm`")
    title = beat["version"] + (f" + {rhythm['version']}" if rhythm else "")
    lines = [
        f"# Model card: cardiostream {title}",
        "", "Research software, not a medical device. Figures below are copied by "
        "`training/model_card.py` from `cardiostream evaluate` output "
        f"(`{eval_dir}/report.json`, `summary.json`), records: {', '.join(summary['records'])}.",
        "", "## Beat classifier (AAMI N S V F Q)", "",
        f"- Residual 1-D CNN over lead(s) {beat['leads_used']} ({beat['spec']['beat_pre_s']} s "
        f"before / {beat['spec']['beat_post_s']} s after the detected R peak at "
        f"{beat['spec']['fs_hz']:g} Hz) fused with RR features {beat['rr_features']}.",
        *(["- Input channels: each lead, then the same lead minus the patient's running "
           "template (median of recent on-time, dominant-shape beats; "
           "cardiostream/beat_template.py)."] if beat["features_version"] >= 2 else []),
        *(["- Both channels in units of the lead's template height (peak to peak), so the "
           "inputs do not depend on a device's gain; the amplitude augmentation scales beat "
           "and template together (features v3, docs/training_selection.md)."]
          if beat["features_version"] >= 3 else []),
        f"- Spec `{beat['spec_id']}`, features v{beat['features_version']}, git "
        f"`{beat['git_commit']}`, seed {beat['seed']}, imbalance `{cfg['imbalance']}`, "
        f"{cfg['epochs']} epochs, training wall {beat['train_seconds']} s.",
        *_ensemble_lines(beat, cfg),
        f"- Trained on DS1 minus validation patients {list(beat['validation_records'])} "
        "(model selection); DS2 (de Chazal 2004 test patients) is only used here.",
        *([f"- Beat labels in their rhythm's context: an S beat whose last "
           f"{CONTEXT_WINDOWS} preceding rhythm decisions are all AFIB or AFL is labelled N "
           "(cardiostream/beat_context.py). "
           f"The rhythm decisions here come from {source}: "
           + ("no model that saw the patient." if not seen else
              f"its training records include {', '.join(seen)}: the context is in-sample "
              "for them.")] if has_ctx else []),
        "", "### DS2, de Chazal convention (e, j, n counted as N) — acceptance", "",
        *_acceptance(summary["headline"]), "", *_classes_table(dc), "", *_matrix(dc), "",
        "### DS2, bxb convention (e, j, n counted as S; PhysioNet's figures)", "",
        *_classes_table(bxb), "", "### Per record (de Chazal convention)", "",
        *_per_record(dc), "",
    ]
    lines += ["## Rhythm detector", ""]
    if rhythm:
        cv = rhythm["metrics"].get("cv", {})
        gate = rhythm.get("af_gate")
        lines += [f"- MLP over RR-irregularity features {rhythm['rhythm_features']}; classes "
                  f"{rhythm['classes']}; rate rules {rhythm['rate_rules']} (explicit).",
                  *([f"- AF gate: {gate['model']}, over {gate['features']} "
                     "(docs/evaluation/rhythm_cv.md)."] if gate else []),
                  "", (f"AF (AFIB+AFL) episodes on these records from {source} "
                       + ("(its training set includes them: in-sample, see CV below):"
                          if seen else "(out of sample):")), "",
                  *_episodes(dc.get("episodes")), "",
                  "Patient-level cross-validation (out-of-fold), AF episodes, from 5:00:", "",
                  *_episodes((cv.get("af_episodes") or {}).get("gross")), ""]
    return "\n".join(lines) + "\n"


def write_card(model_dir: Path, eval_dir: Path) -> Path:
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text(render(model_dir, eval_dir))
    return path
