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
from cardiostream.beat_context import RhythmContext
from cardiostream.features import RateRules, beat_inputs, load_model, rhythm_inputs
from cardiostream.rhythm_features import padded_median, ragged_rr
from cardiostream.schemas import BeatResult, BeatWindow, Result, RhythmResult, RhythmWindow, Window

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
        self.context = RhythmContext()   # beat labels in their rhythm (cardiostream.beat_context)

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
        """Classify a batch; order of results == order of ``windows``.

        ``windows`` must come in each device's stream order, batch after batch: a beat's
        label depends on the rhythm decisions before it (``cardiostream.beat_context``)."""
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
            for i, res in zip(beats, self._beat_results(bw, probs), strict=True):
                out.results[i] = res
        if rhythms:
            rw = [windows[i] for i in rhythms]
            x, feats = rhythm_inputs(rw, self.rhythm.leads)
            probs = self._forward("rhythm", x, feats)
            for i, res in zip(rhythms, self._rhythm_results(rw, probs, feats), strict=True):
                out.results[i] = res
        out.results = [None if r is None else self.context.feed(r) for r in out.results]
        return out

    def forget(self, device_ids: set[str]) -> None:
        """Drop the rhythm context of devices whose partitions moved to another worker."""
        self.context.forget(device_ids)

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

    def _beat_results(self, ws: list[BeatWindow], probs: np.ndarray) -> list[BeatResult]:
        """(B, K) probabilities -> results; argmax and rounding done once for the batch."""
        classes, version = self.beat.classes, self.version
        return [BeatResult(w.device_id, w.unit, w.segment, w.beat_index, w.r_time_us,
                           w.last_sample_time_us, classes[k], p, w.rr_prev_s, w.quality, version)
                for w, k, p in zip(ws, probs.argmax(axis=1).tolist(), _rounded(probs),
                                   strict=True)]

    def _rhythm_results(self, ws: list[RhythmWindow], probs: np.ndarray,
                        feats: np.ndarray) -> list[RhythmResult]:
        classes, version = self.rhythm.classes, self.version
        labels = [classes[k] for k in probs.argmax(axis=1).tolist()]
        if self.rate_rules is not None:
            labels = [self.rate_rules.apply(label, f) for label, f in zip(labels, feats,
                                                                          strict=True)]
        hrs = heart_rates_bpm([w.beat_times_us for w in ws])
        return [RhythmResult(w.device_id, w.unit, w.segment, w.window_index, w.start_time_us,
                             w.end_time_us, w.last_sample_time_us, label, p, hr, w.quality,
                             version)
                for w, label, p, hr in zip(ws, labels, _rounded(probs), hrs, strict=True)]


def _rounded(probs: np.ndarray) -> list[tuple[float, ...]]:
    """(B, K) -> per row a tuple of Python floats rounded to 4 decimals (Python's round)."""
    return [tuple(round(v, 4) for v in row) for row in probs.tolist()]


def heart_rates_bpm(beat_times_us: list[tuple[int, ...]]) -> list[float]:
    """60 / median RR of each window's beats (one batched median); 0.0 with < 2 beats."""
    rr, n = ragged_rr(beat_times_us)
    med = padded_median(rr, n).tolist()
    return [round(60.0 / m, 1) if k > 0 and m > 0 else 0.0
            for m, k in zip(med, n.tolist(), strict=True)]


def heart_rate_bpm(beat_times_us: tuple[int, ...]) -> float:
    """60 / median RR of one window's beats; 0.0 with fewer than two beats."""
    return heart_rates_bpm([beat_times_us])[0]
