"""Beat labels in their rhythm's context: no supraventricular ectopic beat inside AF.

Why: in atrial fibrillation and flutter there is no organised atrial activity for a
beat to be premature to; MIT-BIH (and so AAMI EC57 scoring) labels the conducted beats
of AF and flutter ``N``. The beat model judges prematurity from the RR timing, and in
AF nearly every beat is early or late, so it calls many of them S: on the DS1
validation patients 294 of the 317 N beats it called S lay in record 201's AF. The
rhythm detector sees the whole 10 s window's irregularity (and the missing P waves),
which one beat's RR features cannot, so its decisions are the beat's context: a beat
whose last ``CONTEXT_WINDOWS`` preceding rhythm decisions are all AFIB or AFL is
labelled N where the model said S. Its probabilities are kept as the model gave them.
Sustained AF (5 windows at a 2 s hop: ~18 s of signal), not one AF window, because a
run of atrial premature beats can make one window look like AF, and those beats are S.

"Preceding" is decided by timestamps only: the rhythm results of the beat's segment
whose ``last_sample_time_us`` is at or before the beat's, latest first. The stream
processor publishes a chunk's rhythm windows before its beat windows
(``streamer.pipeline``), and a window's ``last_sample_time_us`` is the sample whose
arrival completes it, so every such rhythm window reaches the worker before the beat,
whatever the chunking: the live worker (``inference.predictor``) and the offline twin
(``cardiostream.classify``) give the same labels.

Chosen on the DS1 validation patients only (docs/training_selection.md): through
``cardiostream evaluate`` with a rhythm model trained without them, S Se/+P
70.6/39.4 -> 68.5/50.9 and N Se 96.9 -> 99.0 (1 window: 60.9/52.4, 99.4).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Sequence

from cardiostream.schemas import BeatResult, RhythmResult

AF_CONTEXT_CODES = frozenset({"AFIB", "AFL"})
RELABEL = {"S": "N"}     # model label -> label inside AF context
CONTEXT_WINDOWS = 5      # consecutive preceding rhythm decisions that must all be AF
HISTORY = 32             # rhythm results kept per device (CONTEXT_WINDOWS + a long chunk's)


@dataclasses.dataclass(frozen=True, slots=True)
class _Decision:
    segment: int
    last_sample_time_us: int
    af: bool


class RhythmContext:
    """Per-device recent rhythm decisions; ``feed`` results in the device's stream order."""

    def __init__(self) -> None:
        self._recent: dict[str, deque[_Decision]] = {}

    def feed(self, result: BeatResult | RhythmResult) -> BeatResult | RhythmResult:
        """A rhythm result is remembered and returned as is; a beat result comes back
        relabelled if its context is AF."""
        if isinstance(result, RhythmResult):
            self._recent.setdefault(result.device_id, deque(maxlen=HISTORY)).append(
                _Decision(result.segment, result.last_sample_time_us,
                          result.rhythm in AF_CONTEXT_CODES))
            return result
        new_label = RELABEL.get(result.label)
        if new_label is None or not self.in_af(result):
            return result
        return dataclasses.replace(result, label=new_label)

    def in_af(self, beat: BeatResult) -> bool:
        """Are the beat's last ``CONTEXT_WINDOWS`` preceding rhythm decisions (same
        segment) all AF or flutter?"""
        before = sorted((d for d in self._recent.get(beat.device_id, ())
                         if d.segment == beat.segment
                         and d.last_sample_time_us <= beat.last_sample_time_us),
                        key=lambda d: d.last_sample_time_us)[-CONTEXT_WINDOWS:]
        return len(before) == CONTEXT_WINDOWS and all(d.af for d in before)

    def forget(self, device_ids: Iterable[str]) -> None:
        for d in device_ids:
            self._recent.pop(d, None)


def beats_in_context(beats: Sequence[BeatResult], rhythms: Sequence[RhythmResult]
                     ) -> list[BeatResult]:
    """Offline: the beats (any order) relabelled as the live worker would, in their order."""
    ctx = RhythmContext()
    order = sorted([(r.last_sample_time_us, 0, i) for i, r in enumerate(rhythms)]
                   + [(b.last_sample_time_us, 1, i) for i, b in enumerate(beats)])
    out: list[BeatResult] = list(beats)
    for _, kind, i in order:
        if kind == 0:
            ctx.feed(rhythms[i])
        else:
            out[i] = ctx.feed(beats[i])          # type: ignore[assignment]
    return out
