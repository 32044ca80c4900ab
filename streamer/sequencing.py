"""Per-device chunk sequencing: pure state + step, no Kafka, no clock.

Kafka keeps one device's chunks in order within its partition, but devices
and gateways retry (duplicates), send over several links (small reordering),
lose packets (gaps), reboot (sequence numbers restart) and get reconfigured
(sample rate or leads change). The DSP state is only valid over a contiguous
stretch of samples, so this module decides, chunk by chunk, what the DSP may
see and when it must start over.

Rules (device time = the chunk's ``t0_us``; see docs/processor.md):

1. ``seq == next_seq`` and ``t0_us`` within ``time_tolerance_s`` of where the
   previous chunk ended: released, contiguous.
2. ``seq > next_seq``: held (a hole). Held chunks wait until the hole fills;
   the wait is bounded by ``max_held`` chunks and ``max_wait_s`` of device
   time (held chunks' end minus the hole's start). Past the bound the hole is a
   gap: the lowest held chunk is released as the start of a new segment.
3. ``seq < next_seq``: a duplicate if that seq was already released (or is
   held), a device restart (seq counter reset) if its ``t0_us`` is later than
   the stream's end, else late (its hole was already declared a gap): dropped.
4. A released chunk whose ``t0_us`` jumps (forward or back) by more than the
   tolerance is a ``time_gap``; a change of ``fs_hz``, leads or unit is a
   ``config_change``. Both restart the segment.

``step`` returns the chunks to feed to the DSP, in order, each with the reason
it starts a new segment (``None`` = contiguous), and the chunks dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from cardiostream.schemas import SampleChunk

_US = 1_000_000

# Reasons a released chunk starts a new segment (DSP state reset).
START, SEQ_GAP, TIME_GAP, CONFIG_CHANGE, SEQ_RESTART, FLUSH = (
    "start", "seq_gap", "time_gap", "config_change", "seq_restart", "flush")
# Reasons a chunk is dropped.
DUPLICATE, LATE = "duplicate", "late"


@dataclass(frozen=True, slots=True)
class SequencerConfig:
    """Bounds of the reordering wait, in chunks and seconds of device time."""

    max_held: int = 8               # chunks held behind a hole before it is a gap
    max_wait_s: float = 2.0         # device time the held chunks may span past the hole
    time_tolerance_s: float = 0.02  # |t0 - expected t0| above this is a time gap
    recent_seqs: int = 64           # released seqs remembered to tell duplicate from late

    def __post_init__(self) -> None:
        if self.max_held < 0 or self.max_wait_s < 0 or self.time_tolerance_s <= 0:
            raise ValueError(f"need max_held >= 0, max_wait_s >= 0, time_tolerance_s > 0: {self}")
        if self.recent_seqs < 1:
            raise ValueError(f"recent_seqs must be >= 1, got {self.recent_seqs}")


@dataclass(slots=True)
class SeqState:
    """Where one device's stream stands. ``None`` instead of a state means fresh."""

    next_seq: int
    next_t0_us: int                       # device time where the last released chunk ended
    config: tuple[float, tuple[str, ...], str]   # (fs_hz, leads, unit)
    held: dict[int, SampleChunk] = field(default_factory=dict)
    recent: deque[int] = field(default_factory=deque)


@dataclass(slots=True)
class SeqOutput:
    """What one step decided. ``released``: (chunk, new-segment reason or None)."""

    released: list[tuple[SampleChunk, str | None]] = field(default_factory=list)
    dropped: list[tuple[SampleChunk, str]] = field(default_factory=list)
    reordered: int = 0       # late chunks that filled a hole within the wait (put right)
    missing: int = 0         # sequence numbers given up as lost at a gap

    @property
    def resets(self) -> list[str]:
        return [reason for _, reason in self.released if reason is not None]


def _config(chunk: SampleChunk) -> tuple[float, tuple[str, ...], str]:
    return (chunk.fs_hz, chunk.leads, chunk.unit)


def _fresh(chunk: SampleChunk) -> SeqState:
    return SeqState(chunk.seq, chunk.t0_us, _config(chunk))


def _release(state: SeqState, chunk: SampleChunk, reason: str | None, out: SeqOutput,
             cfg: SequencerConfig) -> None:
    if reason is None and abs(chunk.t0_us - state.next_t0_us) > cfg.time_tolerance_s * _US:
        reason = TIME_GAP
    out.released.append((chunk, reason))
    state.next_seq = chunk.seq + 1
    state.next_t0_us = chunk.end_us
    state.recent.append(chunk.seq)
    while len(state.recent) > cfg.recent_seqs:
        state.recent.popleft()


def _drain(state: SeqState, out: SeqOutput, cfg: SequencerConfig) -> None:
    """Release held chunks that are now contiguous."""
    while state.next_seq in state.held:
        _release(state, state.held.pop(state.next_seq), None, out, cfg)


def _over_bound(state: SeqState, cfg: SequencerConfig) -> bool:
    if not state.held:
        return False
    if len(state.held) > cfg.max_held:
        return True
    newest_end = max(c.end_us for c in state.held.values())
    return newest_end - state.next_t0_us > cfg.max_wait_s * _US


def _give_up_hole(state: SeqState, out: SeqOutput, cfg: SequencerConfig, reason: str) -> None:
    """Declare the hole before the lowest held chunk lost and restart there."""
    lowest = min(state.held)
    out.missing += lowest - state.next_seq
    _release(state, state.held.pop(lowest), reason, out, cfg)
    _drain(state, out, cfg)


def flush(state: SeqState | None, cfg: SequencerConfig = SequencerConfig()) -> tuple[
        SeqState | None, SeqOutput]:
    """Release every held chunk (device went quiet, or shutdown): holes become gaps."""
    out = SeqOutput()
    if state is None:
        return None, out
    while state.held:
        _give_up_hole(state, out, cfg, FLUSH)
    return state, out


def step(state: SeqState | None, chunk: SampleChunk,
         cfg: SequencerConfig = SequencerConfig()) -> tuple[SeqState, SeqOutput]:
    """Feed one chunk; see the module docstring for the rules."""
    out = SeqOutput()
    if state is None:
        state = _fresh(chunk)
        _release(state, chunk, START, out, cfg)
        return state, out
    if _config(chunk) != state.config:
        state, out = flush(state, cfg)
        state = _fresh(chunk)
        _release(state, chunk, CONFIG_CHANGE, out, cfg)
        return state, out
    if chunk.seq == state.next_seq:
        out.reordered += 1 if state.held else 0
        _release(state, chunk, None, out, cfg)
        _drain(state, out, cfg)
    elif chunk.seq > state.next_seq:
        if chunk.seq in state.held:
            out.dropped.append((chunk, DUPLICATE))
        else:
            state.held[chunk.seq] = chunk
            while _over_bound(state, cfg):
                _give_up_hole(state, out, cfg, SEQ_GAP)
    elif chunk.t0_us >= state.next_t0_us - cfg.time_tolerance_s * _US:
        state, flushed = flush(state, cfg)
        out.released += flushed.released
        state = _fresh(chunk)
        _release(state, chunk, SEQ_RESTART, out, cfg)
    else:
        out.dropped.append((chunk, DUPLICATE if chunk.seq in state.recent else LATE))
    return state, out
