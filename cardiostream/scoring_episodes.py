"""Episode-by-episode rhythm scoring (AF) after PhysioNet's ``epic`` (EC57 section 3.5).

Rhythm annotations are ``+`` annotations whose aux string names the rhythm that
starts there (``(AFIB``, ``(AFL``, ``(N`` ...). An episode of a target rhythm set
starts at an annotation naming a target rhythm and ends at the next rhythm
annotation naming a rhythm outside the set (consecutive target rhythms merge, as
epic merges repeated ``(AFIB``); an episode still open at the end of the file ends
at the later of the record end and the file's last annotation.

epic's rules, applied to both directions (reference episodes for sensitivity,
test episodes for positive predictivity):

* episodes ending before the start time are dropped; the rest are clipped to
  [start, end];
* an episode is detected (TP) when the other annotator's episodes overlap it by
  more than zero samples; otherwise it is FN (sensitivity) or FP (+P);
* duration sensitivity = overlap / reference episode time, duration +P =
  overlap / test episode time;
* optional exclusions (epic's AF mode excludes reference atrial flutter from the
  +P comparison): the parts of a test episode inside an excluded reference rhythm
  do not count, and an episode entirely inside one is ignored.

Our AF default merges AFIB and AFL into one target (``AF_RHYTHMS``); epic's own AF
mode is ``target=("AFIB",), exclude=("AFL",)``. Intervals are numpy arrays of
samples; the overlap of n x m episodes is computed in one broadcast (episodes per
record are tens at most).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AF_RHYTHMS: tuple[str, ...] = ("AFIB", "AFL")


@dataclass(frozen=True, slots=True)
class RhythmAnnotations:
    """Rhythm changes of one file: sample of each ``+`` and its rhythm name."""

    sample: np.ndarray       # (n,) int64, ascending
    rhythm: tuple[str, ...]  # names without "(" e.g. "AFIB"
    last_sample: int         # time of the file's last annotation of any kind

    def __len__(self) -> int:
        return len(self.rhythm)


def rhythm_annotations(samples: Sequence[int], symbols: Sequence[str],
                       aux: Sequence[str | None]) -> RhythmAnnotations:
    """Extract ``+`` rhythm annotations (aux ``(NAME``, trailing NULs removed)."""
    keep = [i for i, s in enumerate(symbols) if s == "+" and aux[i]]
    names = tuple(str(aux[i]).rstrip("\x00").strip().lstrip("(") for i in keep)
    last = int(samples[-1]) if len(samples) else 0
    return RhythmAnnotations(np.asarray([samples[i] for i in keep], dtype=np.int64),
                             names, last)


def episodes(ann: RhythmAnnotations, target: Sequence[str], end: int) -> np.ndarray:
    """(k, 2) [start, end) sample intervals of the target rhythms, in time order."""
    inside = np.array([r in target for r in ann.rhythm], dtype=bool)
    if not inside.any():
        return np.zeros((0, 2), dtype=np.int64)
    prev = np.concatenate([[False], inside[:-1]])
    starts = np.flatnonzero(inside & ~prev)
    stops = np.flatnonzero(~inside & prev)
    close = np.full(len(starts), max(end, ann.last_sample), dtype=np.int64)
    close[: len(stops)] = ann.sample[stops]
    return np.stack([ann.sample[starts], close], axis=1)


def _clip(iv: np.ndarray, start: int, end: int) -> np.ndarray:
    iv = iv[iv[:, 1] >= start].copy() if len(iv) else iv
    if len(iv):
        iv[:, 0] = np.maximum(iv[:, 0], start)
        if end > 0:
            iv = iv[iv[:, 0] < end]
            iv[:, 1] = np.minimum(iv[:, 1], end)
    return iv


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Samples of b inside each interval of a: (len(a),) int64."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=np.int64)
    lo = np.maximum(a[:, None, 0], b[None, :, 0])
    hi = np.minimum(a[:, None, 1], b[None, :, 1])
    return np.clip(hi - lo, 0, None).sum(axis=1)


def _exclude(iv: np.ndarray, excl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trim excluded edges; return kept intervals and their counted durations."""
    if len(excl) == 0 or len(iv) == 0:
        return iv, iv[:, 1] - iv[:, 0]
    kept, dur = [], []
    for s, e in iv:
        for xs, xe in excl:
            if xs <= s <= xe:
                s = max(s, xe)
            elif s <= xs <= e and xe >= e:
                e = xs
        if e > s:
            kept.append((s, e))
            dur.append(e - s - int(_overlap(np.array([[s, e]]), excl)[0]))
    return np.array(kept, dtype=np.int64).reshape(-1, 2), np.array(dur, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class EpisodeScore:
    """epic's counts for one record (or summed over records); durations in seconds."""

    tp_se: int
    fn: int
    tp_ppv: int
    fp: int
    ref_s: float
    test_s: float
    overlap_se_s: float
    overlap_ppv_s: float

    @property
    def se(self) -> float | None:
        n = self.tp_se + self.fn
        return 100.0 * self.tp_se / n if n else None

    @property
    def ppv(self) -> float | None:
        n = self.tp_ppv + self.fp
        return 100.0 * self.tp_ppv / n if n else None

    @property
    def duration_se(self) -> float | None:
        return 100.0 * self.overlap_se_s / self.ref_s if self.ref_s > 0 else None

    @property
    def duration_ppv(self) -> float | None:
        return 100.0 * self.overlap_ppv_s / self.test_s if self.test_s > 0 else None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"tp_se": self.tp_se, "fn": self.fn, "tp_ppv": self.tp_ppv, "fp": self.fp,
                "ref_s": self.ref_s, "test_s": self.test_s, "se": self.se, "ppv": self.ppv,
                "duration_se": self.duration_se, "duration_ppv": self.duration_ppv}

    @staticmethod
    def total(scores: Sequence[EpisodeScore]) -> EpisodeScore:
        """Gross figures: counts and durations summed over records."""
        f = [sum(getattr(s, k) for s in scores) for k in
             ("tp_se", "fn", "tp_ppv", "fp", "ref_s", "test_s", "overlap_se_s",
              "overlap_ppv_s")]
        return EpisodeScore(*f)


def score_episodes(ref: RhythmAnnotations, test: RhythmAnnotations, *, start: int, end: int,
                   fs_hz: float, target: Sequence[str] = AF_RHYTHMS,
                   exclude: Sequence[str] = (), min_s: float = 0.0) -> EpisodeScore:
    """Episode and duration Se/+P of the target rhythms, test against reference."""
    ref_iv = _clip(episodes(ref, target, end), start, end)
    test_raw = episodes(test, target, end)
    test_iv, test_dur = _exclude(_clip(test_raw, start, end),
                                 episodes(ref, tuple(exclude), end) if exclude else
                                 np.zeros((0, 2), dtype=np.int64))
    min_len = int(min_s * fs_hz + 0.5)
    ref_dur = ref_iv[:, 1] - ref_iv[:, 0]
    rk, tk = ref_dur >= min_len, test_dur >= min_len
    ref_iv, ref_dur, test_iv, test_dur = ref_iv[rk], ref_dur[rk], test_iv[tk], test_dur[tk]
    ov_se = _overlap(ref_iv, test_raw)
    ov_ppv = _overlap(test_iv, episodes(ref, target, end))
    return EpisodeScore(int((ov_se > 0).sum()), int((ov_se == 0).sum()),
                        int((ov_ppv > 0).sum()), int((ov_ppv == 0).sum()),
                        float(ref_dur.sum()) / fs_hz, float(test_dur.sum()) / fs_hz,
                        float(ov_se.sum()) / fs_hz, float(ov_ppv.sum()) / fs_hz)
