"""Model selection on the DS1 validation patients: beat-model variants x seeds.

Why seeds: on the five validation patients the selection score of one
configuration moves by up to 0.09 from seed to seed (docs/training_selection.md), more
than most configuration changes, so a variant is judged by its mean over seeds.
DS2 is never read.

    python -m training.selection --seeds 0,1,2 \\
        base:suppressed=F aug02:suppressed=F,premature_aug=0.02

Each variant is ``NAME:key=value,...`` over ``BeatTrainConfig`` fields. Writes
docs/training_selection.json and .md (one row per variant: per-seed and mean
validation figures) and prints each run as it ends.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

import numpy as np

from cardiostream.settings import REPO_ROOT, load_settings
from cardiostream.signal import DEFAULT_SPEC
from training.train import BeatTrainConfig, epoch_line, train_beats

_TUPLE_STR = {"rr_columns", "suppressed", "val_records", "train_records"}


def parse_variant(text: str) -> tuple[str, dict]:
    """'name:k=v,k=v' -> (name, BeatTrainConfig keyword arguments); tuples use '+'."""
    name, _, body = text.partition(":")
    types = {f.name: f.type for f in fields(BeatTrainConfig)}
    kwargs: dict = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise ValueError(f"{key!r} is not a BeatTrainConfig field")
        if key in _TUPLE_STR:
            kwargs[key] = tuple(v for v in value.split("+") if v)
        elif key == "leads":
            kwargs[key] = tuple(int(v) for v in value.split("+"))
        elif key in ("epochs", "batch", "seed"):
            kwargs[key] = int(value)
        elif key in ("augment",):
            kwargs[key] = value.lower() in ("1", "true", "yes")
        elif key == "imbalance":
            kwargs[key] = value
        else:
            kwargs[key] = float(value)
    return name, kwargs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(REPO_ROOT / "docs" / "training_selection"))
    args = ap.parse_args()
    s = load_settings()
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = {}
    for text in args.variants:
        name, kwargs = parse_variant(text)
        runs = []
        for seed in seeds:
            res = train_beats(BeatTrainConfig(**kwargs, seed=seed), s.paths.mitdb,
                              s.paths.cache_dir, DEFAULT_SPEC)
            runs.append({"seed": seed, "val": res.val_metrics, "seconds": round(res.seconds, 1)})
            print(name, seed, epoch_line({"epoch": "best", "loss": 0.0, **res.val_metrics}),
                  flush=True)
        rows[name] = {"config": kwargs, "runs": runs,
                      "mean_score": float(np.mean([r["val"]["score"] for r in runs]))}
    with open(args.out + ".json", "w") as fh:
        json.dump(rows, fh, indent=1, default=float)
    with open(args.out + ".md", "w") as fh:
        fh.write(table(rows) + "\n")
    print(table(rows))


def table(rows: dict) -> str:
    lines = ["| variant | config | seed | val score | N Se | S Se | S +P | V Se | V +P |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        for run in r["runs"]:
            v = run["val"]
            lines.append(f"| {name} | {cfg} | {run['seed']} | {v['score']:.4f} | "
                         f"{v['N']['Se']:.1f} | {v['S']['Se']:.1f} | {v['S']['+P']:.1f} | "
                         f"{v['V']['Se']:.1f} | {v['V']['+P']:.1f} |")
        lines.append(f"| **{name}** | mean of {len(r['runs'])} seeds | | "
                     f"**{r['mean_score']:.4f}** | | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
