"""training/: the beat model's RR column choice, suppressed classes and premature-beat copies."""

from __future__ import annotations

import numpy as np
import torch

from cardiostream.features import BEAT_RR_FEATURES, beat_rr_features
from training.models import BeatNet
from training.train import BeatTrainConfig, epoch_counts, premature_copies


def test_a_suppressed_class_is_trained_on_but_never_decided():
    torch.manual_seed(0)
    net = BeatNet(1, 7, 5, suppressed=[3])
    with torch.no_grad():
        net.head[-1].bias[3] = 50.0        # F would win every beat
    x, rr = torch.randn(16, 1, 252), torch.rand(16, 7) + 0.5
    net.train()
    assert (net(x, rr).argmax(1) == 3).all()        # the loss still sees F's logit
    net.eval()
    with torch.no_grad():
        assert not (net(x, rr).argmax(1) == 3).any()
        assert torch.jit.script(net)(x, rr).argmax(1).ne(3).all()


def test_rr_columns_left_out_do_not_reach_the_model():
    used = [i for i, c in enumerate(BEAT_RR_FEATURES) if not c.endswith("_s")]
    net = BeatNet(1, 7, 5, rr_index=used).eval()
    x, rr = torch.randn(4, 1, 252), torch.rand(4, 7) + 0.5
    changed = rr.clone()
    changed[:, [i for i in range(7) if i not in used]] += 3.0    # absolute seconds only
    with torch.no_grad():
        torch.testing.assert_close(net(x, rr), net(x, changed), rtol=0, atol=0)


def test_premature_copies_are_early_n_beats_labelled_s():
    rng = np.random.default_rng(0)
    n = 4000
    rr = np.column_stack([rng.uniform(0.7, 1.1, n), rng.uniform(0.7, 1.1, n),
                          np.full(n, 0.9), np.full(n, 0.9)])
    y = rng.choice([0, 1, 2], n, p=[0.8, 0.1, 0.1])
    rr2, y2 = premature_copies(rr, y, 0.1, rng)
    moved = (y2 != y)
    assert (y[moved] == 0).all() and (y2[moved] == 1).all()     # only N beats become S
    assert 0.07 < moved.sum() / (y == 0).sum() < 0.13
    np.testing.assert_array_equal(rr2[~moved], rr[~moved])
    column = BEAT_RR_FEATURES.index("rr_prev_over_local")
    prev_over_local = beat_rr_features(*rr2[moved].T)[:, column]
    assert (prev_over_local >= 0.55 - 1e-6).all() and (prev_over_local <= 0.85 + 1e-6).all()
    assert (rr2[moved, 1] > rr2[moved, 0]).all()                # a pause follows the early beat


def test_epoch_class_counts_include_the_synthetic_s_beats():
    y = np.array([0] * 900 + [1] * 20 + [2] * 80)
    plain = epoch_counts(y, BeatTrainConfig(n_fraction=0.5))
    aug = epoch_counts(y, BeatTrainConfig(n_fraction=0.5, premature_aug=0.1))
    assert plain.sum() == aug.sum()
    assert aug[1] == plain[1] + 0.1 * plain[0] and aug[0] == 0.9 * plain[0]


def test_an_ensemble_decides_from_its_members_mean_probabilities():
    from training.models import BeatEnsemble

    torch.manual_seed(1)
    members = [BeatNet(1, 7, 5, suppressed=[3]).eval() for _ in range(3)]
    ens = BeatEnsemble(members).eval()
    x, rr = torch.randn(8, 1, 252), torch.rand(8, 7) + 0.5
    with torch.no_grad():
        mean_p = torch.stack([torch.softmax(m(x, rr), 1) for m in members]).mean(0)
        out = ens(x, rr)
        torch.testing.assert_close(torch.softmax(out, 1), mean_p)     # the worker's softmax
        torch.testing.assert_close(torch.jit.script(ens)(x, rr), out)
        assert not (out.argmax(1) == 3).any()


def test_amplitude_augmentation_scales_the_template_with_its_beat():
    """A device's gain moves a beat and its patient's template together; with inputs in
    template heights (features v3) scaling the beat alone would teach the model to ignore
    the one cue the height carries (how much taller than usual the beat is)."""
    import numpy as np

    from training.augment import NoiseBank

    bank = NoiseBank(np.zeros((1, 1000), np.float32), ramp_mv=0.0, noise_prob=0.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 252)).astype(np.float32)
    t = rng.standard_normal((6, 1, 252)).astype(np.float32)
    t0 = t.copy()
    out = bank.augment(x, rng, t)
    gain = out[:, 0, 0] / x[:, 0, 0]
    assert 0.7 <= gain.min() and gain.max() <= 1.4 and np.ptp(gain) > 0
    np.testing.assert_allclose(t, t0 * gain[:, None, None], rtol=1e-5)
    np.testing.assert_allclose(out, x * gain[:, None, None], rtol=1e-5)
