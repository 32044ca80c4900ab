"""SignalSpec: the physical description of what the models see, and its id.

The same spec drives the online processor and the training datasets; a model
artifact records ``spec_id`` and the inference worker refuses windows whose id
differs (train/serve skew caught at the door).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def lead_key(name: str) -> str:
    """A lead name compared the way devices spell it: case, spaces and punctuation
    ignored ("ML II", "Lead-II" and "mlii" are "MLII", "LEADII", "MLII")."""
    return _NOT_ALNUM.sub("", name.upper())


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
    # the leads the models may read as row 0, by name, best first (compared with
    # ``lead_key``): MIT-BIH's modified limb lead II, the names lead II goes by on other
    # devices, and V5, which MIT-BIH 114 trained the models on (``lead_order``)
    first_leads: tuple[str, ...] = ("MLII", "II", "ML2", "LEADII", "ECGII", "V5")

    def __post_init__(self) -> None:
        if not 0 < self.highpass_hz < self.lowpass_hz < self.fs_hz / 2:
            raise ValueError(f"need 0 < highpass_hz < lowpass_hz < fs_hz/2, got {self}")
        if self.beat_pre_s <= 0 or self.beat_post_s <= 0:
            raise ValueError("beat window spans must be positive seconds")
        if not 0 < self.rhythm_hop_s <= self.rhythm_window_s:
            raise ValueError("need 0 < rhythm_hop_s <= rhythm_window_s")

    def lead_order(self, leads: tuple[str, ...] | list[str]) -> tuple[int, ...]:
        """Device lead indices in the order the DSP and the models use.

        Why: the models read row 0 ("leads_used" in their metadata) and devices list leads
        their own way (a 12-lead cart sends lead I first, a Holter may send V1 first). A
        device whose first lead is one of ``first_leads`` keeps its order; otherwise the
        best-ranked of them it has goes first and the others keep their order; a device
        with none of them keeps its order. V5 stays first when a device sends it first
        because the models learnt it so from MIT-BIH 114 (V5, MLII): moving 114's MLII first
        cost 5-7 points of DS1 validation score (docs/dsp.md, "Lead order").
        """
        keys = [lead_key(name) for name in leads]
        ranked = [lead_key(name) for name in self.first_leads]
        if keys and keys[0] not in ranked:
            for wanted in ranked:
                if wanted in keys:
                    first = keys.index(wanted)
                    return (first, *(i for i in range(len(keys)) if i != first))
        return tuple(range(len(keys)))

    def models_lead_known(self, leads: tuple[str, ...] | list[str]) -> bool:
        """Whether ``lead_order`` puts one of ``first_leads`` in row 0 (else the models
        read a lead they were not trained on: the processor counts and logs it)."""
        if not leads:
            return False
        row0 = lead_key(leads[self.lead_order(leads)[0]])
        return any(lead_key(name) == row0 for name in self.first_leads)

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
