"""Alarm threshold sweep: classify MIT-BIH once, then re-run the Decider per setting variant.

    nice python bench/alarm_tune.py --cache /tmp/alarm_cache.pkl \
        --variants '[{}, {"vt_min_v_prob": 0.8}, {"beat_min_prob": 0.7}]'

The first run writes the cache (windows + predictions of all 44 records, ~600 MB,
never in the repo); later runs only replay the state machines (seconds per
variant). Tuning on the records you report is in-sample: say so (docs/alarms.md).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import alarm_eval as ae  # noqa: E402  (bench/ is a folder of scripts, not a package)

from cardiostream.alarm_truth import episode_delays, judge, reference_conditions  # noqa: E402
from cardiostream.records import NON_PACED, load_annotations, load_record  # noqa: E402
from cardiostream.settings import Settings  # noqa: E402
from cardiostream.signal import DEFAULT_SPEC  # noqa: E402
from inference.decider import Decider, model_spec  # noqa: E402
from inference.predictor import Predictor  # noqa: E402


def build_cache(settings: Settings, model_dir: Path, path: Path) -> dict:
    pred = Predictor(model_dir, device="cpu")
    spec, out = model_spec(pred.beat.metadata), {}
    for name in NON_PACED:
        rec = load_record(settings.paths.mitdb, name)
        ws = ae.ordered_windows(rec, spec, f"rec-{name}")
        res = [r for i in range(0, len(ws), ae.BATCH)
               for r in pred.predict(ws[i:i + ae.BATCH]).results]
        out[name] = (ws, res, rec.adc.shape[1], spec)
        print(name, file=sys.stderr, flush=True)
    path.write_bytes(pickle.dumps(out, protocol=5))
    return out


def evaluate(cache: dict, settings: Settings, cfg) -> dict:
    rows = []
    for name, (ws, res, n, *spec) in cache.items():
        d, alarms = Decider(cfg, spec[0] if spec else DEFAULT_SPEC), []
        for w, r in zip(ws, res, strict=True):
            if r is not None:
                alarms += d.feed(w, r)
        ann = load_annotations(settings.paths.mitdb, name)
        ref = reference_conditions(ann.sample, ann.symbol, list(ann.aux_note), 360.0, n, cfg)
        judged = [judge(a.type, a.severity, a.onset_time_us, a.last_sample_time_us, ref)
                  for a in alarms if a.state == "raised"]
        rows.append({"record": name, "hours": n / 360.0 / 3600.0,
                     "alarms": [{"type": j.type, "severity": j.severity, "true": j.true}
                                for j in judged],
                     "vt_episodes": [e | {"ref_rate_bpm": ae._ref_rate(ann, 360.0, e)}
                                     for e in episode_delays(ref["vt_annotated"],
                                                             ae._spans(alarms, ae.VENTRICULAR))],
                     "vt_episodes_vt_only": []})
    return ae.summarise(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--variants", default="[{}]", help="JSON list of AlarmSettings overrides")
    args = ap.parse_args(argv)
    settings = Settings()
    cache = (pickle.loads(args.cache.read_bytes()) if args.cache.exists()
             else build_cache(settings, args.model_dir or settings.paths.model_dir, args.cache))
    print("| variant | false red | VT episodes alarmed | median / max delay (s) |")
    print("|---|---:|---:|---:|")
    for variant in json.loads(args.variants):
        s = evaluate(cache, settings, settings.alarms.model_copy(update=variant))
        print(f"| `{json.dumps(variant)}` | {s['red_false']} | {s['vt_detected']} / "
              f"{s['vt_episodes']} | {s['vt_delay_median_s']} / {s['vt_delay_max_s']} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
