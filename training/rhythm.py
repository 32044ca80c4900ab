"""Rhythm detector: a small MLP over RR-irregularity features + explicit rate rules.

Labels: each 10 s rhythm window takes the MIT-BIH '+' rhythm (aux '(AFIB', ...)
covering most of it. Rhythms outside ``RHYTHM_MODEL_CLASSES`` (NOD, PREX, BII,
IVR, AB, SBR) are folded into N: they are either rate findings the explicit rules
report (SBR) or too rare in MIT-BIH (a few episodes, one or two patients) to learn
anything that would transfer. Brady/tachycardia and pauses are rules
(``cardiostream.features.RateRules``), not learnt.

Evaluation is patient-level K-fold cross-validation over the 44 non-paced
records (a record's windows are never in both train and test); the exported
model is then fitted on all of them. AF episodes are scored twice from the same
out-of-fold decisions: per window (what ``cardiostream evaluate`` and the
worker's RhythmResult say) and as the alarm layer would call them (the
``af_on_windows`` / ``rhythm_off_windows`` hysteresis of inference/alarms.py).

AF evidence (``training.rhythm_af``): with ``af_head`` (the default) a logistic AF
gate over the irregularity and ``cardiostream.rr_features`` P-wave/dominant-beat
columns of ``features.RHYTHM_FEATURES`` decides AF; ``--no-af-head`` gives the plain
MLP of rhythm features v1's design. The gate's threshold is chosen per outer fold by
an inner patient-level CV over that fold's training records only
(``training.rhythm_operating``, docs/rhythm_af.md); ``--af-threshold`` fixes it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from cardiostream.features import RHYTHM_FEATURES
from cardiostream.records import NON_PACED
from cardiostream.signal import SignalSpec
from training.datasets import build_cache, load_arrays, rhythm_features
from training.models import RhythmNet
from training.train import seed_everything, set_threads

RHYTHM_MODEL_CLASSES: tuple[str, ...] = ("N", "AFIB", "AFL", "VT", "VFL", "SVTA", "B", "T")
AF_INDICES = (1, 2)    # AFIB, AFL: the scorer's AF target and the alarm layer's AF_CODES
VENTRICULAR_INDICES = (3, 4)   # VT, VFL: the AF gate never rules them out (red alarms)


@dataclass(frozen=True)
class RhythmTrainConfig:
    seed: int = 0
    epochs: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-3
    hidden: int = 32
    folds: int = 5
    records: tuple[str, ...] = NON_PACED
    af_head: bool = True         # AF gate (training.rhythm_af) over the rr_features columns
    af_threshold: float | None = None   # gate P(AF) threshold; None: nested inner CV chooses
    inner_folds: int = 4         # patient folds of that inner CV (over an outer fold's train)


@dataclass
class RhythmTrainResult:
    model: torch.nn.Module
    config: RhythmTrainConfig
    cv_predictions: dict[str, np.ndarray]        # record -> class index per window
    cv_window_metrics: dict
    record_hashes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cv_summary: dict = field(default_factory=dict)
    # the outer CV's models: (the records each was tested on, the model); exported beside
    # the final one so an evaluation can take every record's rhythm from a model that has
    # not seen that patient (cardiostream.classify, ``out_of_fold``)
    folds: list[tuple[tuple[str, ...], torch.nn.Module]] = field(default_factory=list)


def cached_features(npz: Path, arrays: dict) -> np.ndarray:
    """rhythm_features of a cached record, memoised beside it per the content of the
    feature modules (features.py and the *features.py modules beside it it may call)."""
    import hashlib

    import cardiostream.features as feat_mod

    h = hashlib.sha256()
    for src in sorted(Path(feat_mod.__file__).parent.glob("*features.py")):
        h.update(src.name.encode() + src.read_bytes())
    tag = h.hexdigest()[:10]
    path = npz.with_name(f"{npz.stem}.rf-{tag}.npy")
    if path.exists():
        return np.load(path)
    feats = rhythm_features(arrays)
    np.save(path, feats)
    return feats


def target_index(codes: np.ndarray) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(RHYTHM_MODEL_CLASSES)}
    return np.array([lookup.get(str(c), 0) for c in codes], dtype=np.int64)


def fit(x: np.ndarray, y: np.ndarray, cfg: RhythmTrainConfig,
        threshold: float = 0.5) -> torch.nn.Module:
    """The MLP (``fit_mlp``), wrapped in the AF gate (P(AF) > threshold) when ``cfg.af_head``."""
    mlp = fit_mlp(x, y, cfg)
    if not cfg.af_head:
        return mlp
    from training.rhythm_af import AF_HEAD_FEATURES, AfGatedRhythmNet, fit_af_head

    if x.shape[1] != len(RHYTHM_FEATURES):
        raise ValueError(f"af_head needs the {len(RHYTHM_FEATURES)} RHYTHM_FEATURES columns, "
                         f"got {x.shape[1]}")
    gated = AfGatedRhythmNet(mlp, [RHYTHM_FEATURES.index(n) for n in AF_HEAD_FEATURES],
                             list(AF_INDICES), len(RHYTHM_MODEL_CLASSES),
                             exempt=list(VENTRICULAR_INDICES), threshold=threshold)
    return fit_af_head(gated, x, np.isin(y, AF_INDICES), cfg.seed)


def fit_mlp(x: np.ndarray, y: np.ndarray, cfg: RhythmTrainConfig) -> RhythmNet:
    """Full-batch AdamW on standardised features, class-weighted CE (inverse sqrt freq)."""
    torch.manual_seed(cfg.seed)
    model = RhythmNet(x.shape[1], len(RHYTHM_MODEL_CLASSES), cfg.hidden)
    model.mean.copy_(torch.from_numpy(x.mean(0)))
    model.std.copy_(torch.from_numpy(x.std(0) + 1e-6))
    counts = np.bincount(y, minlength=len(RHYTHM_MODEL_CLASSES)).astype(np.float64)
    w = np.where(counts > 0, 1 / np.sqrt(np.maximum(counts, 1)), 0.0)
    w = torch.tensor(w / w[y].mean(), dtype=torch.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    dummy = torch.zeros(len(x), 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    for _ in range(cfg.epochs):
        loss = F.cross_entropy(model(dummy, xt), yt, weight=w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.inference_mode()
def predict_windows(model: torch.nn.Module, feats: np.ndarray) -> np.ndarray:
    if len(feats) == 0:
        return np.zeros(0, dtype=np.int64)
    return model(torch.zeros(len(feats), 1, 1), torch.from_numpy(feats)).argmax(1).numpy()


def folds_of(records: Sequence[str], labels: dict[str, np.ndarray], k: int) -> list[list[str]]:
    """Deterministic patient folds; records with AF are dealt round-robin first."""
    af = sorted(r for r in records if (labels[r] == 1).any())
    rest = sorted(r for r in records if r not in af)
    folds: list[list[str]] = [[] for _ in range(k)]
    for i, r in enumerate(af + rest):
        folds[i % k].append(r)
    return folds


def window_confusion(y: np.ndarray, p: np.ndarray) -> dict:
    k = len(RHYTHM_MODEL_CLASSES)
    p = np.where(p < 0, 0, p)          # rule codes (PAUSE, SBR, TACHY) count as N here
    cm = np.bincount(y * k + p, minlength=k * k).reshape(k, k)
    per = {}
    for i, c in enumerate(RHYTHM_MODEL_CLASSES):
        tp, ref, test = cm[i, i], cm[i].sum(), cm[:, i].sum()
        per[c] = {"Se": 100 * tp / ref if ref else None, "+P": 100 * tp / test if test else None,
                  "windows": int(ref)}
    return {"per_class": per, "confusion": cm.tolist()}


def train_rhythm(cfg: RhythmTrainConfig, data_dir: Path, cache_dir: Path,
                 spec: SignalSpec, cv_dir: Path | None = None) -> RhythmTrainResult:
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    set_threads()
    paths = build_cache(data_dir, cfg.records, spec, cache_dir)
    arrays = load_arrays(paths)
    feats = {r: cached_features(paths[r][0], arrays[r]) for r in cfg.records}
    labels = {r: target_index(arrays[r]["rhythm_label"]) for r in cfg.records}
    from training.rhythm_operating import exported_point, oof_evidence, outer_point

    starts = {r: arrays[r]["rhythm_start_us"] / 1e6 for r in cfg.records}
    cv_pred: dict[str, np.ndarray] = {}
    points, oof, fold_models = [], [], []
    for fold in folds_of(cfg.records, labels, cfg.folds):
        train = [r for r in cfg.records if r not in fold]
        point = outer_point(cfg, train, feats, labels, starts)
        points.append(point | {"test_records": list(fold)})
        model = fit(np.concatenate([feats[r] for r in train]),
                    np.concatenate([labels[r] for r in train]), cfg, point["threshold"])
        fold_models.append((tuple(fold), model))
        for r in fold:
            cv_pred[r] = decide(predict_windows(model, feats[r]), feats[r])
            if cfg.af_head:
                oof.append(oof_evidence(model, feats[r], labels[r], starts[r]))
    y = np.concatenate([labels[r] for r in cfg.records])
    p = np.concatenate([cv_pred[r] for r in cfg.records])
    final_point = exported_point(cfg, oof)
    final = fit(np.concatenate(list(feats.values())), np.concatenate(list(labels.values())), cfg,
                final_point["threshold"])
    summary = {"windows": window_confusion(y, p),
               "af_operating_point": {"outer_folds": points, "exported": final_point}}
    if cv_dir is not None:
        from training.rhythm_cv import score_cv

        summary["af_episodes"] = score_cv(arrays, cv_pred, data_dir, Path(cv_dir), spec)
    return RhythmTrainResult(final, cfg, cv_pred, summary["windows"],
                             {n: h for n, (_, h) in paths.items()}, time.perf_counter() - t0,
                             summary, fold_models)


def decide(pred: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Model argmax -> final class per window, as the worker decides (RateRules on top).

    Rule codes outside the model classes (PAUSE, SBR, TACHY) are kept as -1..-3 so the
    window confusion counts them as 'not the model class'.
    """
    from cardiostream.features import RateRules

    rules, extra = RateRules(), {"PAUSE": -1, "SBR": -2, "TACHY": -3}
    out = pred.copy()
    for i, (k, f) in enumerate(zip(pred, feats, strict=True)):
        code = rules.apply(RHYTHM_MODEL_CLASSES[int(k)], f)
        out[i] = extra.get(code, RHYTHM_MODEL_CLASSES.index(code) if code in
                           RHYTHM_MODEL_CLASSES else 0)
    return out


def code_of(k: int) -> str:
    return {-1: "PAUSE", -2: "SBR", -3: "TACHY"}.get(int(k)) or RHYTHM_MODEL_CLASSES[int(k)]


def export_rhythm(result: RhythmTrainResult, folder: Path, spec: SignalSpec) -> Path:
    from cardiostream.features import RateRules, fold_model_dir
    from training.export import base_metadata, export_model

    cfg = result.config
    meta = base_metadata("rhythm", spec, cfg.seed) | {
        "classes": list(RHYTHM_MODEL_CLASSES), "leads_used": [0],
        "rhythm_features": list(RHYTHM_FEATURES), "rate_rules": asdict(RateRules()),
        "smoothing": {"model": "none (one decision per window)",
                      "alarm_layer": "settings.alarms.af_on_windows (AF), rhythm_on_windows "
                                     "(VF, VT, SVT), rhythm_off_windows",
                      "hop_s": spec.rhythm_hop_s},
        "input": {"x": ["B", 1, round(spec.rhythm_window_s * spec.rhythm_fs_hz)],
                  "feats": ["B", len(RHYTHM_FEATURES)], "x_used": False},
        "training_records": dict(result.record_hashes), "config": asdict(cfg),
        "af_gate": _af_gate_meta(result) if cfg.af_head else None,
        "train_seconds": round(result.seconds, 1),
        "metrics": {"cv": result.cv_summary},
    }
    example = (torch.zeros(2, 1, 8), torch.ones(2, len(RHYTHM_FEATURES)))
    out = export_model(result.model, example, Path(folder) / "rhythm", meta)
    for k, (tested, model) in enumerate(result.folds):
        fold_meta = {key: v for key, v in meta.items() if key not in ("metrics", "af_gate")} | {
            "version": f"{meta['version']}-fold{k}", "fold": k, "test_records": list(tested),
            "training_records": {r: h for r, h in result.record_hashes.items()
                                 if r not in tested},
            "af_gate": {"threshold": float(getattr(model, "threshold", 0.5))}}
        export_model(model, example, fold_model_dir(out, k) / "rhythm", fold_meta)
    return out


def _af_gate_meta(result: RhythmTrainResult) -> dict:
    from training.rhythm_af import AF_HEAD_FEATURES

    return {"model": "logistic regression, P(AF) > threshold decides AF vs the rest "
                     "(VT and VFL exempt: the gate never rules out a ventricular rhythm)",
            "features": list(AF_HEAD_FEATURES), "threshold": float(result.model.threshold),
            "operating_point": result.cv_summary.get("af_operating_point", {}).get("exported"),
            "exempt": [RHYTHM_MODEL_CLASSES[i] for i in VENTRICULAR_INDICES]}


def save_candidate(result: RhythmTrainResult, folder: Path) -> Path:
    """A CV run's outputs (not a worker model folder): weights, config and CV figures."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(result.model.state_dict(), folder / "weights.pt")
    (folder / "candidate.json").write_text(json.dumps(
        {"classes": list(RHYTHM_MODEL_CLASSES), "features": list(RHYTHM_FEATURES),
         "config": asdict(result.config), "training_records": result.record_hashes,
         "cv": result.cv_summary, "train_seconds": round(result.seconds, 1)}, indent=1) + "\n")
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m training.rhythm [--no-af-head] [--seed N] --out DIR`` (CV + candidate files)."""
    import argparse
    import json

    from cardiostream.records import expand_records
    from cardiostream.settings import load_settings
    from cardiostream.signal import DEFAULT_SPEC

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--records", default="ALL", help="records or sets (default ALL)")
    ap.add_argument("--af-head", action=argparse.BooleanOptionalAction,
                    default=RhythmTrainConfig.af_head, help="the logistic AF gate")
    ap.add_argument("--af-threshold", type=float, default=None,
                    help="fixed gate threshold (default: chosen by nested inner CV)")
    args = ap.parse_args(argv)
    settings = load_settings()
    result = train_rhythm(RhythmTrainConfig(seed=args.seed, af_head=args.af_head,
                                            af_threshold=args.af_threshold,
                                            records=tuple(expand_records([args.records]))),
                          settings.paths.mitdb, settings.paths.cache_dir, DEFAULT_SPEC,
                          cv_dir=args.out / "cv")
    save_candidate(result, args.out)
    print(json.dumps(result.cv_summary, indent=1))
    print(f"wrote {args.out}; wall {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
