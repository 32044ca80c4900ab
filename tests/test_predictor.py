"""Predictor against tiny rule-based TorchScript models whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiostream.features import ModelLoadError
from cardiostream.schemas import BeatResult, BeatWindow, RhythmResult, RhythmWindow
from cardiostream.signal import DEFAULT_SPEC
from inference.predictor import Predictor, choose_device, heart_rate_bpm, heart_rates_bpm
from tests.inference_models import write_model_dir

SPEC = DEFAULT_SPEC
US = 1_000_000


def beat_window(i: int, pp_mv: float, spec_id: str = SPEC.spec_id) -> BeatWindow:
    s = np.zeros((2, SPEC.beat_span), np.float32)
    s[0, SPEC.beat_pre] = pp_mv
    template = np.zeros_like(s)
    template[:, SPEC.beat_pre] = 1.0                      # the patient's usual 1 mV beat
    return BeatWindow("bed-1", "ward-1", spec_id, 0, i, i * US, i * US + 450_000, 0.8, 0.8,
                      0.8, 0.8, "good", s, template)


def rhythm_window(i: int, rr_s: list[float], spec_id: str = SPEC.spec_id) -> RhythmWindow:
    times = tuple(int(t * US) for t in np.cumsum([0.2, *rr_s]))
    n = int(SPEC.rhythm_window_s * SPEC.rhythm_fs_hz)
    return RhythmWindow("bed-1", "ward-1", spec_id, 0, i, 0, 10 * US, 10 * US,
                        SPEC.rhythm_fs_hz, times, ("good", "good"), (0.9, 0.9),
                        np.zeros((2, n), np.float32))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("models"))


def test_mixed_batch_keeps_order_and_labels(model_dir) -> None:
    pred = Predictor(model_dir, device="cpu")
    regular = [0.8] * 11
    irregular = [0.5, 1.1, 0.6, 1.3, 0.45, 0.9, 1.2, 0.55, 1.0, 0.7]
    batch = [beat_window(0, 1.0), rhythm_window(0, irregular), beat_window(1, 4.0),
             rhythm_window(1, regular), beat_window(2, 4.0, spec_id="spec-other")]
    out = pred.predict(batch)
    kinds = [type(r).__name__ if r else None for r in out.results]
    assert kinds == ["BeatResult", "RhythmResult", "BeatResult", "RhythmResult", None]
    b0, r0, b1, r1 = out.results[:4]
    assert isinstance(b0, BeatResult) and isinstance(r0, RhythmResult)
    assert (b0.label, b1.label) == ("N", "V")
    assert (r0.rhythm, r1.rhythm) == ("AFIB", "N")
    assert b1.beat_index == 1 and b1.r_time_us == US and b1.model_version == pred.version
    assert sum(b0.probs) == pytest.approx(1.0, abs=1e-3)
    assert r1.hr_bpm == pytest.approx(75.0)
    assert [(j.index, j.reason) for j in out.rejected] == [(4, "spec_mismatch")]
    assert "spec-other" in out.rejected[0].detail


def test_batched_equals_one_by_one(model_dir) -> None:
    pred = Predictor(model_dir, device="cpu")
    rng = np.random.default_rng(0)
    batch = [beat_window(i, float(pp)) for i, pp in enumerate(rng.uniform(0.5, 6.0, 33))]
    together = pred.predict(batch).results
    alone = [pred.predict([w]).results[0] for w in batch]
    assert together == alone


def test_mixed_batch_with_rhythm_windows_equals_one_by_one(tmp_path) -> None:
    # Result objects are built for the whole batch at once (argmax, rounding, heart rate):
    # each must equal the window's result in a batch of one, whatever its neighbours.
    pred = Predictor(write_model_dir(tmp_path, rate_rules=True), device="cpu")
    rng = np.random.default_rng(1)
    rhythms = [rhythm_window(i, list(rng.uniform(0.3, 1.4, k))) for i, k in
               enumerate((0, 1, 2, 5, 11, 14, 30))]
    rhythms.append(rhythm_window(7, [0.8, 0.8, 3.2, 0.8, 0.8]))      # a pause
    beats = [beat_window(i, float(pp)) for i, pp in enumerate(rng.uniform(0.5, 6.0, 8))]
    batch = [w for pair in zip(beats, rhythms, strict=True) for w in pair]
    together = pred.predict(batch).results
    assert together == [pred.predict([w]).results[0] for w in batch]
    assert [r.rhythm for r in together[1::2]][-1] == "PAUSE"


def test_rate_rules_from_metadata_are_applied(tmp_path) -> None:
    pred = Predictor(write_model_dir(tmp_path, rate_rules=True), device="cpu")
    out = pred.predict([rhythm_window(0, [0.8, 0.8, 3.2, 0.8, 0.8])]).results[0]
    assert out is not None and out.rhythm == "PAUSE"


def test_cpu_never_half(model_dir) -> None:
    pred = Predictor(model_dir, device="cpu", half=True)
    assert pred.device.type == "cpu" and pred.half is False


def test_device_choice() -> None:
    assert choose_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="choose auto"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        assert choose_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="cuda"):
            choose_device("cuda")


def test_missing_model_folder_is_a_typed_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="model.ts"):
        Predictor(tmp_path, device="cpu")


def test_heart_rate_from_beat_times() -> None:
    assert heart_rate_bpm(()) == 0.0
    assert heart_rate_bpm((0, US, 2 * US, 2 * US + 500_000)) == pytest.approx(60.0)


def test_batched_heart_rates_equal_numpy_median() -> None:
    rng = np.random.default_rng(2)
    windows = [(), (5 * US,), (0, 700_000)] + [
        tuple(int(t) for t in np.cumsum(rng.integers(300_000, 1_500_000, k)))
        for k in (3, 4, 9, 20)]
    expected = [0.0 if len(t) < 2 else round(60.0 / float(np.median(np.diff(t) / US)), 1)
                for t in windows]
    assert heart_rates_bpm(windows) == expected
