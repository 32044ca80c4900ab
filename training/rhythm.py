"""Rhythm detector: a small MLP over RR-irregularity features + explicit rate rules.

Labels: each 10 s rhythm window takes the MIT-BIH '+' rhythm (aux '(AFIB', ...)
covering most of it. Rhythms outside ``RHYTHM_MODEL_CLASSES`` (NOD, PREX, BII,
IVR, AB, SBR) are folded into N: they are either rate findings the explicit rules
report (SBR) or too rare in MIT-BIH (a few episodes, one or two patients) to learn
anything that would transfer. Brady/tachycardia and pauses are rules
(``cardiostream.features.RateRules``), not learnt.

Evaluation is patient-level K-fold cross-validation over the 44 non-paced
records (a record's windows are never in both train and test); the exported
model is then fitted on all of them.
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
SMOOTH_WINDOWS = 5     # centred mode filter over 5 windows (10 s at a 2 s hop)


@dataclass(frozen=True)
class RhythmTrainConfig:
    seed: int = 0
    epochs: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-3
    hidden: int = 32
    folds: int = 5
    records: tuple[str, ...] = NON_PACED


@dataclass
class RhythmTrainResult:
    model: RhythmNet
    config: RhythmTrainConfig
    cv_predictions: dict[str, np.ndarray]        # record -> class index per window
    cv_window_metrics: dict
    record_hashes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cv_summary: dict = field(default_factory=dict)


def cached_features(npz: Path, arrays: dict) -> np.ndarray:
    """rhythm_features of a cached record, memoised beside it per features.py content."""
    import hashlib

    import cardiostream.features as feat_mod

    tag = hashlib.sha256(Path(feat_mod.__file__).read_bytes()).hexdigest()[:10]
    path = npz.with_name(f"{npz.stem}.rf-{tag}.npy")
    if path.exists():
        return np.load(path)
    feats = rhythm_features(arrays)
    np.save(path, feats)
    return feats


def target_index(codes: np.ndarray) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(RHYTHM_MODEL_CLASSES)}
    return np.array([lookup.get(str(c), 0) for c in codes], dtype=np.int64)


def mode_filter(pred: np.ndarray, k: int = SMOOTH_WINDOWS) -> np.ndarray:
    """Centred majority vote over k windows (ties keep the centre label)."""
    if pred.size == 0 or k <= 1:
        return pred.copy()
    half = k // 2
    padded = np.pad(pred, half, mode="edge")
    out = pred.copy()
    for i in range(pred.size):
        votes = np.bincount(padded[i:i + k], minlength=len(RHYTHM_MODEL_CLASSES))
        if votes.max() > votes[pred[i]]:
            out[i] = int(votes.argmax())
    return out


def fit(x: np.ndarray, y: np.ndarray, cfg: RhythmTrainConfig) -> RhythmNet:
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
def predict_windows(model: RhythmNet, feats: np.ndarray) -> np.ndarray:
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
    cv_pred: dict[str, np.ndarray] = {}
    for fold in folds_of(cfg.records, labels, cfg.folds):
        train = [r for r in cfg.records if r not in fold]
        model = fit(np.concatenate([feats[r] for r in train]),
                    np.concatenate([labels[r] for r in train]), cfg)
        for r in fold:
            cv_pred[r] = decide(predict_windows(model, feats[r]), feats[r])
    y = np.concatenate([labels[r] for r in cfg.records])
    p = np.concatenate([cv_pred[r] for r in cfg.records])
    final = fit(np.concatenate(list(feats.values())), np.concatenate(list(labels.values())), cfg)
    summary = {"windows": window_confusion(y, p)}
    if cv_dir is not None:
        summary["af_episodes"] = score_cv(arrays, cv_pred, data_dir, Path(cv_dir), spec)
    return RhythmTrainResult(final, cfg, cv_pred, summary["windows"],
                             {n: h for n, (_, h) in paths.items()}, time.perf_counter() - t0,
                             summary)


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


def score_cv(arrays: dict, cv_pred: dict[str, np.ndarray], data_dir: Path, cv_dir: Path,
             spec: SignalSpec) -> dict:
    """Out-of-fold rhythm decisions -> CV/RECORD.cv files -> the scorer's AF episode figures."""
    from cardiostream.annotate import Annotations, write_annotations
    from cardiostream.result_annotations import rhythm_marks
    from cardiostream.schemas import RhythmResult
    from cardiostream.scoring import score_records

    cv_dir.mkdir(parents=True, exist_ok=True)
    for r, pred in cv_pred.items():
        a = arrays[r]
        res = [RhythmResult("cv", "cv", 0, i, int(s), int(e), int(e), code_of(k), (), 0.0, (), "cv")
               for i, (s, e, k) in enumerate(zip(a["rhythm_start_us"], a["rhythm_end_us"],
                                                 pred, strict=True))]
        marks = rhythm_marks(res, 0, float(a["fs_hz"]), spec.rhythm_hop_s)
        beats = a["beat_sample"]
        ann = Annotations(np.concatenate([beats, [m[0] for m in marks]]).astype(np.int64),
                          ["N"] * beats.size + ["+"] * len(marks),
                          [""] * beats.size + [f"({m[1]}" for m in marks])
        write_annotations(cv_dir, r, "cv", float(a["fs_hz"]), ann)
    report = score_records(data_dir, cv_dir, list(cv_pred), "cv", convention="dechazal")
    af_records = [x for x in report.records if x.episodes and x.episodes.ref_s > 0]
    return {"gross": report.episodes.to_dict() if report.episodes else None,
            "per_record": {x.record: x.episodes.to_dict() for x in af_records},
            "note": "AFIB+AFL episodes (scorer default), out-of-fold decisions, from 5:00"}


def export_rhythm(result: RhythmTrainResult, folder: Path, spec: SignalSpec) -> Path:
    from cardiostream.features import RateRules
    from training.export import base_metadata, export_model

    cfg = result.config
    meta = base_metadata("rhythm", spec, cfg.seed) | {
        "classes": list(RHYTHM_MODEL_CLASSES), "leads_used": [0],
        "rhythm_features": list(RHYTHM_FEATURES), "rate_rules": asdict(RateRules()),
        "smoothing": {"mode_windows": SMOOTH_WINDOWS, "hop_s": spec.rhythm_hop_s},
        "input": {"x": ["B", 1, round(spec.rhythm_window_s * spec.rhythm_fs_hz)],
                  "feats": ["B", len(RHYTHM_FEATURES)], "x_used": False},
        "training_records": dict(result.record_hashes), "config": asdict(cfg),
        "train_seconds": round(result.seconds, 1),
        "metrics": {"cv": result.cv_summary},
    }
    example = (torch.zeros(2, 1, 8), torch.ones(2, len(RHYTHM_FEATURES)))
    return export_model(result.model, example, Path(folder) / "rhythm", meta)
