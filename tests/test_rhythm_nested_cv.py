"""The AF gate's operating point is chosen inside the training records only (nested CV)."""

import numpy as np
import pytest
import torch

from cardiostream.features import RHYTHM_FEATURES
from training.models import RhythmNet
from training.rhythm import AF_INDICES, RHYTHM_MODEL_CLASSES, VENTRICULAR_INDICES
from training.rhythm_af import AfGatedRhythmNet
from training.rhythm_operating import GRID, SKIP_S, choose, curve, inner_threshold

K = len(RHYTHM_MODEL_CLASSES)
ID = RHYTHM_FEATURES.index("n_beats_per_10s")      # the record's id hides in this column here
AF_COL = RHYTHM_FEATURES.index("dominant_nn_cv")


def test_choose_takes_the_best_ppv_that_keeps_the_se_floor():
    se = np.array([99.0, 95.0, 92.0, 92.0, 80.0])
    ppv = np.array([50.0, 70.0, 80.0, 80.0, 99.0])
    grid = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert choose(se, ppv, grid, target_se=92.0) == 2        # 99 +P fails the floor; tie -> lower
    assert choose(se, ppv, grid, target_se=99.5) == 0        # nothing reaches it -> lowest


def test_curve_counts_windows_by_hand():
    p = np.array([0.9, 0.6, 0.4, 0.8])
    open_af = np.array([True, True, True, False])             # the last: a VT outranks AF
    is_af = np.array([True, False, True, True])
    se, ppv = curve(p, open_af, is_af, grid=[0.5, 0.7])
    np.testing.assert_allclose(se, [100 / 3, 100 / 3])        # only window 0 is a true call
    np.testing.assert_allclose(ppv, [50.0, 100.0])


def _model(scale: float) -> AfGatedRhythmNet:
    """A gate whose P(AF) rises with the AF_COL feature; the MLP always prefers AFIB."""
    mlp = RhythmNet(len(RHYTHM_FEATURES), K)
    with torch.no_grad():
        for p in mlp.parameters():
            p.zero_()
        mlp.net[-1].bias[1] = 1.0
    gate = AfGatedRhythmNet(mlp, [AF_COL], list(AF_INDICES), K,
                            exempt=list(VENTRICULAR_INDICES)).eval()
    with torch.no_grad():
        gate.head.weight.fill_(scale)
    return gate


def test_inner_threshold_never_sees_the_held_out_records():
    rng = np.random.default_rng(0)
    records = [f"r{i}" for i in range(6)]
    held_out = ["h0", "h1"]
    feats, labels, starts = {}, {}, {}
    for i, r in enumerate(records + held_out):
        x = rng.normal(size=(200, len(RHYTHM_FEATURES))).astype(np.float32)
        x[:, RHYTHM_FEATURES.index("max_rr_s")] = 1.0        # no PAUSE rule
        x[:, ID] = i
        feats[r], labels[r] = x, np.where(x[:, AF_COL] > 0.5, 1, 0)
        starts[r] = np.arange(200) * 2.0
    seen: set[float] = set()

    def fit(x: np.ndarray, y: np.ndarray) -> AfGatedRhythmNet:
        seen.update(np.unique(x[:, ID]).tolist())
        return _model(4.0)

    got = inner_threshold(records, feats, labels, starts, fit,
                          lambda recs: [list(recs[0::2]), list(recs[1::2])])
    assert seen == set(range(len(records)))                   # h0, h1 (ids 6, 7) never fitted
    assert got["threshold"] in GRID and got["se"] >= 92.0
    assert SKIP_S == 300.0                                    # the scorer's 5:00


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_the_chosen_threshold_is_what_the_exported_program_decides(threshold):
    gate = _model(3.0)
    gate.threshold = threshold
    scripted = torch.jit.script(gate)
    x = np.zeros((50, len(RHYTHM_FEATURES)), dtype=np.float32)
    x[:, AF_COL] = np.linspace(-1, 1, 50)
    feats = torch.from_numpy(x)
    with torch.inference_mode():
        called = np.isin(scripted(torch.zeros(50, 1, 1), feats).argmax(1).numpy(), AF_INDICES)
        np.testing.assert_array_equal(called, (gate.p_af(feats) > threshold).numpy())
    assert 0 < called.sum() < 50
