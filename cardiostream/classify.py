"""A model folder as an ``annotate`` labeller: windows -> results -> WFDB annotations.

Offline twin of the inference worker's decision: the same ``load_model``, the same
``beat_inputs`` / ``rhythm_inputs``, argmax over the classes, then the rhythm
model's ``RateRules`` (pause, brady, tachy), exactly as ``inference.predictor``
decides; results become annotations through ``result_annotations`` (the one
conversion replay scoring uses too). So ``cardiostream evaluate`` and a live
replay write the same file for the same windows. torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardiostream.annotate import Annotations
from cardiostream.features import (
    LoadedModel,
    RateRules,
    beat_inputs,
    load_model,
    rhythm_inputs,
)
from cardiostream.processing import RecordWindows
from cardiostream.records import Record
from cardiostream.result_annotations import annotations_from_results
from cardiostream.schemas import BeatResult, BeatWindow, RhythmResult, RhythmWindow

BATCH = 4096


def _probs(model: LoadedModel, x: np.ndarray, aux: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        logits = model.program(torch.from_numpy(x), torch.from_numpy(aux))     # (B, K)
        return torch.softmax(logits.float(), dim=1).numpy()


class ModelLabeller:
    """``Labeller`` (cardiostream.annotate) backed by DIR/beat and, if present, DIR/rhythm."""

    def __init__(self, model_dir: Path, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.beat = load_model(Path(model_dir), "beat")
        has_rhythm = (Path(model_dir) / "rhythm" / "model.ts").exists()
        self.rhythm = load_model(Path(model_dir), "rhythm") if has_rhythm else None
        rules = self.rhythm.metadata.get("rate_rules") if self.rhythm else None
        self.rules = RateRules(**rules) if rules else None
        versions = [m.metadata.get("version", "?") for m in (self.beat, self.rhythm) if m]
        self.version = "+".join(versions)

    def beat_results(self, windows: Sequence[BeatWindow]) -> list[BeatResult]:
        out: list[BeatResult] = []
        for i in range(0, len(windows), BATCH):
            part = windows[i:i + BATCH]
            probs = _probs(self.beat, *beat_inputs(part, self.beat.leads))
            out += [BeatResult(w.device_id, w.unit, w.segment, w.beat_index, w.r_time_us,
                               w.last_sample_time_us, self.beat.classes[int(np.argmax(p))],
                               tuple(float(v) for v in p), w.rr_prev_s, w.quality,
                               self.version) for w, p in zip(part, probs, strict=True)]
        return out

    def rhythm_results(self, windows: Sequence[RhythmWindow]) -> list[RhythmResult]:
        if self.rhythm is None or not windows:
            return []
        x, feats = rhythm_inputs(windows, self.rhythm.leads)
        probs = _probs(self.rhythm, x, feats)
        out = []
        for w, p, f in zip(windows, probs, feats, strict=True):
            label = self.rhythm.classes[int(np.argmax(p))]
            if self.rules is not None:
                label = self.rules.apply(label, f)
            out.append(RhythmResult(w.device_id, w.unit, w.segment, w.window_index,
                                    w.start_time_us, w.end_time_us, w.last_sample_time_us,
                                    label, tuple(float(v) for v in p), _bpm(w.beat_times_us),
                                    w.quality, self.version))
        return out

    def __call__(self, record: Record, windows: RecordWindows, start_us: int) -> Annotations:
        beats = self.beat_results(windows.beats) if windows.beats else []
        rhythms = self.rhythm_results(windows.rhythms)
        hop_s = float(self.beat.metadata["spec"]["rhythm_hop_s"])
        return annotations_from_results(beats, rhythms, start_us, record.fs_hz, hop_s)


def _bpm(beat_times_us: tuple[int, ...]) -> float:
    if len(beat_times_us) < 2:
        return 0.0
    med = float(np.median(np.diff(np.asarray(beat_times_us, dtype=np.float64)))) / 1e6
    return round(60.0 / med, 1) if med > 0 else 0.0
