"""training/: dataset parity with the stream DSP, labelling, determinism, export round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cardiostream.features import (
    beat_channels,
    beat_inputs,
    beat_rr_features,
    load_model,
    rhythm_inputs,
)
from cardiostream.processing import process_record
from cardiostream.records import load_record
from cardiostream.settings import Settings
from cardiostream.signal import DEFAULT_SPEC
from training.datasets import cut_record, match_beats, rhythm_features, rhythm_intervals
from training.train import BeatTrainConfig, train_beats

MITDB = Settings().paths.mitdb
needs_data = pytest.mark.skipif(not (MITDB / "100.hea").exists(), reason="no MIT-BIH data")


def test_match_beats_is_one_to_one_within_the_window():
    ref = np.array([100, 400, 700])
    det = np.array([98, 104, 460, 701, 1000])      # two near 100, one 60 off 400, one extra
    got = match_beats(det, ref, tol=54)
    assert got.tolist() == [0, -1, -1, 2, -1]


def test_rhythm_intervals_follow_the_plus_annotations():
    ann = SimpleNamespace(sample=np.array([0, 50, 300, 500]), symbol=["+", "N", "+", "N"],
                          aux_note=["(N\x00", "", "(AFIB\x00", ""])
    assert rhythm_intervals(ann, 1000) == [(0, 300, "N"), (300, 1000, "AFIB")]


@needs_data
def test_dataset_equals_what_the_stream_dsp_gives():
    """Train/serve parity: cached arrays -> the same model inputs as process_record windows."""
    sampto = int(90 * 360)
    cached = cut_record(MITDB, "119", DEFAULT_SPEC, sampto=sampto)
    windows = process_record(load_record(MITDB, "119", sampto=sampto), DEFAULT_SPEC,
                             chunk_s=0.5, start_us=0)
    x, rr = beat_inputs(windows.beats, (0,))
    np.testing.assert_array_equal(x, beat_channels(cached["beat_samples"][:, [0]],
                                                   cached["beat_template"][:, [0]]))
    np.testing.assert_array_equal(rr, beat_rr_features(*cached["beat_rr"].T))
    np.testing.assert_array_equal(rhythm_inputs(windows.rhythms)[1], rhythm_features(cached))
    # 119 has ventricular bigeminy: the labels must contain V beats, and most beats match.
    assert (cached["beat_label"] == 2).sum() > 10
    assert (cached["beat_label"] >= 0).mean() > 0.95


def _tiny(tmp_path, seed: int = 0):
    cfg = BeatTrainConfig(seed=seed, epochs=1, batch=64, train_records=("119", "106"),
                          val_records=("118",), max_beats_per_record=300)
    return train_beats(cfg, MITDB, tmp_path / "cache", DEFAULT_SPEC)


@needs_data
def test_same_seed_same_model_and_export_round_trip(tmp_path):
    a, b = _tiny(tmp_path), _tiny(tmp_path)
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=0, atol=0)
    assert repr(a.val_metrics) == repr(b.val_metrics)   # nan-safe equality

    from training.export import export_beats

    folder = tmp_path / "model"
    export_beats(a, folder, DEFAULT_SPEC)
    meta = json.loads((folder / "beat" / "metadata.json").read_text())
    assert meta["classes"] == ["N", "S", "V", "F", "Q"] and meta["spec_id"] == DEFAULT_SPEC.spec_id
    assert set(meta["training_records"]) == {"119", "106"}
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.5, tuple([7, *meta["input"]["x"][1:]])).astype(np.float32)
    assert x.shape[1] == 2                    # lead 0, then lead 0 minus the template
    rr = rng.uniform(0.5, 1.5, (7, len(meta["rr_features"]))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "rr.npy", rr)
    with torch.inference_mode():
        expected = a.model(torch.from_numpy(x), torch.from_numpy(rr)).numpy()
    # A fresh interpreter that never imports training/ must load and reproduce it.
    code = ("import sys, numpy as np, torch; from cardiostream.features import load_model;"
            f"m = load_model(r'{folder}', 'beat');"
            f"x = torch.from_numpy(np.load(r'{tmp_path / 'x.npy'}'));"
            f"rr = torch.from_numpy(np.load(r'{tmp_path / 'rr.npy'}'));"
            f"np.save(r'{tmp_path / 'out.npy'}', m.program(x, rr).detach().numpy());"
            "assert not any(k.startswith('training') for k in sys.modules), 'imported training'")
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
    assert load_model(folder, "beat").classes == ("N", "S", "V", "F", "Q")


@needs_data
def test_different_seed_changes_the_weights(tmp_path):
    a, c = _tiny(tmp_path), _tiny(tmp_path, seed=1)
    assert any(not torch.equal(v, c.model.state_dict()[k])
               for k, v in a.model.state_dict().items() if v.is_floating_point())


def test_alarm_view_dates_the_alarm_layers_af_episodes():
    """CV 'alarm' episodes = the AF alarms inference.alarms raises and clears, window by window."""
    from inference.alarms import _Event, new_state
    from training.rhythm_cv import alarm_view

    cfg = Settings().alarms
    on, off = cfg.af_on_windows, cfg.rhythm_off_windows
    rng = np.random.default_rng(0)
    for trial in range(60):
        pred = rng.choice([0, 1, 2, 3], size=80, p=[0.4, 0.3, 0.2, 0.1])
        good = rng.random(80) > (0.2 if trial % 2 else 0.0)   # noisy windows skip the streak
        state, events = new_state("d", "u"), []
        for i, k in enumerate(pred):
            ev = _Event(state, cfg, i, i)      # device time = window index
            if good[i]:                        # _model_conditions(yellow=all leads good)
                ev.streak("afib", int(k) in (1, 2), i, on, off)
            events += [(a.state, a.onset_time_us, a.time_us) for a in ev.out]
        view = alarm_view(pred, on, off, good)
        d = np.diff(np.concatenate([[0], view.astype(int), [0]]))
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        raised = [(o, t) for s, o, t in events if s == "raised"]
        cleared = [t for s, o, t in events if s == "cleared"]
        assert [o for o, _ in raised] == starts.tolist()             # dated from the streak
        assert all(good[o:t + 1].sum() == on for o, t in raised)   # on-th good AF window
        firsts = [int(np.flatnonzero(good[:t + 1])[-off]) for t in cleared]
        assert firsts == ends[:len(cleared)].tolist()     # ends where the non-AF streak began
        assert len(cleared) in (len(ends), len(ends) - 1)             # last may stay open


@needs_data
@pytest.mark.parametrize("record", ["203", "208"])
def test_training_rhythm_features_equal_the_workers_in_any_batch(record):
    """Train/serve parity of all rhythm features (the AF gate's included): what
    training.rhythm fits on (cached record arrays) == the worker's rhythm_inputs on the
    stream's windows, batched as the worker batches them (any size, any neighbours)."""
    from cardiostream.features import RHYTHM_FEATURES
    from cardiostream.rr_features import DOMINANT_RR_FEATURES

    sampto = int(150 * 360)                   # 203: AF, VT, noise; 208: PVC couplets
    cached = cut_record(MITDB, record, DEFAULT_SPEC, sampto=sampto)
    trained = rhythm_features(cached)
    windows = process_record(load_record(MITDB, record, sampto=sampto), DEFAULT_SPEC,
                             chunk_s=0.37, start_us=0).rhythms
    assert trained.shape == (len(windows), len(RHYTHM_FEATURES)) and len(windows) > 60
    cuts = np.cumsum(np.random.default_rng(int(record)).integers(1, 24, len(windows)))
    cuts = [0, *cuts[cuts < len(windows)].tolist(), len(windows)]
    served = np.concatenate([rhythm_inputs(windows[a:b])[1]
                             for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    np.testing.assert_array_equal(served, trained)
    dominant = trained[:, RHYTHM_FEATURES.index(DOMINANT_RR_FEATURES[0]):]
    assert dominant[:, DOMINANT_RR_FEATURES.index("p_wave_measured")].any()   # not all "none"


def test_exported_af_gated_rhythm_model_loads_with_the_rhythm_features_version(tmp_path):
    """The default rhythm config is the AF-gated model over the online features; its folder
    carries the rhythm features version and the worker's load_model accepts it."""
    from cardiostream.features import RHYTHM_FEATURES, RHYTHM_FEATURES_VERSION
    from cardiostream.rr_features import DOMINANT_RR_FEATURES
    from training.models import RhythmNet
    from training.rhythm import (
        AF_INDICES,
        RHYTHM_MODEL_CLASSES,
        RhythmTrainConfig,
        RhythmTrainResult,
        export_rhythm,
    )
    from training.rhythm_af import AF_HEAD_FEATURES, AfGatedRhythmNet

    cfg = RhythmTrainConfig()
    assert cfg.af_head and set(DOMINANT_RR_FEATURES) <= set(RHYTHM_FEATURES)
    k = len(RHYTHM_MODEL_CLASSES)
    model = AfGatedRhythmNet(RhythmNet(len(RHYTHM_FEATURES), k),
                             [RHYTHM_FEATURES.index(n) for n in AF_HEAD_FEATURES],
                             list(AF_INDICES), k).eval()
    export_rhythm(RhythmTrainResult(model, cfg, {}, {}), tmp_path, DEFAULT_SPEC)
    loaded = load_model(tmp_path, "rhythm")
    assert loaded.metadata["features_version"] == RHYTHM_FEATURES_VERSION
    assert loaded.metadata["rhythm_features"] == list(RHYTHM_FEATURES)
    assert loaded.metadata["af_gate"]["features"] == list(AF_HEAD_FEATURES)


def test_af_gate_decides_af_and_scripts(tmp_path):
    """The gated candidate: argmax is AF exactly when P(AF) > 0.5; TorchScript gives the same."""
    from cardiostream.features import RHYTHM_FEATURES
    from training.models import RhythmNet
    from training.rhythm import AF_INDICES, RHYTHM_MODEL_CLASSES
    from training.rhythm_af import AF_HEAD_FEATURES, AfGatedRhythmNet, fit_af_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(RHYTHM_FEATURES))).astype(np.float32)
    col = RHYTHM_FEATURES.index("dominant_nn_cv")
    is_af = x[:, col] > 0.3                               # AF iff one irregularity feature
    k = len(RHYTHM_MODEL_CLASSES)
    torch.manual_seed(0)
    make = lambda: AfGatedRhythmNet(RhythmNet(x.shape[1], k), [RHYTHM_FEATURES.index(n)  # noqa: E731
                                    for n in AF_HEAD_FEATURES], list(AF_INDICES), k)
    model = fit_af_head(make(), x, is_af, seed=0)
    feats, dummy = torch.from_numpy(x), torch.zeros(len(x), 1, 1)
    with torch.inference_mode():
        pred = model(dummy, feats).argmax(1).numpy()
        gate = (model.p_af(feats) > 0.5).numpy()
    np.testing.assert_array_equal(np.isin(pred, AF_INDICES), gate)
    assert (gate == is_af).mean() > 0.95
    again = fit_af_head(make(), x, is_af, seed=0)
    torch.testing.assert_close(again.head.weight, model.head.weight, rtol=0, atol=0)
    scripted = torch.jit.script(model)
    with torch.inference_mode():
        torch.testing.assert_close(scripted(dummy, feats), model(dummy, feats))


def test_af_gate_never_hides_a_ventricular_rhythm():
    """Gate says AF, the MLP says VT (or VFL) -> VT; gate says AF, the MLP says N -> AF."""
    from training.rhythm import AF_INDICES, RHYTHM_MODEL_CLASSES, VENTRICULAR_INDICES
    from training.rhythm_af import AfGatedRhythmNet

    class Fixed(torch.nn.Module):
        def __init__(self, logits: torch.Tensor) -> None:
            super().__init__()
            self.register_buffer("logits", logits)

        def forward(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
            return self.logits.expand(feats.shape[0], -1)

    k = len(RHYTHM_MODEL_CLASSES)
    for favourite, expected in ((3, 3), (4, 4), (0, 1), (5, 1)):
        logits = torch.zeros(k)
        logits[favourite] = 5.0
        logits[1] = 1.0                                   # AFIB second
        model = AfGatedRhythmNet(Fixed(logits), [0], list(AF_INDICES), k,
                                 exempt=list(VENTRICULAR_INDICES)).eval()
        with torch.no_grad():
            model.head.bias.fill_(10.0)                   # P(AF) ~ 1
            model.head.weight.zero_()
            got = model(torch.zeros(2, 1, 1), torch.zeros(2, 3)).argmax(1)
        assert got.tolist() == [expected, expected], RHYTHM_MODEL_CLASSES[favourite]


def test_out_of_fold_evaluation_takes_each_records_rhythm_from_its_fold(tmp_path):
    """`cardiostream evaluate` must not take a record's rhythm (annotations, and the beats'
    AF context) from a model that trained on that patient: the exported folder carries
    the CV fold models, and the labeller picks the fold that was tested on the record."""
    from cardiostream.classify import ModelLabeller
    from cardiostream.features import RHYTHM_FEATURES
    from tests.inference_models import write_model_dir
    from training.evaluate import _out_of_fold
    from training.models import RhythmNet
    from training.rhythm import (
        RHYTHM_MODEL_CLASSES,
        RhythmTrainConfig,
        RhythmTrainResult,
        export_rhythm,
    )

    def mlp():
        return RhythmNet(len(RHYTHM_FEATURES), len(RHYTHM_MODEL_CLASSES)).eval()

    write_model_dir(tmp_path)                         # the beat model
    hashes = {"201": "a", "203": "b", "100": "c"}
    cfg = RhythmTrainConfig(af_head=False, records=tuple(hashes))
    export_rhythm(RhythmTrainResult(mlp(), cfg, {}, {}, hashes, 0.0, {},
                                    [(("201", "203"), mlp()), (("100",), mlp())]),
                  tmp_path, DEFAULT_SPEC)
    labeller = ModelLabeller(tmp_path, out_of_fold=True)
    fold_of = {r: labeller._rhythm_for(r).metadata for r in hashes}
    assert [fold_of[r]["fold"] for r in ("201", "203", "100")] == [0, 0, 1]
    assert set(fold_of["100"]["training_records"]) == {"201", "203"}
    assert set(fold_of["201"]["training_records"]) == {"100"}
    with pytest.raises(KeyError, match="no cross-validation fold"):
        labeller._rhythm_for("999")
    assert ModelLabeller(tmp_path)._rhythm_for("100") is not None     # exported model
    assert _out_of_fold(tmp_path, ["100", "999"], "auto") is True    # it trained on 100
    assert _out_of_fold(tmp_path, ["999"], "auto") is False
    assert _out_of_fold(tmp_path, ["100"], "exported") is False
    with pytest.raises(ValueError, match="rhythm_context"):
        _out_of_fold(tmp_path, ["100"], "sometimes")
