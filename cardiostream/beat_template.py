"""The patient's running beat template: what their own conducted beat looks like now.

Why: across patients, QRS and P-wave shapes differ far more than a supraventricular
beat differs from the same patient's normal beat, so a classifier that sees one beat
in absolute terms learns which training patient it resembles (an RBBB patient's
atrial premature beats look "ventricular"). Inter-patient methods that hold up
compare each beat with the patient's own dominant beat (de Chazal 2004's RR
normalisation does this for timing; Llamedo & Martinez 2012 and Teijeiro et al.
2018 do it for morphology). The beat model reads ``samples - template`` beside the
samples (``features.beat_inputs``).

The template is the element-wise median of the last ``TEMPLATE_BEATS`` admitted
beats (all leads). A beat is admitted only if it is

* on time: ``rr_prev >= TIMELY_RR * rr_long`` -- S and V ectopic beats are premature
  by definition, so they stay out, and
* (once the template holds ``TEMPLATE_BEATS // 2`` beats) of the template's shape:
  Pearson correlation of lead 0 with the template's lead 0 >= ``SAME_SHAPE_CORR``
  (the dominant-beat rule of ``rr_features``), so a run of VT or late-coupled PVCs
  cannot take the template over.

The template of a beat is computed before the beat itself is admitted, from beats
that precede it only (causal), and a segment (detector reset) starts a new one; with
nothing admitted yet the template is the beat itself (difference zero: "looks like
this patient"). Chosen on the DS1 validation patients only, among a plain running
median, the on-time rule and this rule (docs/training_selection.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardiostream.rr_features import SAME_SHAPE_CORR

TEMPLATE_BEATS = 8      # admitted beats the median is taken over
TIMELY_RR = 0.9         # previous RR / long-term mean RR at or above which a beat is on time


@dataclass(slots=True)
class TemplateState:
    """The admitted beats of one segment, kept twice: in arrival order (a ring, to know
    which beat leaves when a new one enters) and sorted per sample (the median is then
    two rows away).  Both are (TEMPLATE_BEATS, n_leads * span) float32, beats first,
    so that every update is a few whole-row numpy operations."""

    ring: np.ndarray | None = None     # admitted beats, slot ``next`` is the oldest when full
    ranked: np.ndarray | None = None   # rows [:count] sorted ascending in every column
    count: int = 0                     # admitted beats held (<= TEMPLATE_BEATS)
    next: int = 0                      # ring slot the next admitted beat overwrites


def _median(ranked: np.ndarray, count: int) -> np.ndarray:
    """The per-sample median of the ``count`` admitted beats: ``np.median(beats, axis=0)``
    bit for bit (the same order statistics; an even count's middle pair is summed in
    float32 and halved, as np.median's mean does)."""
    half = count // 2
    if count % 2:
        return ranked[half].copy()
    return (ranked[half - 1] + ranked[half]) * np.float32(0.5)


def _rank_in(ranked: np.ndarray, count: int, new: np.ndarray, old: np.ndarray | None
             ) -> None:
    """Admit ``new`` into the sorted rows (dropping one copy of ``old`` first when the
    ring is full), in place.  Why not re-sort: a partition of 8 values per sample for
    every beat was the single dearest step of the stream's DSP; this is a handful of
    whole-row selects, and the result holds exactly the same values."""
    rows = count
    if old is not None:            # full: rows below old's rank stay, the rest move up
        below = ranked[:count - 1] < old
        ranked[:count - 1] = np.where(below, ranked[:count - 1], ranked[1:count])
        rows = count - 1
    if rows == 0:
        ranked[0] = new
        return
    kept = ranked[:rows]
    below = kept < new                                 # (rows, m): True up to new's rank
    shifted = np.where(below[1:], kept[1:], new) if rows > 1 else None
    ranked[rows] = np.where(below[rows - 1], new, kept[rows - 1])    # the new last row
    if shifted is not None:        # row k (1..rows-1): kept[k] below new's rank, new at it,
        ranked[1:rows] = np.where(below[:-1], shifted, kept[:-1])   # kept[k-1] above it
    ranked[0] = np.where(below[0], kept[0], new)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two float32 rows; the float32 arithmetic of
    ``a - a.mean()``, ``a @ b`` and ``np.linalg.norm`` without their Python wrappers
    (tests/test_beat_template.py holds them equal bit for bit)."""
    n = a.shape[0]
    a = a - np.add.reduce(a) / n
    b = b - np.add.reduce(b) / n
    norms = np.sqrt(a.dot(a)) * np.sqrt(b.dot(b))
    return float(a @ b) / max(float(norms), 1e-12)


def template_step(state: TemplateState, samples: np.ndarray, rr_prev_s: float,
                  rr_long_s: float) -> np.ndarray:
    """The template for one beat ``samples`` (n_leads, span) float32 mV, then admit the
    beat if it qualifies (state updated in place). Returns (n_leads, span) float32."""
    if state.count:
        template = _median(state.ranked, state.count).reshape(samples.shape)
    else:
        template = np.array(samples, dtype=np.float32)
    if not (rr_prev_s > 0 and rr_prev_s >= TIMELY_RR * rr_long_s):
        return template
    if state.count >= TEMPLATE_BEATS // 2 and \
            _pearson(samples[0], template[0]) < SAME_SHAPE_CORR:
        return template
    flat = np.asarray(samples, dtype=np.float32).reshape(-1)
    if state.ring is None:
        state.ring = np.empty((TEMPLATE_BEATS, flat.shape[0]), dtype=np.float32)
        state.ranked = np.empty_like(state.ring)
    full = state.count == TEMPLATE_BEATS
    _rank_in(state.ranked, state.count, flat, state.ring[state.next] if full else None)
    state.ring[state.next] = flat
    state.next = (state.next + 1) % TEMPLATE_BEATS
    state.count = min(state.count + 1, TEMPLATE_BEATS)
    return template
