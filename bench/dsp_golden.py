"""Golden outputs of the DSP chain: a SHA-256 per record and chunk size over every window
and detector beat, to prove a speed-up changed no bit of what the processor emits.

    python bench/dsp_golden.py --save /tmp/dsp_golden.json    # on the reference code
    python bench/dsp_golden.py --check /tmp/dsp_golden.json   # after a change: exit 1 if any differ

Runs ``process_record`` over the 44 non-paced MIT-BIH records and NSTDB 118e24/e12/e00
at 0.5 s chunks and at an odd 0.37 s (chunk boundaries fall elsewhere: a chunk-dependent
change shows).  Hashed: every BeatWindow and RhythmWindow as ``encode_window`` bytes (the
wire format, float32 samples), plus each detector beat's fields with ``repr`` of its
float64 height (so a change in the feature's summation order shows even where the
float32 windows would hide it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from cardiostream.processing import process_record
from cardiostream.records import NON_PACED, load_record
from cardiostream.schemas import encode_window
from cardiostream.settings import load_settings
from cardiostream.signal import DEFAULT_SPEC

NSTDB = ("118e24", "118e12", "118e00")
CHUNKS_S = (0.5, 0.37)


def record_digest(job: tuple[str, str, float]) -> tuple[str, str]:
    """(key, hex digest) of one record at one chunk size."""
    directory, name, chunk_s = job
    rec = load_record(Path(directory), name)
    out = process_record(rec, DEFAULT_SPEC, chunk_s=chunk_s, device_id=f"rec-{name}",
                         start_us=1_700_000_000_000_000)
    h = hashlib.sha256()
    for w in out.beats:
        h.update(encode_window(w))
    for w in out.rhythms:
        h.update(encode_window(w))
    for b in out.detections:
        h.update(repr((b.r, b.peak, b.committed, b.height, b.searchback)).encode())
    h.update(f"{len(out.beats)} {len(out.rhythms)} {len(out.detections)}".encode())
    return f"{name}@{chunk_s}", h.hexdigest()


def all_digests(workers: int) -> dict[str, str]:
    paths = load_settings().paths
    jobs = [(str(paths.mitdb), r, c) for c in CHUNKS_S for r in NON_PACED]
    jobs += [(str(paths.nstdb), r, c) for c in CHUNKS_S for r in NSTDB]
    if workers > 1:
        with Pool(workers) as pool:
            return dict(pool.map(record_digest, jobs))
    return dict(map(record_digest, jobs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="write the digests here")
    group.add_argument("--check", type=Path, help="compare with digests saved here")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    t = time.time()
    digests = all_digests(args.workers)
    total = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    print(f"{len(digests)} record x chunk digests in {time.time() - t:.0f} s; overall {total}")
    if args.save:
        args.save.write_text(json.dumps({"overall": total, "records": digests}, indent=1))
        return
    saved = json.loads(args.check.read_text())
    bad = [k for k, v in saved["records"].items() if digests.get(k) != v]
    if bad or total != saved["overall"]:
        print(f"DIFFERENT: {len(bad)} of {len(saved['records'])}: {', '.join(bad[:20])}")
        sys.exit(1)
    print("golden hashes identical")


if __name__ == "__main__":
    main()
