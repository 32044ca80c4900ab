"""The patient's running beat template (cardiostream.beat_template) and its wire format.

Expected templates come from an independent oracle: a deque of admitted beats and a
median, written from the rule in the module docstring, not from the ring buffer."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiostream.beat_template import (
    TEMPLATE_BEATS,
    TIMELY_RR,
    TemplateState,
    _median,
    _pearson,
    _rank_in,
    template_step,
)
from cardiostream.processing import process_record
from cardiostream.records import load_record
from cardiostream.schemas import (
    WINDOW_VERSION,
    BeatWindow,
    SchemaError,
    decode_window,
    encode_window,
)
from cardiostream.settings import Settings
from cardiostream.signal import DEFAULT_SPEC

SPAN = 252
MITDB = Settings().paths.mitdb


def oracle(beats: list[np.ndarray], rr_prev: list[float], rr_long: list[float]
           ) -> list[np.ndarray]:
    admitted: deque = deque(maxlen=TEMPLATE_BEATS)
    out = []
    for x, prev, long_ in zip(beats, rr_prev, rr_long, strict=True):
        t = np.median(np.stack(admitted), axis=0) if admitted else x.copy()
        out.append(t)
        if not (prev > 0 and prev >= TIMELY_RR * long_):
            continue
        if len(admitted) >= TEMPLATE_BEATS // 2 and np.corrcoef(x[0], t[0])[0, 1] < 0.85:
            continue
        admitted.append(x)
    return out


def _qrs(width: float, amp: float, n_leads: int = 2) -> np.ndarray:
    k = np.arange(SPAN)
    beat = amp * np.exp(-0.5 * ((k - 90) / width) ** 2)
    return np.tile(beat, (n_leads, 1)).astype(np.float32)


def _run(beats, rr_prev, rr_long):
    st_ = TemplateState()
    return [template_step(st_, x, p, lg) for x, p, lg in zip(beats, rr_prev, rr_long,
                                                               strict=True)]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_template_equals_the_deque_oracle(data):
    n = data.draw(st.integers(1, 40))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    shapes = [_qrs(4, 1.0), _qrs(12, -1.5), _qrs(4, 1.0) + 0.1]
    beats = [shapes[data.draw(st.integers(0, 2))] + rng.normal(0, 0.05, (2, SPAN)).astype(
        np.float32) for _ in range(n)]
    rr_prev = [data.draw(st.sampled_from([0.0, 0.5, 0.85, 0.9, 1.0, 1.3])) for _ in range(n)]
    got = _run(beats, rr_prev, [1.0] * n)
    want = oracle(beats, rr_prev, [1.0] * n)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32 and g.shape == (2, SPAN)
        np.testing.assert_allclose(g, w, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_sorted_rows_give_np_median_bit_for_bit(data):
    """Every beat admitted: the kept-sorted rows are np.sort of the admitted beats and the
    template is np.median over them, exactly (ties included: values from a small set)."""
    n = data.draw(st.integers(1, 30))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    values = rng.normal(0, 1, 5).astype(np.float32)     # few distinct values: many ties
    beats = [values[rng.integers(0, 5, (2, 7))] for _ in range(n)]
    st_ = TemplateState()
    admitted: deque = deque(maxlen=TEMPLATE_BEATS)
    for x in beats:
        got = template_step(st_, x, 1.0, 0.0) if len(admitted) < TEMPLATE_BEATS // 2 else \
            _median(st_.ranked, st_.count).reshape(x.shape)
        want = np.median(np.stack(admitted), axis=0) if admitted else x
        np.testing.assert_array_equal(got, want)
        if len(admitted) >= TEMPLATE_BEATS // 2:     # past the shape test: admit directly
            full = st_.count == TEMPLATE_BEATS
            _rank_in(st_.ranked, st_.count, x.reshape(-1),
                     st_.ring[st_.next] if full else None)
            st_.ring[st_.next] = x.reshape(-1)
            st_.next, st_.count = (st_.next + 1) % TEMPLATE_BEATS, \
                min(st_.count + 1, TEMPLATE_BEATS)
        admitted.append(x)
        np.testing.assert_array_equal(st_.ranked[:st_.count],
                                      np.sort(np.stack([b.reshape(-1) for b in admitted]),
                                              axis=0))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(3, 300))
def test_pearson_equals_the_numpy_formula_bit_for_bit(seed, n):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, (2, n)).astype(np.float32)
    b = b + a * np.float32(rng.uniform(-2, 2))
    a0, b0 = a - a.mean(), b - b.mean()
    want = float(a0 @ b0) / max(float(np.linalg.norm(a0) * np.linalg.norm(b0)), 1e-12)
    assert _pearson(a, b) == want


def test_template_of_a_beat_ignores_that_beat_and_later_ones():
    beats = [_qrs(4, 1.0) for _ in range(10)]
    first = _run(beats, [1.0] * 10, [1.0] * 10)
    beats[5] = _qrs(12, -3.0)                       # change beat 5 (on time, admitted or not)
    second = _run(beats, [1.0] * 10, [1.0] * 10)
    for i in range(6):
        np.testing.assert_array_equal(first[i], second[i])


def test_without_admitted_beats_the_template_is_the_beat_itself():
    x = _qrs(4, 1.0)
    np.testing.assert_array_equal(_run([x], [0.0], [0.0])[0], x)   # first beat: no RR


def test_premature_beats_never_enter_the_template():
    normal, ectopic = _qrs(4, 1.0), _qrs(12, -2.0)
    beats = [normal] * 4 + [ectopic] * 20                 # a long run of early beats
    got = _run(beats, [1.0] * 4 + [0.6] * 20, [1.0] * 24)
    for t in got[4:]:
        np.testing.assert_array_equal(t, normal)


def test_on_time_beats_of_another_shape_cannot_take_the_template_over():
    """A slow ventricular rhythm (on time, wide) must not become 'this patient's beat'."""
    normal, wide = _qrs(4, 1.0), _qrs(14, -1.5)
    beats = [normal] * TEMPLATE_BEATS + [wide] * 30
    got = _run(beats, [1.0] * len(beats), [1.0] * len(beats))
    np.testing.assert_array_equal(got[-1], normal)


def test_gradual_change_of_shape_is_followed():
    """The template tracks slow drift (posture, electrode), because similar beats enter."""
    beats = [_qrs(4, 1.0 + 0.02 * i) for i in range(60)]
    got = _run(beats, [1.0] * 60, [1.0] * 60)
    assert got[-1][0].max() == pytest.approx(beats[-5][0].max(), rel=0.03)


def test_stream_windows_carry_the_oracle_template():
    """process_record (the stream's code, chunk by chunk) gives every beat window the
    template the oracle computes over the windows that came before it."""
    windows = process_record(load_record(MITDB, "119", sampto=120 * 360), DEFAULT_SPEC,
                             chunk_s=0.37, start_us=0).beats
    want = oracle([w.samples for w in windows], [w.rr_prev_s for w in windows],
                  [w.rr_long_s for w in windows])
    assert len(windows) > 100
    for w, t in zip(windows, want, strict=True):
        np.testing.assert_allclose(w.template, t, atol=1e-6)
    # 119 is in ventricular bigeminy: half its beats are early PVCs, the template is not
    odd = [w for w in windows[20:] if w.rr_prev_s < TIMELY_RR * w.rr_long_s]
    assert len(odd) > 20
    assert max(np.abs(w.samples[0] - w.template[0]).max() for w in odd) > 0.5


def _window(template: np.ndarray | None = None) -> BeatWindow:
    s = _qrs(4, 1.2)
    return BeatWindow("bed-1", "ward-1", "spec-x", 3, 17, 10_000_000, 10_450_000, 0.8, 0.9,
                      0.85, 0.82, "good", s, s * 0.5 if template is None else template)


def test_beat_window_round_trips_with_its_template():
    win = _window()
    back = decode_window(encode_window(win))
    assert back.v == WINDOW_VERSION
    np.testing.assert_array_equal(back.samples, win.samples)
    np.testing.assert_array_equal(back.template, win.template)
    assert back.rr_long_s == win.rr_long_s and back.beat_index == 17


def test_beat_window_without_its_template_bytes_is_refused():
    buf = encode_window(_window())
    with pytest.raises(SchemaError) as exc:
        decode_window(buf[:-4 * 2 * SPAN])                 # samples only: a v1 layout
    assert exc.value.reason == "bad_sizes"


def test_window_of_the_previous_version_is_refused():
    buf = bytearray(encode_window(_window()))
    buf[2] = 1                                              # version byte
    with pytest.raises(SchemaError) as exc:
        decode_window(bytes(buf))
    assert exc.value.reason == "bad_version"


def test_template_of_another_shape_cannot_be_encoded():
    with pytest.raises(ValueError, match="share the samples' shape"):
        encode_window(_window(template=np.zeros((1, SPAN), np.float32)))


def test_non_finite_template_is_refused():
    buf = bytearray(encode_window(_window()))
    buf[-4:] = np.array([np.nan], "<f4").tobytes()
    with pytest.raises(SchemaError) as exc:
        decode_window(bytes(buf))
    assert exc.value.reason == "not_finite"
