"""Beat labels in their rhythm's context (cardiostream.beat_context): S inside AF is N,
decided by timestamps only, so any stream order the processor can produce gives the
offline twin's labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiostream.beat_context import CONTEXT_WINDOWS, RhythmContext, beats_in_context
from cardiostream.schemas import BeatResult, RhythmResult
from inference.predictor import Predictor
from tests.inference_models import write_model_dir
from tests.test_predictor import beat_window, rhythm_window

US = 1_000_000


def beat(i: int, last_us: int, label: str = "S", segment: int = 0,
         device: str = "bed-1") -> BeatResult:
    return BeatResult(device, "ward-1", segment, i, last_us - 450_000, last_us, label,
                      (0.1, 0.7, 0.1, 0.05, 0.05), 0.5, "good", "test")


def rhythm(i: int, last_us: int, code: str, segment: int = 0,
           device: str = "bed-1") -> RhythmResult:
    return RhythmResult(device, "ward-1", segment, i, last_us - 10 * US, last_us - 300_000,
                        last_us, code, (), 80.0, ("good", "good"), "test")


def feed_run(ctx: RhythmContext, codes: list[str], first_last_us: int, segment: int = 0,
             device: str = "bed-1") -> None:
    """Rhythm results every 2 s, the first completing at ``first_last_us``."""
    for i, code in enumerate(codes):
        ctx.feed(rhythm(i, first_last_us + i * 2 * US, code, segment, device))


AF_RUN = ["AFIB"] * (CONTEXT_WINDOWS - 1) + ["AFL"]      # last one completes at 18 s


def test_s_inside_sustained_af_is_n_and_keeps_its_probabilities() -> None:
    ctx = RhythmContext()
    feed_run(ctx, AF_RUN, 10 * US)
    out = ctx.feed(beat(0, 19 * US))
    assert out.label == "N" and out.probs == beat(0, 19 * US).probs


@pytest.mark.parametrize("label", ["N", "V", "F", "Q"])
def test_other_labels_are_untouched_in_af(label: str) -> None:
    ctx = RhythmContext()
    feed_run(ctx, AF_RUN, 10 * US)
    assert ctx.feed(beat(0, 19 * US, label)).label == label


def test_one_af_window_or_a_broken_run_is_not_context() -> None:
    ctx = RhythmContext()
    feed_run(ctx, ["N"] * 4 + ["AFIB"], 10 * US)           # a run of APCs looks like AF once
    assert ctx.feed(beat(0, 19 * US)).label == "S"
    ctx = RhythmContext()
    feed_run(ctx, ["AFIB", "AFIB", "N", "AFIB", "AFIB", "AFIB"], 10 * US)
    assert ctx.feed(beat(0, 21 * US)).label == "S"
    assert ctx.feed(beat(1, 9 * US)).label == "S"           # nothing precedes it


def test_only_decisions_completed_before_the_beat_count() -> None:
    ctx = RhythmContext()
    feed_run(ctx, AF_RUN + ["N"], 10 * US)   # the N window (20 s) arrived first, same chunk
    assert ctx.feed(beat(0, 19 * US)).label == "N"
    assert ctx.feed(beat(1, 18 * US)).label == "N"          # "at or before": ties count
    assert ctx.feed(beat(2, 20 * US)).label == "S"
    assert ctx.feed(beat(3, 17 * US)).label == "S"          # only four AF windows before it


def test_other_segment_or_device_is_no_context_and_forget_clears() -> None:
    ctx = RhythmContext()
    feed_run(ctx, AF_RUN, 10 * US, segment=0)
    feed_run(ctx, AF_RUN, 10 * US, device="bed-2")
    assert ctx.feed(beat(1, 19 * US, segment=7)).label == "S"
    assert ctx.feed(beat(0, 19 * US, device="bed-2")).label == "N"
    ctx.forget({"bed-1"})
    assert ctx.feed(beat(2, 19 * US)).label == "S"
    assert ctx.feed(beat(1, 19 * US, device="bed-2")).label == "N"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["N", "AFIB", "AFL", "VT"]), min_size=1, max_size=25),
       st.lists(st.tuples(st.integers(0, 60 * US), st.sampled_from("NSV")), max_size=40),
       st.lists(st.integers(1, 60 * US), max_size=12), st.integers(0, 2 * US))
def test_any_chunking_of_the_stream_gives_the_offline_labels(codes, beat_specs, cuts,
                                                             phase) -> None:
    # The processor emits each window in the chunk holding its last sample, a chunk's
    # rhythm windows first; fed in that order the worker must label as beats_in_context.
    rhythms = [rhythm(i, phase + (i + 5) * 2 * US, c) for i, c in enumerate(codes)]
    beats = [beat(i, t, lab) for i, (t, lab) in enumerate(sorted(beat_specs))]
    edges = np.array(sorted(set(cuts)))
    chunk = lambda t: int(np.searchsorted(edges, t, side="left"))     # noqa: E731
    stream = sorted([(chunk(r.last_sample_time_us), 0, r.last_sample_time_us, r)
                     for r in rhythms] +
                    [(chunk(b.last_sample_time_us), 1, b.last_sample_time_us, b) for b in beats],
                    key=lambda e: e[:3])
    ctx = RhythmContext()
    live = [ctx.feed(r) for *_, r in stream]
    live_beats = sorted((r for r in live if isinstance(r, BeatResult)),
                        key=lambda b: b.beat_index)
    assert live_beats == beats_in_context(beats, rhythms)


def test_predictor_applies_the_context_in_batch_order(tmp_path) -> None:
    pred = Predictor(write_model_dir(tmp_path), device="cpu")
    s_logits = torch.tensor([[0.0, 5.0, 0.0, -9.0, -9.0]])
    pred.programs["beat"] = lambda x, rr: s_logits.expand(x.shape[0], -1)   # always S
    irregular = [0.5, 1.1, 0.6, 1.3, 0.45, 0.9, 1.2, 0.55, 1.0, 0.7]
    af = [dataclasses.replace(rhythm_window(i, irregular), last_sample_time_us=(2 + 2 * i) * US)
          for i in range(CONTEXT_WINDOWS)]                # AFIB, completing at 2 .. 10 s
    early, late = beat_window(9, 1.0), beat_window(10, 1.0)   # last samples 9.45 s, 10.45 s
    labels = [r.label if isinstance(r, BeatResult) else r.rhythm
              for r in pred.predict([*af[:-1], early, af[-1], late]).results]
    assert labels == ["AFIB"] * (CONTEXT_WINDOWS - 1) + ["S", "AFIB", "N"]
    pred.forget({"bed-1"})
    assert pred.predict([late]).results[0].label == "S"
