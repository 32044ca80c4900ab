"""A telemetry gateway's batching: many devices' chunks, one record per partition.

Hospital telemetry reaches the network through gateways (central stations,
telemetry receivers) that each relay dozens of bedside devices. Sending every
0.5 s chunk as its own Kafka record makes the stream processor pay its per-record
framework cost (~220 µs in Faust, more than a chunk's DSP) once per chunk; a gateway
that groups the chunks due within its linger by the partition each device hashes to
pays it once per bundle (docs/processor.md, "Chunk bundles"). The device -> partition map
is Kafka's default partitioner on the device id, so a device lands on the same
partition, and worker, whether it sends alone or through any gateway.
"""

from __future__ import annotations

from cardiostream.kafka_config import partition_for
from cardiostream.schemas import MAX_BUNDLE_MEMBERS, encode_bundle

Bundle = tuple[int, bytes, int]      # (partition, encoded bundle, member count)


class GatewayBundler:
    """Groups encoded chunks per partition; a bundle closes at ``max_members`` or when
    ``drain`` is called, which a caller does once the oldest pending chunk has waited
    ``linger_s`` (``due``), like a Kafka producer's linger: devices report at staggered
    phases, so draining every few ms would send bundles of one or two chunks. The linger
    is latency added to every chunk, at most ``linger_s``. Pure: the caller sends what it
    returns and owns the clock."""

    def __init__(self, max_members: int, n_partitions: int, linger_s: float = 0.1) -> None:
        if not 1 <= max_members <= MAX_BUNDLE_MEMBERS:
            raise ValueError(f"bundle size must be 1..{MAX_BUNDLE_MEMBERS}, got {max_members}")
        if not linger_s >= 0:
            raise ValueError(f"linger_s must be >= 0, got {linger_s}")
        self.max_members = max_members
        self.n_partitions = n_partitions
        self.linger_s = linger_s
        self.opened_at: float | None = None       # caller's clock when the oldest chunk came
        self._pending: dict[int, list[bytes]] = {}

    def due(self, now: float) -> bool:
        """Whether the oldest pending chunk has waited ``linger_s``."""
        return self.opened_at is not None and now - self.opened_at >= self.linger_s

    def due_at(self) -> float | None:
        """When ``due`` turns true (None: nothing pending)."""
        return None if self.opened_at is None else self.opened_at + self.linger_s

    def add(self, device_id: str, payload: bytes, now: float = 0.0) -> Bundle | None:
        """Queue one encoded chunk; returns a full bundle to send, if this filled one."""
        if self.opened_at is None:
            self.opened_at = now
        part = partition_for(device_id.encode(), self.n_partitions)
        members = self._pending.setdefault(part, [])
        members.append(payload)
        if len(members) < self.max_members:
            return None
        del self._pending[part]
        if not self._pending:
            self.opened_at = None
        return part, encode_bundle(members), len(members)

    def pack(self, chunks: list[tuple[str, bytes]]) -> list[Bundle]:
        """One tick's ``(device id, encoded chunk)`` as bundles, nothing left pending: for
        callers that send whole ticks at once instead of lingering."""
        full = [b for device, payload in chunks for b in [self.add(device, payload)] if b]
        return full + self.drain()

    def drain(self) -> list[Bundle]:
        """Every partly filled bundle (the tick is over: nothing waits for the next one)."""
        out = [(part, encode_bundle(m), len(m)) for part, m in sorted(self._pending.items())]
        self._pending.clear()
        self.opened_at = None
        return out
