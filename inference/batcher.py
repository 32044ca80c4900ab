"""Dynamic micro-batching by size and by deadline, with no clock of its own.

faust's ``stream.take(100, within=10)`` idea: a batch closes when it holds
``max_size`` items or when its *first* item has waited ``max_wait_s`` seconds,
whichever comes first. Size alone would stall a quiet ward; a deadline alone
would waste the accelerator on a busy one. The caller passes ``now`` (seconds,
any monotonic clock), so the batcher is pure and its tests are timeline tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Batcher(Generic[T]):
    """Accumulates items; ``add`` and ``poll`` hand back closed batches in arrival order."""

    max_size: int
    max_wait_s: float
    _items: list[T] = field(default_factory=list)
    _opened_at: float | None = None     # ``now`` when the oldest pending item arrived

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"max_size={self.max_size} must be >= 1")
        if not self.max_wait_s >= 0:
            raise ValueError(f"max_wait_s={self.max_wait_s} must be >= 0 seconds")

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, now: float) -> list[list[T]]:
        """Append one item; return the batches this closed (zero or one)."""
        return self.extend((item,), now)

    def extend(self, items: Iterable[T], now: float) -> list[list[T]]:
        """Append items in order; return every batch that filled up, then any overdue one."""
        closed: list[list[T]] = []
        for item in items:
            if not self._items:
                self._opened_at = now
            self._items.append(item)
            if len(self._items) >= self.max_size:
                closed.append(self._take())
        closed.extend(self.poll(now))
        return closed

    def poll(self, now: float) -> list[list[T]]:
        """The pending batch if its deadline has passed at ``now``, else nothing."""
        if self._items and self.time_left(now) <= 0:
            return [self._take()]
        return []

    def time_left(self, now: float) -> float:
        """Seconds until the pending batch is due (``max_wait_s`` when empty, never < 0)."""
        if self._opened_at is None:
            return self.max_wait_s
        return max(0.0, self._opened_at + self.max_wait_s - now)

    def flush(self) -> list[T]:
        """Close the pending batch now (shutdown, partition revoked); may be empty."""
        return self._take()

    def _take(self) -> list[T]:
        batch, self._items, self._opened_at = self._items, [], None
        return batch
