"""Per-patient alarm state machines: (state, classified window) -> (state, alarm transitions).

Pure: no clock, no I/O; time is the device time carried by the windows, so the
offline evaluation (bench/alarm_eval.py) and the worker run the very same code.
Every condition raises one alarm when it starts and one clear when it ends;
thresholds come from ``AlarmSettings`` and are explained in docs/alarms.md.

Sources of evidence:
* beat windows + their class: VT / PVC runs, couplets, bigeminy, trigeminy,
  pauses, SVT runs, high PVC rate, extreme brady/tachycardia (median RR);
* rhythm windows + their class: VF/flutter, AF/flutter, SVT and VT (model),
  asystole (no QRS >= asystole_s on a good lead) and the technical alarms.
A beat not of "good" quality is ``?`` and breaks every pattern; a rhythm window
with a lead that is not "good" does not feed the model-based conditions (the
technical alarm for that lead says why) -- that is the suppression.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from cardiostream.labels import AAMI_CLASSES
from cardiostream.quality import FLAT_STD_MV
from cardiostream.schemas import Alarm, BeatResult, BeatWindow, RhythmResult, RhythmWindow, alarm_id
from cardiostream.settings import AlarmSettings
from inference import patterns as pat
from inference.alarm_types import (
    AF_CODES,
    DISCONNECTED,
    MESSAGES,
    SEVERITY,
    VF_CODES,
)
from inference.evidence import StripBuffer

_US = 1_000_000
MAX_BEATS = 160                     # > one minute at 150 bpm, for the PVC rate
V_RUN_BEATS = 8                     # newest beats of a V run that decide its rate and certainty
V_INDEX = AAMI_CLASSES.index("V")   # P(V) in BeatResult.probs (the beat model's classes)


@dataclass(slots=True)
class Condition:
    """One alarm condition's hysteresis state (times: device µs)."""

    active: bool = False
    onset_us: int = 0
    last_true_us: int = 0
    streak: int = 0                 # consecutive windows for (+) or against (-) it
    streak_onset_us: int = 0


@dataclass(slots=True)
class PatientState:
    device_id: str
    unit: str
    beats: deque = field(default_factory=lambda: deque(maxlen=MAX_BEATS))  # (t_us, label)
    v_prob: dict = field(default_factory=dict)   # t_us -> P(V) of the newest beats
    conds: dict[str, Condition] = field(default_factory=dict)
    last_beat_us: int | None = None       # newest beat seen, from beat or rhythm windows
    last_beat_window_us: int = -1         # dedup of redelivered beat windows
    last_rhythm_end_us: int = -1          # dedup of redelivered rhythm windows
    strip: StripBuffer = field(default_factory=StripBuffer)
    hr_bpm: float | None = None
    rhythm: str = "?"
    quality: tuple[str, ...] = ()
    sqi: tuple[float, ...] = ()
    leads: tuple[str, ...] = ()          # lead names of the newest rhythm window's rows

    def cond(self, key: str) -> Condition:
        return self.conds.setdefault(key, Condition())

    def active(self) -> dict[str, int]:
        """Active alarm keys (``type`` or ``type:lead``) -> onset device time (µs)."""
        return {k: c.onset_us for k, c in self.conds.items()
                if c.active and k.split(":")[0] in SEVERITY}


@dataclass(slots=True)
class _Event:
    """What one window lets the engine emit: its time and the evidence to attach."""

    state: PatientState
    cfg: AlarmSettings
    now_us: int
    last_sample_us: int
    out: list[Alarm] = field(default_factory=list)

    def transition(self, key: str, c: Condition, raised: bool, beats=()) -> None:
        kind = key.split(":")[0]
        st, cfg = self.state, self.cfg
        state = "raised" if raised else "cleared"
        strip_start, strip = (st.strip.strip(c.onset_us, cfg.strip_s, cfg.strip_fs_hz)
                              if raised else (0, ()))
        index, name = lead_of(key, st.leads)
        lead = f" ({name})" if name else f" (lead {index})" if index >= 0 else ""
        self.out.append(Alarm(
            alarm_id=alarm_id(st.device_id, key, c.onset_us, state), device_id=st.device_id,
            unit=st.unit, type=kind, severity=SEVERITY[kind], state=state,
            onset_time_us=c.onset_us, time_us=self.now_us, last_sample_time_us=self.last_sample_us,
            message=MESSAGES[kind] + lead + ("" if raised else " ended"),
            strip_fs_hz=cfg.strip_fs_hz if raised else 0.0,
            strip_mv=tuple(round(float(x), 3) for x in strip), strip_start_us=strip_start,
            beats=tuple((int(t), lab) for t, lab in beats),
            lead=index, lead_name=name))

    def allowed(self, key: str) -> bool:
        """Suppression by signal quality (newest rhythm window): see the module docstring."""
        severity, quality = SEVERITY.get(key.split(":")[0]), self.state.quality
        if severity == "technical" or not quality:
            return True
        if severity == "red":
            return any(q not in DISCONNECTED for q in quality)
        return "good" in quality

    def hold(self, key: str, true: bool, onset_us: int, hold_s: float, beats=()) -> None:
        """Time hysteresis: raise when true, clear once false for ``hold_s`` seconds."""
        c = self.state.cond(key)
        if true:
            if not c.active and not self.allowed(key):
                return
            c.last_true_us = self.now_us
            if not c.active:
                c.active, c.onset_us = True, onset_us
                self.transition(key, c, True, beats)
        elif c.active and self.now_us - c.last_true_us >= hold_s * _US:
            c.active = False
            self.transition(key, c, False)

    def streak(self, key: str, true: bool, onset_us: int, on: int, off: int, beats=()) -> bool:
        """Window hysteresis: raise after ``on`` windows for it, clear after ``off`` against."""
        c = self.state.cond(key)
        if true:
            if c.streak <= 0:
                c.streak, c.streak_onset_us = 0, onset_us
            c.streak += 1
            if c.streak >= on and not c.active and key.split(":")[0] in SEVERITY:
                c.active, c.onset_us = True, c.streak_onset_us
                self.transition(key, c, True, beats)
        else:
            c.streak = min(c.streak, 0) - 1
            if c.active and -c.streak >= off:
                c.active = False
                self.transition(key, c, False)
        return c.streak >= on


PER_LEAD = ("leads_off", "noisy", "analysis_lead")


def lead_key(leads: tuple[str, ...], index: int) -> str:
    """The part after ``type:`` of a per-lead condition key: the lead's name when the
    windows carry names (version 3), else its row index (version 2 windows).

    Why the name: rows are in the models' lead order, not the device's, and a device that
    changes its lead set renumbers the rows; the name is what stays with the electrode."""
    return leads[index] if index < len(leads) else str(index)


def lead_of(key: str, leads: tuple[str, ...]) -> tuple[int, str]:
    """(row index or -1, lead name or "") of a condition key in the newest window's leads.

    A name wins over an index reading (a device may name its leads "1", "2"); a digit
    suffix that is not a name is a row index (version 2 windows, or an alarm raised
    before the keys carried names and resumed from Redis)."""
    _, sep, suffix = key.partition(":")
    if not sep:
        return -1, ""
    if suffix in leads:
        return leads.index(suffix), suffix
    if suffix.isdigit():
        index = int(suffix)
        return index, leads[index] if index < len(leads) else ""
    return -1, suffix                          # a named lead no longer in the window


def new_state(device_id: str, unit: str) -> PatientState:
    return PatientState(device_id, unit)


def seed_active(state: PatientState, active: dict[str, int], now_us: int) -> None:
    """Resume alarms already raised in Redis by an earlier worker (restart, rebalance).

    They get a full hold period from ``now_us``: if the condition is gone they
    clear with their original onset (same alarm id); if not, they stay up.
    """
    for key, onset in active.items():
        c = state.cond(key)
        c.active, c.onset_us, c.last_true_us, c.streak = True, int(onset), now_us, 0


def tick(ev: _Event) -> None:
    """Clear beat-derived conditions that went quiet even if no beat arrives."""
    for key, hold_s in _BEAT_HOLDS.items():
        c = ev.state.cond(key)
        if c.active and c.last_true_us != ev.now_us:
            ev.hold(key, False, 0, hold_s(ev.cfg))


_BEAT_HOLDS = {
    "vt": lambda c: c.clear_after_s, "vt_sustained": lambda c: c.clear_after_s,
    "svt": lambda c: c.clear_after_s,
    "pvc_run": lambda c: c.event_hold_s, "pvc_couplet": lambda c: c.event_hold_s,
    "pause": lambda c: c.event_hold_s, "bigeminy": lambda c: c.clear_after_s,
    "trigeminy": lambda c: c.clear_after_s, "pvc_rate": lambda c: c.clear_after_s,
    "extreme_brady": lambda c: c.clear_after_s, "extreme_tachy": lambda c: c.clear_after_s,
}


def on_beat(state: PatientState, win: BeatWindow, res: BeatResult,
            cfg: AlarmSettings, pre: int, fs_hz: float) -> list[Alarm]:
    """Feed one classified beat; ``pre``/``fs_hz`` locate the R peak in ``win.samples``."""
    if win.r_time_us <= state.last_beat_window_us:
        return []                                   # redelivered: already counted
    state.last_beat_window_us = win.r_time_us
    unsure = bool(res.probs) and max(res.probs) < cfg.beat_min_prob
    label = "?" if win.quality in DISCONNECTED or unsure else res.label
    rr_prev_s = win.rr_prev_s if label != "?" and math.isfinite(win.rr_prev_s) else 0.0
    state.beats.append((win.r_time_us, label))
    state.v_prob[win.r_time_us] = res.probs[V_INDEX] if len(res.probs) > V_INDEX else 1.0
    if len(state.v_prob) > 2 * V_RUN_BEATS:
        state.v_prob = {t: state.v_prob[t] for t, _ in list(state.beats)[-V_RUN_BEATS:]}
    state.last_beat_us = max(state.last_beat_us or 0, win.r_time_us)
    state.strip.add_beat(win.r_time_us, fs_hz, pre, win.samples[0])
    ev = _Event(state, cfg, win.r_time_us, win.last_sample_time_us)
    _beat_conditions(ev, list(state.beats), rr_prev_s)
    tick(ev)
    return ev.out


def _beat_conditions(ev: _Event, beats: list, rr_prev_s: float) -> None:
    cfg, now = ev.cfg, ev.now_us
    run = pat.trailing_run(beats, "V")
    newest = run[-max(cfg.vt_min_beats, V_RUN_BEATS):]   # a slow lead-in V is no alibi
    sure = bool(newest) and sum(ev.state.v_prob.get(t, 1.0) for t, _ in newest) \
        >= cfg.vt_min_v_prob * len(newest)
    fast = len(run) >= cfg.vt_min_beats and sure and pat.rate_bpm(newest) >= cfg.vt_min_rate_bpm
    if fast:
        slow = 60.0 * _US / cfg.vt_min_rate_bpm        # onset: after the last slow interval
        first = max([i + 1 for i in range(len(newest) - 1)
                     if newest[i + 1][0] - newest[i][0] > slow] or [0])
        ev.hold("vt", True, newest[min(first, len(newest) - 2)][0], cfg.clear_after_s, newest)
    slow_run = len(run) >= cfg.vt_min_beats and sure and not fast   # unsure runs: neither
    ev.hold("pvc_run", slow_run, run[0][0] if run else now, cfg.event_hold_s, run)
    vt = ev.state.cond("vt")
    ev.hold("vt_sustained", fast and vt.active and now - vt.onset_us >= cfg.vt_sustained_s * _US,
            vt.onset_us, cfg.clear_after_s, run)
    pair = pat.couplet(beats)
    ev.hold("pvc_couplet", pair is not None, pair[0][0] if pair else now, cfg.event_hold_s,
            pair or ())
    for key, unit, cycles in (("bigeminy", "nV", cfg.bigeminy_cycles),
                              ("trigeminy", "nnV", cfg.trigeminy_cycles)):
        seq = pat.repeating(beats, unit, cycles)
        ev.hold(key, seq is not None, seq[0][0] if seq else now, cfg.clear_after_s, seq or ())
    sruns = pat.trailing_run(beats, "S")[-cfg.svt_min_beats:]
    if len(sruns) >= cfg.svt_min_beats and pat.rate_bpm(sruns) >= cfg.svt_min_rate_bpm:
        ev.hold("svt", True, sruns[0][0], cfg.clear_after_s, sruns)
    if rr_prev_s >= cfg.pause_s and len(beats) >= 2 and beats[-2][1] != "?":
        ev.hold("pause", True, beats[-2][0], cfg.event_hold_s, beats[-2:])
    recent = pat.count_since(beats, "V", now - 60 * _US)
    span_ok = beats[0][0] <= now - 60 * _US
    ev.hold("pvc_rate", span_ok and recent >= cfg.pvc_rate_per_min, now, cfg.clear_after_s)
    hr = pat.heart_rate_bpm(beats, cfg.hr_beats)
    if hr is not None:
        ev.state.hr_bpm = hr
    tail = beats[-(cfg.hr_beats + 1):]
    ev.hold("extreme_brady", hr is not None and hr < cfg.extreme_brady_bpm, tail[0][0],
            cfg.clear_after_s, tail)
    ev.hold("extreme_tachy", hr is not None and hr > cfg.extreme_tachy_bpm, tail[0][0],
            cfg.clear_after_s, tail)


def on_rhythm(state: PatientState, win: RhythmWindow, res: RhythmResult,
              cfg: AlarmSettings, analysis_lead_known: bool = True) -> list[Alarm]:
    """Feed one classified rhythm window (technical alarms, asystole, model rhythms).

    ``analysis_lead_known``: whether row 0, the lead the models read, is one they were
    trained on (``SignalSpec.models_lead_known`` of the window's lead names; the decider
    knows the model's spec). If not, a technical ``analysis_lead`` alarm names the lead:
    on another lead the beat classes hold much worse (docs/benchmarks.md, "Other
    devices"), and the ward should know its arrhythmia alarms rest on it."""
    if win.end_time_us <= state.last_rhythm_end_us:
        return []
    state.last_rhythm_end_us = win.end_time_us
    state.strip.add_rhythm(win.start_time_us, win.fs_hz, win.samples[0])
    state.quality, state.sqi, state.rhythm = win.quality, win.sqi, res.rhythm
    state.leads = win.leads
    if win.beat_times_us:
        state.last_beat_us = max(state.last_beat_us or 0, max(win.beat_times_us))
    ev = _Event(state, cfg, win.end_time_us, win.last_sample_time_us)
    on, off = cfg.technical_on_windows, cfg.technical_off_windows
    fed: set[str] = set()
    for i, q in enumerate(win.quality):
        lead = lead_key(win.leads, i)
        fed |= {f"leads_off:{lead}", f"noisy:{lead}"}
        ev.streak(f"leads_off:{lead}", q == "flat", win.start_time_us, on, off)
        ev.streak(f"noisy:{lead}", q in ("noisy", "saturated"), win.start_time_us,
                  cfg.noisy_on_windows, off)
    if win.leads:                                   # version 2 windows name no lead
        lead = lead_key(win.leads, 0)
        fed.add(f"analysis_lead:{lead}")
        ev.streak(f"analysis_lead:{lead}", not analysis_lead_known, win.start_time_us, on, off)
    for key in [k for k, c in state.conds.items()
                if c.active and k.split(":")[0] in PER_LEAD and k not in fed]:
        # the lead left the device's lead set (or the key is an index from before names):
        # nothing will report it again, so it counts as resolved and clears after ``off``
        ev.streak(key, False, win.start_time_us, on, off)
    connected = [q not in DISCONNECTED for q in win.quality]
    if any(connected):
        _asystole(ev, win, connected)
    if all(connected):
        _model_conditions(ev, win, res, yellow=all(q == "good" for q in win.quality))
    tick(ev)
    return ev.out


def _asystole(ev: _Event, win: RhythmWindow, connected: list[bool]) -> None:
    """No QRS for asystole_s on a connected lead that is good or quiet (not noise hiding QRS)."""
    cfg, state = ev.cfg, ev.state
    last = state.last_beat_us if state.last_beat_us is not None else win.start_time_us
    if win.end_time_us - last < cfg.asystole_s * _US:
        ev.hold("asystole", False, last, 0.0)
        return
    n = max(2, min(win.samples.shape[1], round(cfg.asystole_s * win.fs_hz)))
    ptp = np.ptp(win.samples[:, -n:], axis=1)
    # the window's flags cover 10 s; a lead that went flat within the gap is off, not asystole
    alive = win.samples[:, -max(2, n // 2):].std(axis=1) >= FLAT_STD_MV
    if any(c and a and (q == "good" or p < cfg.asystole_max_ptp_mv)
           for c, a, q, p in zip(connected, alive, win.quality, ptp, strict=True)):
        ev.hold("asystole", True, last, 0.0, [b for b in state.beats if b[0] == last])


def _model_conditions(ev: _Event, win: RhythmWindow, res: RhythmResult, yellow: bool) -> None:
    """Rhythm-model conditions; red ones on any connected signal, yellow ones on good leads."""
    cfg = ev.cfg
    onset = (win.start_time_us + win.end_time_us) // 2
    beats = [b for b in ev.state.beats if win.start_time_us <= b[0] <= win.end_time_us]
    on, off = cfg.rhythm_on_windows, cfg.rhythm_off_windows
    ev.streak("vfib", res.rhythm in VF_CODES, onset, on, off, beats)
    if yellow:
        ev.streak("afib", res.rhythm in AF_CODES, onset, cfg.af_on_windows, off, beats)
    for key, code in (("vt", "VT"), ("svt", "SVTA")):
        if (key == "vt" and not cfg.vt_from_rhythm_model) or (key == "svt" and not yellow):
            continue
        if ev.streak(f"model_{key}", res.rhythm == code, onset, on, off):
            ev.hold(key, True, ev.state.cond(f"model_{key}").streak_onset_us, cfg.clear_after_s,
                    beats)


def live_state(state: PatientState) -> dict[str, object]:
    """What the ward screen shows for a patient (Redis hash fields)."""
    return {"hr_bpm": round(state.hr_bpm, 1) if state.hr_bpm else None, "rhythm": state.rhythm,
            "leads": list(state.leads),
            "quality": list(state.quality), "sqi": [round(s, 3) for s in state.sqi],
            "active": sorted(state.active()), "last_beat_us": state.last_beat_us}
