"""A model folder as an ``annotate`` labeller: windows -> results -> WFDB annotations.

Offline twin of the inference worker's decision: the same ``load_model``, the same
``beat_inputs`` / ``rhythm_inputs``, argmax over the classes, then the rhythm
model's ``RateRules`` (pause, brady, tachy) and the beats' rhythm context
(``beat_context``), exactly as ``inference.predictor`` decides; results become
annotations through ``result_annotations`` (the one conversion replay scoring uses
too). So ``cardiostream evaluate`` and a live replay write the same file for the same
windows (with the same rhythm model: ``out_of_fold`` takes each record's from the CV
fold that never saw it). torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardiostream.annotate import Annotations
from cardiostream.beat_context import beats_in_context
from cardiostream.features import (
    LoadedModel,
    RateRules,
    beat_inputs,
    load_fold_models,
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

    def __init__(self, model_dir: Path, threads: int | None = None,
                 rhythm_dir: Path | None = None, out_of_fold: bool = False) -> None:
        """``rhythm_dir``: take the rhythm model from RHYTHM_DIR/rhythm instead.
        ``out_of_fold``: label each record's rhythm with the cross-validation fold model
        that was tested on that record (RHYTHM/folds, written by ``cardiostream train
        rhythm``), so neither the rhythm annotations nor the beats' rhythm context come
        from a model that has seen the patient (``cardiostream evaluate``)."""
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.beat = load_model(Path(model_dir), "beat")
        rhythm_home = Path(rhythm_dir or model_dir)
        has_rhythm = (rhythm_home / "rhythm" / "model.ts").exists()
        if rhythm_dir is not None and not has_rhythm:
            raise FileNotFoundError(f"no rhythm model in {rhythm_home / 'rhythm'}")
        self.rhythm = load_model(rhythm_home, "rhythm") if has_rhythm else None
        self.folds = load_fold_models(rhythm_home / "rhythm") if out_of_fold and has_rhythm \
            else {}
        if out_of_fold and not self.folds:
            raise FileNotFoundError(f"no cross-validation fold models in {rhythm_home}/rhythm"
                                    "/folds (train the rhythm model again to write them)")
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

    def _rhythm_for(self, record_name: str) -> LoadedModel | None:
        if not self.folds:
            return self.rhythm
        if record_name not in self.folds:
            raise KeyError(f"record {record_name} was in no cross-validation fold of the "
                           f"rhythm model (its records: {sorted(self.folds)})")
        return self.folds[record_name]

    def rhythm_results(self, windows: Sequence[RhythmWindow],
                       model: LoadedModel | None = None) -> list[RhythmResult]:
        model = model or self.rhythm
        if model is None or not windows:
            return []
        x, feats = rhythm_inputs(windows, model.leads)
        probs = _probs(model, x, feats)
        out = []
        for w, p, f in zip(windows, probs, feats, strict=True):
            label = model.classes[int(np.argmax(p))]
            if self.rules is not None:
                label = self.rules.apply(label, f)
            out.append(RhythmResult(w.device_id, w.unit, w.segment, w.window_index,
                                    w.start_time_us, w.end_time_us, w.last_sample_time_us,
                                    label, tuple(float(v) for v in p), _bpm(w.beat_times_us),
                                    w.quality, self.version))
        return out

    def __call__(self, record: Record, windows: RecordWindows, start_us: int) -> Annotations:
        beats = self.beat_results(windows.beats) if windows.beats else []
        rhythms = self.rhythm_results(windows.rhythms, self._rhythm_for(record.name))
        beats = beats_in_context(beats, rhythms)
        hop_s = float(self.beat.metadata["spec"]["rhythm_hop_s"])
        return annotations_from_results(beats, rhythms, start_us, record.fs_hz, hop_s)


def _bpm(beat_times_us: tuple[int, ...]) -> float:
    if len(beat_times_us) < 2:
        return 0.0
    med = float(np.median(np.diff(np.asarray(beat_times_us, dtype=np.float64)))) / 1e6
    return round(60.0 / med, 1) if med > 0 else 0.0
