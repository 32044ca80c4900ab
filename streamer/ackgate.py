"""Hold a record's Kafka ack until a restart right after it could still emit every window.

Why: a worker commits a partition's offset once the records before it are acked. A
10 s rhythm window is only emitted ~0.5-1 s after its end (the detector must decide
every beat in it), so committing every record at once left windows whose samples lay
before the commit but which were not sent yet; a successor could only cut them by
re-reading more than the window (12 s). Holding each record's ack until every window
still pending for its devices starts no more than ``lookback_us`` before the record's
chunk end lets a successor resume after the last acked record with a re-read of exactly
``lookback_us`` (10 s) and lose nothing: the records after the commit are processed
again (their windows produced twice, identical; consumers de-duplicate).

Pure bookkeeping: the caller says which records it processed (``add``) and asks
which may be acked now (``release``), with a predicate from the pipeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

Hold = tuple[str, int]                       # (device id, device time the chunk ended, µs)
Resumable = Callable[[str, int], bool]      # (device, chunk end µs) -> nothing pending before


@dataclass(slots=True)
class _Held:
    token: Any
    holds: list[Hold]
    since_s: float


@dataclass(slots=True)
class AckGate:
    """Per partition, processed records in offset order, released from the front only
    (Kafka commits a partition up to its first unacked record anyway).

    ``max_hold_s``: a record held this long (wall clock) is released regardless, so a
    window that never completes (a pause longer than the warm-up) cannot stall the
    partition's commits; such releases are counted in ``forced``."""

    max_hold_s: float = 10.0
    queues: dict[Hashable, deque[_Held]] = field(default_factory=dict)
    forced: int = 0

    def add(self, partition: Hashable, token: Any, holds: list[Hold], now_s: float) -> None:
        self.queues.setdefault(partition, deque()).append(_Held(token, holds, now_s))

    def release(self, partition: Hashable, resumable: Resumable, now_s: float) -> list[Any]:
        """Tokens of ``partition``'s records that may be acked now, oldest first."""
        queue = self.queues.get(partition)
        out: list[Any] = []
        while queue:
            head = queue[0]
            if not all(resumable(device, end_us) for device, end_us in head.holds):
                if now_s - head.since_s < self.max_hold_s:
                    break
                self.forced += 1
            out.append(queue.popleft().token)
        return out

    def release_all(self, resumable: Resumable, now_s: float) -> list[Any]:
        return [t for partition in list(self.queues) for t in
                self.release(partition, resumable, now_s)]

    def drop(self, partitions: set[Hashable]) -> int:
        """Forget partitions this worker no longer owns (their records are not acked: the
        new owner resumes at the last commit). Returns the records dropped."""
        gone = 0
        for partition in partitions:
            gone += len(self.queues.pop(partition, ()))
        return gone

    def held(self) -> int:
        return sum(len(q) for q in self.queues.values())
