"""The alarm catalogue: every alarm type, its severity and its message."""

from __future__ import annotations

SEVERITY: dict[str, str] = {
    **dict.fromkeys(("asystole", "vfib", "vt", "vt_sustained", "extreme_brady",
                     "extreme_tachy"), "red"),
    **dict.fromkeys(("afib", "svt", "pvc_couplet", "pvc_run", "bigeminy", "trigeminy",
                     "pause", "pvc_rate"), "yellow"),
    **dict.fromkeys(("leads_off", "noisy", "analysis_lead"), "technical"),
}
ALARM_TYPES: tuple[str, ...] = tuple(SEVERITY)
MESSAGES: dict[str, str] = {
    "asystole": "Asystole: no QRS", "vfib": "Ventricular fibrillation/flutter",
    "vt": "Ventricular tachycardia", "vt_sustained": "Sustained ventricular tachycardia",
    "extreme_brady": "Extreme bradycardia", "extreme_tachy": "Extreme tachycardia",
    "afib": "Atrial fibrillation/flutter", "svt": "Supraventricular tachycardia",
    "pvc_couplet": "PVC couplet", "pvc_run": "PVC run", "bigeminy": "Ventricular bigeminy",
    "trigeminy": "Ventricular trigeminy", "pause": "Pause", "pvc_rate": "High PVC rate",
    "leads_off": "Lead off", "noisy": "Signal too noisy",
    "analysis_lead": "Arrhythmia analysis on a lead the models were not trained on",
}
VF_CODES = frozenset({"VFL", "VFIB"})
DISCONNECTED = frozenset({"flat", "saturated"})
AF_CODES = frozenset({"AFIB", "AFL"})
