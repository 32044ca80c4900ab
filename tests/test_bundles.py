"""Chunk bundles: the envelope, and a bundle handled exactly like its members sent alone.

A gateway relaying many devices sends one record per partition per tick
(``cardiostream.schemas.encode_bundle``); each member must still be validated,
sequenced and dead-lettered on its own, and must belong on the record's partition.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardiostream.kafka_config import partition_for
from cardiostream.schemas import (
    SchemaError,
    chunk_to_json,
    decode_chunk,
    decode_dead_letter,
    decode_window,
    encode_bundle,
    encode_chunk,
    is_bundle,
    split_bundle,
)
from streamer.warmup import _select
from tests.test_pipeline import chunk, make_pipeline

PARTS = 8


def devices_on(partition: int, n: int) -> list[str]:
    """``n`` device ids that Kafka's default partitioner puts on ``partition``."""
    out, i = [], 0
    while len(out) < n:
        name = f"bed-{i}"
        if partition_for(name.encode(), PARTS) == partition:
            out.append(name)
        i += 1
    return out


def bundled_pipeline():
    p = make_pipeline()
    p.n_partitions = PARTS
    return p


def windows(out) -> list[tuple[bytes, tuple]]:
    return [(k, (w.device_id, w.segment, w.beat_index, w.r_time_us))
            for k, v in out.windows for w in [decode_window(v)]]


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_a_bundle_round_trips_its_members(members):
    buf = encode_bundle(members)
    assert is_bundle(buf)
    assert split_bundle(buf) == members


@given(st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=5), st.data())
def test_a_damaged_envelope_raises_schema_error_only(members, data):
    buf = encode_bundle(members)
    cut = data.draw(st.integers(0, len(buf) - 1))
    with pytest.raises(SchemaError) as err:
        split_bundle(buf[:cut])
    assert err.value.reason in ("truncated", "bad_sizes", "bad_magic")
    with pytest.raises(SchemaError, match="bad_sizes"):
        split_bundle(buf + b"x")


def test_envelope_version_and_count_are_checked():
    buf = bytearray(encode_bundle([b"a"]))
    buf[2] = 9
    with pytest.raises(SchemaError, match="bad_version"):
        split_bundle(bytes(buf))
    with pytest.raises(ValueError):
        encode_bundle([])


def test_a_bundle_gives_the_same_windows_as_its_members_sent_alone():
    devs = devices_on(3, 4)
    alone, bundled = bundled_pipeline(), bundled_pipeline()
    expected, got = [], []
    for seq in range(6):
        members = [encode_chunk(chunk(seq, d)) for d in devs]
        for d, raw in zip(devs, members, strict=True):
            expected += windows(alone.handle(d.encode(), raw, "samples", 3, seq))
        got += windows(bundled.handle(b"gw-1", encode_bundle(members), "samples", 3, seq))
    assert got == expected and len(got) == 6 * len(devs)
    assert bundled.stats == alone.stats


def test_a_bad_member_is_dead_lettered_alone_and_the_others_go_on():
    good = devices_on(3, 2)
    stranger = devices_on(5, 1)[0]                 # hashes to another partition
    bad_json = chunk_to_json(chunk(0, good[0]))[:-5]
    members = [encode_chunk(chunk(0, good[1])), bad_json, encode_chunk(chunk(0, stranger))]
    p = bundled_pipeline()
    out = p.handle(b"gw-1", encode_bundle(members), "samples", 3, 77)
    assert [k for k, _ in windows(out)] == [good[1].encode()]
    letters = [decode_dead_letter(v) for _, v in out.dead]
    assert [dl.reason for dl in letters] == ["bad_json", "wrong_partition"]
    assert "bundle member 2/3" in letters[0].detail
    assert f"{stranger!r} belongs on partition 5 of 8, not 3" in letters[1].detail
    assert base64.b64decode(letters[1].raw_b64) == members[2]    # the member's bytes
    assert {(dl.source_topic, dl.partition, dl.offset) for dl in letters} == {("samples", 3, 77)}
    assert stranger not in p.devices


def test_a_damaged_bundle_is_one_dead_letter_with_the_whole_record():
    raw = encode_bundle([encode_chunk(chunk(0, devices_on(3, 1)[0]))])[:-3]
    out = bundled_pipeline().handle(b"gw-1", raw, "samples", 3, 5)
    assert out.windows == []
    (letter,) = [decode_dead_letter(v) for _, v in out.dead]
    assert letter.reason == "truncated"
    assert base64.b64decode(letter.raw_b64) == raw


def test_the_warm_up_splits_bundles_and_keeps_only_owned_devices():
    mine, stranger = devices_on(3, 2), devices_on(5, 1)[0]
    recs = [SimpleNamespace(key=b"gw-1", offset=k, value=encode_bundle(
        [encode_chunk(chunk(k, d)) for d in [*mine, stranger]])) for k in range(40)]
    chosen, _ = _select(recs, 10.0, lambda d: None,
                        lambda d: partition_for(d.encode(), PARTS) == 3)
    by_device: dict[bytes, list[int]] = {}
    for offset, key, value in chosen:
        assert decode_chunk(value).device_id.encode() == key
        by_device.setdefault(key, []).append(offset)
    assert by_device == {d.encode(): list(range(20, 40)) for d in mine}   # 10 s each


def test_a_gateway_bundle_waits_at_most_its_linger_and_closes_when_full():
    from streamer.gateway import GatewayBundler

    devs = devices_on(3, 3)
    g = GatewayBundler(max_members=3, n_partitions=PARTS, linger_s=0.1)
    assert g.due_at() is None and not g.due(5.0)
    assert g.add(devs[0], b"a", now=1.00) is None
    assert g.add(devs[1], b"b", now=1.05) is None
    assert not g.due(1.09) and g.due(1.10) and g.due_at() == pytest.approx(1.10)
    assert g.add(devs[2], b"c", now=1.06) == (3, encode_bundle([b"a", b"b", b"c"]), 3)
    assert g.due_at() is None                              # nothing left waiting
    g.add(devices_on(5, 1)[0], b"d", now=2.0)
    assert g.drain() == [(5, encode_bundle([b"d"]), 1)] and g.due_at() is None


def test_pack_sends_a_whole_tick_full_bundles_first_and_leaves_nothing_pending():
    from streamer.gateway import GatewayBundler

    mine, other = devices_on(3, 3), devices_on(5, 1)[0]
    g = GatewayBundler(max_members=2, n_partitions=PARTS)
    tick = [(d, d.encode()) for d in [*mine, other]]
    assert g.pack(tick) == [(3, encode_bundle([mine[0].encode(), mine[1].encode()]), 2),
                            (3, encode_bundle([mine[2].encode()]), 1),
                            (5, encode_bundle([other.encode()]), 1)]
    assert g.due_at() is None
