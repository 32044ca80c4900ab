"""Do the shipped models hold on signals from other devices? MIT-BIH re-recorded as they would be.

    nice python bench/bench_device_variation.py [--records ALL] [--variants native,fs250,...]
        [--out docs/bench/device_variation.json]

The rhythm model "will be judged on recordings from other devices and databases", and
../shared holds no other database. What differs from device to device is known,
though: the sampling rate (250, 360, 500 Hz), the gain and ADC resolution, the lead
(a Holter or patch may not record lead II), muscle noise and baseline wander. Each
variant re-records every MIT-BIH record that way and runs it through exactly what
``cardiostream evaluate`` runs (``process_record`` -> ``ModelLabeller`` with the rhythm
model's out-of-fold CV models, so no record's rhythm is labelled by a model that saw it
-> WFDB annotations -> the bxb scorer):

* **against the reference annotations**: QRS Se / +P and AF (AFIB + AFL) episodes and
  durations (``score_records``, from 5:00, 150 ms window);
* **against the native run's own labels** (the native annotation files used as the
  reference, same scorer): how many V and S decisions survive the change of device.
  Beat classes are compared with the model's own native output, not with the reference,
  so the DS2 beat labels are not read again (docs/training_selection.md: DS2 is read
  once per model).

Nothing here is tuned: the models are the committed ones.  Rates and noise are made
exactly as the simulator makes them for a device (``streamer.simulator.resample_record``,
``streamer.faults.noise_scale`` / ``mix_noise``: the NSTDB ``nst`` SNR convention); noise
is the NSTDB ``ma`` (muscle) and ``bw`` (baseline wander) records, looped from a
different offset per record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from cardiostream.annotate import annotate_record
from cardiostream.classify import ModelLabeller
from cardiostream.records import Record, expand_records, load_record
from cardiostream.scoring import score_records
from cardiostream.settings import load_settings
from inference.decider import model_spec
from streamer.faults import mix_noise, noise_scale
from streamer.simulator import resample_record

ADC_GAIN = 200.0           # adu per mV of the re-recorded signals (MIT-BIH's own)
Variant = Callable[[Record, dict], Record]


def _rerecord(rec: Record, mv: np.ndarray, fs_hz: float, gain: float = ADC_GAIN) -> Record:
    """A new Record of ``mv`` (n_leads, n) quantised at ``gain`` adu/mV (int16, clipped)."""
    adc = np.clip(np.round(mv * gain), -32768, 32767).astype(np.int16)
    return Record(rec.name, float(fs_hz), rec.leads, (gain,) * adc.shape[0],
                  (0,) * adc.shape[0], adc)


def resampled(fs_hz: int) -> Variant:
    """As a device at ``fs_hz`` sends the record: the simulator's own resampling."""
    return lambda rec, _noise: resample_record(rec, float(fs_hz))


def scaled(factor: float) -> Variant:
    return lambda rec, _noise: _rerecord(rec, rec.millivolts() * factor, rec.fs_hz)


def quantised(adu_per_mv: float) -> Variant:
    return lambda rec, _noise: _rerecord(rec, rec.millivolts(), rec.fs_hz, gain=adu_per_mv)


def one_lead(index: int) -> Variant:
    def make(rec: Record, _noise: dict) -> Record:
        return replace(rec, leads=(rec.leads[index],), gain=(rec.gain[index],),
                       baseline=(rec.baseline[index],), adc=rec.adc[index:index + 1].copy())
    return make


def noisy(kind: str, snr_db: float) -> Variant:
    """NSTDB ``kind`` added at ``snr_db`` as the simulator's noise fault adds it
    (``streamer.faults.noise_scale``: nst's convention), from a stretch of the noise
    record that depends on the record's name."""
    def make(rec: Record, noise: dict) -> Record:
        src = noise[kind]                                      # (2, m) mV at 360 Hz
        n, m = rec.adc.shape[1], src.shape[1]
        idx = ((int(rec.name) * 7919) % m + np.arange(n)) % m
        nz = src[np.arange(rec.adc.shape[0]) % src.shape[0]][:, idx]
        scale = noise_scale(rec.millivolts(), src, snr_db)
        counts = nz * (scale * np.asarray(rec.gain))[:, None]
        return replace(rec, adc=mix_noise(rec.adc, counts, 0))
    return make


VARIANTS: dict[str, tuple[str, Variant]] = {
    "native": ("as recorded: 360 Hz, 200 adu/mV, both leads", lambda rec, _n: rec),
    "fs250": ("resampled to 250 Hz (polyphase, as the simulator's devices)", resampled(250)),
    "fs500": ("resampled to 500 Hz (polyphase, as the simulator's devices)", resampled(500)),
    "gain0.5": ("amplitude x 0.5 (small complexes, electrode placement)", scaled(0.5)),
    "gain2": ("amplitude x 2", scaled(2.0)),
    "adc20uV": ("ADC step 20 uV (50 adu/mV) instead of 5 uV", quantised(50.0)),
    "lead0only": ("one-lead device: the first lead only (MLII; V5 in 114)", one_lead(0)),
    "lead1only": ("one-lead device: the second lead only (V1, V2, V4 or V5; MLII in 114)",
                  one_lead(1)),
    "ma12": ("NSTDB muscle noise 'ma' at 12 dB SNR", noisy("ma", 12.0)),
    "ma6": ("NSTDB muscle noise 'ma' at 6 dB SNR", noisy("ma", 6.0)),
    "bw6": ("NSTDB baseline wander 'bw' at 6 dB SNR", noisy("bw", 6.0)),
}


def annotate_variant(names: list[str], variant: Variant, labeller: ModelLabeller, spec,
                     mitdb: Path, noise: dict, out_dir: Path) -> None:
    for name in names:
        # annotate_record writes the annotations at the variant's rate beside a copy of the
        # reference header (360 Hz), so the scorer rescales their times to the reference's
        annotate_record(variant(load_record(mitdb, name), noise), mitdb, out_dir, spec,
                        labeller=labeller)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def summary(report_ref, report_native) -> dict:
    g, ep = report_ref.gross, report_ref.episodes
    out = {"qrs_se": _r(g["qrs_se"]), "qrs_ppv": _r(g["qrs_ppv"]),
           "af_episode_se": _r(ep.se), "af_episode_ppv": _r(ep.ppv),
           "af_duration_se": _r(ep.duration_se), "af_duration_ppv": _r(ep.duration_ppv),
           "af_ref_s": round(ep.ref_s, 1), "af_test_s": round(ep.test_s, 1)}
    if report_native is not None:
        n = report_native.gross
        out |= {"v_kept": _r(n["veb_se"]), "v_new_ppv": _r(n["veb_ppv"]),
                "s_kept": _r(n["sveb_se"]), "s_new_ppv": _r(n["sveb_ppv"]),
                "native_v": report_native.totals["veb"], "native_s": report_native.totals["sveb"]}
    return out


def markdown(rows: dict[str, dict], descriptions: dict[str, str]) -> str:
    head = ("| variant | QRS Se / +P | AF duration Se / +P | AF episodes Se / +P "
            "| V decisions kept / +P vs native | S decisions kept / +P vs native |")
    lines = [head, "|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for name, r in rows.items():
        lines.append(f"| {name}: {descriptions[name]} | {f(r['qrs_se'])} / {f(r['qrs_ppv'])} "
                     f"| {f(r['af_duration_se'])} / {f(r['af_duration_ppv'])} "
                     f"| {f(r['af_episode_se'])} / {f(r['af_episode_ppv'])} "
                     f"| {f(r.get('v_kept'))} / {f(r.get('v_new_ppv'))} "
                     f"| {f(r.get('s_kept'))} / {f(r.get('s_new_ppv'))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="ALL")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    settings = load_settings()
    model_dir = args.model_dir or settings.paths.model_dir
    names = expand_records([args.records])
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if "native" not in chosen:
        chosen.insert(0, "native")
    labeller = ModelLabeller(Path(model_dir), threads=args.threads, out_of_fold=True)
    spec = model_spec(labeller.beat.metadata)
    noise = {k: load_record(settings.paths.nstdb, k).millivolts() for k in ("ma", "bw")}
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cs-devvar-") as tmp:
        for name in chosen:
            t0 = time.perf_counter()
            out_dir = Path(tmp) / name
            annotate_variant(names, VARIANTS[name][1], labeller, spec, settings.paths.mitdb,
                             noise, out_dir)
            ref = score_records(settings.paths.mitdb, out_dir, names, "cs")
            native = None if name == "native" else \
                score_records(Path(tmp) / "native", out_dir, names, "cs", ref_ext="cs")
            rows[name] = summary(ref, native) | {"wall_s": round(time.perf_counter() - t0, 1)}
            print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)
    descriptions = {k: VARIANTS[k][0] for k in rows}
    print(markdown(rows, descriptions))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": "python bench/bench_device_variation.py " + " ".join(argv or sys.argv[1:]),
            "records": names, "models": labeller.version, "descriptions": descriptions,
            "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
