"""A telemetry gateway's batching: many devices' chunks, one record per partition.

Hospital telemetry reaches the network through gateways (central stations,
telemetry receivers) that each relay dozens of bedside devices. Sending every
0.5 s chunk as its own Kafka record makes the stream processor pay its per-record
framework cost (~220 µs in Faust, more than a chunk's DSP) once per chunk; a gateway
that groups the chunks due in one tick by the partition each device hashes to pays
it once per bundle (docs/processor.md, "Chunk bundles"). The device -> partition map
is Kafka's default partitioner on the device id, so a device lands on the same
partition, and worker, whether it sends alone or through any gateway.
"""

from __future__ import annotations

from cardiostream.kafka_config import partition_for
from cardiostream.schemas import MAX_BUNDLE_MEMBERS, encode_bundle

Bundle = tuple[int, bytes, int]      # (partition, encoded bundle, member count)


class GatewayBundler:
    """Groups encoded chunks per partition; a bundle closes at ``max_members`` or on
    ``drain`` (the end of a tick). Pure: the caller sends what it returns."""

    def __init__(self, max_members: int, n_partitions: int) -> None:
        if not 1 <= max_members <= MAX_BUNDLE_MEMBERS:
            raise ValueError(f"bundle size must be 1..{MAX_BUNDLE_MEMBERS}, got {max_members}")
        self.max_members = max_members
        self.n_partitions = n_partitions
        self._pending: dict[int, list[bytes]] = {}
        self._partition_of: dict[str, int] = {}

    def partition(self, device_id: str) -> int:
        part = self._partition_of.get(device_id)
        if part is None:
            part = self._partition_of[device_id] = partition_for(device_id.encode(),
                                                                 self.n_partitions)
        return part

    def add(self, device_id: str, payload: bytes) -> Bundle | None:
        """Queue one encoded chunk; returns a full bundle to send, if this filled one."""
        part = self.partition(device_id)
        members = self._pending.setdefault(part, [])
        members.append(payload)
        if len(members) < self.max_members:
            return None
        del self._pending[part]
        return part, encode_bundle(members), len(members)

    def drain(self) -> list[Bundle]:
        """Every partly filled bundle (the tick is over: nothing waits for the next one)."""
        out = [(part, encode_bundle(m), len(m)) for part, m in sorted(self._pending.items())]
        self._pending.clear()
        return out
