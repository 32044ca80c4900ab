"""Batched classification of beat and rhythm windows with the exported TorchScript models.

The model folder is the training module's contract (``DIR/beat``, ``DIR/rhythm``:
``model.ts`` + ``metadata.json``), loaded through ``cardiostream.features.load_model``;
the input preparation is ``features.beat_inputs`` / ``features.rhythm_inputs``, the very
code training used. Windows cut with another ``SignalSpec`` than the model's are
refused with reason ``spec_mismatch`` (train/serve skew caught at the door).

Device: chosen once (``auto`` = CUDA when present). On CUDA the host batch is
pinned and copied in one non-blocking transfer, and the models run in half
precision when asked; on CPU they always run in float32.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cardiostream import metrics
from cardiostream.features import RateRules, beat_inputs, load_model, rhythm_inputs
from cardiostream.schemas import BeatResult, BeatWindow, Result, RhythmResult, RhythmWindow, Window

_US = 1_000_000
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A window the predictor refuses; ``index`` is its position in the batch."""

    index: int
    reason: str
    detail: str


@dataclass(slots=True)
class Prediction:
    """Results aligned with the batch (None where rejected) and the rejections."""

    results: list[Result | None]
    rejected: list[Rejection] = field(default_factory=list)


def choose_device(requested: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is an error."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={requested!r}; choose auto, cpu or cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda requested but torch.cuda.is_available() is False")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


class Predictor:
    """Both models on one device; ``predict`` takes a mixed batch of windows."""

    def __init__(self, model_dir: Path, device: str = "auto", half: bool = True,
                 threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = choose_device(device)
        self.half = bool(half) and self.device.type == "cuda"
        self.beat = load_model(Path(model_dir), "beat", str(self.device))
        self.rhythm = load_model(Path(model_dir), "rhythm", str(self.device))
        self.programs = {kind: self._prepare(m.program, kind)
                         for kind, m in (("beat", self.beat), ("rhythm", self.rhythm))}
        rules = self.rhythm.metadata.get("rate_rules")
        self.rate_rules = RateRules(**rules) if rules else None

    def _prepare(self, program: torch.jit.ScriptModule, kind: str) -> torch.jit.ScriptModule:
        """Move (and halve) once; freeze, and on CPU fold BatchNorm into the convolutions.

        Freezing inlines weights as constants (about 1.3x faster per call on this CPU,
        docs/benchmarks.md); a program that cannot be frozen runs as exported.
        """
        program = program.to(self.device).eval()
        if self.half:
            program = program.half()
        try:
            frozen = torch.jit.freeze(program)
            if self.device.type == "cpu":
                frozen = torch.jit.optimize_for_inference(frozen)
        except RuntimeError as exc:
            log.warning("%s model kept unfrozen: %s", kind, exc)
            return program
        return frozen

    @property
    def version(self) -> str:
        beat, rhythm = self.beat.metadata, self.rhythm.metadata
        return f"{beat.get('version', '?')}+{rhythm.get('version', '?')}"

    def predict(self, windows: list[Window]) -> Prediction:
        """Classify a batch; order of results == order of ``windows``."""
        out = Prediction([None] * len(windows))
        beats: list[int] = []
        rhythms: list[int] = []
        for i, w in enumerate(windows):
            model = self.beat if isinstance(w, BeatWindow) else self.rhythm
            if w.spec_id != model.metadata.get("spec_id"):
                out.rejected.append(Rejection(i, "spec_mismatch",
                                              f"window {w.spec_id} != {w.kind} model "
                                              f"{model.metadata.get('spec_id')}"))
            else:
                (beats if isinstance(w, BeatWindow) else rhythms).append(i)
        if beats:
            bw = [windows[i] for i in beats]
            probs = self._forward("beat", *beat_inputs(bw, self.beat.leads))
            for i, w, p in zip(beats, bw, probs, strict=True):
                out.results[i] = self._beat_result(w, p)
        if rhythms:
            rw = [windows[i] for i in rhythms]
            x, feats = rhythm_inputs(rw, self.rhythm.leads)
            probs = self._forward("rhythm", x, feats)
            for i, w, p, f in zip(rhythms, rw, probs, feats, strict=True):
                out.results[i] = self._rhythm_result(w, p, f)
        return out

    def _forward(self, kind: str, x: np.ndarray, aux: np.ndarray) -> np.ndarray:
        """(B, L, T) and (B, F) float32 host arrays -> (B, K) float32 class probabilities."""
        t0 = time.perf_counter()
        xt, at = torch.from_numpy(x), torch.from_numpy(aux)
        if self.device.type == "cuda":
            xt, at = self._to_device(xt, at)
        with torch.inference_mode():
            logits = self.programs[kind](xt, at)          # (B, K)
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        metrics.INFERENCE_SECONDS.labels(kind).observe(time.perf_counter() - t0)
        return probs

    def _to_device(self, xt: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One pinned host buffer holding both inputs -> one host-to-device copy."""
        b = xt.shape[0]
        flat = torch.cat([xt.reshape(b, -1), at.reshape(b, -1)], dim=1).pin_memory()
        dev = flat.to(self.device, non_blocking=True)
        if self.half:
            dev = dev.half()
        n = xt[0].numel()
        return dev[:, :n].reshape(xt.shape), dev[:, n:].reshape(at.shape)

    def _beat_result(self, w: BeatWindow, p: np.ndarray) -> BeatResult:
        return BeatResult(w.device_id, w.unit, w.segment, w.beat_index, w.r_time_us,
                          w.last_sample_time_us, self.beat.classes[int(np.argmax(p))],
                          tuple(round(float(v), 4) for v in p), w.rr_prev_s, w.quality,
                          self.version)

    def _rhythm_result(self, w: RhythmWindow, p: np.ndarray, feats: np.ndarray) -> RhythmResult:
        label = self.rhythm.classes[int(np.argmax(p))]
        if self.rate_rules is not None:
            label = self.rate_rules.apply(label, feats)
        return RhythmResult(w.device_id, w.unit, w.segment, w.window_index, w.start_time_us,
                            w.end_time_us, w.last_sample_time_us, label,
                            tuple(round(float(v), 4) for v in p), heart_rate_bpm(w.beat_times_us),
                            w.quality, self.version)


def heart_rate_bpm(beat_times_us: tuple[int, ...]) -> float:
    """60 / median RR of the window's beats; 0.0 with fewer than two beats."""
    if len(beat_times_us) < 2:
        return 0.0
    rr = np.diff(np.asarray(beat_times_us, dtype=np.float64)) / _US
    med = float(np.median(rr))
    return round(60.0 / med, 1) if med > 0 else 0.0
