"""Reference alarm conditions from WFDB annotations, and the matching of alarms to them.

What a cardiologist's annotation says about each red (and a few yellow) alarm
condition, as intervals of device time (µs, record sample 0 = ``start_us``):

* ``vt``: rhythm episodes ``(VT`` plus runs of >= ``vt_min_beats`` reference V beats
  (AAMI V: V, E) at >= ``vt_min_rate_bpm`` (MIT-BIH annotates many short runs as
  beats only). ``vt_sustained``: those lasting >= ``vt_sustained_s``.
* ``vfib``: episodes ``(VFL`` / ``(VFIB``.  ``afib``: ``(AFIB`` / ``(AFL``.
  ``svt``: ``(SVTA``.  ``bigeminy``: ``(B``.  ``trigeminy``: ``(T``.
* ``asystole``: gaps between consecutive reference beats >= ``asystole_s``.
* ``extreme_brady`` / ``extreme_tachy``: stretches where the median of the last
  ``hr_beats`` reference RR intervals is below / above the thresholds -- the same
  rule the alarm uses, applied to the reference beats.

An alarm raised with onset ``o`` and decision time ``t`` (the device time of the
last sample it needed) is TRUE when a reference interval of its type intersects
``[o - before_s, t + after_s]``, else FALSE. Tolerances absorb annotation timing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cardiostream.labels import AAMI_DE_CHAZAL, BEAT_SYMBOLS
from cardiostream.scoring_episodes import episodes, rhythm_annotations
from cardiostream.settings import AlarmSettings

_US = 1_000_000
RHYTHM_TYPES: dict[str, tuple[str, ...]] = {
    "vfib": ("VFL", "VFIB"), "afib": ("AFIB", "AFL"), "svt": ("SVTA",),
    "bigeminy": ("B",), "trigeminy": ("T",),
}


@dataclass(frozen=True, slots=True)
class Judged:
    """One raised alarm and whether the reference supports it."""

    type: str
    severity: str
    onset_us: int
    decision_us: int
    true: bool


def _iv(pairs: Iterable[tuple[float, float]]) -> np.ndarray:
    arr = np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)
    return arr[np.argsort(arr[:, 0])] if len(arr) else arr


def reference_conditions(samples: np.ndarray, symbols: list[str], aux: list[str | None],
                         fs_hz: float, n_samples: int, cfg: AlarmSettings,
                         start_us: int = 0) -> dict[str, np.ndarray]:
    """Alarm type -> (n, 2) int64 [start_us, end_us] reference intervals.

    Also ``vt_annotated``: the ``(VT`` rhythm episodes alone (the alarm-delay targets).
    """
    to_us = _US / fs_hz
    samples = np.asarray(samples, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    ann = rhythm_annotations(samples, symbols, aux)
    for kind, codes in RHYTHM_TYPES.items():
        out[kind] = (episodes(ann, codes, n_samples) * to_us + start_us).astype(np.int64)
    vt_eps = episodes(ann, ("VT",), n_samples) * to_us + start_us
    is_beat = np.array([s in BEAT_SYMBOLS for s in symbols], dtype=bool)
    bt = samples[is_beat] * to_us + start_us                    # (n_beats,) µs
    bl = [AAMI_DE_CHAZAL.get(s, "Q") for s, b in zip(symbols, is_beat, strict=True) if b]
    runs = _v_runs(bt, bl, cfg)
    out["vt"] = _iv([*map(tuple, vt_eps), *runs])
    out["vt_annotated"] = _iv(map(tuple, vt_eps))    # the (VT rhythm episodes alone
    long_ = [(a, b) for a, b in out["vt"] if b - a >= cfg.vt_sustained_s * _US]
    out["vt_sustained"] = _iv(long_)
    gaps = np.diff(bt)
    out["asystole"] = _iv((bt[i], bt[i + 1]) for i in np.flatnonzero(gaps >= cfg.asystole_s * _US))
    out["extreme_brady"], out["extreme_tachy"] = _rate_intervals(bt, cfg)
    return out


def _v_runs(bt: np.ndarray, labels: list[str], cfg: AlarmSettings) -> list[tuple[int, int]]:
    """Runs of >= ``vt_min_beats`` V beats whose median interval is at the VT rate."""
    runs, i = [], 0
    while i < len(labels):
        j = i
        while j < len(labels) and labels[j] == "V":
            j += 1
        if j - i >= cfg.vt_min_beats:
            med = float(np.median(np.diff(bt[i:j])))
            if med > 0 and 60.0 * _US / med >= cfg.vt_min_rate_bpm:
                runs.append((int(bt[i]), int(bt[j - 1])))
        i = max(j, i + 1)
    return runs


def _rate_intervals(bt: np.ndarray, cfg: AlarmSettings) -> tuple[np.ndarray, np.ndarray]:
    k = cfg.hr_beats
    rr = np.diff(bt) / _US
    if len(rr) < k:
        return _iv([]), _iv([])
    med = np.median(np.lib.stride_tricks.sliding_window_view(rr, k), axis=1)
    hr = 60.0 / np.maximum(med, 1e-6)                      # hr[i] ends at beat i + k
    brady = [(bt[i], bt[i + k]) for i in np.flatnonzero(hr < cfg.extreme_brady_bpm)]
    tachy = [(bt[i], bt[i + k]) for i in np.flatnonzero(hr > cfg.extreme_tachy_bpm)]
    return _iv(brady), _iv(tachy)


def judge(alarm_type: str, severity: str, onset_us: int, decision_us: int,
          ref: dict[str, np.ndarray], before_s: float = 3.0, after_s: float = 1.0) -> Judged:
    """TRUE when a reference interval of the type meets [onset - before, decision + after]."""
    iv = ref.get(alarm_type, _iv([]))
    lo, hi = onset_us - before_s * _US, decision_us + after_s * _US
    hit = bool(len(iv)) and bool(np.any((iv[:, 0] <= hi) & (iv[:, 1] >= lo)))
    return Judged(alarm_type, severity, onset_us, decision_us, hit)


def episode_delays(episodes_us: np.ndarray, raised: list[tuple[int, int, int]],
                   late_s: float = 10.0) -> list[dict[str, object]]:
    """Per reference episode: delay (s) of the first alarm that covers it.

    ``raised`` holds (onset_us, decision_us, cleared_decision_us or a huge value) for the
    alarm types that count. An alarm already active when the episode starts gives delay 0
    (``already_active``); one decided in [start, end + late_s] gives decision - start;
    none: ``delay_s`` None (missed).
    """
    rows = []
    for start, end in episodes_us:
        delay, active = None, False
        for _onset, decided, cleared in raised:
            if decided <= start < cleared:
                delay, active = 0.0, True
                break
            if start <= decided <= end + late_s * _US:
                d = (decided - start) / _US
                delay = d if delay is None else min(delay, d)
        rows.append({"start_s": start / _US, "end_s": end / _US,
                     "duration_s": (end - start) / _US, "delay_s": delay,
                     "already_active": active})
    return rows
