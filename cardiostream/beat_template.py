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
    """The admitted beats of one segment, in a ring (the median ignores their order)."""

    beats: np.ndarray | None = None   # (n_leads, span, TEMPLATE_BEATS) float32, beats last
    count: int = 0                    # admitted beats held (<= TEMPLATE_BEATS)
    next: int = 0                     # ring slot the next admitted beat overwrites


def _median(beats: np.ndarray, count: int) -> np.ndarray:
    """``np.median(ring[..., :count], axis=-1)``, bit for bit, at a third of its cost:
    one partition along the contiguous last axis (the mean of the two middle values of an
    even count is their float32 sum halved, as np.median's mean computes it)."""
    half = count // 2
    if count % 2:
        return np.partition(beats[..., :count], half, axis=-1)[..., half]
    part = np.partition(beats[..., :count], (half - 1, half), axis=-1)
    return (part[..., half - 1] + part[..., half]) * np.float32(0.5)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)


def template_step(state: TemplateState, samples: np.ndarray, rr_prev_s: float,
                  rr_long_s: float) -> np.ndarray:
    """The template for one beat ``samples`` (n_leads, span) float32 mV, then admit the
    beat if it qualifies (state updated in place). Returns (n_leads, span) float32."""
    if state.count:
        template = _median(state.beats, state.count)
    else:
        template = np.array(samples, dtype=np.float32)
    if not (rr_prev_s > 0 and rr_prev_s >= TIMELY_RR * rr_long_s):
        return template
    if state.count >= TEMPLATE_BEATS // 2 and \
            _pearson(samples[0], template[0]) < SAME_SHAPE_CORR:
        return template
    if state.beats is None:
        state.beats = np.empty((*samples.shape, TEMPLATE_BEATS), dtype=np.float32)
    state.beats[..., state.next] = samples
    state.next = (state.next + 1) % TEMPLATE_BEATS
    state.count = min(state.count + 1, TEMPLATE_BEATS)
    return template
