"""Model selection on the DS1 validation patients: class-imbalance strategies compared.

``python -m training.sweep --epochs 4`` trains one model per strategy (same seed,
same epochs, same number of beats per epoch) and writes docs/training_sweep.json
and a Markdown table. DS2 is never read.
"""

from __future__ import annotations

import argparse
import json

from cardiostream.settings import REPO_ROOT, load_settings
from cardiostream.signal import DEFAULT_SPEC
from training.train import BeatTrainConfig, epoch_line, train_beats

STRATEGIES = ("weighted", "focal", "sampler")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    s = load_settings()
    rows = {}
    for strategy in STRATEGIES:
        cfg = BeatTrainConfig(seed=args.seed, epochs=args.epochs, imbalance=strategy)
        res = train_beats(cfg, s.paths.mitdb, s.paths.cache_dir, DEFAULT_SPEC)
        rows[strategy] = {"val": res.val_metrics, "seconds": round(res.seconds, 1),
                          "history": res.history}
        print(strategy, epoch_line({"epoch": "best", "loss": 0.0, **res.val_metrics}),
              f"{res.seconds:.0f} s", flush=True)
    out = REPO_ROOT / "docs" / "training_sweep.json"
    out.write_text(json.dumps(rows, indent=1, default=float) + "\n")
    lines = ["| imbalance | val score (mean F1 N,S,V) | N Se | S Se | S +P | V Se | V +P | s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k, r in rows.items():
        v = r["val"]
        lines.append(f"| {k} | {v['score']:.4f} | {v['N']['Se']:.1f} | {v['S']['Se']:.1f} | "
                     f"{v['S']['+P']:.1f} | {v['V']['Se']:.1f} | {v['V']['+P']:.1f} | "
                     f"{r['seconds']:.0f} |")
    print("\n".join(lines))
    (REPO_ROOT / "docs" / "training_sweep.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
