"""Versioned model folders: TorchScript program + weights + metadata.json + card.

Layout (the inference worker's contract, loaded by ``cardiostream.features.load_model``):

    DIR/beat/model.ts       forward(x (B, L, span) f32, rr (B, F) f32) -> logits (B, 5)
    DIR/beat/weights.pt     state_dict (for fine-tuning; the worker does not need it)
    DIR/beat/metadata.json  kind, version, classes, spec, spec_id, leads_used, rr_features, ...
    DIR/rhythm/...          forward(x (B, L, T) f32, feats (B, F) f32) -> logits (B, K)
    DIR/MODEL_CARD.md       written by ``cardiostream evaluate`` from its own output
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cardiostream import __version__
from cardiostream.features import FEATURES_VERSIONS
from cardiostream.settings import REPO_ROOT
from cardiostream.signal import SignalSpec


def git_commit() -> str:
    """HEAD commit, suffixed '-dirty' when tracked files of the training code or of the
    shared core (the DSP, the spec, the features) differ (honest provenance)."""
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    head = run("rev-parse", "HEAD") or "unknown"
    dirty = run("status", "--porcelain", "--untracked-files=no", "--", "training",
                "cardiostream")
    return head + ("-dirty" if dirty else "")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    if hasattr(obj, "item"):
        return _jsonable(obj.item())
    return obj


def base_metadata(kind: str, spec: SignalSpec, seed: int) -> dict[str, Any]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return {"kind": kind, "version": f"{kind}-{stamp}-s{seed}", "package_version": __version__,
            "features_version": FEATURES_VERSIONS[kind], "spec": asdict(spec),
            "spec_id": spec.spec_id, "git_commit": git_commit(), "seed": seed,
            "torch_version": torch.__version__}


def export_model(model: nn.Module, example: tuple[torch.Tensor, torch.Tensor], folder: Path,
                 metadata: dict[str, Any]) -> Path:
    """Script ``model`` (unwrapped from torch.compile), check it, write the folder."""
    model = getattr(model, "_orig_mod", model).eval().cpu()
    scripted = torch.jit.script(model)
    with torch.inference_mode():
        ref, got = model(*example), scripted(*example)
    if not torch.allclose(ref, got, atol=1e-5):
        raise RuntimeError("TorchScript program disagrees with the eager model")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scripted.save(str(folder / "model.ts"))
    torch.save(model.state_dict(), folder / "weights.pt")
    (folder / "metadata.json").write_text(json.dumps(_jsonable(metadata), indent=2) + "\n")
    return folder


def update_metrics(folder: Path, key: str, metrics: dict[str, Any]) -> None:
    """Merge evaluation figures into an exported metadata.json under metrics[key]."""
    path = Path(folder) / "metadata.json"
    meta = json.loads(path.read_text())
    meta.setdefault("metrics", {})[key] = _jsonable(metrics)
    path.write_text(json.dumps(meta, indent=2) + "\n")


def export_beats(result, folder: Path, spec: SignalSpec) -> Path:
    """A trained ``BeatTrainResult`` -> DIR/beat/ (program, weights, metadata)."""
    from cardiostream.features import BEAT_CLASSES, BEAT_RR_FEATURES

    cfg = result.config
    meta = base_metadata("beat", spec, cfg.seed) | {
        "classes": list(BEAT_CLASSES), "class_convention": "AAMI de Chazal 2004",
        "leads_used": list(cfg.leads), "rr_features": list(BEAT_RR_FEATURES),
        "rr_features_used": list(cfg.rr_columns), "suppressed_classes": list(cfg.suppressed),
        # x: the leads, then the same leads minus the patient's template (beat_channels)
        "input": {"x": ["B", 2 * len(cfg.leads), spec.beat_span],
                  "rr": ["B", len(BEAT_RR_FEATURES)]},
        "training_records": {n: result.record_hashes[n] for n in cfg.train_records},
        "validation_records": {n: result.record_hashes[n] for n in cfg.val_records},
        "ensemble_seeds": [cfg.seed + k for k in range(len(getattr(result.model, "members", [0])))],
        "config": asdict(cfg), "train_seconds": round(result.seconds, 1),
        "metrics": {"validation_ds1": result.val_metrics}, "history": result.history,
    }
    example = (torch.zeros(2, 2 * len(cfg.leads), spec.beat_span),
               torch.ones(2, len(BEAT_RR_FEATURES)))
    return export_model(result.model, example, Path(folder) / "beat", meta)
