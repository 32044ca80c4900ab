"""Offline alarm evaluation on MIT-BIH: VT alarm delay and red-alarm burden per patient-hour.

Runs exactly the worker's decision code on whole records -- ``process_record``
(the stream's DSP, chunk by chunk), ``Predictor`` (the exported models) and
``Decider`` (the per-patient alarm state machines) -- then compares the alarms with
the reference annotations (``cardiostream.alarm_truth``; rules in docs/alarms.md).

    nice python bench/alarm_eval.py --records ALL --out docs/bench/alarms.json

Prints a Markdown summary; the JSON holds every alarm and every VT episode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from cardiostream.alarm_truth import episode_delays, judge, reference_conditions
from cardiostream.processing import process_record
from cardiostream.records import expand_records, load_annotations, load_record
from cardiostream.settings import AlarmSettings, Settings
from inference.decider import Decider, model_spec
from inference.predictor import Predictor

_US = 1_000_000
VENTRICULAR = ("vt", "vt_sustained", "vfib")
BATCH = 512


def ordered_windows(rec, spec, device_id: str):
    """The record's windows in stream order (each is emitted once its last sample is in; a
    chunk's rhythm windows before its beat windows, as streamer.pipeline publishes them)."""
    out = process_record(rec, spec, device_id=device_id)
    return sorted([*out.beats, *out.rhythms],
                  key=lambda w: (w.last_sample_time_us, w.kind != "rhythm"))


def oracle_results(windows, ann, fs_hz: float) -> list:
    """Reference labels instead of the models: the alarm logic's ceiling (``--oracle``)."""
    from cardiostream.labels import AAMI_DE_CHAZAL
    from cardiostream.schemas import BeatResult, RhythmResult
    from cardiostream.scoring_episodes import rhythm_annotations

    samples = np.asarray(ann.sample)
    rhy = rhythm_annotations(ann.sample, ann.symbol, list(ann.aux_note))
    out = []
    for w in windows:
        if w.kind == "beat":
            s = w.r_time_us * fs_hz / _US
            j = int(np.argmin(np.abs(samples - s)))
            lab = AAMI_DE_CHAZAL.get(ann.symbol[j], "Q") if abs(samples[j] - s) < 0.15 * fs_hz \
                else "Q"
            out.append(BeatResult(w.device_id, w.unit, w.segment, w.beat_index, w.r_time_us,
                                  w.last_sample_time_us, lab, (), w.rr_prev_s, w.quality, "oracle"))
        else:
            mid = (w.start_time_us + w.end_time_us) / 2 * fs_hz / _US
            k = int(np.searchsorted(rhy.sample, mid, side="right")) - 1
            code = rhy.rhythm[k] if k >= 0 else "N"
            out.append(RhythmResult(w.device_id, w.unit, w.segment, w.window_index,
                                    w.start_time_us, w.end_time_us, w.last_sample_time_us, code,
                                    (), 0.0, w.quality, "oracle"))
    return out


def decide_record(windows, predictor: Predictor | None, cfg: AlarmSettings, spec,
                  oracle=None) -> list:
    """Classify in batches, then feed the Decider in stream order; returns the alarms."""
    results = [] if oracle is None else oracle
    for i in range(0, len(windows) if oracle is None else 0, BATCH):
        results += predictor.predict(windows[i:i + BATCH]).results
    decider, alarms = Decider(cfg, spec), []
    for w, r in zip(windows, results, strict=True):
        if r is not None:
            alarms += decider.feed(w, r)
    return alarms


def _spans(alarms, types) -> list[tuple[int, int, int]]:
    """(onset, raised decision, cleared decision or +inf) per raised alarm of ``types``."""
    cleared = {(a.type, a.lead, a.onset_time_us): a.last_sample_time_us
               for a in alarms if a.state == "cleared"}
    return [(a.onset_time_us, a.last_sample_time_us,
             cleared.get((a.type, a.lead, a.onset_time_us), 2**62))
            for a in alarms if a.state == "raised" and a.type in types]


def _ref_rate(ann, fs_hz: float, episode: dict) -> float | None:
    """Median-interval rate (bpm) of the reference beats inside a VT episode."""
    t = np.asarray(ann.sample) / fs_hz
    beats = [x for x, sym in zip(t, ann.symbol, strict=True)
             if episode["start_s"] - 0.05 <= x <= episode["end_s"] and sym in "VEFrN"]
    rr = np.diff(beats)
    return round(60.0 / float(np.median(rr)), 1) if len(rr) else None


def evaluate_record(name: str, settings: Settings, predictor: Predictor,
                    oracle: bool = False) -> dict:
    cfg, spec = settings.alarms, model_spec(predictor.beat.metadata)
    rec = load_record(settings.paths.mitdb, name)
    ann = load_annotations(settings.paths.mitdb, name)
    windows = ordered_windows(rec, spec, f"rec-{name}")
    labels = oracle_results(windows, ann, rec.fs_hz) if oracle else None
    alarms = decide_record(windows, predictor, cfg, spec, labels)
    n = rec.adc.shape[1]
    ref = reference_conditions(ann.sample, ann.symbol, list(ann.aux_note), rec.fs_hz, n, cfg)
    judged = [judge(a.type, a.severity, a.onset_time_us, a.last_sample_time_us, ref)
              for a in alarms if a.state == "raised"]
    vt_eps = ref["vt_annotated"]
    return {
        "record": name, "hours": n / rec.fs_hz / 3600.0,
        "alarms": [{"type": j.type, "severity": j.severity, "onset_s": j.onset_us / _US,
                    "decision_s": j.decision_us / _US, "true": j.true} for j in judged],
        "vt_episodes": [e | {"ref_rate_bpm": _ref_rate(ann, rec.fs_hz, e)}
                        for e in episode_delays(vt_eps, _spans(alarms, VENTRICULAR))],
        "vt_episodes_vt_only": episode_delays(vt_eps, _spans(alarms, ("vt",))),
    }


def summarise(rows: list[dict]) -> dict:
    hours = sum(r["hours"] for r in rows)
    red = [a for r in rows for a in r["alarms"] if a["severity"] == "red"]
    by_type = Counter((a["type"], a["true"]) for a in red)
    eps = [e for r in rows for e in r["vt_episodes"]]
    delays = [e["delay_s"] for e in eps if e["delay_s"] is not None]
    yellow = Counter(a["type"] for r in rows for a in r["alarms"] if a["severity"] == "yellow")
    return {
        "records": len(rows), "patient_hours": round(hours, 3),
        "red_true": sum(a["true"] for a in red), "red_false": sum(not a["true"] for a in red),
        "red_true_per_patient_hour": round(sum(a["true"] for a in red) / hours, 3),
        "red_false_per_patient_hour": round(sum(not a["true"] for a in red) / hours, 3),
        "red_by_type": {f"{t}:{'true' if ok else 'false'}": c
                        for (t, ok), c in sorted(by_type.items())},
        "yellow_by_type": dict(sorted(yellow.items())),
        "vt_episodes": len(eps), "vt_detected": len(delays),
        "vt_delay_median_s": round(statistics.median(delays), 2) if delays else None,
        "vt_delay_max_s": round(max(delays), 2) if delays else None,
        "vt_missed": [(r["record"], round(e["start_s"], 1), e["ref_rate_bpm"]) for r in rows
                      for e in r["vt_episodes"] if e["delay_s"] is None],
        "vt_episodes_at_vt_rate": sum((e["ref_rate_bpm"] or 0) >= 100 for e in eps),
        "vt_detected_at_vt_rate": sum((e["ref_rate_bpm"] or 0) >= 100 and e["delay_s"] is not None
                                      for e in eps),
        "vt_detected_vt_only": sum(e["delay_s"] is not None
                                   for r in rows for e in r["vt_episodes_vt_only"]),
    }


def markdown(summary: dict, rows: list[dict]) -> str:
    lines = ["| record | hours | red true | red false | VT episodes | detected | delays (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        red = [a for a in r["alarms"] if a["severity"] == "red"]
        d = [e["delay_s"] for e in r["vt_episodes"]]
        lines.append(f"| {r['record']} | {r['hours']:.2f} | {sum(a['true'] for a in red)} | "
                     f"{sum(not a['true'] for a in red)} | {len(d)} | "
                     f"{sum(x is not None for x in d)} | "
                     f"{', '.join('-' if x is None else f'{x:.1f}' for x in d)} |")
    return "\n".join(lines) + "\n\n" + json.dumps(summary, indent=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="ALL", help="record names or sets (ALL, DS1, DS2)")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/bench/alarms.json"))
    ap.add_argument("--oracle", action="store_true",
                    help="reference beat/rhythm labels instead of the models (logic ceiling)")
    args = ap.parse_args(argv)
    settings = Settings()
    model_dir = args.model_dir or settings.paths.model_dir
    predictor = Predictor(model_dir, device="cpu")
    rows, t0 = [], time.perf_counter()
    for name in expand_records([args.records]):
        rows.append(evaluate_record(name, settings, predictor, args.oracle))
        r = rows[-1]
        print(f"{name}: {len(r['alarms'])} alarms, VT delays "
              f"{[e['delay_s'] for e in r['vt_episodes']]} ({time.perf_counter() - t0:.0f}s)",
              file=sys.stderr, flush=True)
    model = "oracle (reference labels)" if args.oracle else predictor.version
    summary = summarise(rows) | {"model_dir": str(model_dir), "model": model,
                                 "alarm_settings": settings.alarms.model_dump(),
                                 "command": "python bench/alarm_eval.py " + " ".join(argv or
                                                                                     sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "records": rows}, indent=1) + "\n")
    print(markdown(summary, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
