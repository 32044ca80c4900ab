"""Offline twin of the stream processor: WFDB records in, WFDB annotation files out.

``annotate_record`` runs ``processing.process_record`` (the very chunked code the
Faust agent runs) over a record and writes ``OUT/RECORD.EXT`` with ``wfdb.wrann``:
one annotation per detected beat at its R-peak sample, plus a copy of the
record's header so PhysioNet tools (``bxb``, ``rdann``) can read the file.

Labels come from a ``Labeller``: by default every beat is ``Q`` (unclassified).
The beat classifier and rhythm model plug in here: a labeller receives the
record's windows and returns the annotations to write (beat labels, and rhythm
changes as ``+`` annotations with an aux note such as ``(AFIB``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardiostream.processing import RecordWindows, process_record
from cardiostream.records import Record, record_path
from cardiostream.signal import SignalSpec

_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Annotations:
    """What one record's annotation file holds; ``sample`` in record samples, sorted."""

    sample: np.ndarray            # (k,) int64
    symbol: list[str]             # MIT-BIH codes: beat labels, "+" rhythm changes, ...
    aux_note: list[str]           # "" or e.g. "(AFIB" for "+"


Labeller = Callable[[Record, RecordWindows, int], Annotations]
"""(record, its windows, start_us the record was replayed from) -> annotations."""


def beat_samples(record: Record, windows: RecordWindows, start_us: int) -> np.ndarray:
    """Record sample of each beat window's R peak (exact at the record's own rate)."""
    t = np.array([w.r_time_us for w in windows.beats], dtype=np.int64)
    return np.round((t - start_us) * record.fs_hz / _US).astype(np.int64)


def unlabelled(record: Record, windows: RecordWindows, start_us: int) -> Annotations:
    """Default labeller: every detected beat is ``Q`` (no classifier yet)."""
    samples = beat_samples(record, windows, start_us)
    return Annotations(samples, ["Q"] * samples.size, [""] * samples.size)


def write_annotations(out_dir: Path, name: str, ext: str, fs_hz: float,
                      ann: Annotations) -> Path:
    """wrann refuses an empty file: a record without beats gets one note (``"``) at sample 1
    (wfdb's rdann drops an annotation at sample 0)."""
    import wfdb

    sample, symbol, aux = ann.sample, ann.symbol, ann.aux_note
    if sample.size == 0:
        sample, symbol, aux = np.array([1], dtype=np.int64), ['"'], ["no beats detected"]
    order = np.argsort(sample, kind="stable")
    wfdb.wrann(name, ext, sample[order], symbol=[symbol[i] for i in order],
               aux_note=[aux[i] for i in order], fs=fs_hz, write_dir=str(out_dir))
    return out_dir / f"{name}.{ext}"


def annotate_record(record: Record, source_dir: Path, out_dir: Path, spec: SignalSpec,
                    ext: str = "cs", labeller: Labeller = unlabelled, chunk_s: float = 0.5,
                    start_us: int = 0) -> tuple[Path, RecordWindows]:
    """Process one record and write its annotations; returns (path, the record's windows)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    windows = process_record(record, spec, chunk_s=chunk_s, start_us=start_us)
    ann = labeller(record, windows, start_us)
    path = write_annotations(out_dir, record.name, ext, record.fs_hz, ann)
    header = record_path(source_dir, record.name).with_suffix(".hea")
    if header.resolve() != (out_dir / header.name).resolve():
        shutil.copyfile(header, out_dir / header.name)
    return path, windows
