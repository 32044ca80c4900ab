"""AF evidence for the rhythm detector: the AF gate over the dominant-beat features.

Why: the rhythm MLP over the 21 window features confuses AF with sinus rhythm
plus ventricular ectopy (10 s windows hold 10-20 beats). Two physiological cues
separate them (``cardiostream.rr_features``): the dominant beats' intervals stay
regular around ectopics, and sinus rhythm has a repeating P wave.

The AF decision is then made by a deliberately small model, a logistic
regression over irregularity and atrial-activity features only
(``AF_HEAD_FEATURES``: no rate, no signal-quality, no spectral feature), so it
cannot learn which MIT-BIH patient has AF from his heart rate. The MLP still
ranks the classes inside the gate's choice (AFIB vs AFL; N vs VT, VFL, ...).
``AfGatedRhythmNet`` packs both into one TorchScript-able module with the
worker's ``forward(x, feats) -> logits`` contract.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cardiostream.rr_features import DOMINANT_RR_FEATURES

AF_HEAD_FEATURES: tuple[str, ...] = (
    "cv_rr", "rmssd_over_mean", "turning_point_ratio", "sample_entropy", "frac_near_median",
    "iqr_over_median", "clean_cv", "clean_rmssd_over_mean", "irregular_dRR_frac",
    *DOMINANT_RR_FEATURES,
)
AF_THRESHOLD = 0.5      # the gate's default P(AF); training picks one by nested CV


class AfGatedRhythmNet(nn.Module):
    """forward(x (B, L, T), feats (B, F)) -> logits (B, K); argmax obeys the AF gate.

    P(AF) = sigmoid(w . standardised feats[af_index] + b). When P(AF) > threshold
    the non-AF classes get -1e4, otherwise the AF classes do; the softmax of the
    output is the MLP's distribution within the gate's group.

    ``exempt`` classes (the ventricular rhythms VT, VFL) are never ruled out by
    the gate: an irregular window is evidence against sinus rhythm, not against a
    ventricular rhythm, and a red VT/VF alarm must not be hidden behind a yellow
    AF one (MIT-BIH 223's slow VT and 207's flutter were called AF otherwise).
    """

    def __init__(self, mlp: nn.Module, af_index: list[int], af_classes: list[int],
                 n_classes: int, threshold: float = AF_THRESHOLD,
                 exempt: list[int] | None = None) -> None:
        super().__init__()
        self.mlp = mlp
        self.head = nn.Linear(len(af_index), 1)
        self.register_buffer("af_index", torch.tensor(af_index, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(len(af_index)))
        self.register_buffer("std", torch.ones(len(af_index)))
        is_af = torch.zeros(n_classes)
        is_af[af_classes] = 1.0
        self.register_buffer("is_af", is_af)
        gated = torch.ones(n_classes)
        gated[list(exempt or [])] = 0.0
        self.register_buffer("gated", gated)     # 0: the gate never rules the class out
        self.threshold = float(threshold)
        self.mask = 1e4          # logit offset that removes the classes the gate rules out

    def af_logit(self, feats: torch.Tensor) -> torch.Tensor:
        z = (feats.index_select(1, self.af_index) - self.mean) / self.std
        return self.head(z)[:, 0]                                     # (B,)

    def p_af(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.af_logit(feats))                    # (B,)

    def forward(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        logits = self.mlp(x, feats)                                   # (B, K)
        gate = (self.p_af(feats) > self.threshold).to(logits.dtype)[:, None]
        ruled_out = gate * (1.0 - self.is_af) + (1.0 - gate) * self.is_af
        return logits - self.mask * ruled_out * self.gated


def fit_af_head(model: AfGatedRhythmNet, x: np.ndarray, is_af: np.ndarray, seed: int,
                epochs: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3
                ) -> AfGatedRhythmNet:
    """Full-batch AdamW logistic regression of the gate (unweighted BCE), in place."""
    torch.manual_seed(seed)
    z = x[:, model.af_index.numpy()]
    model.mean.copy_(torch.from_numpy(z.mean(0)))
    model.std.copy_(torch.from_numpy(z.std(0) + 1e-6))
    xt, yt = torch.from_numpy(x), torch.from_numpy(is_af.astype(np.float32))
    nn.init.zeros_(model.head.weight)
    nn.init.zeros_(model.head.bias)
    opt = torch.optim.AdamW(model.head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = F.binary_cross_entropy_with_logits(model.af_logit(xt), yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()
