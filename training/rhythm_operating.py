"""The AF gate's operating point, chosen by an inner patient-level CV (nested CV).

Why: the gate's P(AF) > 0.5 was fixed a priori and called too much sinus rhythm
with ventricular ectopy AF (docs/rhythm_af.md). Moving the threshold trades AF
sensitivity for positive predictivity; to keep the reported figure honest the
threshold of each outer fold is chosen from that fold's training records only:
an inner K-fold CV over them (patients never split), every inner model fitted
exactly as the outer one, and the rule fixed before any figure was seen:

    the threshold on ``GRID`` with the highest inner AF +P among those whose
    inner AF Se >= ``TARGET_SE``; ties -> the lowest threshold; none -> the lowest.

Inner figures are window counts (AFIB+AFL labelled windows vs windows the
detector calls AF, windows starting from 5:00 as the scorer counts), a proxy of
the scorer's duration-weighted Se/+P. The exported model's threshold is chosen by
the same rule from the outer CV's out-of-fold windows over all records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from training.rhythm import AF_INDICES, VENTRICULAR_INDICES, RhythmTrainConfig, fit, folds_of

TARGET_SE = 92.0          # inner AF Se floor (%): the goal's 90 plus a margin, fixed a priori
GRID: tuple[float, ...] = tuple(round(0.30 + 0.01 * i, 2) for i in range(66))   # 0.30 .. 0.95
SKIP_S = 300.0            # the scorer counts AF from 5:00


def af_evidence(model: torch.nn.Module, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, F) features -> P(AF) (n,) and 'AF if the gate opens' (n,) bool.

    The gated model calls a window AF iff P(AF) > threshold, an AF class outranks
    the exempt ventricular ones in the MLP, and no rate rule (PAUSE) overrides it;
    only the first factor depends on the threshold.
    """
    from cardiostream.features import RHYTHM_FEATURES, RateRules

    if len(feats) == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    x = torch.from_numpy(feats)
    with torch.inference_mode():
        p = model.p_af(x).numpy()
        logits = model.mlp(torch.zeros(len(x), 1, 1), x).numpy()
    af_wins = logits[:, AF_INDICES].max(1) >= logits[:, VENTRICULAR_INDICES].max(1)
    no_pause = feats[:, RHYTHM_FEATURES.index("max_rr_s")] < RateRules().pause_s
    return p.astype(np.float64), af_wins & no_pause


def curve(p: np.ndarray, open_af: np.ndarray, is_af: np.ndarray,
          grid: Sequence[float] = GRID) -> tuple[np.ndarray, np.ndarray]:
    """Window-count AF Se and +P (%) at each threshold: two (len(grid),) arrays."""
    called = (p[None, :] > np.asarray(grid)[:, None]) & open_af[None, :]   # (G, n)
    tp = (called & is_af[None, :]).sum(1)
    n_called = called.sum(1)
    se = 100.0 * tp / max(int(is_af.sum()), 1)
    ppv = np.where(n_called > 0, 100.0 * tp / np.maximum(n_called, 1), 0.0)
    return se, ppv


def choose(se: np.ndarray, ppv: np.ndarray, grid: Sequence[float] = GRID,
           target_se: float = TARGET_SE) -> int:
    """Index into ``grid``: the highest +P with Se >= target_se (lowest threshold on ties)."""
    ok = np.flatnonzero(se >= target_se)
    if ok.size == 0:
        return 0
    return int(ok[np.argmax(ppv[ok])])


def pick(p: np.ndarray, open_af: np.ndarray, is_af: np.ndarray) -> dict:
    """The operating point for pooled out-of-fold windows: threshold and its Se/+P."""
    se, ppv = curve(p, open_af, is_af)
    i = choose(se, ppv)
    return {"threshold": GRID[i], "se": round(float(se[i]), 2), "ppv": round(float(ppv[i]), 2),
            "windows_af": int(is_af.sum())}


def inner_threshold(records: Sequence[str], feats: dict[str, np.ndarray],
                    labels: dict[str, np.ndarray], starts_s: dict[str, np.ndarray],
                    fit: Callable[[np.ndarray, np.ndarray], torch.nn.Module],
                    folds: Callable[[Sequence[str]], list[list[str]]]) -> dict:
    """Inner CV over ``records`` (an outer fold's training patients) -> ``pick``'s dict.

    ``fit(x, y)`` fits a gated model as the outer loop does; ``folds(records)`` deals
    the inner patient folds; ``starts_s`` are window start times (s) per record.
    """
    pooled: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for fold in folds(records):
        train = [r for r in records if r not in fold]
        model = fit(np.concatenate([feats[r] for r in train]),
                    np.concatenate([labels[r] for r in train]))
        pooled += [oof_evidence(model, feats[r], labels[r], starts_s[r]) for r in fold]
    return pick(*(np.concatenate(c) for c in zip(*pooled, strict=True)))


def outer_point(cfg: RhythmTrainConfig, train: list[str], feats: dict, labels: dict,
                starts: dict) -> dict:
    """The AF gate threshold for one outer fold, from its training records only."""
    if not cfg.af_head or cfg.af_threshold is not None:
        return {"threshold": 0.5 if cfg.af_threshold is None else cfg.af_threshold,
                "chosen_by": "fixed"}
    got = inner_threshold(train, feats, labels, starts, lambda x, y: fit(x, y, cfg),
                          lambda recs: folds_of(recs, labels, cfg.inner_folds))
    return got | {"chosen_by": f"inner {cfg.inner_folds}-fold CV over the training records"}


def oof_evidence(model: torch.nn.Module, feats: np.ndarray, labels: np.ndarray,
                 starts_s: np.ndarray) -> tuple[np.ndarray, ...]:
    """One held-out record's (P(AF), gate-open, is-AF) for windows scored from 5:00."""
    keep = starts_s >= SKIP_S
    return (*af_evidence(model, feats[keep]), np.isin(labels[keep], AF_INDICES))


def exported_point(cfg: RhythmTrainConfig, oof: list[tuple[np.ndarray, ...]]) -> dict:
    """The exported model's threshold: the same rule over all records' out-of-fold windows."""
    if not cfg.af_head or cfg.af_threshold is not None:
        return outer_point(cfg, [], {}, {}, {})
    got = pick(*(np.concatenate(c) for c in zip(*oof, strict=True)))
    return got | {"chosen_by": f"{cfg.folds}-fold CV over all records (the outer folds)"}
