"""The models' lead goes first whatever order a device lists its leads in."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardiostream.processing import new_device_state, process_record
from cardiostream.records import load_record
from cardiostream.schemas import RhythmWindow, SchemaError, decode_window, encode_window
from cardiostream.signal import DEFAULT_SPEC, lead_key
from tests.test_processing import same

FS = DEFAULT_SPEC.fs_hz


@pytest.mark.parametrize(("leads", "order"), [
    (("MLII", "V1"), (0, 1)),
    (("V5", "MLII"), (0, 1)),                    # MIT-BIH 114: the models learnt V5 so
    (("I", "II", "III", "aVR"), (1, 0, 2, 3)),   # a 12-lead cart lists lead I first
    (("V1", "ML II"), (1, 0)),
    (("V2", "lead-II", "MLII"), (2, 0, 1)),      # MLII is preferred over lead II
    (("I", "V5", "II"), (2, 0, 1)),              # ... and lead II over V5
    (("V1", "V5"), (1, 0)),
    (("ECG1", "ECG2"), (0, 1)),                  # no lead named: the device's order
    (("V5",), (0,)),
])
def test_lead_order_puts_the_models_lead_first(leads, order):
    assert DEFAULT_SPEC.lead_order(leads) == order


@given(st.lists(st.sampled_from(["MLII", "II", "I", "V1", "V5", "aVF", "ECG", "x"]),
                min_size=1, max_size=6))
def test_lead_order_is_a_permutation_with_a_named_lead_first_when_there_is_one(leads):
    order = DEFAULT_SPEC.lead_order(leads)
    assert sorted(order) == list(range(len(leads)))
    named = {lead_key(n) for n in DEFAULT_SPEC.first_leads}
    if lead_key(leads[0]) in named or not any(lead_key(n) in named for n in leads):
        assert order == tuple(range(len(leads)))
    else:
        assert lead_key(leads[order[0]]) in named
        assert list(order[1:]) == sorted(order[1:])   # the others keep their order


def test_device_state_keeps_the_device_order_and_names_the_window_order():
    st_ = new_device_state(DEFAULT_SPEC, "bed-1", "ward-1", FS, ("V1", "MLII"))
    assert st_.leads == ("V1", "MLII") and st_.model_leads == ("MLII", "V1")
    plain = new_device_state(DEFAULT_SPEC, "bed-2", "ward-1", FS, ("MLII", "V5"))
    assert plain.lead_order is None and plain.model_leads == ("MLII", "V5")


def test_a_device_listing_leads_in_another_order_gives_the_same_windows(data_dir):
    rec = load_record(data_dir / "mitdb", "100", sampto=int(60 * FS))
    assert rec.leads == ("MLII", "V5")
    swapped = dataclasses.replace(rec, leads=("V1", "MLII"), gain=rec.gain[::-1],
                                  baseline=rec.baseline[::-1], adc=rec.adc[::-1].copy())
    a = process_record(rec, DEFAULT_SPEC, device_id="d")
    b = process_record(swapped, DEFAULT_SPEC, device_id="d")
    assert len(a.beats) > 60 and len(a.rhythms) > 20
    # the rows are the same signals; only the second row's name differs (V5 sent as V1)
    assert {w.leads for w in a.beats + a.rhythms} == {("MLII", "V5")}
    assert {w.leads for w in b.beats + b.rhythms} == {("MLII", "V1")}
    b_named = [dataclasses.replace(w, leads=("MLII", "V5")) for w in b.beats + b.rhythms]
    assert all(same(x, y) for x, y in zip(a.beats + a.rhythms, b_named, strict=True))


def test_windows_name_their_rows_and_survive_the_wire(data_dir):
    """A device sending (V1, MLII): every window says its rows are (MLII, V1)."""
    rec = load_record(data_dir / "mitdb", "100", sampto=int(30 * FS))
    swapped = dataclasses.replace(rec, leads=("V1", "MLII"), gain=rec.gain[::-1],
                                  baseline=rec.baseline[::-1], adc=rec.adc[::-1].copy())
    out = process_record(swapped, DEFAULT_SPEC, device_id="d")
    wins = out.beats + out.rhythms
    assert wins and all(w.leads == ("MLII", "V1") for w in wins)
    assert all(decode_window(encode_window(w)).leads == ("MLII", "V1") for w in wins[:5])


def test_window_lead_names_are_checked_at_decode():
    win = RhythmWindow("d", "u", "spec-x", 0, 0, 0, 10, 10, 120.0, (), ("good", "good"),
                       (1.0, 1.0), np.zeros((2, 1200), np.float32), leads=("MLII", "V1"))
    assert decode_window(encode_window(win)).leads == ("MLII", "V1")
    for bad in (("MLII",), ("MLII", "bad name"), ("MLII", "")):
        with pytest.raises(SchemaError) as exc:
            decode_window(encode_window(dataclasses.replace(win, leads=bad)))
        assert exc.value.reason == "bad_leads"


def test_a_version_2_window_still_decodes_without_lead_names():
    """Windows in flight from a processor of the previous release (no ``leads``)."""
    win = RhythmWindow("d", "u", "spec-x", 0, 0, 0, 10, 10, 120.0, (), ("good",), (1.0,),
                       np.zeros((1, 1200), np.float32), v=2)
    buf = bytearray(encode_window(win))
    hlen = int.from_bytes(buf[3:7], "little")
    header = json.loads(bytes(buf[7:7 + hlen]))
    del header["leads"]
    raw = json.dumps(header, separators=(",", ":")).encode()
    old = bytes(buf[:3]) + len(raw).to_bytes(4, "little") + raw + bytes(buf[7 + hlen:])
    back = decode_window(old)
    assert back.v == 2 and back.leads == ()


@pytest.mark.parametrize(("leads", "known"), [
    (("MLII", "V1"), True), (("V1", "ii"), True), (("V5",), True),
    (("ECG1", "ECG2"), False), (("I", "V1"), False),
])
def test_models_lead_known_says_whether_row_0_is_a_trained_lead(leads, known):
    assert DEFAULT_SPEC.models_lead_known(leads) is known
