"""Scoring of the rhythm detector's out-of-fold decisions: AF episodes, two views.

Per window: the decisions written as ``cardiostream evaluate`` and the worker's
RhythmResult would write them. Alarm: the same decisions through the alarm
layer's AF hysteresis (``alarm_view`` mirrors ``inference.alarms``), i.e. the AF
episodes a ward would see. Both are scored by ``cardiostream.scoring`` (epic
rules, AFIB+AFL, from 5:00).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cardiostream.signal import SignalSpec
from training.rhythm import AF_INDICES, code_of


def alarm_view(pred: np.ndarray, on: int, off: int,
               usable: np.ndarray | None = None) -> np.ndarray:
    """(n,) per-window class indices -> (n,) bool: AF as the alarm layer calls it.

    Mirrors ``inference.alarms`` for AF_CODES: the AF streak is only fed by windows
    whose leads are all ``good`` (``usable``, (n,) bool; None = all), the others
    leave it as it is; an episode is raised after ``on`` consecutive AF windows and
    dated from the first of them; it clears after ``off`` consecutive non-AF windows
    and is dated to end where that streak began (the clear itself comes later).
    """
    af = np.isin(pred, AF_INDICES)
    ok = np.ones(af.size, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    out = np.zeros(af.size, dtype=bool)
    active, streak, first, since = False, 0, 0, 0
    for i, is_af in enumerate(af):
        if ok[i] and is_af:
            if streak <= 0:
                streak, first = 0, i
            streak += 1
            if streak >= on and not active:
                active = True
                out[first:i] = True
        elif ok[i]:
            if streak >= 0:
                since = i                    # first window of the non-AF streak
            streak = min(streak, 0) - 1
            if active and -streak >= off:
                active = False
                out[since:i] = False
        out[i] = active
    return out


def _write_cv(arrays: dict, codes: dict[str, list[str]], cv_dir: Path, spec: SignalSpec) -> None:
    from cardiostream.annotate import Annotations, write_annotations
    from cardiostream.result_annotations import rhythm_marks
    from cardiostream.schemas import RhythmResult

    cv_dir.mkdir(parents=True, exist_ok=True)
    for r, rec_codes in codes.items():
        a = arrays[r]
        res = [RhythmResult("cv", "cv", 0, i, int(s), int(e), int(e), c, (), 0.0, (), "cv")
               for i, (s, e, c) in enumerate(zip(a["rhythm_start_us"], a["rhythm_end_us"],
                                                 rec_codes, strict=True))]
        marks = rhythm_marks(res, 0, float(a["fs_hz"]), spec.rhythm_hop_s)
        beats = a["beat_sample"]
        ann = Annotations(np.concatenate([beats, [m[0] for m in marks]]).astype(np.int64),
                          ["N"] * beats.size + ["+"] * len(marks),
                          [""] * beats.size + [f"({m[1]}" for m in marks])
        write_annotations(cv_dir, r, "cv", float(a["fs_hz"]), ann)


def _af_figures(data_dir: Path, cv_dir: Path, records: list[str], note: str) -> dict:
    from cardiostream.scoring import score_records

    report = score_records(data_dir, cv_dir, records, "cv", convention="dechazal")
    af_records = [x for x in report.records if x.episodes and x.episodes.ref_s > 0]
    return {"gross": report.episodes.to_dict() if report.episodes else None,
            "per_record": {x.record: x.episodes.to_dict() for x in af_records}, "note": note}


def score_cv(arrays: dict, cv_pred: dict[str, np.ndarray], data_dir: Path, cv_dir: Path,
             spec: SignalSpec) -> dict:
    """Out-of-fold rhythm decisions -> CV/RECORD.cv files -> the scorer's AF episode figures.

    Returns {"gross", "per_record", "note"} for the decisions as written per window,
    and under "alarm" the same for the decisions through the alarm layer's AF
    hysteresis (``alarm_view``, settings.alarms.af_on_windows / rhythm_off_windows).
    """
    from cardiostream.settings import load_settings

    alarms = load_settings().alarms
    on, off = alarms.af_on_windows, alarms.rhythm_off_windows
    names = list(cv_pred)
    _write_cv(arrays, {r: [code_of(k) for k in p] for r, p in cv_pred.items()}, cv_dir, spec)
    good = {r: (arrays[r]["rhythm_quality"] == "good").all(axis=1) for r in names}
    _write_cv(arrays, {r: ["AFIB" if a else "N" for a in alarm_view(p, on, off, good[r])]
                       for r, p in cv_pred.items()}, cv_dir / "alarm", spec)
    per_window = _af_figures(data_dir, cv_dir, names, "AFIB+AFL episodes (scorer default), "
                             "out-of-fold window decisions, from 5:00")
    return per_window | {"alarm": _af_figures(
        data_dir, cv_dir / "alarm", names, f"the same decisions through the alarm layer's AF "
        f"hysteresis (on {on}, off {off} windows, fed by all-good-lead windows only), "
        "from 5:00")}
