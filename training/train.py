"""Beat classifier training: DS1 only, patient-level validation, seeded, CPU or CUDA.

Model selection (epoch, imbalance strategy) uses VAL_RECORDS, a fixed set of DS1
patients held out whole; DS2 is never read here.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cardiostream.features import (
    BEAT_CLASSES,
    BEAT_RR_FEATURES,
    beat_channels,
    beat_rr_features,
)
from cardiostream.records import DS1
from cardiostream.signal import SignalSpec
from training.augment import NoiseBank
from training.datasets import build_cache, load_arrays
from training.models import BeatEnsemble, BeatNet

# DS1 patients held out whole for model selection: together they hold ~40% of
# DS1's S beats (118, 201, 220, 223) and ~30% of its V beats (106, 223).
VAL_RECORDS: tuple[str, ...] = ("106", "118", "201", "220", "223")
Imbalance = Literal["weighted", "focal", "sampler"]
PREMATURE_PREV = (0.55, 0.85)   # synthetic S: previous RR / local mean RR
PREMATURE_NEXT = (0.95, 1.25)   # synthetic S: next RR / local mean RR


@dataclass(frozen=True)
class BeatTrainConfig:
    seed: int = 0
    epochs: int = 4
    batch: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    imbalance: Imbalance = "focal"
    leads: tuple[int, ...] = (0,)
    augment: bool = True
    amp_with_template: bool = True    # scale the template with the beat (training.augment)
    train_records: tuple[str, ...] = tuple(r for r in DS1 if r not in VAL_RECORDS)
    val_records: tuple[str, ...] = VAL_RECORDS
    n_fraction: float = 0.5     # share of N beats drawn afresh each epoch (N is ~90% of DS1)
    max_beats_per_record: int | None = None   # tiny subsets for tests
    widths: tuple[int, ...] = (16, 24, 32, 48)
    rr_columns: tuple[str, ...] = BEAT_RR_FEATURES   # RR features the model reads
    suppressed: tuple[str, ...] = ()    # classes trained on but never decided (BeatNet)
    premature_aug: float = 0.0   # share of each batch's N beats turned into synthetic S


@dataclass
class BeatTrainResult:
    model: BeatNet
    config: BeatTrainConfig
    val_metrics: dict
    history: list[dict] = field(default_factory=list)
    record_hashes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Same seed -> same weights: seeds numpy/torch and forces deterministic kernels."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():  # CPU kernels used here are deterministic already
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def set_threads(n: int = 1) -> None:
    """One intra-op thread by default: on this shared 2-core machine two OpenMP threads
    spin at their barriers whenever the other is descheduled (measured: ~7x the CPU time
    per step under load), and a fixed count keeps float reductions reproducible."""
    torch.set_num_threads(max(1, n))


def stack_beats(arrays: dict[str, dict[str, np.ndarray]], names: Sequence[str],
                leads: Sequence[int], limit: int | None, rng: np.random.Generator):
    """Labelled beats of ``names`` -> (samples (n, L, span), templates (n, L, span),
    rr (n, 4) seconds, y (n,)).

    rr columns: previous, next, local mean, long-term mean RR (``beat_rr_features``'s
    arguments), kept raw so augmentation can change the timing before featurising;
    the samples are kept apart from their templates so noise is added to the beat only.
    """
    xs, ts, rrs, ys = [], [], [], []
    for n in names:
        a = arrays[n]
        keep = np.flatnonzero(a["beat_label"] >= 0)
        if limit is not None and keep.size > limit:
            keep = np.sort(rng.choice(keep, limit, replace=False))
        xs.append(a["beat_samples"][keep][:, list(leads)])
        ts.append(a["beat_template"][keep][:, list(leads)])
        rrs.append(a["beat_rr"][keep].astype(np.float64))
        ys.append(a["beat_label"][keep].astype(np.int64))
    return np.concatenate(xs), np.concatenate(ts), np.concatenate(rrs), np.concatenate(ys)


def class_weights(counts: np.ndarray) -> np.ndarray:
    """Inverse square-root frequency from per-class counts, mean 1 over the beats seen."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    return w / ((w * counts).sum() / counts.sum())


def epoch_counts(y: np.ndarray, cfg: BeatTrainConfig) -> np.ndarray:
    """Expected class counts of one epoch (N thinned by cfg.n_fraction unless sampling)."""
    counts = np.bincount(y, minlength=5).astype(np.float64)
    if cfg.imbalance != "sampler":
        counts[0] *= cfg.n_fraction
    moved = cfg.premature_aug * counts[0]     # synthetic S copies (premature_copies)
    counts[0] -= moved
    counts[1] += moved
    return counts


def focal_loss(logits: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor,
               gamma: float = 2.0) -> torch.Tensor:
    """Lin et al. 2017: down-weights easy (mostly N) beats; ``alpha`` per class."""
    logp = F.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return (-alpha[y] * (1 - logp.exp()) ** gamma * logp).mean()


def confusion(y: np.ndarray, pred: np.ndarray, k: int = 5) -> np.ndarray:
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def class_metrics(cm: np.ndarray) -> dict:
    """Se/+P per class (%) and the selection score: mean F1 of N, S, V."""
    out: dict = {}
    f1s = []
    for i, c in enumerate(BEAT_CLASSES):
        tp, ref, test = cm[i, i], cm[i].sum(), cm[:, i].sum()
        se = 100.0 * tp / ref if ref else float("nan")
        ppv = 100.0 * tp / test if test else float("nan")
        out[c] = {"Se": se, "+P": ppv, "n": int(ref)}
        if c in "NSV":
            f1s.append(2 * tp / (ref + test) if ref + test else 0.0)
    out["score"] = float(np.mean(f1s))
    return out


def rr_tensor(rr_s: np.ndarray, device: torch.device) -> torch.Tensor:
    """(n, 4) raw RR seconds -> the worker's (n, F) RR features on ``device``."""
    return torch.from_numpy(beat_rr_features(*rr_s.T)).to(device)


def premature_copies(rr_s: np.ndarray, y: np.ndarray, share: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``share`` of the N beats into synthetic S beats by their timing alone.

    A supraventricular ectopic beat is a normally conducted QRS that comes early
    (AAMI EC57; de Chazal 2004's RR features): DS1 holds ~600 S beats outside
    validation, most from one patient (209), so the model rarely sees prematurity
    on other patients' morphology. The copy keeps the N beat's samples and gets a
    previous RR of ``PREMATURE_PREV`` of its local mean and a next RR of
    ``PREMATURE_NEXT`` of it, labelled S: an atrial premature beat resets the sinus
    node, so the pause after it is about one normal RR. (A strictly
    non-compensatory 90-110 % did no better on the DS1 validation patients,
    docs/training_selection.md.)
    """
    rr_s, y = rr_s.copy(), y.copy()
    n_idx = np.flatnonzero(y == 0)
    pick = n_idx[rng.random(n_idx.size) < share]
    local = np.where(rr_s[pick, 2] > 0, rr_s[pick, 2], rr_s[pick, 3])
    rr_s[pick, 0] = local * rng.uniform(*PREMATURE_PREV, pick.size)
    rr_s[pick, 1] = local * rng.uniform(*PREMATURE_NEXT, pick.size)
    y[pick] = 1
    return rr_s, y


@torch.inference_mode()
def predict(model: nn.Module, x: np.ndarray, t: np.ndarray, rr_s: np.ndarray,
            device: torch.device, batch: int = 2048) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(beat_channels(x[i:i + batch], t[i:i + batch])).to(device)
        out.append(model(xb, rr_tensor(rr_s[i:i + batch], device)).argmax(1).cpu())
    return torch.cat(out).numpy()


def _batches(y: np.ndarray, cfg: BeatTrainConfig, rng: np.random.Generator):
    """One epoch of index batches; every strategy sees the same number of beats."""
    size = int((y != 0).sum()) + round(cfg.n_fraction * int((y == 0).sum()))
    if cfg.imbalance == "sampler":
        p = class_weights(np.bincount(y, minlength=5))[y]
        idx = rng.choice(len(y), size, replace=True, p=p / p.sum())
    else:
        n_idx = np.flatnonzero(y == 0)
        n_take = rng.choice(n_idx, round(cfg.n_fraction * n_idx.size), replace=False)
        idx = rng.permutation(np.concatenate([np.flatnonzero(y != 0), n_take]))
    return [idx[i:i + cfg.batch] for i in range(0, len(idx), cfg.batch)]


def train_beats(cfg: BeatTrainConfig, data_dir: Path, cache_dir: Path, spec: SignalSpec,
                progress=None) -> BeatTrainResult:
    """Train on cfg.train_records, keep the epoch with the best validation score."""
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    set_threads()
    device = pick_device()
    rng = np.random.default_rng(cfg.seed)
    names = list(cfg.train_records) + list(cfg.val_records)
    paths = build_cache(data_dir, names, spec, cache_dir)
    arrays = load_arrays(paths)
    xt, tt, rrt, yt = stack_beats(arrays, cfg.train_records, cfg.leads,
                                  cfg.max_beats_per_record, rng)
    xv, tv, rrv, yv = stack_beats(arrays, cfg.val_records, cfg.leads,
                                  cfg.max_beats_per_record, rng)
    noise = NoiseBank.load(data_dir.parent / "nstdb", spec, cache_dir) if cfg.augment else None
    model = BeatNet(2 * len(cfg.leads), len(BEAT_RR_FEATURES), len(BEAT_CLASSES), cfg.widths,
                    rr_index=[BEAT_RR_FEATURES.index(c) for c in cfg.rr_columns],
                    suppressed=[BEAT_CLASSES.index(c) for c in cfg.suppressed]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * len(_batches(yt, cfg, np.random.default_rng(0)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
    w = torch.tensor(class_weights(epoch_counts(yt, cfg)), dtype=torch.float32, device=device)
    best, history = None, []
    task = progress.add_task("beats", total=steps) if progress else None
    for epoch in range(cfg.epochs):
        model.train()
        losses = []
        for idx in _batches(yt, cfg, rng):
            xb, tb = xt[idx], tt[idx]            # fancy indexing: this batch's own copies
            if noise is not None:
                xb = noise.augment(xb, rng, tb if cfg.amp_with_template else None)
            rb, yb_np = rrt[idx], yt[idx]
            if cfg.premature_aug > 0:
                rb, yb_np = premature_copies(rb, yb_np, cfg.premature_aug, rng)
            xb_t = torch.from_numpy(beat_channels(xb, tb)).to(device)
            yb = torch.from_numpy(yb_np).to(device)
            logits = model(xb_t, rr_tensor(rb, device))
            if cfg.imbalance == "weighted":
                loss = F.cross_entropy(logits, yb, weight=w)
            elif cfg.imbalance == "focal":
                loss = focal_loss(logits, yb, w)
            else:
                loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if progress:
                progress.advance(task)
        metrics = class_metrics(confusion(yv, predict(model, xv, tv, rrv, device)))
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), **metrics})
        if progress:
            progress.console.print(epoch_line(history[-1]))
        if best is None or metrics["score"] > best[0]:
            best = (metrics["score"], copy.deepcopy(model.state_dict()), metrics)
    model.load_state_dict(best[1])
    model.eval().cpu()
    hashes = {n: p[1] for n, p in paths.items()}
    return BeatTrainResult(model, cfg, best[2], history, hashes, time.perf_counter() - t0)


def train_beat_ensemble(cfg: BeatTrainConfig, members: int, data_dir: Path, cache_dir: Path,
                        spec: SignalSpec, progress=None) -> BeatTrainResult:
    """``members`` BeatNets with seeds cfg.seed, cfg.seed + 1, ... -> one BeatEnsemble.

    Each member keeps its own best validation epoch; the ensemble's validation
    figures are measured on the same DS1 patients (the ones exported).
    """
    if members < 1:
        raise ValueError(f"an ensemble needs at least one member, got {members}")
    t0 = time.perf_counter()
    results = [train_beats(replace(cfg, seed=cfg.seed + k), data_dir, cache_dir, spec, progress)
               for k in range(members)]
    if members == 1:
        return results[0]
    ensemble = BeatEnsemble([r.model for r in results]).eval()
    rng = np.random.default_rng(cfg.seed)
    arrays = load_arrays(build_cache(data_dir, list(cfg.val_records), spec, cache_dir))
    xv, tv, rrv, yv = stack_beats(arrays, cfg.val_records, cfg.leads,
                                  cfg.max_beats_per_record, rng)
    metrics = class_metrics(confusion(yv, predict(ensemble, xv, tv, rrv, pick_device())))
    history = [{"member_seed": cfg.seed + k, **h} for k, r in enumerate(results)
               for h in r.history]
    return BeatTrainResult(ensemble.cpu(), cfg, metrics, history, results[0].record_hashes,
                           time.perf_counter() - t0)


def epoch_line(h: dict) -> str:
    per = "  ".join(f"{c} Se {h[c]['Se']:.1f} +P {h[c]['+P']:.1f}" for c in "NSV")
    return f"epoch {h['epoch']}: loss {h['loss']:.4f}  val score {h['score']:.4f}  {per}"


def config_dict(cfg: BeatTrainConfig) -> dict:
    return asdict(cfg)
