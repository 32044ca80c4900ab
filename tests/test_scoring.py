"""EC57 scorer: PhysioNet's own bxb output as the oracle, plus hand-made cases.

The vector tests compare our renderings with the files bxb/sumstats wrote
(../shared/data/ec57-vectors), line for line. The synthetic cases are small
timelines whose counts are worked out by hand from bxb's rules (docs/scoring.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiostream.bxb import ROWS, compare
from cardiostream.labels import AAMI_BXB, AAMI_DE_CHAZAL
from cardiostream.records import NON_PACED
from cardiostream.score_report import (
    LINE_HEADER,
    bxb_line,
    bxb_shutdown_line,
    report_dict,
    sumstats_lines,
    to_markdown,
)
from cardiostream.scoring import (
    CONVENTIONS,
    ScoringError,
    bxb_record_stats,
    class_stats,
    make_stream,
    score_record,
    score_records,
)
from cardiostream.settings import Settings

DATA = Settings().paths.data_dir
VECTORS = DATA / "ec57-vectors"
MITDB = DATA / "mitdb"
needs_vectors = pytest.mark.skipif(not (VECTORS / "annotations").is_dir(),
                                   reason="EC57 vectors not present")


@pytest.fixture(scope="module", params=["gqrs", "pert"])
def vector_case(request):
    return request.param, score_records(MITDB, VECTORS / "annotations", None, request.param)


@needs_vectors
def test_every_record_line_equals_bxb(vector_case):
    ext, report = vector_case
    want = (VECTORS / f"bxb-{ext}-records.txt").read_text().splitlines()
    assert want[0] == LINE_HEADER
    assert [r.record for r in report.records] == list(NON_PACED)
    assert len(want) - 1 == 44
    for got, line in zip(report.records, want[1:], strict=True):
        assert bxb_line(got) == line


@needs_vectors
def test_sum_gross_average_equal_sumstats(vector_case):
    ext, report = vector_case
    want = (VECTORS / f"bxb-{ext}-summary.txt").read_text().splitlines()
    block = want[want.index("_" * 132):]
    assert sumstats_lines(report) == block


@needs_vectors
def test_shutdown_lines_equal_bxb(vector_case):
    ext, report = vector_case
    want = (VECTORS / f"bxb-{ext}-shutdown-records.txt").read_text().splitlines()[2:]
    assert [bxb_shutdown_line(r) for r in report.records] == want


@needs_vectors
def test_gross_figures_from_readme(vector_case):
    ext, report = vector_case
    g = {k: round(v, 2) for k, v in report.gross.items() if v is not None}
    if ext == "gqrs":
        assert (g["qrs_se"], g["qrs_ppv"]) == (99.73, 99.70)
    else:
        assert g == {"qrs_se": 97.04, "qrs_ppv": 97.99, "veb_se": 90.47, "veb_ppv": 78.38,
                     "sveb_se": 90.78, "sveb_ppv": 63.52}


@needs_vectors
def test_record_208_standard_report_without_sveb():
    """bxb without SVEB statistics maps every S code to N (bxb-pert-208-full.txt)."""
    no_sveb = {k: ("N" if v == "S" else v) for k, v in AAMI_BXB.items()}
    r = score_record(MITDB, VECTORS / "annotations", "208", "pert", convention=no_sveb)
    m = r.matrix
    assert m[1].sum() == 0 and m[:, 1].sum() == 0
    assert m[0].tolist() == [1209, 0, 19, 17, 26, 39, 0]
    assert m[2].tolist() == [19, 0, 759, 18, 15, 13, 0]
    assert m[3].tolist() == [8, 0, 2, 272, 7, 12, 0]
    assert m[4].tolist() == [0, 0, 0, 0, 2, 0, 0]
    assert m[5, :5].tolist() == [22, 0, 12, 10, 9]
    st = bxb_record_stats(m)
    assert f"{st['qrs_se']:.2f} {st['qrs_ppv']:.2f}" == "97.37 97.82"
    assert f"{st['veb_se']:.2f} {st['veb_ppv']:.2f} {st['veb_fpr']:.3f}" == "92.11 96.08 1.922"
    assert r.shutdown_s == 0


@needs_vectors
def test_dechazal_relabels_escape_beats_only():
    bxb = score_record(MITDB, VECTORS / "annotations", "222", "gqrs")
    dch = score_record(MITDB, VECTORS / "annotations", "222", "gqrs", convention="dechazal")
    assert bxb.matrix.sum() == dch.matrix.sum()
    assert dch.matrix[1].sum() < bxb.matrix[1].sum()          # 222: 212 nodal escape beats
    assert dch.matrix[0].sum() - bxb.matrix[0].sum() == bxb.matrix[1].sum() - dch.matrix[1].sum()


def test_dechazal_convention_agrees_with_labels_module():
    for sym, cls in AAMI_DE_CHAZAL.items():
        assert CONVENTIONS["dechazal"][sym] == cls


# ---- hand-made timelines (fs = 1000 Hz, so 1 sample = 1 ms) --------------------

FS = 1000.0
START = 300_000


def _run(ref, test, *, start=START, dt=150, conv=AAMI_BXB, end=1_000_000):
    """ref/test: lists of (sample, symbol[, subtype]) -> 7x7 matrix and result."""
    def stream(items):
        items = [(*it, 0)[:3] for it in items]
        return make_stream([i[0] for i in items], [i[1] for i in items],
                           [i[2] for i in items], conv)
    res = compare(stream(ref), stream(test), start=start, match_dt=dt, end_time=end, fs_hz=FS)
    return res.matrix, res


def _cell(m, r, t):
    return int(m[ROWS.index(r), ROWS.index(t)])


def _beats(n, first=START + 500, rr=1000, sym="N"):
    return [(first + i * rr, sym) for i in range(n)]


def test_exact_match():
    ref = _beats(10)
    m, res = _run(ref, ref)
    assert _cell(m, "N", "N") == 10 and m.sum() == 10
    assert res.rr_n == 9 and res.rr_sum_sq == 0.0


@pytest.mark.parametrize(("offset", "matched"), [(149, True), (150, True), (151, False),
                                                 (-149, True), (-151, False)])
def test_match_window_edge(offset, matched):
    ref = _beats(5)
    test = [(t + (offset if i == 2 else 0), s) for i, (t, s) in enumerate(ref)]
    m, _ = _run(ref, test)
    assert _cell(m, "N", "N") == (5 if matched else 4)
    assert _cell(m, "N", "O") == (0 if matched else 1)
    assert _cell(m, "O", "N") == (0 if matched else 1)


def test_missed_and_extra_beats():
    ref = _beats(6)
    test = [b for i, b in enumerate(ref) if i != 3] + [(ref[1][0] + 400, "N")]
    m, _ = _run(ref, sorted(test))
    assert (_cell(m, "N", "N"), _cell(m, "N", "O"), _cell(m, "O", "N")) == (5, 1, 1)
    st = bxb_record_stats(m)
    assert st["qrs_se"] == pytest.approx(500 / 6) and st["qrs_ppv"] == pytest.approx(500 / 6)


def test_label_confusion():
    ref = [(START + 1000, "N"), (START + 2000, "V"), (START + 3000, "A"), (START + 4000, "F"),
           (START + 5000, "j")]
    test = [(START + 1000, "V"), (START + 2000, "N"), (START + 3000, "V"), (START + 4000, "V"),
            (START + 5000, "S")]
    m, _ = _run(ref, test)
    assert (_cell(m, "N", "V"), _cell(m, "V", "N"), _cell(m, "S", "V"), _cell(m, "F", "V"),
            _cell(m, "S", "S")) == (1, 1, 1, 1, 1)
    st = bxb_record_stats(m)
    assert st["veb_se"] == 0.0 and st["veb_ppv"] == 0.0       # F->v is not a false positive
    assert class_stats(m)["V"]["fp"] == 2
    m2, _ = _run(ref, test, conv=CONVENTIONS["dechazal"])     # j is N for de Chazal
    assert _cell(m2, "N", "S") == 1 and _cell(m2, "S", "S") == 0


def test_beats_before_start_are_not_scored():
    ref = [(1000, "V"), (100_000, "V")] + _beats(3)
    test = [(1000, "N"), (150_000, "N")] + _beats(3)
    m, _ = _run(ref, test)
    assert _cell(m, "N", "N") == 3 and m.sum() == 3


def test_test_beat_just_before_start_matches_first_reference_beat():
    ref = [(START + 10, "N"), (START + 1000, "N")]
    test = [(START - 10, "V"), (START + 1000, "N")]
    m, _ = _run(ref, test)
    assert (_cell(m, "N", "V"), _cell(m, "N", "N")) == (1, 1) and m.sum() == 2


def test_unmatched_test_beat_in_first_window_is_dropped():
    ref = [(START - 10, "N"), (START + 1000, "N")]       # first reference beat is before 5:00
    test = [(START + 10, "N"), (START + 1000, "N")]
    m, _ = _run(ref, test)
    assert _cell(m, "N", "N") == 1 and m.sum() == 1


def test_close_pairs_use_the_2002_rule():
    """bxb.c's own example (match window 37): all four beats pair up."""
    m, _ = _run([(96, "N"), (160, "N")], [(128, "N"), (185, "N")], start=50, dt=37)
    assert _cell(m, "N", "N") == 2 and m.sum() == 2


def test_reference_vf_and_flutter_waves():
    ref = _beats(2) + [(START + 2200, "["), (START + 2500, "!"), (START + 2900, "]")] + \
        _beats(2, first=START + 3500) + [(START + 5500, "!")]
    test = _beats(2) + [(START + 2500, "V")] + _beats(2, first=START + 3500) + \
        [(START + 5500, "N")]
    m, _ = _run(ref, test)
    assert _cell(m, "N", "N") == 4
    assert _cell(m, "O", "N") == 1 and _cell(m, "O", "V") == 0   # '!' outside VF is class O


def test_test_shutdown_counts_x_and_seconds():
    ref = _beats(10)
    test = _beats(2) + [(START + 2700, "~", -1), (START + 6700, "~", 0)] + \
        [b for b in ref if b[0] > START + 6700]
    m, res = _run(ref, test)
    # 302500 precedes the shutdown (missed, o); 303500..306500 fall inside it (x)
    assert (_cell(m, "N", "N"), _cell(m, "N", "O"), _cell(m, "N", "X")) == (5, 1, 4)
    assert res.shutdown_s == 4                      # (0.5 s + 4.0 s) truncated, as bxb does


def test_empty_test_file_misses_everything():
    m, _ = _run(_beats(4), [])
    assert _cell(m, "N", "O") == 4 and bxb_record_stats(m)["qrs_se"] == 0.0


# ---- files on disk, episodes, rendering ----------------------------------------

def _write(directory: Path, rec: str, ext: str, items, header: bool) -> None:
    import wfdb

    samples = np.array([i[0] for i in items], dtype=np.int64)
    wfdb.wrann(rec, ext, samples, symbol=[i[1] for i in items],
               aux_note=[i[2] if len(i) > 2 else "" for i in items], fs=FS,
               write_dir=str(directory))
    if header:
        (directory / f"{rec}.hea").write_text(f"{rec} 1 1000 1000000\n"
                                              f"{rec}.dat 16 200 16 0 0 0 0 I\n")


def test_score_records_from_files_with_af_episodes(tmp_path):
    ref = [(0, "+", "(N"), (400_000, "+", "(AFIB"), (500_000, "+", "(N")] + \
        [(t, "N") for t in range(300_500, 900_000, 1000)]
    test = [(0, "+", "(N"), (410_000, "+", "(AFIB"), (520_000, "+", "(N"),
            (600_000, "+", "(AFL"), (610_000, "+", "(N")] + \
        [(t, "N") for t in range(300_500, 900_000, 1000)]
    _write(tmp_path, "100", "atr", sorted(ref), header=True)
    _write(tmp_path, "100", "cs", sorted(test), header=False)
    rep = score_records(tmp_path, tmp_path, None, "cs")
    assert [r.record for r in rep.records] == ["100"]
    assert rep.gross["qrs_se"] == 100.0 and rep.gross["qrs_ppv"] == 100.0
    eps = rep.episodes
    assert (eps.tp_se, eps.fn, eps.tp_ppv, eps.fp) == (1, 0, 1, 1)
    assert eps.duration_se == pytest.approx(90.0)
    assert eps.duration_ppv == pytest.approx(100 * 90 / 120)
    d = report_dict(rep)
    assert d["episodes"]["ppv"] == 50.0 and d["records"][0]["counts"]["Nn'"] == 600
    assert "AF episodes" in to_markdown([rep])


def test_missing_files_and_bad_convention_raise(tmp_path):
    with pytest.raises(ScoringError, match="no records"):
        score_records(tmp_path, tmp_path, None, "cs")
    with pytest.raises(ScoringError, match="no annotation file"):
        score_records(tmp_path, tmp_path, ["100"], "cs")
    with pytest.raises(ScoringError, match="convention"):
        score_records(tmp_path, tmp_path, ["100"], "cs", convention="aha")


@needs_vectors
def test_cli_scores_and_writes_reports(tmp_path):
    import json

    from typer.testing import CliRunner

    from cardiostream.cli import app

    out = tmp_path / "r"
    res = CliRunner().invoke(app, [
        "score", str(MITDB), str(VECTORS / "annotations"), "--ext", "gqrs", "--records",
        "100,101", "--convention", "both", "--json", f"{out}.json", "--md", f"{out}.md",
        "--png", f"{out}.png", "--text", f"{out}.txt"])
    assert res.exit_code == 0, res.output
    assert "Gross" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) == {"bxb", "dechazal"} and data["bxb"]["n_records"] == 2
    assert (tmp_path / "r-bxb.png").stat().st_size > 0
    want = (VECTORS / "bxb-gqrs-records.txt").read_text().splitlines()[1:3]
    assert (tmp_path / "r.txt").read_text().splitlines()[1:3] == want
    bad = CliRunner().invoke(app, ["score", str(MITDB), str(tmp_path), "--ext", "none"])
    assert bad.exit_code == 1 and "no records" in bad.output


def test_hand_made_files_with_known_answer(tmp_path):
    """One record on disk (1 kHz): exact, 149/151 ms, missed, extra, confusions, pre-5:00."""
    ref = [(300_500 + 1000 * i, {8: "V", 9: "A", 10: "j"}.get(i, "N")) for i in range(20)]
    test = [(t + {4: 149, 5: 151}.get(i, 0), {8: "N", 9: "S", 10: "N"}.get(i, "N"))
            for i, (t, _) in enumerate(ref) if i != 6] + [(ref[7][0] + 400, "N")]
    ref += [(10_000, "V"), (200_000, "N")]                # before 5:00: never scored
    test += [(10_000, "N"), (250_000, "N")]
    _write(tmp_path, "100", "atr", sorted(ref), header=True)
    _write(tmp_path, "100", "cs", sorted(test), header=False)
    bxb = score_records(tmp_path, tmp_path, ["100"], "cs").records[0]
    #          Nn' Sn' Vn' Fn' On' Ns Ss Vs Fs' Os' Nv Sv Vv Fv' Ov' No' So' Vo' Fo'
    assert bxb.counts == (15, 1, 1, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0)
    assert bxb.stats == {"qrs_se": 90.0, "qrs_ppv": 90.0, "veb_se": 0.0, "veb_ppv": None,
                         "veb_fpr": 0.0, "sveb_se": 50.0, "sveb_ppv": 100.0}
    dch = score_records(tmp_path, tmp_path, ["100"], "cs", convention="dechazal").records[0]
    assert dch.counts[:2] == (16, 0) and dch.stats["sveb_se"] == 100.0


def test_annotations_at_another_time_resolution_are_rescaled(tmp_path):
    import wfdb

    ref = [(300_500 + 1000 * i, "N") for i in range(5)]
    _write(tmp_path, "100", "atr", ref, header=True)              # record at 1000 Hz
    wfdb.wrann("100", "cs", np.array([t // 4 for t, _ in ref]), symbol=["N"] * 5, fs=250,
               write_dir=str(tmp_path))                            # detector at 250 Hz
    rec = score_records(tmp_path, tmp_path, ["100"], "cs").records[0]
    assert rec.counts[0] == 5 and rec.stats["qrs_ppv"] == 100.0
