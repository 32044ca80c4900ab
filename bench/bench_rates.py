"""QRS detection when the device does not sample at 360 Hz (EC57, bxb rules).

    nice python bench/bench_rates.py [--rates 125,250,257,300,500] [--workers 2]

Each of the 44 non-paced MIT-BIH records is resampled to the device rate exactly as the
simulator does it for a device at that rate (``streamer.simulator.resample_record``:
scipy ``resample_poly``, rounded back to int16 counts), then fed through the stream's
own DSP (``process_record``: the processor's resampler back to 360 Hz, filters,
detector) and scored against the original 360 Hz reference with ``cardiostream.scoring``
(150 ms window, from 5:00). Beat sample k at the model rate is sample k of the original
record (same start, same time rule), so no mapping of the reference is needed.

What it tells: whether the detector's figures (docs/qrs.md, 360 Hz) hold for telemetry
from devices at other rates -- MIMIC 125, AFDB 250, INCART 257, AliveCor 300, 500 Hz
carts -- which `schemas.supported_fs` accepts. Writes the ``qrs_rates`` section of
docs/benchmarks.md and docs/bench/qrs_rates.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from cardiostream.annotate import Annotations, write_annotations
from cardiostream.processing import process_record
from cardiostream.records import NON_PACED, load_record, record_path
from cardiostream.settings import REPO_ROOT, load_settings
from cardiostream.signal import DEFAULT_SPEC
from streamer.simulator import resample_record

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dsp import BENCH_MD, replace_section  # noqa: E402

OUT_JSON = REPO_ROOT / "docs" / "bench" / "qrs_rates.json"


def _annotate_at(job: tuple[str, float, str, str]) -> tuple[str, float, int]:
    """Annotate one record as a device at ``fs`` sends it; returns (record, fs, beats)."""
    name, fs, mitdb, out = job
    record = load_record(Path(mitdb), name)
    device = resample_record(record, fs)
    windows = process_record(device, DEFAULT_SPEC, chunk_s=10.0)
    samples = np.array([d.r for d in windows.detections], dtype=np.int64)   # 360 Hz samples
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_annotations(out_dir, name, "cs", DEFAULT_SPEC.fs_hz,
                      Annotations(samples, ["Q"] * samples.size, [""] * samples.size))
    shutil.copyfile(record_path(Path(mitdb), name).with_suffix(".hea"),
                    out_dir / f"{name}.hea")
    return name, fs, int(samples.size)


def measure(rates: list[float], out: Path, workers: int) -> dict:
    from cardiostream.scoring import score_records

    mitdb = load_settings().paths.mitdb
    jobs = []
    for fs in rates:
        (out / f"{fs:g}").mkdir(parents=True, exist_ok=True)
        jobs += [(r, fs, str(mitdb), str(out / f"{fs:g}")) for r in NON_PACED]
    t = time.perf_counter()
    with Pool(workers) as pool:
        pool.map(_annotate_at, jobs)
    wall = time.perf_counter() - t
    result: dict = {"wall_s": round(wall, 1), "rates": {}}
    for fs in rates:
        rep = score_records(mitdb, out / f"{fs:g}", list(NON_PACED), "cs")
        m = sum(rs.matrix for rs in rep.records)
        tp, fn, fp = int(m[:5, :5].sum()), int(m[:5, 5:].sum()), int(m[5:, :5].sum())
        worst = sorted(rep.records, key=lambda rs: min(rs.stats["qrs_se"], rs.stats["qrs_ppv"]))
        result["rates"][f"{fs:g}"] = {
            "se": round(rep.gross["qrs_se"], 2), "ppv": round(rep.gross["qrs_ppv"], 2),
            "tp": tp, "fn": fn, "fp": fp,
            "worst": [(rs.record, round(rs.stats["qrs_se"], 2), round(rs.stats["qrs_ppv"], 2))
                      for rs in worst[:3]]}
    return result


def section(res: dict, cmd: str) -> str:
    lines = ["## QRS detection at other device rates",
             "",
             f"`{cmd}` ({res['wall_s']:.0f} s wall): the 44 non-paced MIT-BIH records "
             "resampled to each rate as a device at that rate would send them (int16 "
             "counts), through the stream's DSP (its resampler back to 360 Hz), scored "
             "against the 360 Hz reference with the EC57 rules (150 ms, from 5:00). "
             "Raw figures: `docs/bench/qrs_rates.json`. At 360 Hz (no resampling) the "
             "figures are those of the \"qrs\" section.",
             "",
             "| device rate | Se % | +P % | TP | FN | FP | lowest records (Se / +P) |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for fs, r in res["rates"].items():
        worst = ", ".join(f"{n} {se:.2f}/{ppv:.2f}" for n, se, ppv in r["worst"])
        lines.append(f"| {fs} Hz | {r['se']:.2f} | {r['ppv']:.2f} | {r['tp']} | {r['fn']} | "
                     f"{r['fp']} | {worst} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="125,250,257,300,500",
                    help="comma list of device rates, Hz")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / ".run" / "bench-rates")
    args = ap.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",")]
    res = measure(rates, args.out, args.workers)
    print(json.dumps(res, indent=1))
    OUT_JSON.write_text(json.dumps(res, indent=1) + "\n")
    cmd = "nice python bench/bench_rates.py" + \
        ("" if args.rates == "125,250,257,300,500" else f" --rates {args.rates}")
    replace_section(BENCH_MD, "qrs_rates", section(res, cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
