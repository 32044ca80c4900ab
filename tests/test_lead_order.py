"""The models' lead goes first whatever order a device lists its leads in."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardiostream.processing import new_device_state, process_record
from cardiostream.records import load_record
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
    assert all(same(x, y) for x, y in zip(a.beats, b.beats, strict=True))
    assert all(same(x, y) for x, y in zip(a.rhythms, b.rhythms, strict=True))


@pytest.mark.parametrize(("leads", "known"), [
    (("MLII", "V1"), True), (("V1", "ii"), True), (("V5",), True),
    (("ECG1", "ECG2"), False), (("I", "V1"), False),
])
def test_models_lead_known_says_whether_row_0_is_a_trained_lead(leads, known):
    assert DEFAULT_SPEC.models_lead_known(leads) is known
