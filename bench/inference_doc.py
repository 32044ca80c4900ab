"""Render docs/benchmarks.md's inference section from docs/bench/inference_cpu.json.

    python bench/inference_doc.py [EXTRA_MARKDOWN_FILE]

Every figure in the section comes from the JSON that ``bench/bench_inference.py``
wrote; the prose states whether the 20x goal is met from those figures.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

GOAL = 20.0
PREVIOUS = ("Before the rhythm features were computed for the whole batch (commit 29dce74, "
            "one sweep, `--mode both --min-s 1.5`, load average ~6-7): worker level 12.6× "
            "(67 → 842 windows/s), "
            "model level 3.6× (502 → 1,823 windows/s); the rhythm features then cost "
            "~470 µs CPU per rhythm window whatever the batch size.")


def table(rows: list[dict], level: str) -> str:
    """Median run per batch size, then every sweep's rate, ratio and 1-min load average."""
    out = ["| batch | windows/s | × unbatched | CPU µs/window | each sweep: windows/s "
           "(× unbatched of that sweep) | load 1 min |", "|---:|---:|---:|---:|---|---|"]
    for r in rows:
        if r["level"] == level:
            each = ", ".join(f"{w:.0f} ({x:.1f})" for w, x in
                             zip(r.get("runs_windows_per_s", []), r.get("runs_speedup", []),
                                 strict=True))
            load = ", ".join(f"{v:.1f}" for v in r.get("runs_load_1min", []))
            out.append(f"| {r['batch']} | {r['windows_per_s']:.0f} | "
                       f"{r['speedup_vs_unbatched']:.1f} | {r['cpu_us_per_window']:.0f} | "
                       f"{each} | {load} |")
    return "\n".join(out)


def phase_table(rows: list[dict], level: str, batches: tuple[int, ...]) -> str:
    """CPU µs per window by phase, one column per batch size."""
    chosen = [r for r in rows if r["level"] == level and r["batch"] in batches]
    names = list(dict.fromkeys(k for r in chosen for k in r.get("phases_cpu_us", {})))
    out = ["| CPU µs per window | " + " | ".join(f"batch {r['batch']}" for r in chosen) + " |",
           "|---|" + "---:|" * len(chosen)]
    for name in names:
        if all(abs(r["phases_cpu_us"].get(name, 0)) < 0.5 for r in chosen):
            continue                       # e.g. no I/O threads at the model level
        out.append(f"| {name} | " + " | ".join(f"{r['phases_cpu_us'].get(name, 0):.0f}"
                                                for r in chosen) + " |")
    out.append("| **total (process CPU)** | " + " | ".join(
        f"**{r['cpu_us_per_window']:.0f}**" for r in chosen) + " |")
    return "\n".join(out)


def best(rows: list[dict], level: str) -> dict:
    return max((r for r in rows if r["level"] == level), key=lambda r: r["speedup_vs_unbatched"])


def verdict(rows: list[dict], level: str) -> str:
    """The best median ratio, whether it meets the goal, and the CPU-time ratio beside it."""
    r = best(rows, level)
    one = next(x for x in rows if x["level"] == level and x["batch"] == 1)
    met = "meets" if r["speedup_vs_unbatched"] >= GOAL else "does **not** meet"
    each = [f"batch {x['batch']} in {sum(v >= GOAL for v in x['runs_speedup'])} of "
            f"{len(x['runs_speedup'])}" for x in rows
            if x["level"] == level and max(x.get("runs_speedup", [0])) >= GOAL]
    sweeps = (f"; sweeps at or above 20×: {', '.join(each)}" if each
              else "; no single sweep reached 20× either")
    return (f"{level} level **{r['speedup_vs_unbatched']:.1f}×** unbatched in windows/s "
            f"(median, batch {r['batch']}), which {met} the 20× goal{sweeps}; CPU time per "
            f"window {one['cpu_us_per_window'] / r['cpu_us_per_window']:.1f}× lower than "
            f"unbatched")


def render(d: dict, extra: str) -> str:
    rows = d["rows"]
    bw, bm = best(rows, "worker"), best(rows, "model")
    w1 = next(r for r in rows if r["level"] == "worker" and r["batch"] == 1)
    m1 = next(r for r in rows if r["level"] == "model" and r["batch"] == 1)
    mp, wp = bm.get("phases_cpu_us", {}), bw.get("phases_cpu_us", {})
    m1p = m1.get("phases_cpu_us", {})
    return f"""<!-- section: inference -->
## Inference worker: windows/s against batch size (CPU)

`{d['command']}` — {d['device']}, torch {d['torch']}, models: {d['models']}
({d['model_version']}), record {d['record']} ({d['windows']} windows, {d['beat_share']:.0%} beat
windows, the rest 10 s rhythm windows, in stream order). Load average at start
{d['load_average_at_start']} on this 2-core machine shared with the broker and other
engineers' jobs: absolute figures are pessimistic, and the ratio suffers most where the work
is CPU-bound (batched). Unbatched = batch size 1 through the same code path (`max_batch` 1 for
the worker). Each batch size is measured once per sweep, sweeps repeated; the tables give the
median run (its CPU and phase split too) and every sweep's figures, because the load on this
shared machine changes from one minute to the next. Raw figures:
`docs/bench/inference_cpu.json`; the section is rendered from it by
`python bench/inference_doc.py`.

**Model level** — `Predictor.predict` alone (feature preparation from `cardiostream.features`,
TorchScript forward, frozen and BatchNorm-folded on CPU, result objects):

{table(rows, 'model')}

**Worker level** — the whole worker against the real broker and Redis: poll, decode, predict,
alarm state machines, results producer flushed (acks=all, idempotent), Redis pipeline (alarms
script + live state + pub/sub), offset commit; `max_batch` = batch size, 32 patients:

{table(rows, 'worker')}

Result: {verdict(rows, 'worker')}. The {verdict(rows, 'model')}.

Where the CPU goes (`time.thread_time` inside each call on the main thread, per window of the
mix; "other threads" = kafka-python's I/O threads; the timing wrappers cost ~1 µs per call):

{phase_table(rows, 'model', (1, bm['batch']))}

{phase_table(rows, 'worker', (1, bw['batch']))}

* Unbatched, the worker pays a broker round trip for the results flush (acks=all), one for
  the offset commit and one Redis round trip per window: {1000 / w1['windows_per_s']:.1f} ms
  wall, {w1['cpu_us_per_window'] / 1000:.1f} ms CPU of which
  {w1.get('phases_cpu_us', {}).get('other threads', 0) / 1000:.1f} ms in kafka-python's I/O
  threads. Batching removes exactly this, which is where the worker-level gain comes from.
* The rhythm features (RR statistics, sample entropy, histogram entropy, VF band power) are
  computed for the whole batch at once on a NaN-padded RR matrix
  (`cardiostream/rhythm_features.py`, the one implementation training also calls): features
  cost {m1p.get('features', 0):.0f} µs per window unbatched and {mp.get('features', 0):.0f} µs
  batched. Result objects are built per batch too ({mp.get('result objects, rest', 0):.0f} µs).
* What does not batch away is the beat CNN: the forward pass costs
  {m1p.get('forward', 0):.0f} µs per window unbatched and {mp.get('forward', 0):.0f} µs at batch
  {bm['batch']} (convolutions are compute-bound at one thread), which caps the model-level
  CPU-time ratio near {m1['cpu_us_per_window'] / max(mp.get('forward', 1), 1):.0f}× even with free
  features. At the worker level the batched remainder is the predictor
  ({wp.get('predict', 0):.0f} µs), the alarm state machines and evidence strips
  ({wp.get('alarm state machines', 0):.0f} µs), per-message `send` of the results
  ({wp.get('results send', 0):.0f} µs), decoding/encoding ({wp.get('decode, encode, rest', 0):.0f}
  µs) and kafka-python's threads ({wp.get('other threads', 0):.0f} µs).

{PREVIOUS}

Next steps that would move the ratio: a lighter beat network or a GPU (the forward pass then
vanishes), cheaper alarm/evidence bookkeeping per beat, and several worker processes (the
consumer group scales by partitions).
{extra}<!-- /section: inference -->"""


def main() -> int:
    d = json.loads(Path("docs/bench/inference_cpu.json").read_text())
    extra = Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else ""
    body = render(d, extra)
    p = Path("docs/benchmarks.md")
    s = p.read_text()
    pat = re.compile(r"<!-- section: inference -->.*?<!-- /section: inference -->", re.S)
    s = pat.sub(lambda m: body, s) if pat.search(s) else s.rstrip() + "\n\n" + body + "\n"
    p.write_text(s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
