"""Renderings of a ScoreReport: bxb/sumstats text, JSON, Markdown and a confusion PNG.

The text renderings reproduce PhysioNet's own line formats byte for byte (bxb -L
record and shutdown lines, sumstats' Sum/Gross/Average block), so a report can be
diffed against files written by the WFDB tools. Nothing here computes a statistic:
every figure comes from cardiostream.scoring.
"""

# ruff: noqa: UP031  -- printf formats on purpose: they are bxb.c/sumstats.c's own strings
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardiostream.bxb import ROWS
from cardiostream.labels import AAMI_CLASSES
from cardiostream.scoring import (
    LINE_COLUMNS,
    RecordScore,
    ScoreReport,
    bxb_record_stats,
    class_stats,
)

BXB_STATS = ("qrs_se", "qrs_ppv", "veb_se", "veb_ppv", "sveb_se", "sveb_ppv")
LINE_HEADER = ("Record Nn' Sn' Vn' Fn' On'  Ns  Ss  Vs  Fs' Os' Nv  Sv   Vv  Fv' Ov' No' So' "
               "Vo' Fo'  Q Se   Q +P   V Se   V +P   S Se   S +P RR err")
SHUTDOWN_HEADER = ("Record Nx   Sx   Vx   Fx   Qx  % beats  % N    % S    % V    % F   "
                   "Total Shutdown\n                                missed missed missed "
                   "missed missed      Time")
_LABELS = {"qrs_se": "QRS Se", "qrs_ppv": "QRS +P", "veb_se": "VEB Se", "veb_ppv": "VEB +P",
           "sveb_se": "SVEB Se", "sveb_ppv": "SVEB +P", "veb_fpr": "VEB FPR",
           "rr_error_ms": "RR err (ms)"}


def _stat(x: float | None, fmt: str = "%6.2f") -> str:
    return "      -" if x is None else " " + fmt % x


def bxb_line(rs: RecordScore) -> str:
    """The record's line of ``bxb -L`` (without newline)."""
    c = rs.counts
    s = "%4s %5d %3d %3d %3d %3d %3d %3d %3d %3d %3d" % ((rs.record,) + c[:10])
    s += " %3d %3d %4d %3d %3d %3d %3d %3d %3d" % c[10:]
    st = rs.stats
    s += "".join(_stat(st[k]) for k in BXB_STATS)
    return s + ("     -" if rs.rr_error_ms is None else " %6.2f" % rs.rr_error_ms)


def bxb_shutdown_line(rs: RecordScore) -> str:
    """The record's line of bxb's second -L file (beats missed during shutdown)."""
    m = rs.matrix
    x = m[:5, 6]
    rows = m[:5].sum(axis=1)
    qrs = int(m[:5, :5].sum() + m[:5, 5:].sum())
    s = "%4s %4d %4d %4d %4d %4d  " % ((rs.record,) + tuple(int(v) for v in x))
    s += _stat(100.0 * (x[0] + x[2] + x[3] + x[4]) / qrs if qrs > 0 else None)
    for k in (0, 1, 2, 3):
        s += _stat(100.0 * x[k] / rows[k] if rows[k] > 0 else None)
    return s + "%5d seconds %d %d %d %d %d" % ((rs.shutdown_s,) + tuple(int(v) for v in rows))


def sumstats_lines(report: ScoreReport) -> list[str]:
    """sumstats' block for a bxb -L file: separator, Sum, Gross, Average, totals."""
    c = report.sum_counts
    g, a, t = report.gross, report.average, report.totals
    n = len(report.records)
    return ["_" * 132,
            "Sum %6d %3d %3d %3d %3d" % c[:5] + " %3d %3d %3d %3d %3d" % c[5:10]
            + " %3d %3d %4d %3d %3d" % c[10:15] + " %3d %3d %3d %3d" % c[15:],
            "Gross" + " " * 78 + "".join(_stat(g[k]) for k in BXB_STATS),
            "Average" + " " * 76 + "".join(_stat(a[k]) for k in BXB_STATS)
            + _stat(a["rr_error_ms"]),
            f"Total QRS complexes: {t['qrs']}  Total VEBs: {t['veb']}  Total SVEBs: {t['sveb']}",
            "", f"Summary of results from {n} record{'' if n == 1 else 's'}"]


def bxb_text(report: ScoreReport) -> str:
    """The whole line-format report followed by sumstats' summary, as PhysioNet writes it."""
    lines = [LINE_HEADER] + [bxb_line(r) for r in report.records] + sumstats_lines(report)
    return "\n".join(lines) + "\n"


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def report_dict(report: ScoreReport) -> dict:
    """JSON-ready dict: settings, gross/average lines, per-class, per-record, episodes."""
    def rec(r: RecordScore) -> dict:
        return {"record": r.record, "counts": dict(zip(LINE_COLUMNS, r.counts, strict=True)),
                "matrix": r.matrix.tolist(),
                "stats": {k: _round(v) for k, v in bxb_record_stats(r.matrix).items()},
                "classes": {c: {k: _round(v) if isinstance(v, float) else v
                                for k, v in d.items()} for c, d in class_stats(r.matrix).items()},
                "rr_error_ms": _round(r.rr_error_ms), "shutdown_s": r.shutdown_s,
                "episodes": r.episodes.to_dict() if r.episodes else None}
    eps = report.episodes
    return {"convention": report.convention, "test_ext": report.test_ext,
            "ref_ext": report.ref_ext, "start_s": report.start_s, "window_s": report.window_s,
            "n_records": len(report.records), "matrix_axes": list(ROWS),
            "sum": dict(zip(LINE_COLUMNS, report.sum_counts, strict=True)),
            "gross": {k: _round(v) for k, v in report.gross.items()},
            "average": {k: _round(v) for k, v in report.average.items()},
            "totals": report.totals, "matrix": report.matrix.tolist(),
            "classes": {c: {k: _round(v) if isinstance(v, float) else v for k, v in d.items()}
                        for c, d in report.gross_classes.items()},
            "classes_average": {c: {k: _round(v) for k, v in d.items()}
                                for c, d in report.average_classes.items()},
            "episodes": eps.to_dict() if eps else None,
            "records": [rec(r) for r in report.records]}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _md_summary(report: ScoreReport) -> list[str]:
    keys = (*BXB_STATS, "rr_error_ms")
    out = [f"### Convention `{report.convention}` — {len(report.records)} records, "
           f"from {report.start_s:g} s, window {report.window_s * 1000:g} ms", "",
           "| | " + " | ".join(_LABELS[k] for k in keys) + " |",
           "|---|" + "---:|" * len(keys)]
    for name, d in (("Gross", report.gross), ("Average", report.average)):
        out.append(f"| {name} | " + " | ".join(_fmt(d.get(k)) for k in keys) + " |")
    out += ["", "| class | Se | +P | FPR | TP | FN | FP | avg Se | avg +P | avg FPR |",
            "|---|" + "---:|" * 9]
    avg = report.average_classes
    for c, d in report.gross_classes.items():
        a = avg[c]
        out.append(f"| {c} | {_fmt(d['se'])} | {_fmt(d['ppv'])} | {_fmt(d['fpr'])} | "
                   f"{d['tp']} | {d['fn']} | {d['fp']} | {_fmt(a['se'])} | {_fmt(a['ppv'])} | "
                   f"{_fmt(a['fpr'])} |")
    return out


def _md_matrix(m: np.ndarray) -> list[str]:
    cols = [c.lower() for c in ROWS]
    out = ["| ref \\ test | " + " | ".join(cols) + " |", "|---|" + "---:|" * 7]
    for i, r in enumerate(ROWS):
        out.append(f"| {r} | " + " | ".join("" if (i >= 5 and j >= 5) else str(int(m[i, j]))
                                            for j in range(7)) + " |")
    return out


def _md_episodes(report: ScoreReport) -> list[str]:
    eps = report.episodes
    if eps is None:
        return []
    return ["", "AF episodes (AFIB + AFL), gross:", "",
            "| Episode Se | Episode +P | Duration Se | Duration +P | ref (s) | test (s) |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {_fmt(eps.se)} | {_fmt(eps.ppv)} | {_fmt(eps.duration_se)} | "
            f"{_fmt(eps.duration_ppv)} | {eps.ref_s:.0f} | {eps.test_s:.0f} |"]


def to_markdown(reports: Sequence[ScoreReport]) -> str:
    """Markdown: per convention the summary, per-class table, matrix, per-record lines."""
    out = ["## EC57 beat-by-beat scores (bxb rules)", ""]
    for rep in reports:
        out += _md_summary(rep) + ["", "Confusion matrix (rows: reference):", ""]
        out += _md_matrix(rep.matrix) + _md_episodes(rep)
        out += ["", "<details><summary>per-record bxb lines</summary>", "", "```",
                bxb_text(rep).rstrip("\n"), "```", "</details>", ""]
    return "\n".join(out) + "\n"


def write_png(report: ScoreReport, path: Path) -> None:
    """Row-normalised N S V F Q confusion matrix (plus missed 'o') as a heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = report.matrix[:5, :6].astype(float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(5):
        for j in range(6):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(6), [*(c.lower() for c in AAMI_CLASSES), "o (missed)"])
    ax.set_yticks(range(5), list(AAMI_CLASSES))
    ax.set_xlabel("test")
    ax.set_ylabel("reference")
    ax.set_title(f"EC57 confusion ({report.convention}, {len(report.records)} records)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(reports: Sequence[ScoreReport], json_path: Path | None = None,
                  md_path: Path | None = None, png_path: Path | None = None) -> None:
    """Write the requested files; one PNG per convention when several are given."""
    if json_path:
        data = {r.convention: report_dict(r) for r in reports}
        Path(json_path).write_text(json.dumps(data, indent=1) + "\n")
    if md_path:
        Path(md_path).write_text(to_markdown(reports))
    if png_path:
        for r in reports:
            p = Path(png_path)
            if len(reports) > 1:
                p = p.with_name(f"{p.stem}-{r.convention}{p.suffix}")
            write_png(r, p)
