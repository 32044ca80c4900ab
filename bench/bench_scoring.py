"""Time the EC57 scorer on the 44-record vectors: whole score_records, and the walk alone.

    nice python bench/bench_scoring.py [--ext pert]
"""

from __future__ import annotations

import argparse
import time

import wfdb

from cardiostream.bxb import compare
from cardiostream.records import NON_PACED
from cardiostream.scoring import CONVENTIONS, make_stream, score_records
from cardiostream.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ext", default="pert", choices=("pert", "gqrs"))
    args = ap.parse_args()
    data = Settings().paths.data_dir
    ref_dir, test_dir = data / "mitdb", data / "ec57-vectors" / "annotations"
    score_records(ref_dir, test_dir, ["100"], args.ext)           # warm imports and caches
    t0 = time.perf_counter()
    rep = score_records(ref_dir, test_dir, None, args.ext)
    t1 = time.perf_counter()
    anns = [(wfdb.rdann(str(ref_dir / r), "atr"), wfdb.rdann(str(test_dir / r), args.ext))
            for r in NON_PACED]
    t2 = time.perf_counter()
    for ref, test in anns:
        s = [make_stream(a.sample, a.symbol, a.subtype, CONVENTIONS["bxb"]) for a in (ref, test)]
        compare(s[0], s[1], start=108_000, match_dt=54, end_time=650_000, fs_hz=360.0)
    t3 = time.perf_counter()
    print(f"score_records, 44 records ({rep.totals['qrs']} reference beats): {t1 - t0:.2f} s")
    print(f"matching walk alone (streams built from already-read files): {t3 - t2:.2f} s")


if __name__ == "__main__":
    main()
