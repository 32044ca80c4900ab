"""Render docs/benchmarks.md's inference section from docs/bench/inference_cpu.json.

    python bench/inference_doc.py [EXTRA_MARKDOWN_FILE]
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

d = json.loads(Path("docs/bench/inference_cpu.json").read_text())
rows = d["rows"]
def table(level):
    out = ["| batch | windows/s | × unbatched | CPU µs/window |", "|---:|---:|---:|---:|"]
    for r in rows:
        if r["level"] == level:
            out.append(f"| {r['batch']} | {r['windows_per_s']:.0f} | "
                       f"{r['speedup_vs_unbatched']:.1f} | {r['cpu_us_per_window']:.0f} |")
    return "\n".join(out)
def best(lvl):
    return max((r for r in rows if r["level"] == lvl), key=lambda r: r["speedup_vs_unbatched"])

extra = Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else ""
bw, bm = best("worker"), best("model")
w1 = next(r for r in rows if r["level"] == "worker" and r["batch"] == 1)
body = f"""<!-- section: inference -->
## Inference worker: windows/s against batch size (CPU)

`{d['command']}` — {d['device']}, torch {d['torch']}, models: {d['models']}
({d['model_version']}), record {d['record']} ({d['windows']} windows, {d['beat_share']:.0%} beat
windows, the rest 10 s rhythm windows, in stream order). Load average at start
{d['load_average_at_start']} on this 2-core machine shared with the broker, the processor and
other engineers' jobs: absolute figures are pessimistic, and the ratio suffers most where the
work is CPU-bound (batched). Raw figures: `docs/bench/inference_cpu.json`.

**Model level** — `Predictor.predict` alone (feature preparation from `cardiostream.features`,
TorchScript forward, frozen and BatchNorm-folded on CPU, result objects):

{table('model')}

**Worker level** — the whole worker against the real broker and Redis: poll, decode, predict,
alarm state machines, results producer flushed (acks=all, idempotent), Redis pipeline (alarms
script + live state + pub/sub), offset commit; `max_batch` = batch size, 32 patients:

{table('worker')}

Batched throughput reaches **{bw['speedup_vs_unbatched']:.1f}×** unbatched at the worker
level (batch {bw['batch']}) and **{bm['speedup_vs_unbatched']:.1f}×** at the model level
(batch {bm['batch']}). **The 20× goal is not met.** Why, measured (CPU time per window,
`time.process_time`):

* unbatched, the worker pays a broker round trip for the results flush (acks=all), one for the
  offset commit and one Redis round trip per window: {1000 / w1['windows_per_s']:.1f} ms wall,
  {w1['cpu_us_per_window'] / 1000:.1f} ms CPU. Batching removes
  exactly this, which is where the worker-level gain comes from;
* batched, what remains is per-window work that does not batch: the rhythm-window features
  (`features.rhythm_inputs`: RR statistics, sample entropy, VF band power in numpy, one window
  at a time) cost ~470 µs CPU per rhythm window (~110 µs per window of the mix), and the beat
  CNN is compute-bound at ~110 µs per beat window batched vs ~540 µs unbatched (beat windows
  alone: 5.6×); kafka-python's per-message `send` and record parsing add ~100 µs;
* the alarm state machines cost 37 µs per window, decoding 19 µs, result encoding 6 µs
  (CPU time, MIT-BIH 208).

The next steps that would move the ratio: vectorise the rhythm features across the batch (a
training-module file), a lighter beat network or a GPU (forward time then vanishes), and
several worker processes (the consumer group scales by partitions).
{extra}<!-- /section: inference -->"""
p = Path("docs/benchmarks.md")
s = p.read_text()
pat = re.compile(r"<!-- section: inference -->.*?<!-- /section: inference -->", re.S)
s = pat.sub(lambda m: body, s) if pat.search(s) else s.rstrip() + "\n\n" + body + "\n"
p.write_text(s)
