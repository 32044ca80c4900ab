"""`cardiostream annotate`: beats written at the R sample, header copied, readable by wfdb."""

from __future__ import annotations

import numpy as np
import wfdb
from typer.testing import CliRunner

from cardiostream.cli import app
from tests.dsp_synth import rr_series, synth_ecg

FS = 360.0


def test_annotate_writes_one_q_per_beat_and_the_header(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    truth = rr_series(500, list(np.random.default_rng(4).uniform(0.5, 1.2, 50)))
    x = synth_ecg(truth, int(truth[-1] + 500))
    wfdb.wrsamp("syn1", fs=FS, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=x.T,
                fmt=["16", "16"], adc_gain=[200.0, 200.0], baseline=[0, 0],
                write_dir=str(src))
    res = CliRunner().invoke(app, ["annotate", "syn1", "--out", str(out), "--data", str(src),
                                   "--chunk-s", "0.37"])
    assert res.exit_code == 0, res.output
    assert (out / "syn1.hea").exists()
    ann = wfdb.rdann(str(out / "syn1"), "cs")
    assert set(ann.symbol) == {"Q"} and len(ann.sample) == len(truth)
    assert np.abs(ann.sample - truth).max() <= 0.015 * FS     # filter delay only


def test_annotate_record_without_beats_writes_a_note(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    wfdb.wrsamp("flat", fs=FS, units=["mV"], sig_name=["II"],
                p_signal=np.full((int(20 * FS), 1), 0.1), fmt=["16"], adc_gain=[200.0],
                baseline=[0], write_dir=str(src))
    res = CliRunner().invoke(app, ["annotate", "flat", "--out", str(out), "--data", str(src)])
    assert res.exit_code == 0, res.output
    assert wfdb.rdann(str(out / "flat"), "cs").symbol == ['"']


def test_annotate_unknown_record_fails_cleanly(tmp_path):
    res = CliRunner().invoke(app, ["annotate", "nope", "--out", str(tmp_path),
                                   "--data", str(tmp_path)])
    assert res.exit_code == 1 and "nope" in res.output
