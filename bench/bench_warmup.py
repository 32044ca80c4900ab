"""How many seconds of signal a fresh DSP state needs before its beats equal the
uninterrupted stream's (the processor's restart warm-up, docs/processor.md).

For every non-paced MIT-BIH record and resume points every ``--every-s`` seconds,
a fresh state is started ``W`` seconds before the resume point (W in ``--warmups``)
and fed 0.5 s chunks exactly as the stream would; the beats whose R peak lies in
``[resume, resume + --check-s)`` are compared with those of one uninterrupted run of
the whole record.  A case converged when the R-peak times are identical (no beat
lost, none added, none moved by a sample); a lost and an added beat within 10 ms of
each other count as one beat whose R peak moved (the lost/added columns exclude them).
Also compared: each beat window's quality label and its samples (max abs difference, mV).

    nice python bench/bench_warmup.py            # 44 records, prints a table, writes JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from cardiostream.processing import new_device_state, process_chunk
from cardiostream.records import NON_PACED, load_record
from cardiostream.settings import REPO_ROOT, load_settings
from cardiostream.signal import DEFAULT_SPEC

_US = 1_000_000
CHUNK_S = 0.5
ORIGIN_US = 1_700_000_000_000_000        # on the 2 s rhythm grid, like a replay
MOVED_US = 10_000                        # a lost and an added beat this close: one beat moved


def _run(x: np.ndarray, fs: float, leads: tuple[str, ...], first: int, stop: int) -> dict:
    """Beat windows (r_time_us -> window) of a fresh state fed x[:, first:stop]."""
    step = round(CHUNK_S * fs)
    st = new_device_state(DEFAULT_SPEC, "d", "u", fs, leads, ORIGIN_US + round(first * _US / fs))
    out = {}
    for i in range(first, stop, step):
        st, beats, _ = process_chunk(st, x[:, i:min(i + step, stop)],
                                     ORIGIN_US + round(i * _US / fs))
        out.update((w.r_time_us, w) for w in beats)
    return out


def record_cases(args: tuple[str, tuple[float, ...], float, float]) -> list[dict]:
    name, warmups, every_s, check_s = args
    rec = load_record(load_settings().paths.mitdb, name)
    x, fs = rec.millivolts(), rec.fs_hz
    full = _run(x, fs, rec.leads, 0, x.shape[1])
    cases = []
    resume_s = max(warmups) + 20.0
    while (resume_s + check_s + 5.0) * fs < x.shape[1]:
        lo, hi = ORIGIN_US + round(resume_s * _US), ORIGIN_US + round((resume_s + check_s) * _US)
        ref = {t: w for t, w in full.items() if lo <= t < hi}
        for w_s in warmups:
            first = round((resume_s - w_s) * fs)
            warm = _run(x, fs, rec.leads, first, round((resume_s + check_s + 5.0) * fs))
            got = {t: w for t, w in warm.items() if lo <= t < hi}
            common = set(ref) & set(got)
            lost, added = sorted(set(ref) - set(got)), sorted(set(got) - set(ref))
            moved = sum(any(abs(a - b) <= MOVED_US for b in added) for a in lost)
            cases.append({
                "record": name, "resume_s": resume_s, "warmup_s": w_s, "beats": len(ref),
                "lost": len(lost), "added": len(added), "moved": moved,
                "quality_diffs": sum(ref[t].quality != got[t].quality for t in common),
                "max_sample_diff_mv": max((float(np.abs(ref[t].samples - got[t].samples).max())
                                           for t in common), default=0.0)})
        resume_s += every_s
    return cases


def summarise(cases: list[dict], warmups: tuple[float, ...]) -> list[dict]:
    rows = []
    for w_s in warmups:
        mine = [c for c in cases if c["warmup_s"] == w_s]
        bad = [c for c in mine if c["lost"] or c["added"]]
        rows.append({"warmup_s": w_s, "cases": len(mine),
                     "beats": sum(c["beats"] for c in mine),
                     "cases_with_different_beats": len(bad),
                     "beats_lost": sum(c["lost"] for c in mine),
                     "beats_added": sum(c["added"] for c in mine),
                     "beats_moved": sum(c["moved"] for c in mine),
                     "quality_diffs": sum(c["quality_diffs"] for c in mine),
                     "max_sample_diff_mv": max(c["max_sample_diff_mv"] for c in mine),
                     "records_with_different_beats": sorted({c["record"] for c in bad})})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default=",".join(NON_PACED))
    ap.add_argument("--warmups", default="2,4,6,8,10,10.5,12,20")
    ap.add_argument("--every-s", type=float, default=120.0)
    ap.add_argument("--check-s", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "bench" / "warmup.json")
    args = ap.parse_args(argv)
    warmups = tuple(float(w) for w in args.warmups.split(","))
    names = args.records.split(",")
    with Pool(args.jobs) as pool:
        cases = [c for per in pool.map(record_cases, [(n, warmups, args.every_s, args.check_s)
                                                      for n in names]) for c in per]
    rows = summarise(cases, warmups)
    print("| warm-up s | cases | beats | cases with different beats | moved <= 10 ms | lost | "
          "added | quality diffs | max sample diff mV |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['warmup_s']:g} | {r['cases']} | {r['beats']} | "
              f"{r['cases_with_different_beats']} | {r['beats_moved']} | "
              f"{r['beats_lost'] - r['beats_moved']} | {r['beats_added'] - r['beats_moved']} | "
              f"{r['quality_diffs']} | {r['max_sample_diff_mv']:.1e} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "nice python bench/bench_warmup.py "
                                    + " ".join(sys.argv[1:]), "summary": rows,
                                    "cases": cases}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
