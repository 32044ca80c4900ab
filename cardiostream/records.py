"""WFDB record access (via wfdb) and the MIT-BIH record lists of the EC57 protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACED = ("102", "104", "107", "217")
# de Chazal et al. 2004 inter-patient split.
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212",
       "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")
NON_PACED = tuple(sorted(DS1 + DS2))
ALL_MITDB = tuple(sorted(NON_PACED + PACED))
NAMED_SETS = {"DS1": DS1, "DS2": DS2, "ALL": NON_PACED, "NONPACED": NON_PACED, "MITDB": ALL_MITDB}


def expand_records(names: list[str] | tuple[str, ...]) -> list[str]:
    """Expand set names (DS1, DS2, ALL) and comma lists into record names, in order."""
    out: list[str] = []
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            out.extend(NAMED_SETS.get(name.upper(), (name,)))
    return list(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class Record:
    """One WFDB record: ADC counts lead-first, with what is needed to undo them."""

    name: str
    fs_hz: float
    leads: tuple[str, ...]
    gain: tuple[float, ...]
    baseline: tuple[int, ...]
    adc: np.ndarray            # (n_leads, n) int16

    def millivolts(self) -> np.ndarray:
        g = np.asarray(self.gain, dtype=np.float64)[:, None]
        b = np.asarray(self.baseline, dtype=np.float64)[:, None]
        return (self.adc.astype(np.float64) - b) / g


def record_path(directory: Path, name: str) -> Path:
    path = Path(directory) / name
    if not path.with_suffix(".hea").exists():
        raise FileNotFoundError(f"no WFDB record {name!r} in {directory} (missing {name}.hea)")
    return path


def load_record(directory: Path, name: str, sampto: int | None = None) -> Record:
    import wfdb

    rec = wfdb.rdrecord(str(record_path(directory, name)), physical=False, sampto=sampto)
    gain = tuple(float(g) if g else 200.0 for g in rec.adc_gain)  # NSTDB noise: gain 0
    return Record(name, float(rec.fs), tuple(rec.sig_name), gain,
                  tuple(int(b) for b in rec.baseline), rec.d_signal.T.astype(np.int16))


def load_annotations(directory: Path, name: str, extension: str = "atr"):
    import wfdb

    return wfdb.rdann(str(record_path(directory, name)), extension)
