"""Training data cut by the stream's own DSP (train/serve parity), cached per record.

For each WFDB record we run ``cardiostream.processing.process_record`` - the same
chunked filtering, QRS detection and windowing the Faust agent runs - and label
the DETECTED beats from the reference annotations: a detection matched to a
reference beat within 150 ms (the EC57 window, one-to-one, nearest first) takes
that beat's AAMI class (de Chazal mapping). Unmatched detections are DROPPED from
training: EC57 never scores them per class, and calling them Q would teach the
model that noise is a beat class.

Each record becomes one ``.npz`` under ``Settings().paths.cache_dir/datasets/``,
keyed by spec id, record hash (sha256 of .hea/.dat/.atr), features version and a
hash of the DSP source, so a change to any of them rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardiostream.features import RHYTHM_FEATURES, rhythm_inputs
from cardiostream.labels import AAMI_DE_CHAZAL, BEAT_SYMBOLS
from cardiostream.records import load_annotations, load_record, record_path
from cardiostream.schemas import BeatWindow, RhythmWindow
from cardiostream.signal import SignalSpec

MATCH_S = 0.150
CLASS_INDEX = {c: i for i, c in enumerate("NSVFQ")}
DSP_MODULES = ("processing.py", "filters.py", "qrs.py", "qrs_rules.py", "windowing.py",
               "quality.py", "resample.py", "signal.py", "history.py", "beat_template.py",
               "rr_features.py")
_CORE = Path(__file__).resolve().parent.parent / "cardiostream"


class DatasetError(RuntimeError):
    """A record that cannot be cut (missing files, no detections)."""


def record_hash(directory: Path, name: str) -> str:
    """sha256 over the record's header, signal and reference annotation files."""
    base = record_path(directory, name)
    h = hashlib.sha256()
    for ext in (".hea", ".dat", ".atr"):
        p = base.with_suffix(ext)
        if p.exists():
            h.update(ext.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def dsp_hash() -> str:
    """Hash of the DSP source files that shape the windows (cache invalidation)."""
    h = hashlib.sha256()
    for mod in DSP_MODULES:
        p = _CORE / mod
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:10]


def run_dsp(record, spec: SignalSpec) -> tuple[list[BeatWindow], list[RhythmWindow]]:
    """The stream's DSP over a whole record, in 0.5 s chunks, device time 0 = sample 0."""
    from cardiostream.processing import process_record

    out = process_record(record, spec, chunk_s=0.5, device_id=f"rec{record.name}", start_us=0)
    if isinstance(out, tuple) and len(out) == 2:
        beats, rhythms = out
    elif hasattr(out, "beats"):
        beats, rhythms = out.beats, out.rhythm if hasattr(out, "rhythm") else out.rhythms
    else:
        items = list(out)
        beats = [w for w in items if isinstance(w, BeatWindow)]
        rhythms = [w for w in items if isinstance(w, RhythmWindow)]
    return list(beats), list(rhythms)


def match_beats(det: np.ndarray, ref: np.ndarray, tol: int) -> np.ndarray:
    """Detected and reference sample indices -> index into ``ref`` per detection, or -1.

    One-to-one: each reference beat keeps only its nearest detection (EC57 rule).
    """
    out = np.full(det.size, -1, dtype=np.int64)
    if det.size == 0 or ref.size == 0:
        return out
    pos = np.clip(np.searchsorted(ref, det), 1, ref.size - 1)
    left, right = ref[pos - 1], ref[pos]
    nearest = np.where(np.abs(det - left) <= np.abs(right - det), pos - 1, pos)
    dist = np.abs(det - ref[nearest])
    ok = dist <= tol
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        j = int(nearest[i])
        if j not in best or dist[i] < dist[best[j]]:
            best[j] = int(i)
    for j, i in best.items():
        out[i] = j
    return out


def rhythm_intervals(ann, n_samples: int) -> list[tuple[int, int, str]]:
    """'+' annotations with aux '(CODE' -> [(start, end, CODE)], record start = N."""
    marks = [(int(s), a.strip("\x00 ").lstrip("(")) for s, sym, a in
             zip(ann.sample, ann.symbol, ann.aux_note, strict=True) if sym == "+" and a]
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0, marks[0][1] if marks else "N"))
    ends = [s for s, _ in marks[1:]] + [n_samples]
    return [(s, e, code) for (s, code), e in zip(marks, ends, strict=True) if e > s]


def window_rhythm(intervals, start: int, end: int) -> tuple[str, float]:
    """The rhythm covering most of [start, end) samples, and the fraction it covers."""
    cover: dict[str, int] = {}
    for s, e, code in intervals:
        overlap = min(e, end) - max(s, start)
        if overlap > 0:
            cover[code] = cover.get(code, 0) + overlap
    if not cover:
        return "N", 0.0
    code = max(cover, key=cover.__getitem__)
    return code, cover[code] / max(end - start, 1)


def cut_record(data_dir: Path, name: str, spec: SignalSpec,
               sampto: int | None = None) -> dict[str, np.ndarray]:
    """Run the DSP over one record (or its first ``sampto`` samples) and label its windows."""
    record = load_record(data_dir, name, sampto=sampto)
    beats, rhythms = run_dsp(record, spec)
    if not beats:
        raise DatasetError(f"record {name}: the detector found no beats")
    ann = load_annotations(data_dir, name)
    fs = spec.fs_hz
    is_beat = np.array([s in BEAT_SYMBOLS for s in ann.symbol])
    ref = np.asarray(ann.sample)[is_beat]
    ref_sym = np.asarray(ann.symbol)[is_beat]
    det = np.array([round(w.r_time_us * fs / 1e6) for w in beats], dtype=np.int64)
    idx = match_beats(det, ref, round(MATCH_S * fs))
    sym = np.where(idx >= 0, ref_sym[np.maximum(idx, 0)], "")
    label = np.array([CLASS_INDEX.get(AAMI_DE_CHAZAL.get(s, ""), -1) for s in sym], np.int8)
    intervals = rhythm_intervals(ann, record.adc.shape[1])
    rl = [window_rhythm(intervals, round(w.start_time_us * fs / 1e6),
                        round(w.end_time_us * fs / 1e6)) for w in rhythms]
    bt = [np.asarray(w.beat_times_us, dtype=np.int64) for w in rhythms]
    n_leads = len(rhythms[0].sqi) if rhythms else 0
    return {
        "beat_samples": np.stack([w.samples for w in beats]).astype(np.float32),
        "beat_template": np.stack([w.template for w in beats]).astype(np.float32),
        "beat_rr": np.array([[w.rr_prev_s, w.rr_next_s, w.rr_local_s, w.rr_long_s]
                             for w in beats], dtype=np.float64),
        "beat_sample": det, "beat_label": label, "beat_symbol": sym.astype("U1"),
        "beat_quality": np.array([w.quality for w in beats]),
        "rhythm_samples0": np.stack([w.samples[0] for w in rhythms]).astype(np.float32)
        if rhythms else np.zeros((0, 1), np.float32),
        "rhythm_beat_times_us": np.concatenate(bt) if bt else np.zeros(0, np.int64),
        "rhythm_beat_offsets": np.cumsum([0] + [b.size for b in bt]),
        "rhythm_sqi": np.array([w.sqi for w in rhythms], dtype=np.float64).reshape(-1, n_leads),
        "rhythm_quality": np.array([w.quality for w in rhythms]).reshape(-1, n_leads),
        "rhythm_fs_hz": np.array(rhythms[0].fs_hz if rhythms else spec.rhythm_fs_hz),
        "rhythm_start_us": np.array([w.start_time_us for w in rhythms], dtype=np.int64),
        "rhythm_end_us": np.array([w.end_time_us for w in rhythms], dtype=np.int64),
        "rhythm_label": np.array([c for c, _ in rl], dtype="U8"),
        "rhythm_label_frac": np.array([f for _, f in rl], dtype=np.float32),
        "n_ref_beats": np.array(ref.size), "fs_hz": np.array(fs),
    }


@dataclass(frozen=True)
class CacheKey:
    name: str
    spec_id: str
    record_sha256: str
    dsp: str

    def path(self, cache_dir: Path) -> Path:
        return (Path(cache_dir) / "datasets" / self.spec_id /
                f"{self.name}-{self.record_sha256[:16]}-d{self.dsp}.npz")


def _build_one(args: tuple[Path, str, SignalSpec, Path]) -> str:
    data_dir, name, spec, target = args
    arrays = cut_record(data_dir, name, spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, target)
    return name


def build_cache(data_dir: Path, names: Sequence[str], spec: SignalSpec, cache_dir: Path,
                workers: int = 2, on_done: Callable[[str], None] | None = None
                ) -> dict[str, tuple[Path, str]]:
    """Cut every record not cached yet (<= 2 processes). Returns name -> (npz, sha256)."""
    keys = {n: CacheKey(n, spec.spec_id, record_hash(data_dir, n), dsp_hash()) for n in names}
    todo = [(data_dir, n, spec, k.path(cache_dir)) for n, k in keys.items()
            if not k.path(cache_dir).exists()]
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, min(workers, 2, len(todo)))) as pool:
            for name in pool.map(_build_one, todo):
                if on_done:
                    on_done(name)
    return {n: (k.path(cache_dir), k.record_sha256) for n, k in keys.items()}


def load_arrays(paths: dict[str, tuple[Path, str]]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name, (path, _) in paths.items():
        with np.load(path) as z:
            out[name] = {k: z[k] for k in z.files}
    return out


def cached_rhythm_windows(a: dict[str, np.ndarray]) -> list[RhythmWindow]:
    """Rebuild the rhythm windows (lead 0 only: all the rhythm features read)."""
    off, bt = a["rhythm_beat_offsets"], a["rhythm_beat_times_us"]
    fs = float(a["rhythm_fs_hz"])
    return [RhythmWindow("cache", "cache", "", 0, i, int(a["rhythm_start_us"][i]),
                         int(a["rhythm_end_us"][i]), int(a["rhythm_end_us"][i]), fs,
                         tuple(int(t) for t in bt[off[i]:off[i + 1]]),
                         tuple(str(q) for q in a["rhythm_quality"][i]),
                         tuple(float(q) for q in a["rhythm_sqi"][i]),
                         a["rhythm_samples0"][i][None, :])
            for i in range(len(a["rhythm_start_us"]))]


def rhythm_features(a: dict[str, np.ndarray]) -> np.ndarray:
    """(n_windows, F) features of a cached record, by the serving code path."""
    wins = cached_rhythm_windows(a)
    return rhythm_inputs(wins)[1] if wins else np.zeros((0, len(RHYTHM_FEATURES)), np.float32)
