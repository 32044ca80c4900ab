"""Network definitions: a residual 1-D CNN for beats fused with RR features, and a
small rhythm network over RR-irregularity features.

Both are TorchScript-friendly (plain modules, typed forward) so ``export.py`` can
script them and the inference worker never imports this package.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ResBlock(nn.Module):
    """Two 1-D convolutions with a strided projection shortcut (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int = 7) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, stride, pad, bias=False), nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, kernel, 1, pad, bias=False), nn.BatchNorm1d(c_out),
        )
        self.skip = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride, bias=False),
                                  nn.BatchNorm1d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class BeatNet(nn.Module):
    """forward(x (B, L, span) float32 mV, rr (B, F) float32) -> logits (B, n_classes).

    The morphology branch pools mean and max over time so the logits do not depend
    on where the QRS sits within a few samples; the RR branch is concatenated
    before the head because RR timing is what separates S from N.

    ``rr_index`` picks the RR columns the model uses out of the F the worker sends
    (the wire contract stays ``features.BEAT_RR_FEATURES``). ``suppressed`` classes
    are trained on but never decided: in eval mode their logits get -1e4 (a class
    the training patients cannot teach, e.g. F, which DS1 holds almost only in 208).
    """

    def __init__(self, n_leads: int, n_rr: int, n_classes: int = 5,
                 widths: tuple[int, ...] = (16, 24, 32, 48), dropout: float = 0.2,
                 rr_index: Sequence[int] | None = None, suppressed: Sequence[int] = ()) -> None:
        super().__init__()
        index = list(range(n_rr)) if rr_index is None else list(rr_index)
        self.register_buffer("rr_index", torch.tensor(index, dtype=torch.long))
        bias = torch.zeros(n_classes)
        bias[list(suppressed)] = -1e4
        self.register_buffer("decision_bias", bias)
        n_rr = len(index)
        self.stem = nn.Sequential(nn.Conv1d(n_leads, widths[0], 9, 1, 4, bias=False),
                                  nn.BatchNorm1d(widths[0]), nn.ReLU(inplace=True))
        blocks = [ResBlock(a, b, 2) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        self.blocks = nn.Sequential(*blocks)
        self.rr = nn.Sequential(nn.Linear(n_rr, 32), nn.ReLU(inplace=True),
                                nn.Linear(32, 32), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1] + 32, 64),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(64, n_classes))

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))                           # (B, C, T')
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)    # (B, 2C)
        rr = rr.index_select(1, self.rr_index)                  # (B, F')
        logits = self.head(torch.cat([h, self.rr(rr)], dim=1))  # (B, n_classes)
        if self.training:
            return logits
        return logits + self.decision_bias


class BeatEnsemble(nn.Module):
    """forward(x, rr) -> log of the members' mean class probabilities (B, n_classes).

    Why: trained with different seeds, one BeatNet's validation score moves by
    up to 0.09 (docs/training_selection.md); averaging the probabilities of a few
    removes most of that variance. The log keeps the output a logit vector, so
    the worker's softmax returns the mean probabilities unchanged; a class the
    members suppress gets ~-69 and is never decided.
    """

    def __init__(self, members: Sequence[BeatNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(0)
        for i, member in enumerate(self.members):
            p = torch.softmax(member(x, rr), dim=1)
            total = p if i == 0 else total + p
        return torch.log((total / len(self.members)).clamp_min(1e-30))


class RhythmNet(nn.Module):
    """forward(x (B, L, T), feats (B, F)) -> logits (B, K).

    Deliberately decides from the standardised RR/spectral features only: the
    raw window ``x`` is accepted for the contract but not used, so the model
    cannot memorise MIT-BIH morphology and must rely on timing, which transfers
    across devices. ``mean``/``std`` are buffers so the program is self-contained.
    """

    def __init__(self, n_feats: int, n_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_feats))
        self.register_buffer("std", torch.ones(n_feats))
        self.net = nn.Sequential(nn.Linear(n_feats, hidden), nn.ReLU(inplace=True),
                                 nn.Dropout(0.1), nn.Linear(hidden, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        z = (feats - self.mean) / self.std                        # (B, F)
        return self.net(z)                                        # (B, K)
