"""Alarm state machines as timeline tables: beats and rhythm windows in, transitions out.

Every expected row is worked out by hand from the thresholds in AlarmSettings
(documented in docs/alarms.md), not read back from the engine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from cardiostream.schemas import BeatResult, BeatWindow, RhythmResult, RhythmWindow, alarm_id
from cardiostream.settings import AlarmSettings
from inference import alarms as al

US = 1_000_000
FS, PRE, SPAN, POST_S = 360.0, 90, 252, 0.45
RFS, WIN_S = 120.0, 10.0
CFG = AlarmSettings()


def us(t_s: float) -> int:
    return round(t_s * US)


def beat(t_s: float, label: str, rr_prev_s: float = 0.8, quality: str = "good"):
    samples = np.zeros((2, SPAN), np.float32)
    samples[0, PRE] = 1.0                                  # an R peak at the centre
    win = BeatWindow("bed-1", "ward-1", "spec-x", 0, 0, us(t_s), us(t_s + POST_S), rr_prev_s,
                     0.8, 0.8, 0.8, quality, samples, np.zeros_like(samples))
    probs = tuple(1.0 if c == label else 0.0 for c in "NSVFQ")
    res = BeatResult("bed-1", "ward-1", 0, 0, us(t_s), us(t_s + POST_S), label, probs,
                     rr_prev_s, quality, "test")
    return t_s + POST_S, ("beat", win, res)


def rhythm(end_s: float, beat_times_s, code: str = "N", quality=("good", "good")):
    start = end_s - WIN_S
    bt = tuple(us(t) for t in beat_times_s if start <= t < end_s)
    rng = np.random.default_rng(round(end_s * 1000))
    samples = (0.02 * rng.standard_normal((2, int(WIN_S * RFS)))).astype(np.float32)
    samples[[q == "flat" for q in quality]] = 0.0             # a flat lead is exactly flat
    win = RhythmWindow("bed-1", "ward-1", "spec-x", 0, 0, us(start), us(end_s), us(end_s), RFS,
                       bt, tuple(quality), (0.9,) * len(quality), samples)
    res = RhythmResult("bed-1", "ward-1", 0, 0, us(start), us(end_s), us(end_s), code, (1.0,),
                       75.0, tuple(quality), "test")
    return end_s, ("rhythm", win, res)


def run(events, state=None, cfg=CFG):
    """Feed events in arrival order; return (type, state, onset_s, at_s) rows and the alarms."""
    state = state or al.new_state("bed-1", "ward-1")
    out = []
    for _, (kind, win, res) in sorted(events, key=lambda e: e[0]):
        if kind == "beat":
            out += al.on_beat(state, win, res, cfg, PRE, FS)
        else:
            out += al.on_rhythm(state, win, res, cfg)
    rows = [(a.type, a.state, round(a.onset_time_us / US, 2), round(a.time_us / US, 2))
            for a in out]
    return rows, out, state


def beats_at(times, label="N", quality="good"):
    """Beats at ``times`` (s); each RR_prev is the gap to the previous time in the list."""
    rr = [0.8] + [round(b - a, 3) for a, b in zip(times[:-1], times[1:], strict=True)]
    return [beat(t, label, r, quality) for t, r in zip(times, rr, strict=True)]


def grid(start, stop, step):
    return [round(x, 3) for x in np.arange(start, stop - 1e-9, step)]


def vt_scenario():
    normal1 = grid(0.0, 20.0, 0.8)                      # 0.0 .. 19.2
    vt = grid(20.0, 23.0, 0.4)                          # 8 V beats at 150 bpm
    normal2 = grid(23.6, 50.0, 0.8)
    events = beats_at(normal1) + beats_at(vt, "V") + beats_at(normal2)
    all_beats = normal1 + vt + normal2
    events += [rhythm(e, all_beats) for e in grid(10.0, 50.0, 2.0)]
    return events


def test_vt_run_raises_once_and_clears_once_with_evidence() -> None:
    rows, alarms, _ = run(vt_scenario())
    # raised at the 3rd V beat (20.8 s), onset = first V beat; cleared at the first beat
    # >= 10 s (clear_after_s) after the last V beat (22.8 s): 33.2 s
    assert rows == [("vt", "raised", 20.0, 20.8), ("vt", "cleared", 20.0, 33.2)]
    raised = alarms[0]
    assert raised.severity == "red"
    assert raised.alarm_id == alarm_id("bed-1", "vt", us(20.0), "raised")
    assert [t for t, _ in raised.beats] == [us(20.0), us(20.4), us(20.8)]
    assert {lab for _, lab in raised.beats} == {"V"}
    # strip: 10 s at 60 Hz, ending at the newest sample (last beat window end 21.25 s)
    assert len(raised.strip_mv) == 600 and raised.strip_fs_hz == 60.0
    assert raised.strip_start_us == pytest.approx(us(11.25), abs=20_000)
    assert max(raised.strip_mv) > 0.5                   # R peaks of the beat windows


def test_redelivered_windows_change_nothing() -> None:
    events = vt_scenario()
    once, _, _ = run(events)
    twice, _, _ = run(events + [(t + 1e-6, e) for t, e in events])
    assert twice == once


def test_beats_on_disconnected_leads_make_no_vt() -> None:
    events = beats_at(grid(0, 20, 0.8)) + beats_at(grid(20, 23, 0.4), "V", quality="flat")
    rows, _, _ = run(events)
    assert rows == []


def test_noise_suppresses_yellow_alarms_but_not_vt() -> None:
    """A kurtosis SQI calls VT/VF "noisy" too, so noise must not silence red alarms."""
    normal = grid(0.0, 12.0, 0.8)
    big, t = [], 12.0
    for _ in range(5):                                  # bigeminy 12..19.5 s, in the noise
        big += [(t, "N"), (t + 0.5, "V")]
        t += 1.5
    vt = grid(20.0, 22.0, 0.4)                          # 5 V beats at 150 bpm
    times = normal + [x for x, _ in big] + vt
    events = beats_at(normal) + [beat(x, lab) for x, lab in big] + beats_at(vt, "V")
    events += [rhythm(e, times, quality=("noisy", "noisy")) for e in grid(10.0, 24.0, 2.0)]
    rows, _, _ = run(events)
    # noisy needs 3 windows in a row (10, 12, 14 s; onset = start of the first = 0 s);
    # bigeminy (4th V at 17.0 s) stays silent: no lead is good; VT at its 3rd beat (20.8 s)
    assert rows == [("noisy", "raised", 0.0, 14.0), ("noisy", "raised", 0.0, 14.0),
                    ("vt", "raised", 20.0, 20.8)]


def test_bigeminy() -> None:
    lead_in = grid(0.0, 8.0, 0.8)                       # 10 N beats, last at 7.2
    big, t = [], 8.0
    for _ in range(6):                                  # N, V 0.5 s later, next N 1.0 s later
        big += [(t, "N"), (t + 0.5, "V")]
        t += 1.5
    tail = grid(t, t + 20.0, 0.8)                       # t = 17.0
    events = beats_at(lead_in) + [beat(x, lab) for x, lab in big] + beats_at(tail)
    rows, alarms, _ = run(events)
    # 4th V at 8 + 3*1.5 + 0.5 = 13.0 s; the pattern began with the N at 8.0 s.
    # last V at 16.0 s; the pattern (still ending one beat back) holds at the N at 17.0,
    # so it clears at the first beat >= 27.0 s: 17.0 + 0.8 * 13 = 27.4 s
    assert rows == [("bigeminy", "raised", 8.0, 13.0), ("bigeminy", "cleared", 8.0, 27.4)]
    assert [lab for _, lab in alarms[0].beats] == ["N", "V"] * 4


def test_asystole_and_pause() -> None:
    times = grid(0.0, 10.0, 0.8) + grid(20.0, 30.0, 0.8)   # no QRS 9.6 .. 20.0 s
    events = beats_at(times) + [rhythm(e, times) for e in grid(10.0, 30.0, 2.0)]
    rows, alarms, _ = run(events)
    assert rows == [
        ("asystole", "raised", 9.6, 14.0),   # first window ending >= 4 s after 9.6 s
        ("pause", "raised", 9.6, 20.0),      # the beat that ends the 10.4 s RR
        ("asystole", "cleared", 9.6, 22.0),  # window ending 22 s holds the beat at 20.8 s
    ]
    assert alarms[0].severity == "red" and len(alarms[0].strip_mv) > 0


def test_lead_off_suppresses_rhythm_alarms_while_it_lasts() -> None:
    times = grid(0.0, 50.0, 0.8)
    events = beats_at(times)
    events += [rhythm(e, times, "AFIB", ("good", "flat")) for e in grid(10.0, 20.0, 2.0)]
    events += [rhythm(e, times, "AFIB") for e in grid(20.0, 42.0, 2.0)]
    rows, _, _ = run(events)
    # lead 1 flat in windows ending 10..18 s; two good windows (20, 22) clear it; the AF
    # streak only starts once every lead is good: its 11th window ends at 40 s (onset =
    # centre of the 20 s window)
    assert CFG.af_on_windows == 11
    assert rows == [("leads_off", "raised", 0.0, 10.0), ("leads_off", "cleared", 0.0, 22.0),
                    ("afib", "raised", 15.0, 40.0)]


@pytest.mark.parametrize("af_windows", [10, 11])
def test_af_is_raised_after_30_s_of_af_windows_and_dated_from_the_first(af_windows) -> None:
    """AF needs ``af_on_windows`` (11: 10 s windows at a 2 s hop span 30 s, the guideline's
    shortest AF episode) consecutive AF windows; VF keeps ``rhythm_on_windows`` (2)."""
    times = grid(0.0, 60.0, 0.8)
    ends = grid(12.0, 12.0 + 2.0 * af_windows, 2.0)
    events = beats_at(times) + [rhythm(e, times, "AFIB") for e in ends]
    events += [rhythm(e, times) for e in grid(ends[-1] + 2.0, 60.0, 2.0)]
    rows, _, _ = run(events)
    if af_windows < CFG.af_on_windows:
        assert [r for r in rows if r[0] == "afib"] == []
    else:
        assert rows[0] == ("afib", "raised", 7.0, 32.0)
        assert ("afib", "cleared", 7.0, 38.0) in rows   # 3rd non-AF window after the last


@pytest.mark.parametrize(("leads", "named"), [(("MLII", "V1"), "V1"), ((), "")])
def test_a_lead_off_alarm_names_the_electrode(leads, named) -> None:
    """Rows are in the models' order (MLII first), not the device's: an index alone would
    send the nurse to the wrong electrode, so the alarm carries the window's lead name."""
    times = grid(0.0, 20.0, 0.8)
    events = beats_at(times)
    for e in grid(10.0, 20.0, 2.0):
        end, (kind, win, res) = rhythm(e, times, quality=("good", "flat"))
        events.append((end, (kind, dataclasses.replace(win, leads=leads), res)))
    _, alarms, state = run(events)
    off = [a for a in alarms if a.type == "leads_off"]
    assert [(a.state, a.lead, a.lead_name) for a in off] == [("raised", 1, named)]
    assert off[0].message.endswith(f"({named})" if named else "(lead 1)")
    assert al.live_state(state)["leads"] == list(leads)


def named(event, leads):
    end, (kind, win, res) = event
    return end, (kind, dataclasses.replace(win, leads=leads), res)


def test_per_lead_keys_carry_the_lead_name_and_follow_the_electrode() -> None:
    """The key (and so the alarm id) is ``leads_off:V1``, not a row number: a device whose
    lead set changes renumbers its rows, and an alarm for the V1 electrode must not
    become an alarm for whatever lead is row 1 now."""
    times = grid(0.0, 40.0, 0.8)
    events = beats_at(times)
    events += [named(rhythm(e, times, quality=("good", "flat")), ("MLII", "V1"))
               for e in grid(10.0, 20.0, 2.0)]
    # the device now sends MLII and V5 (V1 dropped): V1's alarm clears after the usual
    # ``technical_off_windows`` windows; nothing is raised for V5, which is fine
    events += [named(rhythm(e, times), ("MLII", "V5")) for e in grid(20.0, 30.0, 2.0)]
    rows, alarms, state = run(events)
    off = [a for a in alarms if a.type == "leads_off"]
    assert [(a.state, a.lead, a.lead_name, a.time_us / US) for a in off] == \
        [("raised", 1, "V1", 10.0), ("cleared", -1, "V1", 22.0)]
    assert off[1].message == "Lead off (V1) ended"
    assert off[0].alarm_id == alarm_id("bed-1", "leads_off:V1", off[0].onset_time_us, "raised")
    assert state.active() == {}


def test_an_index_key_resumed_from_redis_clears_when_the_lead_is_named() -> None:
    """An alarm raised before the keys carried names (``leads_off:1`` in Redis) is seeded on
    restart; windows now report the lead by name, so the old key clears with its own id
    (a V1 still flat raises ``leads_off:V1`` in its place)."""
    times = grid(0.0, 30.0, 0.8)
    state = al.new_state("bed-1", "ward-1")
    al.seed_active(state, {"leads_off:1": us(4.0)}, us(9.0))
    events = beats_at(times) + [named(rhythm(e, times), ("MLII", "V1"))
                                for e in grid(10.0, 16.0, 2.0)]
    _, alarms, state = run(events, state)
    assert [(a.type, a.state, a.lead, a.lead_name, a.time_us / US) for a in alarms] == \
        [("leads_off", "cleared", 1, "V1", 12.0)]
    assert alarms[0].alarm_id == alarm_id("bed-1", "leads_off:1", us(4.0), "cleared")


@pytest.mark.parametrize(("leads", "key"), [(("MLII", "V1"), "V1"), (("2", "1"), "1"),
                                            ((), "1")])
def test_lead_key_and_its_reading(leads, key) -> None:
    """Version 3 windows name the lead; version 2 ones give the row. A device may name its
    leads "2", "1": the name wins over reading the key as a row."""
    assert al.lead_key(leads, 1) == key
    assert al.lead_of(f"noisy:{key}", leads) == (1, leads[1] if leads else "")
    assert al.lead_of("vt", leads) == (-1, "")


@pytest.mark.parametrize(("leads", "raised"), [(("V1", "V2"), True), (("MLII", "V1"), False),
                                               (("V5", "MLII"), False), ((), False)])
def test_a_lead_the_models_were_not_trained_on_raises_a_technical_alarm(leads, raised) -> None:
    """A one-lead patch recording V1 gets arrhythmia analysis on V1, where the beat classes
    hold much worse (bench/bench_device_variation.py): the ward is told, by name, through
    the decider, which knows the model's spec. Version 2 windows (no names) cannot tell."""
    from cardiostream.signal import DEFAULT_SPEC
    from inference.decider import Decider

    times = grid(0.0, 30.0, 0.8)
    decider = Decider(CFG, DEFAULT_SPEC)
    alarms = []
    events = beats_at(times) + [named(rhythm(e, times), leads) for e in grid(10.0, 16.0, 2.0)]
    events += [named(rhythm(e, times), ("MLII", "V2")) for e in grid(16.0, 22.0, 2.0)]
    for _, (_kind, win, res) in sorted(events, key=lambda e: e[0]):
        alarms += decider.feed(win, res)
    got = [(a.type, a.severity, a.state, a.lead, a.lead_name, a.time_us / US) for a in alarms]
    if raised:
        # cleared once the device sends MLII and V2 (V1's key is no longer fed: 2 windows)
        assert got == [("analysis_lead", "technical", "raised", 0, "V1", 10.0),
                       ("analysis_lead", "technical", "cleared", -1, "V1", 18.0)]
        assert alarms[0].message == ("Arrhythmia analysis on a lead the models were not "
                                     "trained on (V1)")
    else:
        assert got == []


def test_all_leads_flat_is_leads_off_not_asystole() -> None:
    events = beats_at(grid(0.0, 10.0, 0.8))
    events += [rhythm(e, [], quality=("flat", "flat")) for e in grid(12.0, 24.0, 2.0)]
    rows, _, _ = run(events)
    assert rows == [("leads_off", "raised", 2.0, 12.0), ("leads_off", "raised", 2.0, 12.0)]


def test_slow_run_is_pvc_run_and_couplet_is_yellow() -> None:
    times = grid(0.0, 10.0, 0.8)
    events = beats_at(times) + [beat(10.0, "V"), beat(10.8, "V"), beat(11.8, "N")]
    events += [beat(12.6, "V"), beat(13.4, "V"), beat(14.2, "V"), beat(15.2, "N")]
    rows, alarms, _ = run(events)
    # couplet closed by the N at 11.8 s; 3 V beats at 75 bpm (< 100) at 14.2 s: a PVC run
    assert rows == [("pvc_couplet", "raised", 10.0, 11.8), ("pvc_run", "raised", 12.6, 14.2)]
    assert {a.severity for a in alarms} == {"yellow"}


def test_seeded_alarm_from_redis_clears_with_its_original_id() -> None:
    state = al.new_state("bed-1", "ward-1")
    al.seed_active(state, {"vt": us(5.0)}, us(100.0))
    rows, alarms, _ = run(beats_at(grid(100.0, 120.0, 0.8)), state)
    assert rows == [("vt", "cleared", 5.0, 110.4)]
    assert alarms[0].alarm_id == alarm_id("bed-1", "vt", us(5.0), "cleared")


def test_live_state_reports_rate_rhythm_and_active_alarms() -> None:
    times = grid(0.0, 12.0, 0.75)
    _, _, state = run(beats_at(times) + [rhythm(12.0, times, "N")])
    live = al.live_state(state)
    assert live["hr_bpm"] == pytest.approx(80.0)
    assert live["rhythm"] == "N" and live["active"] == [] and live["quality"] == ["good", "good"]
    assert live["last_beat_us"] == us(times[-1])


def test_lead_going_flat_inside_the_gap_is_not_asystole() -> None:
    """The window's flags cover 10 s; a line that went flat in the gap is a lead off."""
    times = grid(0.0, 10.0, 0.8)
    events = beats_at(times)
    for e in grid(12.0, 20.0, 2.0):
        _, ev = rhythm(e, times)
        flat_from = round((10.0 - (e - WIN_S)) * RFS)        # sample index of t = 10 s
        ev[1].samples[:, max(flat_from, 0):] = 0.0           # both leads flat from 10 s
        events.append((e, ev))
    rows, _, _ = run(events)
    assert [r for r in rows if r[0] == "asystole"] == []


def test_sustained_vt_escalates_once() -> None:
    normal = grid(0.0, 10.0, 0.8)
    vt = grid(10.0, 45.0, 0.4)                           # 35 s of VT at 150 bpm
    after = grid(45.4, 70.0, 0.8)
    rows, _, _ = run(beats_at(normal) + beats_at(vt, "V") + beats_at(after))
    # VT at its 3rd beat; sustained at the first V beat >= 30 s after onset (40.0 s);
    # both clear at the first beat >= 10 s after the last V beat (44.6 s): 55.0 s. Once a
    # minute of history exists (60.6 s) the 88 V beats of the last minute are a high PVC rate.
    assert rows == [("vt", "raised", 10.0, 10.8), ("vt_sustained", "raised", 10.0, 40.0),
                    ("vt_sustained", "cleared", 10.0, 55.0), ("vt", "cleared", 10.0, 55.0),
                    ("pvc_rate", "raised", 60.6, 60.6)]


def test_decider_routes_devices_and_seeds_from_redis_once() -> None:
    from dataclasses import asdict

    from cardiostream.signal import DEFAULT_SPEC
    from inference.decider import Decider, model_spec

    assert model_spec({"spec": asdict(DEFAULT_SPEC), "spec_id": DEFAULT_SPEC.spec_id}) \
        == DEFAULT_SPEC
    with pytest.raises(ValueError, match="spec_id"):
        model_spec({"spec": asdict(DEFAULT_SPEC), "spec_id": "spec-other"})
    asked: list[str] = []

    def seed(device: str) -> dict[str, int]:
        asked.append(device)
        return {"afib": us(1.0)}

    d = Decider(CFG, DEFAULT_SPEC, seed)
    for _, (_, win, res) in beats_at(grid(0.0, 5.0, 0.8)):
        d.feed(win, res)
    assert asked == ["bed-1"]
    assert d.live("bed-1")["active"] == ["afib"] and d.live("bed-1")["unit"] == "ward-1"
    d.forget({"bed-1"})
    assert d.states == {}


def test_unsure_v_run_is_not_vt_but_one_unsure_beat_in_a_sure_run_is() -> None:
    def vbeat(t: float, p_v: float):
        arrival, (kind, win, res) = beat(t, "V", 0.4)
        probs = (1 - p_v, 0.0, p_v, 0.0, 0.0)
        return arrival, (kind, win, replace(res, probs=probs))

    lead_in = beats_at(grid(0.0, 10.0, 0.8))
    unsure = [vbeat(t, 0.55) for t in (10.0, 10.4, 10.8)]          # mean P(V) 0.55 < 0.8
    rows, _, _ = run(lead_in + unsure)
    assert [r for r in rows if r[0] == "vt"] == []
    mixed = [vbeat(10.0, 0.99), vbeat(10.4, 0.49), vbeat(10.8, 0.99)]  # mean 0.82 (233's case)
    rows, _, _ = run(lead_in + mixed)
    assert [r[:3] for r in rows if r[0] == "vt"] == [("vt", "raised", 10.0)]
