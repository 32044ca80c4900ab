"""SignalSpec: the physical description of what the models see, and its id.

The same spec drives the online processor and the training datasets; a model
artifact records ``spec_id`` and the inference worker refuses windows whose id
differs (train/serve skew caught at the door).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class SignalSpec:
    fs_hz: float = 360.0            # every device is resampled to this rate
    highpass_hz: float = 0.5        # baseline wander
    lowpass_hz: float = 40.0        # EMG / high-frequency noise
    notch_hz: tuple[float, ...] = (50.0, 60.0)  # powerline, both mains frequencies
    beat_pre_s: float = 0.25        # beat window span before the R peak
    beat_post_s: float = 0.45       # ... and after it
    rhythm_window_s: float = 10.0
    rhythm_hop_s: float = 2.0
    rhythm_fs_hz: float = 120.0     # rhythm windows are decimated to this rate
    long_rr_beats: int = 300        # beats in the long-term mean RR (~5 min)
    local_rr_beats: int = 10        # beats in the local mean RR

    def __post_init__(self) -> None:
        if not 0 < self.highpass_hz < self.lowpass_hz < self.fs_hz / 2:
            raise ValueError(f"need 0 < highpass_hz < lowpass_hz < fs_hz/2, got {self}")
        if self.beat_pre_s <= 0 or self.beat_post_s <= 0:
            raise ValueError("beat window spans must be positive seconds")
        if not 0 < self.rhythm_hop_s <= self.rhythm_window_s:
            raise ValueError("need 0 < rhythm_hop_s <= rhythm_window_s")

    @property
    def beat_pre(self) -> int:
        return round(self.beat_pre_s * self.fs_hz)

    @property
    def beat_span(self) -> int:
        return self.beat_pre + round(self.beat_post_s * self.fs_hz)

    @property
    def spec_id(self) -> str:
        raw = json.dumps(asdict(self), sort_keys=True).encode()
        return "spec-" + hashlib.sha256(raw).hexdigest()[:12]


DEFAULT_SPEC = SignalSpec()
