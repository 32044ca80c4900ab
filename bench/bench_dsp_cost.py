"""CPU cost of ``process_chunk`` per device-chunk, as the processor's worker sees it.

    python bench/bench_dsp_cost.py [--devices 44] [--seconds 60] [--chunk-s 0.5] [--repeats 3]

Mirrors ``bench/bench_processor.py``'s ``cost_per_chunk`` DSP part: device i replays the
first ``--seconds`` of MIT-BIH record NON_PACED[i mod 44] in chunks, the devices
interleaved round-robin, ``time.process_time`` around the ``process_chunk`` loop (the
chunk's ADC → mV conversion included, as there).  Prints every repeat and the median.
Kept free of the streamer package so it measures the DSP alone.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cardiostream import processing
from cardiostream.records import NON_PACED, load_record
from cardiostream.settings import load_settings
from cardiostream.signal import DEFAULT_SPEC

_US = 1_000_000


def interleaved_chunks(devices: int, seconds: float, chunk_s: float, start_us: int
                       ) -> list[tuple[str, object, np.ndarray, int]]:
    """(device id, record, adc chunk, t0_us) in round-robin order across devices."""
    mitdb = load_settings().paths.mitdb
    per_dev = []
    for i in range(devices):
        rec = load_record(mitdb, NON_PACED[i % len(NON_PACED)], sampto=round(seconds * 360))
        n = round(chunk_s * rec.fs_hz)
        per_dev.append([(f"bench-{i:05d}", rec, rec.adc[:, k:k + n],
                         start_us + round(k * _US / rec.fs_hz))
                        for k in range(0, rec.adc.shape[1], n)])
    return [dev[k] for k in range(max(map(len, per_dev))) for dev in per_dev if k < len(dev)]


def _millivolts(rec, adc: np.ndarray) -> np.ndarray:
    """The same conversion as ``SampleChunk.millivolts``."""
    gain = np.asarray(rec.gain, dtype=np.float64)[:, None]
    base = np.asarray(rec.baseline, dtype=np.float64)[:, None]
    return (adc.astype(np.float64) - base) / gain


def dsp_us_per_chunk(order: list) -> float:
    states: dict[str, processing.DeviceState] = {}
    t = time.process_time()
    for dev, rec, adc, t0 in order:
        st = states.get(dev) or processing.new_device_state(DEFAULT_SPEC, dev, "ward-1",
                                                            rec.fs_hz, rec.leads, t0)
        states[dev], _, _ = processing.process_chunk(st, _millivolts(rec, adc), t0)
    return (time.process_time() - t) / len(order) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=44)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--chunk-s", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    order = interleaved_chunks(args.devices, args.seconds, args.chunk_s, 1_700_000_000_000_000)
    runs = [dsp_us_per_chunk(order) for _ in range(args.repeats)]
    print("runs us/chunk:", " ".join(f"{r:.1f}" for r in runs))
    print(f"median {statistics.median(runs):.1f} us per {args.chunk_s} s chunk "
          f"({len(order)} chunks, {args.devices} devices x {args.seconds:g} s)")


if __name__ == "__main__":
    main()
