"""Malformed samples-topic records, each with the dead-letter reason it must get.

Every generator returns ``Bad(kind, key, value, reason)``. The reason comes from
how the record was built (the contract in ``cardiostream.schemas`` and
``streamer.deadletter``), never from running the decoder: the flood test and the
property tests then check that the processor agrees. ``reason=None`` marks a
replay of a valid chunk, which sequencing drops and counts (``duplicate``)
instead of dead-lettering it.
"""

from __future__ import annotations

import json
import random
import struct
import time
from dataclasses import dataclass, replace

import numpy as np

from cardiostream.schemas import (
    MAX_CHUNK_SAMPLES,
    MAX_LEADS,
    MAX_PAST_S,
    SampleChunk,
    encode_chunk,
    supported_fs,
)

_US = 1_000_000
_DAY_US = 86_400 * _US
VERSION_BYTE = 2          # offset of the version in the binary header ("CS", v, ...)
N_LEADS_BYTE = 3
N_SAMPLES_AT = 4          # uint32 little-endian
FS_AT = 24                # float64 little-endian


@dataclass(frozen=True, slots=True)
class Bad:
    kind: str
    key: bytes | None
    value: bytes | None
    reason: str | None


def small_chunk(device_id: str, t0_us: int, seq: int = 0, n: int = 8) -> SampleChunk:
    """A valid one-lead chunk of ``n`` samples: the template most malformations start from."""
    adc = np.arange(n, dtype=np.int16).reshape(1, n)
    return SampleChunk(device_id, seq, t0_us, 360.0, ("MLII",), (200.0,), (1024,), adc)


def _patch(buf: bytes, at: int, fmt: str, value) -> bytes:  # noqa: ANN001 - struct value
    out = bytearray(buf)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def _now_us() -> int:
    return time.time_ns() // 1000


class Hostile:
    """Seeded generator of the flood's malformed records (``victims``: valid device ids)."""

    def __init__(self, seed: int, victims: list[str]) -> None:
        self.rng = random.Random(seed)
        self.victims = victims
        self.n = 0

    def _dev(self) -> str:
        self.n += 1
        return f"evil-{self.n}"

    def _chunk(self, **changes) -> SampleChunk:
        dev = self._dev()
        c = small_chunk(dev, _now_us() - 3600 * _US, self.rng.randrange(1000))
        return replace(c, **changes) if changes else c

    def random_bytes(self) -> Bad:
        head = self.rng.choice([b for b in range(256) if b not in (ord("C"), ord("{"))])
        body = self.rng.randbytes(self.rng.randrange(0, 64))
        return Bad("random_bytes", self._dev().encode(), bytes([head]) + body, "bad_magic")

    def wrong_version(self) -> Bad:
        c = self._chunk()
        v = self.rng.choice([0, *range(2, 256)])
        return Bad("wrong_version", c.device_id.encode(),
                   _patch(encode_chunk(c), VERSION_BYTE, "<B", v), "bad_version")

    def truncated(self) -> Bad:
        c = self._chunk()
        raw = encode_chunk(c)
        return Bad("truncated", c.device_id.encode(), raw[:self.rng.randrange(2, len(raw))],
                   "truncated")

    def oversized(self) -> Bad:
        c = self._chunk()
        extra = self.rng.randbytes(self.rng.randrange(1, 32))
        return Bad("oversized", c.device_id.encode(), encode_chunk(c) + extra, "oversized")

    def bad_gain(self) -> Bad:
        g = self.rng.choice([float("nan"), float("inf"), float("-inf"), 0.0, -200.0])
        c = self._chunk(gain=(g,))
        return Bad("nan_inf_gain", c.device_id.encode(), encode_chunk(c), "bad_gain")

    def absurd_samples(self) -> Bad:
        c = self._chunk()
        n = self.rng.choice([0, MAX_CHUNK_SAMPLES + 1, 2**31, 2**32 - 1])
        return Bad("absurd_sample_count", c.device_id.encode(),
                   _patch(encode_chunk(c), N_SAMPLES_AT, "<I", n), "bad_sizes")

    def absurd_leads(self) -> Bad:
        c = self._chunk()
        n = self.rng.choice([0, MAX_LEADS + 1, 255])
        return Bad("absurd_leads", c.device_id.encode(),
                   _patch(encode_chunk(c), N_LEADS_BYTE, "<B", n), "bad_leads")

    def absurd_rate(self) -> Bad:
        fs = self.rng.choice([0.0, -360.0, 1e9, 359.9, float("nan"), float("inf"), 1e-300])
        c = self._chunk()
        if supported_fs(fs):   # pragma: no cover - the list above has none
            raise ValueError(fs)
        return Bad("absurd_rate", c.device_id.encode(),
                   _patch(encode_chunk(c), FS_AT, "<d", fs), "bad_fs")

    def time_future(self) -> Bad:
        t0 = _now_us() + self.rng.randrange(2 * _DAY_US, 3650 * _DAY_US)
        c = self._chunk(t0_us=t0)
        return Bad("time_future", c.device_id.encode(), encode_chunk(c), "time_future")

    def time_past(self) -> Bad:
        lo = round(MAX_PAST_S * _US) + _DAY_US
        t0 = self.rng.choice([_now_us() - self.rng.randrange(lo, 20 * 365 * _DAY_US), 0,
                              -(2**62)])
        c = self._chunk(t0_us=t0)
        return Bad("time_past", c.device_id.encode(), encode_chunk(c), "time_past")

    def key_mismatch(self) -> Bad:
        """A device publishing for another: the victim's key on an impostor's payload, or the
        impostor's key on a payload that claims to be the victim."""
        victim = self.rng.choice(self.victims)
        c = self._chunk()
        if self.rng.random() < 0.5:
            return Bad("key_mismatch", victim.encode(), encode_chunk(c), "key_mismatch")
        forged = replace(c, device_id=victim)
        return Bad("key_mismatch", c.device_id.encode(), encode_chunk(forged), "key_mismatch")

    def bad_key_bytes(self) -> Bad:
        c = self._chunk()
        return Bad("non_utf8_key", b"\xff\xfe" + self.rng.randbytes(4), encode_chunk(c),
                   "key_mismatch")

    def missing_key(self) -> Bad:
        c = self._chunk()
        return Bad("missing_key", None, encode_chunk(c), "missing_key")

    def tombstone(self) -> Bad:
        return Bad("null_value", self._dev().encode(), None, "empty")

    def bad_device_id(self) -> Bad:
        dev = self.rng.choice(["bad id", "x" * 65, "dev/../../etc", "bed-01\n"])
        c = replace(self._chunk(), device_id=dev)
        return Bad("bad_device_id", dev.encode(), encode_chunk(c), "bad_device_id")

    def bad_json(self) -> Bad:
        body = self.rng.choice([b"{", b"{\"v\": 1,", b"{]", b"{\"a\": NaN}"])
        reason = "not_finite" if b"NaN" in body else "bad_json"
        return Bad("bad_json", self._dev().encode(), body, reason)

    def json_missing_field(self) -> Bad:
        dev = self._dev()
        doc = {"v": 1, "device_id": dev, "seq": 0, "fs_hz": 360.0, "leads": ["MLII"],
               "gain": [200.0], "baseline": [0], "adc": [[1, 2, 3]]}   # no t0_us
        return Bad("json_missing_field", dev.encode(), json.dumps(doc).encode(),
                   "missing_field")

    GENERATORS = ("random_bytes", "wrong_version", "truncated", "oversized", "bad_gain",
                  "absurd_samples", "absurd_leads", "absurd_rate", "time_future", "time_past",
                  "key_mismatch", "bad_key_bytes", "missing_key", "tombstone", "bad_device_id",
                  "bad_json", "json_missing_field")

    def next(self) -> Bad:
        return getattr(self, self.rng.choice(self.GENERATORS))()


def replay_of(chunk: SampleChunk) -> Bad:
    """A valid chunk sent again (gateway retry or replay attack): dropped as a duplicate."""
    return Bad("replayed_seq", chunk.device_id.encode(), encode_chunk(chunk), None)
