"""Tiny TorchScript models matching the model-folder contract, for inference tests.

The beat model is rule-based so tests can predict its answer independently:
a window whose lead-0 peak-to-peak exceeds ``V_PP_SCALES`` template heights is ``V``
(the inputs are in units of the patient's template height since features v3: tall
ectopic beats beside 1 mV normal beats in the tests' synthetic signals), otherwise ``N``.
The rhythm model says ``AFIB`` when the window's ``cv_rr`` feature exceeds 0.15, else ``N``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import nn

from cardiostream.features import (
    BEAT_CLASSES,
    BEAT_RR_FEATURES,
    FEATURES_VERSIONS,
    RHYTHM_FEATURES,
)
from cardiostream.signal import DEFAULT_SPEC, SignalSpec

V_PP_SCALES = 3.0
RHYTHM_CLASSES = ("N", "AFIB", "AFL", "VT", "VFL", "SVTA", "B", "T")
CV_INDEX = RHYTHM_FEATURES.index("cv_rr")


class RuleBeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.v_pp = V_PP_SCALES

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        pp = x[:, 0].amax(dim=1) - x[:, 0].amin(dim=1)             # (B,)
        v = (pp > self.v_pp).float() * 10.0
        zeros = torch.zeros_like(v)
        return torch.stack([10.0 - v, zeros, v, zeros - 5.0, zeros - 5.0], dim=1) + 0 * rr[:, :1]


class RuleRhythm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cv_index = CV_INDEX
        self.n_classes = len(RHYTHM_CLASSES)

    def forward(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        af = (feats[:, self.cv_index] > 0.15).float() * 10.0             # (B,)
        out = torch.zeros(feats.shape[0], self.n_classes) - 5.0 + 0 * x[:, 0, :1]
        out[:, 0] = 10.0 - af
        out[:, 1] = af
        return out


@functools.cache
def _scripted(kind: str) -> torch.jit.ScriptModule:
    # scripted once per process: TorchScript refuses to redefine a class it has loaded
    return torch.jit.script(RuleBeat() if kind == "beat" else RuleRhythm())


def write_model_dir(folder: Path, spec: SignalSpec = DEFAULT_SPEC,
                    rate_rules: bool = False) -> Path:
    """Write DIR/beat and DIR/rhythm (model.ts + metadata.json) and return DIR."""
    common = {"spec_id": spec.spec_id, "leads_used": [0]}
    beat = {"kind": "beat", "version": "beat-test", "classes": list(BEAT_CLASSES),
            "rr_features": list(BEAT_RR_FEATURES),
            "features_version": FEATURES_VERSIONS["beat"]} | common
    rhythm = {"kind": "rhythm", "version": "rhythm-test", "classes": list(RHYTHM_CLASSES),
              "rhythm_features": list(RHYTHM_FEATURES),
              "features_version": FEATURES_VERSIONS["rhythm"]} | common
    if rate_rules:
        rhythm["rate_rules"] = {"brady_bpm": 50.0, "tachy_bpm": 120.0, "pause_s": 2.5}
    for kind, meta in (("beat", beat), ("rhythm", rhythm)):
        sub = Path(folder) / kind
        sub.mkdir(parents=True, exist_ok=True)
        _scripted(kind).save(str(sub / "model.ts"))
        (sub / "metadata.json").write_text(json.dumps(meta))
    return Path(folder)
