"""Classified windows -> alarm transitions and live patient state, for many devices.

The one place that routes each (window, result) pair to its device's alarm state
machine; the worker and the offline evaluation (bench/alarm_eval.py) both use it,
so the alarm delays measured offline are those of the live worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cardiostream.schemas import Alarm, BeatResult, BeatWindow, Result, RhythmWindow, Window
from cardiostream.settings import AlarmSettings
from cardiostream.signal import DEFAULT_SPEC, SignalSpec
from inference import alarms

Seeder = Callable[[str], dict[str, int]]


def model_spec(metadata: dict[str, Any]) -> SignalSpec:
    """The SignalSpec a model was trained with (from metadata ``spec``), checked by id."""
    raw = metadata.get("spec")
    if raw is None:
        spec = DEFAULT_SPEC
    else:
        spec = SignalSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    if spec.spec_id != metadata.get("spec_id"):
        raise ValueError(f"model metadata spec_id {metadata.get('spec_id')!r} does not match "
                         f"its spec ({spec.spec_id})")
    return spec


class Decider:
    """Per-device alarm states; ``seed`` returns alarms already active (Redis) for a device."""

    def __init__(self, cfg: AlarmSettings, spec: SignalSpec, seed: Seeder | None = None) -> None:
        self.cfg = cfg
        self.spec = spec
        self.pre, self.fs_hz = spec.beat_pre, spec.fs_hz
        self.seed = seed
        self.states: dict[str, alarms.PatientState] = {}
        self.last_sample_us: dict[str, int] = {}

    def feed(self, window: Window, result: Result) -> list[Alarm]:
        """One window and its classification, in the device's stream order."""
        state = self.states.get(window.device_id)
        if state is None:
            state = alarms.new_state(window.device_id, window.unit)
            if self.seed is not None:
                alarms.seed_active(state, self.seed(window.device_id), _time_of(window))
            self.states[window.device_id] = state
        self.last_sample_us[window.device_id] = window.last_sample_time_us
        if isinstance(window, BeatWindow):
            if not isinstance(result, BeatResult):
                raise TypeError(f"beat window with a {type(result).__name__}")
            return alarms.on_beat(state, window, result, self.cfg, self.pre, self.fs_hz)
        known = not window.leads or self.spec.models_lead_known(window.leads)
        return alarms.on_rhythm(state, window, result, self.cfg,  # type: ignore[arg-type]
                                analysis_lead_known=known)

    def live(self, device_id: str) -> dict[str, object]:
        """The device's live state (Redis hash fields), with its unit and newest sample time."""
        state = self.states[device_id]
        return {**alarms.live_state(state), "unit": state.unit,
                "last_sample_time_us": self.last_sample_us.get(device_id)}

    def forget(self, device_ids: set[str]) -> None:
        """Drop devices whose partitions moved to another worker."""
        for d in device_ids:
            self.states.pop(d, None)
            self.last_sample_us.pop(d, None)


def _time_of(window: Window) -> int:
    return window.end_time_us if isinstance(window, RhythmWindow) else window.r_time_us
