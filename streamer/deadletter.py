"""The processor's edge: decode a samples-topic record or refuse it with a reason.

Refusal is an explicit policy, never a silent skip: the record's raw key and
value go to the dead-letter topic as a ``cardiostream.schemas.DeadLetter``
(reason = the ``SchemaError`` code, or ``key_mismatch`` / ``missing_key`` when
the Kafka key does not name the device in the payload, which would put one
device's samples on another device's partition and state), and a counter per
reason is incremented (``cardiostream_dead_letters_total{stage="processor"}``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from cardiostream import metrics
from cardiostream.schemas import (
    DeadLetter,
    SampleChunk,
    SchemaError,
    decode_chunk,
    encode_dead_letter,
)

STAGE = "processor"
KEY_REASONS = ("missing_key", "key_mismatch")
WRONG_PARTITION = "wrong_partition"   # a bundle member whose device hashes elsewhere
DSP_ERROR = "dsp_error"      # the DSP raised on a valid record: refused, device restarted
# The SchemaError reasons decode_chunk can raise, pre-registered so dashboards see zeros.
KNOWN_REASONS = KEY_REASONS + (DSP_ERROR, WRONG_PARTITION,
    "bad_type", "empty", "bad_magic", "truncated", "bad_version", "bad_leads", "bad_sizes",
    "bad_string", "oversized", "bad_json", "not_finite", "missing_field", "bad_samples",
    "bad_gain", "bad_baseline", "bad_types", "bad_fs", "bad_device_id", "bad_unit", "bad_seq",
    "time_future", "time_past",
)


def decode_record(key: bytes | None, value: bytes | None, now_us: int | None) -> SampleChunk:
    """Validated chunk whose device id equals the record key, or ``SchemaError``."""
    if value is None:
        raise SchemaError("empty", "record value is null (tombstone)")
    chunk = decode_chunk(value, now_us)
    if not key:
        raise SchemaError("missing_key", f"payload device_id={chunk.device_id!r}")
    try:
        key_text = bytes(key).decode()
    except UnicodeDecodeError:
        raise SchemaError("key_mismatch", f"key {bytes(key)[:32]!r} is not UTF-8") from None
    if key_text != chunk.device_id:
        raise SchemaError("key_mismatch", f"key={key_text!r} payload={chunk.device_id!r}")
    return chunk


@dataclass(slots=True)
class DeadLetters:
    """Builds dead-letter records and counts them per reason."""

    topic: str
    counts: Counter[str] = field(default_factory=Counter)

    def refuse(self, err: SchemaError, key: bytes | None, value: bytes | None, source_topic: str,
               partition: int, offset: int) -> tuple[bytes | None, bytes]:
        """(key, encoded DeadLetter) to send to ``self.topic``; counted under ``err.reason``."""
        self.counts[err.reason] += 1
        metrics.DEAD_LETTERS.labels(STAGE, err.reason).inc()
        letter = DeadLetter.of(err, _as_bytes(value), _as_bytes(key), source_topic, partition,
                               offset, STAGE, time.time_ns() // 1000)
        return _as_bytes(key), encode_dead_letter(letter)


def _as_bytes(raw: object) -> bytes | None:
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    return str(raw).encode()
