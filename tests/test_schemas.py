"""Property tests of the sample-chunk codec: exact round trips, and every bad payload
raises ``SchemaError`` (never another exception, never a silently wrong chunk)."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cardiostream.schemas import (
    _CHUNK_HEAD,
    COMMON_FS_HZ,
    DEVICE_ID_RE,
    LEAD_NAME_RE,
    MAX_FUTURE_S,
    MAX_PAST_S,
    SampleChunk,
    SchemaError,
    chunk_to_json,
    decode_chunk,
    encode_chunk,
)

NOW_US = 1_764_000_000_000_000  # 2025-11-24, a fixed "now" for the time checks
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.from_regex(DEVICE_ID_RE, fullmatch=True)
lead_names = st.from_regex(LEAD_NAME_RE, fullmatch=True)
gains = st.floats(min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False)


@st.composite
def chunks(draw, max_samples: int = 400) -> SampleChunk:
    n_leads = draw(st.integers(1, 12))
    n = draw(st.integers(1, max_samples))
    return SampleChunk(
        device_id=draw(ids),
        seq=draw(st.integers(0, 2**63 - 1)),
        t0_us=draw(st.integers(-(2**63), 2**63 - 1)),
        fs_hz=draw(st.sampled_from(COMMON_FS_HZ)),
        leads=tuple(draw(st.lists(lead_names, min_size=n_leads, max_size=n_leads))),
        gain=tuple(draw(st.lists(gains, min_size=n_leads, max_size=n_leads))),
        baseline=tuple(draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n_leads,
                                     max_size=n_leads))),
        adc=draw(hnp.arrays(np.int16, (n_leads, n))),
        unit=draw(ids),
    )


def assert_same(a: SampleChunk, b: SampleChunk) -> None:
    for name in ("device_id", "seq", "t0_us", "fs_hz", "leads", "gain", "baseline", "unit", "v"):
        assert getattr(a, name) == getattr(b, name), name
    assert b.adc.dtype == np.int16 and b.adc.shape == a.adc.shape
    np.testing.assert_array_equal(a.adc, b.adc)


def raises_schema_error_only(buf: bytes, now_us: int | None = None) -> SampleChunk | None:
    """Decode; a SchemaError is fine, a valid chunk must re-validate, anything else fails."""
    try:
        chunk = decode_chunk(buf, now_us)
    except SchemaError as err:
        assert err.reason and isinstance(err.reason, str)
        return None
    chunk.validate(now_us)
    return chunk


# --------------------------------------------------------------------------- round trips


@FAST
@given(chunks())
def test_binary_round_trip_is_exact(chunk: SampleChunk) -> None:
    assert_same(chunk, decode_chunk(encode_chunk(chunk)))


@FAST
@given(chunks())
def test_json_round_trip_is_exact(chunk: SampleChunk) -> None:
    assert_same(chunk, decode_chunk(chunk_to_json(chunk)))


def test_largest_chunk_round_trips() -> None:
    adc = np.arange(12 * 10_000, dtype=np.int64).reshape(12, 10_000).astype(np.int16)
    chunk = SampleChunk("bed-07", 1, NOW_US, 1000.0, tuple(f"L{i}" for i in range(12)),
                        (200.0,) * 12, (0,) * 12, adc)
    assert_same(chunk, decode_chunk(encode_chunk(chunk), NOW_US))


# --------------------------------------------------------------------------- bad payloads


@FAST
@given(chunks(max_samples=40), st.data())
def test_truncated_payload_raises(chunk: SampleChunk, data: st.DataObject) -> None:
    for buf in (encode_chunk(chunk), chunk_to_json(chunk)):
        cut = data.draw(st.integers(0, len(buf) - 1))
        with pytest.raises(SchemaError):
            decode_chunk(buf[:cut])


@FAST
@given(chunks(max_samples=40), st.binary(min_size=1, max_size=64))
def test_oversized_payload_raises(chunk: SampleChunk, extra: bytes) -> None:
    with pytest.raises(SchemaError, match="oversized"):
        decode_chunk(encode_chunk(chunk) + extra)
    assume(extra.strip())  # trailing whitespace after a JSON document is still valid JSON
    with pytest.raises(SchemaError):
        decode_chunk(chunk_to_json(chunk) + extra)


@FAST
@given(chunks(max_samples=40), st.integers(0, 255).filter(lambda v: v != 1))
def test_wrong_version_raises(chunk: SampleChunk, v: int) -> None:
    buf = bytearray(encode_chunk(chunk))
    buf[2] = v
    with pytest.raises(SchemaError, match="bad_version"):
        decode_chunk(bytes(buf))
    doc = json.loads(chunk_to_json(chunk))
    for bad in (v, str(1), 1.0, None):
        doc["v"] = bad
        with pytest.raises(SchemaError, match="bad_version"):
            decode_chunk(json.dumps(doc).encode())


def _gain_offset(chunk: SampleChunk) -> int:
    strings = (chunk.device_id, chunk.unit, *chunk.leads)
    return _CHUNK_HEAD.size + sum(1 + len(s.encode()) for s in strings)


@FAST
@given(chunks(max_samples=40), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]),
       st.data())
def test_non_finite_or_non_positive_gain_raises(chunk, bad, data) -> None:
    lead = data.draw(st.integers(0, len(chunk.leads) - 1))
    buf = bytearray(encode_chunk(chunk))
    struct.pack_into("<d", buf, _gain_offset(chunk) + 8 * lead, bad)
    with pytest.raises(SchemaError, match="bad_gain"):
        decode_chunk(bytes(buf))


@FAST
@given(chunks(max_samples=40), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 359.9]))
def test_bad_sample_rate_raises(chunk: SampleChunk, fs: float) -> None:
    buf = bytearray(encode_chunk(chunk))
    struct.pack_into("<d", buf, _CHUNK_HEAD.size - 8, fs)
    with pytest.raises(SchemaError, match="bad_fs"):
        decode_chunk(bytes(buf))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("key", ["gain", "fs_hz"])
def test_json_nan_and_infinity_raise(constant: str, key: str) -> None:
    doc = chunk_to_json(_one_chunk()).decode()
    value = f"[{constant},{constant}]" if key == "gain" else constant
    start = doc.index(f'"{key}":') + len(key) + 3
    end = doc.index("]", start) + 1 if key == "gain" else doc.index(",", start)
    with pytest.raises(SchemaError, match="not_finite"):
        decode_chunk((doc[:start] + value + doc[end:]).encode())


def test_json_overflowing_float_raises() -> None:
    doc = chunk_to_json(_one_chunk()).decode().replace('"gain":[200.0,200.0]',
                                                       '"gain":[1e999,200.0]')
    with pytest.raises(SchemaError, match="bad_gain"):
        decode_chunk(doc.encode())


@FAST
@given(chunks(max_samples=40), st.integers(1, 3), st.integers(-3, 3))
def test_header_sizes_that_disagree_with_the_payload_raise(chunk, field_idx, delta) -> None:
    assume(delta != 0)
    head = list(_CHUNK_HEAD.unpack_from(encode_chunk(chunk)))
    idx = {1: 2, 2: 3, 3: 2}[field_idx]  # n_leads, n_samples
    head[idx] = max(0, min(head[idx] + delta, 255 if idx == 2 else 2**32 - 1))
    assume(head[idx] != _CHUNK_HEAD.unpack_from(encode_chunk(chunk))[idx])
    buf = _CHUNK_HEAD.pack(*head) + encode_chunk(chunk)[_CHUNK_HEAD.size:]
    with pytest.raises(SchemaError):
        decode_chunk(buf)


@pytest.mark.parametrize("field, value", [
    ("adc", [[1, 2], [3]]), ("adc", [[1, 2]]), ("adc", [[40000, 1], [0, 0]]),
    ("adc", [[1.5, 1], [0, 0]]), ("adc", [[True, 1], [0, 0]]), ("adc", [[], []]),
    ("adc", "AAAA"), ("gain", [200.0]), ("baseline", [0]), ("leads", "MLII"),
    ("leads", {"MLII": 1, "V5": 2}), ("gain", "20"), ("baseline", [0.5, 0]),
    ("seq", -1), ("seq", 2**64), ("seq", "1"), ("t0_us", 2**70), ("t0_us", 1.5),
    ("gain", [True, 200.0]), ("fs_hz", "360"),
])
def test_json_bad_sizes_and_types_raise(field: str, value: object) -> None:
    doc = json.loads(chunk_to_json(_one_chunk()))
    doc[field] = value
    with pytest.raises(SchemaError):
        decode_chunk(json.dumps(doc).encode())


@pytest.mark.parametrize("device_id", ["", "bed 07", "bed-07\n", "x" * 65, "béd-07", "../07",
                                       "bed/07", "bed-07\x00", 7, None])
def test_bad_device_id_raises(device_id: object) -> None:
    doc = json.loads(chunk_to_json(_one_chunk()))
    doc["device_id"] = device_id
    with pytest.raises(SchemaError, match="bad_device_id"):
        decode_chunk(json.dumps(doc).encode())
    if isinstance(device_id, str) and len(device_id.encode()) < 256:
        chunk = _one_chunk(device_id=device_id)
        with pytest.raises(SchemaError, match="bad_device_id"):
            decode_chunk(encode_chunk(chunk))


@FAST
@given(chunks(max_samples=20), st.integers(1, 10**9))
def test_timestamps_far_from_now_raise(chunk: SampleChunk, beyond_s: int) -> None:
    ahead_us, behind_us = (int(limit + beyond_s) * 10**6 for limit in (MAX_FUTURE_S, MAX_PAST_S))
    future = SampleChunk(**{**_fields(chunk), "t0_us": NOW_US + ahead_us})
    past = SampleChunk(**{**_fields(chunk), "t0_us": NOW_US - behind_us})
    for c, reason in ((future, "time_future"), (past, "time_past")):
        for buf in (encode_chunk(c), chunk_to_json(c)):
            with pytest.raises(SchemaError, match=reason):
                decode_chunk(buf, NOW_US)
    ok = SampleChunk(**{**_fields(chunk), "t0_us": NOW_US})
    decode_chunk(encode_chunk(ok), NOW_US)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_raises_schema_error_only(buf: bytes) -> None:
    for candidate in (buf, b"CS" + buf, b"CS\x01" + buf, b"{" + buf):
        assert raises_schema_error_only(candidate) is None


@FAST
@given(chunks(max_samples=40), st.data())
def test_mutated_binary_raises_schema_error_or_is_valid(chunk, data) -> None:
    buf = bytearray(encode_chunk(chunk))
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    raises_schema_error_only(bytes(buf), NOW_US)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@FAST
@given(st.sampled_from(["v", "device_id", "unit", "seq", "t0_us", "fs_hz", "leads", "gain",
                        "baseline", "adc", "extra"]), json_values)
def test_json_with_any_field_value_raises_schema_error_or_is_valid(key, value) -> None:
    doc = json.loads(chunk_to_json(_one_chunk()))
    doc[key] = value
    raises_schema_error_only(json.dumps(doc).encode())
    raises_schema_error_only(json.dumps(value).encode())


@pytest.mark.parametrize("buf", [b"", b"{}", b"[]", b"null", b"{\"v\":1}", b"\xff\xfe",
                                 b"{" * 100_000, b"[" * 100_000])
def test_degenerate_payloads_raise(buf: bytes) -> None:
    with pytest.raises(SchemaError):
        decode_chunk(buf)


def test_non_bytes_input_raises() -> None:
    with pytest.raises(SchemaError, match="bad_type"):
        decode_chunk("CS")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- helpers


def _fields(chunk: SampleChunk) -> dict:
    return {name: getattr(chunk, name) for name in SampleChunk.__slots__}


def _one_chunk(**over) -> SampleChunk:
    base = dict(device_id="bed-07", seq=3, t0_us=NOW_US, fs_hz=360.0, leads=("MLII", "V5"),
                gain=(200.0, 200.0), baseline=(1024, 1024),
                adc=np.array([[1000, 1010, 1020], [990, 995, 1000]], dtype=np.int16))
    return SampleChunk(**{**base, **over})


@pytest.mark.parametrize("fs", COMMON_FS_HZ + (200.0, 240.0, 100.0, 2000.0))
def test_chunks_from_devices_at_any_resamplable_rate_are_accepted(fs):
    chunk = SampleChunk(device_id="bed-1", seq=0, t0_us=NOW_US, fs_hz=fs, leads=("II",),
                        gain=(200.0,), baseline=(0,), adc=np.zeros((1, 10), np.int16))
    assert decode_chunk(encode_chunk(chunk), NOW_US).fs_hz == fs


@pytest.mark.parametrize("fs", [99.0, 2001.0, 359.9, 333.3, 500.5, 1e-300, -360.0])
def test_rates_out_of_range_or_without_a_small_ratio_to_the_model_rate_are_refused(fs):
    chunk = SampleChunk(device_id="bed-1", seq=0, t0_us=NOW_US, fs_hz=fs, leads=("II",),
                        gain=(200.0,), baseline=(0,), adc=np.zeros((1, 10), np.int16))
    with pytest.raises(SchemaError, match="bad_fs"):
        decode_chunk(encode_chunk(chunk), NOW_US)
