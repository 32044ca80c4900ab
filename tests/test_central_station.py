"""The demo's ward screen names the lead of a per-lead alarm."""

from __future__ import annotations

from pipeline.central_station import PatientView, _patient_row, alarm_label


def test_per_lead_alarm_keys_name_their_lead():
    assert alarm_label("noisy:1", ("MLII", "V1")) == "noisy:V1"
    assert alarm_label("leads_off:0", ("MLII", "V1")) == "leads_off:MLII"
    assert alarm_label("noisy:1", ()) == "noisy:1"            # a version 2 window: no names
    assert alarm_label("afib", ("MLII",)) == "afib"
    assert alarm_label("leads_off:V1", ("MLII", "V1")) == "leads_off:V1"    # a named key
    assert alarm_label("noisy:1", ("2", "1")) == "noisy:1"     # the name "1", not row 1


def test_patient_row_shows_named_alarms():
    row = _patient_row(PatientView("bed-1", 72.0, "N", ("good", "flat"),
                                   ("leads_off:1", "pvc_rate"), ("MLII", "V1")))
    assert row[-1].plain == "leads_off:V1 pvc_rate"
