"""EC57 beat-by-beat scoring that reproduces PhysioNet's ``bxb`` + ``sumstats`` exactly.

API (used by the DSP, training and evaluation code)::

    from cardiostream.scoring import score_records
    report = score_records(ref_dir, test_dir, records, test_ext="cs", ref_ext="atr",
                           start_s=300.0, window_s=0.15, convention="bxb")
    report.gross["qrs_se"], report.gross["qrs_ppv"]          # percent, sumstats "Gross"
    report.gross["veb_se"], report.gross["sveb_ppv"]         # EC57 VEB / SVEB figures
    report.gross_classes["S"]["se"]                          # per-class N S V F Q Se/+P/FPR
    report.average[...]                                      # sumstats "Average" line
    report.records[i].matrix                                 # 7x7 confusion, rows = reference
    report.episodes                                          # AF episode figures or None

``convention`` is ``"bxb"`` (labels.AAMI_BXB: escape beats e, j, n are S; these are
the figures PhysioNet's bxb prints) or ``"dechazal"`` (e, j, n relabelled N before
scoring: the inter-patient literature's figures). Matching is bxb's own walk
(cardiostream.bxb); the statistics are bxb's per-record line (``-L``) and sumstats'
Gross/Average formulas, including their small differences (docs/scoring.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cardiostream.bxb import K_BEAT, K_NOISE, K_OTHER, K_VFOFF, K_VFON, AnnStream, compare
from cardiostream.labels import AAMI_BXB, AAMI_CLASSES, AAMI_DE_CHAZAL, BEAT_SYMBOLS
from cardiostream.records import NON_PACED, expand_records
from cardiostream.scoring_episodes import EpisodeScore, rhythm_annotations, score_episodes

# bxb's isqrs() (WFDB ecgmap.h) also counts '!' (ventricular flutter wave) as a QRS;
# amap() gives it no AAMI class, so it takes part in matching as class 'O'.
BXB_QRS_SYMBOLS: frozenset[str] = BEAT_SYMBOLS | {"!"}
_KIND = {"~": K_NOISE, "[": K_VFON, "]": K_VFOFF}

CONVENTIONS: dict[str, dict[str, str]] = {
    "bxb": AAMI_BXB,
    # de Chazal et al. 2004: bxb's map with the escape beats e, j, n relabelled N.
    "dechazal": {**AAMI_BXB, **dict.fromkeys("ejn", "N")},
}

# bxb line-format columns (row = reference class, column = test class; primes mark
# counts that do not enter the statistics).
LINE_COLUMNS: tuple[str, ...] = (
    "Nn'", "Sn'", "Vn'", "Fn'", "On'", "Ns", "Ss", "Vs", "Fs'", "Os'",
    "Nv", "Sv", "Vv", "Fv'", "Ov'", "No'", "So'", "Vo'", "Fo'")
# Collapse the 7x7 matrix (N S V F Q O X) into bxb's 5 row groups x 4 column groups.
_ROW_GROUPS = ((0,), (1,), (2,), (3, 4), (5, 6))
_COL_GROUPS = ((0, 3, 4), (1,), (2,), (5, 6))
_N, _S, _V, _F, _Q, _O, _X = range(7)   # matrix indices (bxb.ROWS)


class ScoringError(ValueError):
    """A record or annotation file that cannot be scored, with the reason."""


def resolve_convention(convention: str | Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Name and symbol->class map of a convention given by name or labels dict."""
    if isinstance(convention, Mapping):
        if convention is AAMI_DE_CHAZAL:
            return "dechazal", CONVENTIONS["dechazal"]
        return ("bxb" if convention is AAMI_BXB else "custom"), dict(convention)
    key = convention.lower().replace("-", "").replace("_", "")
    if key not in CONVENTIONS:
        raise ScoringError(f"unknown class convention {convention!r}; "
                           f"choose one of {sorted(CONVENTIONS)}")
    return key, CONVENTIONS[key]


def make_stream(samples: Sequence[int], symbols: Sequence[str], subtypes: Sequence[int],
                convention: Mapping[str, str]) -> AnnStream:
    """Annotations (in file order) as bxb sees them under a class convention."""
    kinds, labels = [], []
    for sym in symbols:
        if sym in BXB_QRS_SYMBOLS:
            kinds.append(K_BEAT)
            labels.append(convention.get(sym, "O"))
        else:
            kinds.append(_KIND.get(sym, K_OTHER))
            labels.append("")
    return AnnStream(tuple(int(s) for s in samples), tuple(kinds), tuple(labels),
                     tuple(int(s) for s in subtypes))


def line_counts(matrix: np.ndarray) -> tuple[int, ...]:
    """bxb's 19 line-format counts (LINE_COLUMNS order) from a 7x7 matrix."""
    out = []
    for j, cols in enumerate(_COL_GROUPS):
        rows = _ROW_GROUPS[:4] if j == 3 else _ROW_GROUPS
        out.extend(int(matrix[np.ix_(r, cols)].sum()) for r in rows)
    return tuple(out)


def _pct(a: float, b: float) -> float | None:
    return 100.0 * a / b if b > 0 else None


def bxb_record_stats(m: np.ndarray) -> dict[str, float | None]:
    """Statistics exactly as bxb computes them for one record (percent; None = '-')."""
    qtp, qfn, qfp = m[:5, :5].sum(), m[:5, 5:].sum(), m[5:, :5].sum()
    vfp = m[_N, _V] + m[_S, _V] + m[_O, _V] + m[_X, _V]
    vtn = m[np.ix_((_N, _S, _F, _Q, _O, _X), (_N, _S, _F, _Q))].sum()
    sfp = m[_N, _S] + m[_V, _S] + m[_F, _S] + m[_O, _S] + m[_X, _S]
    return {"qrs_se": _pct(qtp, qtp + qfn), "qrs_ppv": _pct(qtp, qtp + qfp),
            "veb_se": _pct(m[_V, _V], m[_V].sum()), "veb_ppv": _pct(m[_V, _V], m[_V, _V] + vfp),
            "veb_fpr": _pct(vfp, vtn + vfp),
            "sveb_se": _pct(m[_S, _S], m[_S].sum()), "sveb_ppv": _pct(m[_S, _S], m[_S, _S] + sfp)}


def _sumstats_terms(c: Sequence[int]) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of each sumstats figure from 19 line counts."""
    nn, sn, vn, fn, on, ns, ss, vs, fs, os_, nv, sv, vv, fv, ov, no, so, vo, fo = c
    qtp = nn + ns + nv + sn + ss + sv + vn + vs + vv + fn + fs + fv
    return {"qrs_se": (qtp, qtp + no + so + vo + fo), "qrs_ppv": (qtp, qtp + on + os_ + ov),
            "veb_se": (vv, vn + vs + vv + vo), "veb_ppv": (vv, nv + sv + vv + ov),
            "sveb_se": (ss, sn + ss + sv + so), "sveb_ppv": (ss, ns + ss + vs + os_)}


def class_stats(m: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """Per-class N S V F Q figures from a 7x7 matrix (one rule for all classes).

    Se = TP / (reference beats of the class, missed ones included); +P = TP / (TP + FP)
    and FPR = FP / (FP + TN), where reference F and Q beats are never a false positive
    of another class (as EC57/sumstats do for V and S) and TN counts detected beats
    that are the class in neither annotation. For V this equals bxb's VEB Se/+P/FPR.
    """
    out: dict[str, dict[str, float | int | None]] = {}
    for k, name in enumerate(AAMI_CLASSES):
        tp = int(m[k, k])
        fn = int(m[k].sum()) - tp
        fp = int(sum(m[r, k] for r in (_N, _S, _V, _O, _X) if r != k))
        others = [j for j in range(5) if j != k]
        tn = int(m[np.ix_([r for r in range(7) if r != k], others)].sum())
        out[name] = {"tp": tp, "fn": fn, "fp": fp, "tn": tn, "se": _pct(tp, tp + fn),
                     "ppv": _pct(tp, tp + fp), "fpr": _pct(fp, fp + tn)}
    return out


@dataclass(frozen=True, slots=True)
class RecordScore:
    """One record's comparison: the 7x7 matrix (rows = reference N S V F Q O _X)."""

    record: str
    fs_hz: float
    matrix: np.ndarray
    rr_sum_sq: float
    rr_n: int
    shutdown_s: int
    episodes: EpisodeScore | None = None

    @property
    def counts(self) -> tuple[int, ...]:
        return line_counts(self.matrix)

    @property
    def stats(self) -> dict[str, float | None]:
        return bxb_record_stats(self.matrix)

    @property
    def rr_error_ms(self) -> float | None:
        """RMS RR-interval error, ms, as bxb computes it (None when no RR pairs)."""
        if self.rr_n == 0:
            return None
        return math.sqrt(self.rr_sum_sq / self.rr_n) * 1000.0 / int(self.fs_hz + 0.5)


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """All records' scores under one convention, with sumstats' Gross and Average."""

    convention: str
    test_ext: str
    ref_ext: str
    start_s: float
    window_s: float
    records: tuple[RecordScore, ...]
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        total = sum((r.matrix for r in self.records), np.zeros((7, 7), dtype=np.int64))
        object.__setattr__(self, "matrix", total)

    @property
    def sum_counts(self) -> tuple[int, ...]:
        return tuple(int(x) for x in np.sum([r.counts for r in self.records], axis=0)) \
            if self.records else (0,) * 19

    @property
    def gross(self) -> dict[str, float | None]:
        """sumstats' Gross line: statistics of the summed line counts (percent)."""
        return {k: _pct(a, b) for k, (a, b) in _sumstats_terms(self.sum_counts).items()}

    @property
    def average(self) -> dict[str, float | None]:
        """sumstats' Average line: mean of per-record fractions where defined."""
        out: dict[str, float | None] = {}
        terms = [_sumstats_terms(r.counts) for r in self.records]
        for key in ("qrs_se", "qrs_ppv", "veb_se", "veb_ppv", "sveb_se", "sveb_ppv"):
            fr = [a / b for a, b in (t[key] for t in terms) if b > 0]
            out[key] = 100.0 * sum(fr) / len(fr) if fr else None
        rr = [float(f"{r.rr_error_ms:.2f}") for r in self.records if r.rr_error_ms is not None]
        out["rr_error_ms"] = sum(rr) / len(rr) if rr else None
        return out

    @property
    def totals(self) -> dict[str, int]:
        c = self.sum_counts
        return {"qrs": _sumstats_terms(c)["qrs_se"][1], "veb": _sumstats_terms(c)["veb_se"][1],
                "sveb": _sumstats_terms(c)["sveb_se"][1]}

    @property
    def gross_classes(self) -> dict[str, dict[str, float | int | None]]:
        return class_stats(self.matrix)

    @property
    def average_classes(self) -> dict[str, dict[str, float | None]]:
        """Per-class Se/+P/FPR averaged over records where each is defined."""
        per = [class_stats(r.matrix) for r in self.records]
        out: dict[str, dict[str, float | None]] = {}
        for c in AAMI_CLASSES:
            out[c] = {}
            for k in ("se", "ppv", "fpr"):
                vals = [p[c][k] for p in per if p[c][k] is not None]
                out[c][k] = sum(vals) / len(vals) if vals else None
        return out

    @property
    def episodes(self) -> EpisodeScore | None:
        eps = [r.episodes for r in self.records if r.episodes is not None]
        return EpisodeScore.total(eps) if eps else None


def _read(directory: Path, record: str, ext: str):
    import wfdb

    path = Path(directory) / f"{record}.{ext}"
    if not path.exists():
        raise ScoringError(f"no annotation file {path}")
    return wfdb.rdann(str(Path(directory) / record), ext)


def _header(ref_dir: Path, record: str, ann_fs: float | None) -> tuple[float, int]:
    """(fs_hz, record length in samples or -1) from the reference header."""
    import wfdb

    hea = Path(ref_dir) / f"{record}.hea"
    if hea.exists():
        h = wfdb.rdheader(str(Path(ref_dir) / record))
        return float(h.fs), int(h.sig_len or 0) or -1
    if ann_fs:
        return float(ann_fs), -1
    raise ScoringError(f"record {record}: no header {hea} and no sampling frequency in the "
                       "annotation file")


def _in_record_samples(ann, fs_hz: float) -> np.ndarray:
    """Annotation times in record samples: WFDB's getann rescales a file written at
    another time resolution (rounding halves up); wfdb-python does not, so we do."""
    t = np.asarray(ann.sample, dtype=np.int64)
    if ann.fs and abs(float(ann.fs) - fs_hz) > 1e-9:
        t = np.floor(t * (fs_hz / float(ann.fs)) + 0.5).astype(np.int64)
    return t


def score_record(ref_dir: Path, test_dir: Path, record: str, test_ext: str,
                 ref_ext: str = "atr", start_s: float = 300.0, window_s: float = 0.15,
                 convention: str | Mapping[str, str] = "bxb") -> RecordScore:
    """Compare ``test_dir/record.test_ext`` with ``ref_dir/record.ref_ext`` as bxb does."""
    _, cmap = resolve_convention(convention)
    ref, test = _read(ref_dir, record, ref_ext), _read(test_dir, record, test_ext)
    fs, end = _header(ref_dir, record, ref.fs)
    start, match_dt = int(start_s * fs + 0.5), int(window_s * fs + 0.5)
    samples = [_in_record_samples(a, fs) for a in (ref, test)]
    streams = [make_stream(t, a.symbol, a.subtype, cmap)
               for t, a in zip(samples, (ref, test), strict=True)]
    res = compare(streams[0], streams[1], start=start, match_dt=match_dt, end_time=end,
                  fs_hz=fs)
    test_rhythm = rhythm_annotations(samples[1], test.symbol, test.aux_note)
    episodes = None
    if test_rhythm:
        ref_rhythm = rhythm_annotations(samples[0], ref.symbol, ref.aux_note)
        episodes = score_episodes(ref_rhythm, test_rhythm, start=start, end=end, fs_hz=fs)
    return RecordScore(record, fs, res.matrix, res.rr_sum_sq, res.rr_n, res.shutdown_s,
                       episodes)


def default_records(test_dir: Path, test_ext: str) -> list[str]:
    """The 44 non-paced MIT-BIH records that have a test annotation file in test_dir."""
    return [r for r in NON_PACED if (Path(test_dir) / f"{r}.{test_ext}").exists()]


def score_records(ref_dir: Path, test_dir: Path, records: Sequence[str] | None,
                  test_ext: str, ref_ext: str = "atr", start_s: float = 300.0,
                  window_s: float = 0.15,
                  convention: str | Mapping[str, str] = "bxb") -> ScoreReport:
    """Score every record (names, comma lists or DS1/DS2/ALL; default: the non-paced
    MIT-BIH records present in test_dir)."""
    if start_s < 0 or window_s <= 0:
        raise ScoringError(f"start_s must be >= 0 and window_s > 0, got {start_s}, {window_s}")
    names = expand_records(records) if records else default_records(test_dir, test_ext)
    if not names:
        raise ScoringError(f"no records to score: no *.{test_ext} of the non-paced MIT-BIH "
                           f"records in {test_dir}")
    name, _ = resolve_convention(convention)
    scores = tuple(score_record(Path(ref_dir), Path(test_dir), r, test_ext, ref_ext, start_s,
                                window_s, convention) for r in names)
    return ScoreReport(name, test_ext, ref_ext, start_s, window_s, scores)
