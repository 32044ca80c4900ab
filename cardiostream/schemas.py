"""Every wire format of cardiostream: one module, versioned, validated at decode.

Kafka key = device id (UTF-8) on every topic. Four message families:

* ``SampleChunk``  devices → samples topic. Binary (default) or JSON (interop).
  Binary because it is what devices produce (int16 ADC counts + gain/baseline,
  exact for MIT-BIH's 11-bit ADC) and a 0.5 s two-lead chunk is ~4x smaller than
  JSON; see docs/benchmarks.md for the measurement. A telemetry gateway may
  instead send a *chunk bundle*: several devices' encoded chunks in one record,
  sent to the partition all of them hash to (``encode_bundle``).
* ``BeatWindow`` / ``RhythmWindow``  processor → windows topic. A small JSON
  header followed by a float32 payload (a beat window: its samples, then the
  patient's template of the same shape; ``WINDOW_VERSION`` 2 added the template, 3
  the rows' lead names, which technical alarms need to name the electrode).
* ``BeatResult`` / ``RhythmResult``  inference → results topic (JSON audit trail).
* ``Alarm``  inference → Redis (JSON), ``DeadLetter`` → dead-letter topic (JSON).

Every decoder raises ``SchemaError`` (and nothing else) on bad input; its
``reason`` is a short, stable code used as a metrics label and dead-letter reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from cardiostream.resample import ratio as resample_ratio
from cardiostream.signal import DEFAULT_SPEC

SCHEMA_VERSION = 1
WINDOW_VERSION = 3    # windows topic only; 2: beat windows carry the patient's template;
#   3: every window names its rows' leads (``leads``); v2 windows still decode (leads ())
WINDOW_VERSIONS = (2, 3)
MAX_LEADS = 12
MAX_CHUNK_SAMPLES = 10_000
DEVICE_FS_RANGE_HZ = (100.0, 2000.0)
# Rates of real devices and databases, every one accepted (``supported_fs``): MIMIC 125,
# Holter/LTAFDB 128, AFDB 250, 256, INCART 257, AliveCor/CinC 2017 300, MIT-BIH 360,
# 500 and 1000 (12-lead carts). Tests and the simulator's checks draw from them.
COMMON_FS_HZ = (125.0, 128.0, 250.0, 256.0, 257.0, 300.0, 360.0, 500.0, 1000.0)
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")  # \Z: "$" accepts a trailing newline
LEAD_NAME_RE = re.compile(r"^[A-Za-z0-9_.+\-]{1,16}\Z")
MAX_FUTURE_S = 86_400.0  # replay at max speed runs ahead of the wall clock by one record
MAX_PAST_S = 30 * 86_400.0
_US = 1_000_000

_CHUNK_MAGIC = b"CS"
_BUNDLE_MAGIC = b"CB"
_WINDOW_MAGIC = b"CW"
# magic, version, n_leads, n_samples, seq, t0_us, fs_hz
_CHUNK_HEAD = struct.Struct("<2sBBIQqd")


class SchemaError(ValueError):
    """A message that does not satisfy its contract. ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _compact_json(doc: object) -> bytes:
    """``json.dumps(doc, separators=(",", ":")).encode()`` without building an encoder
    per call (the same bytes; every window's header goes through here)."""
    return _COMPACT_JSON.encode(doc).encode()


def _require(ok: bool, reason: str, detail: str = "") -> None:
    if not ok:
        raise SchemaError(reason, detail)


def _check_device_id(device_id: object) -> str:
    if not (isinstance(device_id, str) and DEVICE_ID_RE.match(device_id)):
        raise SchemaError("bad_device_id", f"{device_id!r} must match {DEVICE_ID_RE.pattern}")
    return device_id


def _lead_names_ok(leads: tuple) -> bool:
    """Every name a string matching ``LEAD_NAME_RE`` (chunks and windows alike)."""
    return all(isinstance(x, str) and LEAD_NAME_RE.match(x) for x in leads)


def check_time_us(t_us: int, now_us: int | None) -> None:
    """Reject device timestamps far in the past or future of ``now_us`` (skip if None)."""
    if now_us is None:
        return
    if t_us > now_us + MAX_FUTURE_S * _US:
        raise SchemaError("time_future", f"t={t_us} now={now_us}")
    if t_us < now_us - MAX_PAST_S * _US:
        raise SchemaError("time_past", f"t={t_us} now={now_us}")


# --------------------------------------------------------------------------- samples


@lru_cache(maxsize=256)
def supported_fs(fs_hz: float) -> bool:
    """Whether the processor takes a device sending at ``fs_hz``: any rate in
    ``DEVICE_FS_RANGE_HZ`` that is a ratio of whole numbers up to 1000 to the model's
    rate (``resample.ratio``), so the stateful resampler's polyphase table stays small.

    Why a rule and not a list: telemetry comes from devices and databases we do not
    choose (125, 128, 257, 300 Hz ...), and a chunk at a rate the DSP can resample
    exactly must not be dead-lettered. 359.9 Hz (3599/10) is refused: it is a clock
    fault, not a rate, and its table would hold 3600 phases.
    """
    lo, hi = DEVICE_FS_RANGE_HZ
    if not (isinstance(fs_hz, (int, float)) and math.isfinite(fs_hz) and lo <= fs_hz <= hi):
        return False
    if float(Fraction(fs_hz).limit_denominator(1000)) != fs_hz:   # not a small fraction
        return False
    try:
        resample_ratio(fs_hz, DEFAULT_SPEC.fs_hz)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class SampleChunk:
    """Consecutive samples of one device. ``adc`` is lead-first ``(n_leads, n)`` int16."""

    device_id: str
    seq: int                      # per-device sequence number, +1 per chunk
    t0_us: int                    # device clock (epoch µs) of the first sample
    fs_hz: float
    leads: tuple[str, ...]
    gain: tuple[float, ...]       # ADC counts per mV, one per lead
    baseline: tuple[int, ...]     # ADC count of 0 mV, one per lead
    adc: np.ndarray = field(repr=False)
    unit: str = "ward-1"          # care unit, selects the alarm stream
    v: int = SCHEMA_VERSION

    @property
    def n_samples(self) -> int:
        return int(self.adc.shape[1])

    @property
    def end_us(self) -> int:
        """Device time just after the last sample."""
        return self.t0_us + round(self.n_samples * _US / self.fs_hz)

    def millivolts(self) -> np.ndarray:
        """(n_leads, n) float64 physical signal."""
        gain = np.asarray(self.gain, dtype=np.float64)[:, None]
        base = np.asarray(self.baseline, dtype=np.float64)[:, None]
        return (self.adc.astype(np.float64) - base) / gain

    def validate(self, now_us: int | None = None) -> SampleChunk:
        """Every field against the contract, or ``SchemaError`` with the reason.  Runs
        for every chunk of every device: the details are formatted only on failure."""
        if self.v != SCHEMA_VERSION:
            raise SchemaError("bad_version", f"v={self.v}")
        _check_device_id(self.device_id)
        if not (isinstance(self.unit, str) and DEVICE_ID_RE.match(self.unit)):
            raise SchemaError("bad_unit", repr(self.unit))
        if not 0 <= self.seq < 2**63:
            raise SchemaError("bad_seq", str(self.seq))
        if not -(2**63) <= self.t0_us < 2**63:
            raise SchemaError("bad_time", str(self.t0_us))
        if not supported_fs(self.fs_hz):
            raise SchemaError("bad_fs", f"{self.fs_hz} Hz: need {DEVICE_FS_RANGE_HZ[0]:g}-"
                              f"{DEVICE_FS_RANGE_HZ[1]:g} Hz and a ratio of whole numbers "
                              f"<= 1000 to {DEFAULT_SPEC.fs_hz:g} Hz")
        n_leads = len(self.leads)
        if not 1 <= n_leads <= MAX_LEADS:
            raise SchemaError("bad_leads", f"{n_leads} leads")
        if not _lead_names_ok(self.leads):
            raise SchemaError("bad_leads", repr(self.leads))
        if len(self.gain) != n_leads or len(self.baseline) != n_leads:
            raise SchemaError("bad_sizes", "gain/baseline length != leads")
        if not all(math.isfinite(g) and g > 0 for g in self.gain):
            raise SchemaError("bad_gain", repr(self.gain))
        if not all(-(2**31) <= b < 2**31 for b in self.baseline):
            raise SchemaError("bad_baseline", "")
        if self.adc.dtype != np.int16 or self.adc.ndim != 2:
            raise SchemaError("bad_samples", "int16 2-D")
        if self.adc.shape[0] != n_leads:
            raise SchemaError("bad_sizes", f"adc {self.adc.shape}")
        if not 1 <= self.adc.shape[1] <= MAX_CHUNK_SAMPLES:
            raise SchemaError("bad_sizes", f"{self.adc.shape[1]} samples")
        check_time_us(self.t0_us, now_us)
        return self


def _pack_str(s: str) -> bytes:
    b = s.encode()
    return bytes([len(b)]) + b


def encode_chunk(chunk: SampleChunk) -> bytes:
    """Compact binary layout: header, strings, gains (f64), baselines (i32), int16 samples.

    Gains are float64 so that any valid gain survives the round trip exactly (float32
    rounded 200.1 and overflowed large gains to inf); it costs 4 bytes per lead.
    """
    parts = [
        _CHUNK_HEAD.pack(_CHUNK_MAGIC, chunk.v, len(chunk.leads), chunk.n_samples, chunk.seq,
                         chunk.t0_us, chunk.fs_hz),
        _pack_str(chunk.device_id), _pack_str(chunk.unit),
        *(_pack_str(lead) for lead in chunk.leads),
        np.asarray(chunk.gain, dtype="<f8").tobytes(),
        np.asarray(chunk.baseline, dtype="<i4").tobytes(),
        np.ascontiguousarray(chunk.adc, dtype="<i2").tobytes(),
    ]
    return b"".join(parts)


def _decode_chunk_binary(buf: bytes) -> SampleChunk:
    """Inline parsing (no reader object, one ``struct`` call per array, details of an
    error formatted only when it is raised): the processor decodes every chunk of every
    device; parsing a 0.5 s two-lead chunk took 11.5 µs with a reader object, 6.9 µs
    like this (same checks, same reasons)."""
    size = len(buf)
    if size < _CHUNK_HEAD.size:
        raise SchemaError("truncated", f"{size} bytes")
    _, v, n_leads, n, seq, t0_us, fs_hz = _CHUNK_HEAD.unpack_from(buf)
    if v != SCHEMA_VERSION:
        raise SchemaError("bad_version", f"v={v}")
    if not 1 <= n_leads <= MAX_LEADS:
        raise SchemaError("bad_leads", f"{n_leads} leads")
    if not 1 <= n <= MAX_CHUNK_SAMPLES:
        raise SchemaError("bad_sizes", f"{n} samples")
    pos, raw = _CHUNK_HEAD.size, []
    for _ in range(2 + n_leads):                 # device id, unit, lead names
        if pos >= size:
            raise SchemaError("truncated", f"need 1 at {pos}")
        end = pos + 1 + buf[pos]
        if end > size:
            raise SchemaError("truncated", f"need {buf[pos]} at {pos + 1}")
        raw.append(buf[pos + 1:end])
        pos = end
    try:
        device_id, unit, *leads = (r.decode() for r in raw)
    except UnicodeDecodeError as exc:
        raise SchemaError("bad_string", str(exc)) from None
    need = pos + 12 * n_leads + 2 * n_leads * n
    if need > size:
        raise SchemaError("truncated", f"need {need - pos} at {pos}")
    if need != size:
        raise SchemaError("oversized", f"{size - need} trailing bytes")
    gain = struct.unpack_from(f"<{n_leads}d", buf, pos)
    baseline = struct.unpack_from(f"<{n_leads}i", buf, pos + 8 * n_leads)
    adc = np.frombuffer(buf, dtype="<i2", count=n_leads * n, offset=pos + 12 * n_leads)
    return SampleChunk(device_id, seq, t0_us, fs_hz, tuple(leads), gain, baseline,
                       adc.reshape(n_leads, n).astype(np.int16), unit, v)


def chunk_to_json(chunk: SampleChunk) -> bytes:
    """The JSON interop form: same fields, ``adc`` as nested int lists."""
    doc = {"v": chunk.v, "device_id": chunk.device_id, "unit": chunk.unit, "seq": chunk.seq,
           "t0_us": chunk.t0_us, "fs_hz": chunk.fs_hz, "leads": list(chunk.leads),
           "gain": list(chunk.gain), "baseline": list(chunk.baseline),
           "adc": chunk.adc.tolist()}
    return _compact_json(doc)


def _json_obj(buf: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(buf.decode(), parse_constant=_reject_constant)
    except SchemaError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SchemaError("bad_json", str(exc)[:200]) from None
    _require(isinstance(doc, dict), "bad_json", "top level must be an object")
    return doc


def _reject_constant(name: str) -> float:
    raise SchemaError("not_finite", f"JSON constant {name}")


def _decode_chunk_json(buf: bytes) -> SampleChunk:
    d = _json_obj(buf)
    try:
        _require(all(isinstance(d[k], list) for k in ("leads", "gain", "baseline")),
                 "bad_types", "leads, gain and baseline must be lists")
        _require(type(d["v"]) is int, "bad_version", repr(d["v"]))
        leads = tuple(d["leads"])
        adc_list = d["adc"]
        _require(isinstance(adc_list, list) and len(adc_list) == len(leads), "bad_sizes",
                 "adc must have one row per lead")
        _require(all(isinstance(row, list) for row in adc_list), "bad_samples", "rows")
        _require(len({len(row) for row in adc_list}) <= 1, "bad_sizes", "ragged adc rows")
        _require(1 <= len(adc_list[0]) <= MAX_CHUNK_SAMPLES if adc_list else False,
                 "bad_sizes", "sample count")
        _require(all(type(x) is int and -32768 <= x <= 32767 for row in adc_list for x in row),
                 "bad_samples", "adc values must be int16")
        _require(all(type(g) in (int, float) for g in d["gain"]), "bad_gain", "")
        _require(all(type(b) is int for b in d["baseline"]), "bad_baseline", "")
        _require(type(d["seq"]) is int and type(d["t0_us"]) is int, "bad_types", "seq/t0_us")
        _require(isinstance(d["fs_hz"], (int, float)), "bad_fs", repr(d["fs_hz"]))
        return SampleChunk(d["device_id"], d["seq"], d["t0_us"], float(d["fs_hz"]), leads,
                           tuple(float(g) for g in d["gain"]), tuple(d["baseline"]),
                           np.asarray(adc_list, dtype=np.int16), d.get("unit", "ward-1"),
                           d["v"])
    except (KeyError, TypeError, IndexError, OverflowError) as exc:
        raise SchemaError("missing_field", repr(exc)[:200]) from None


def decode_chunk(buf: bytes, now_us: int | None = None) -> SampleChunk:
    """Binary or JSON (first byte ``{``) → validated chunk, or ``SchemaError``."""
    _require(isinstance(buf, (bytes, bytearray, memoryview)), "bad_type", type(buf).__name__)
    buf = bytes(buf)
    _require(len(buf) > 0, "empty", "")
    if buf[:2] == _CHUNK_MAGIC:
        chunk = _decode_chunk_binary(buf)
    elif buf[:1] == b"{":
        chunk = _decode_chunk_json(buf)
    else:
        raise SchemaError("bad_magic", buf[:4].hex())
    return chunk.validate(now_us)


# --------------------------------------------------------------------------- bundles
# A gateway relaying many bedside devices sends one record per partition per tick
# holding every chunk due for the devices of that partition. Why: the stream processor
# pays ~220 µs of Faust and Kafka bookkeeping per record whatever it holds, more than a
# whole chunk's DSP; one record per 0.5 s chunk caps a worker below 2,000 devices
# (docs/benchmarks.md, "processor"). Members are ordinary encoded chunks (binary or
# JSON) so each is validated, sequenced and dead-lettered on its own.

_BUNDLE_HEAD = struct.Struct("<2sBI")    # magic, version, member count
_MEMBER_LEN = struct.Struct("<I")
BUNDLE_VERSION = 1
MAX_BUNDLE_MEMBERS = 10_000


def is_bundle(buf: bytes | bytearray | memoryview | None) -> bool:
    """True when ``buf`` starts like a chunk bundle (it may still fail ``split_bundle``)."""
    return buf is not None and bytes(buf[:2]) == _BUNDLE_MAGIC


def encode_bundle(members: list[bytes]) -> bytes:
    """One record holding ``members``: encoded chunks (``encode_chunk`` or JSON)."""
    if not 1 <= len(members) <= MAX_BUNDLE_MEMBERS:
        raise ValueError(f"a bundle holds 1..{MAX_BUNDLE_MEMBERS} chunks, got {len(members)}")
    parts = [_BUNDLE_HEAD.pack(_BUNDLE_MAGIC, BUNDLE_VERSION, len(members))]
    for member in members:
        parts += [_MEMBER_LEN.pack(len(member)), member]
    return b"".join(parts)


def split_bundle(buf: bytes) -> list[bytes]:
    """The members' raw bytes, or ``SchemaError`` when the envelope itself is damaged
    (a bad member is refused later on its own, the others still count)."""
    buf = bytes(buf)
    _require(len(buf) >= _BUNDLE_HEAD.size, "truncated", f"bundle of {len(buf)} bytes")
    magic, version, count = _BUNDLE_HEAD.unpack_from(buf)
    _require(magic == _BUNDLE_MAGIC, "bad_magic", magic.hex())
    _require(version == BUNDLE_VERSION, "bad_version", f"bundle v={version}")
    _require(1 <= count <= MAX_BUNDLE_MEMBERS, "bad_sizes", f"bundle of {count} members")
    members, pos = [], _BUNDLE_HEAD.size
    for i in range(count):
        _require(pos + _MEMBER_LEN.size <= len(buf), "truncated", f"bundle member {i} length")
        (n,) = _MEMBER_LEN.unpack_from(buf, pos)
        pos += _MEMBER_LEN.size
        _require(pos + n <= len(buf), "truncated", f"bundle member {i}: {n} bytes announced")
        members.append(buf[pos:pos + n])
        pos += n
    _require(pos == len(buf), "bad_sizes", f"{len(buf) - pos} bytes after the last member")
    return members


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class BeatWindow:
    """Filtered samples around one detected R peak plus its RR features (seconds)."""

    device_id: str
    unit: str
    spec_id: str
    segment: int                 # increments at every detector reset (gap, restart)
    beat_index: int              # beat number within the device stream
    r_time_us: int               # device time of the R peak
    last_sample_time_us: int     # device time of the last sample this window needed
    rr_prev_s: float
    rr_next_s: float
    rr_local_s: float
    rr_long_s: float
    quality: str                 # "good" | "noisy" | "flat" | "saturated"
    samples: np.ndarray = field(repr=False)   # (n_leads, span) float32 mV
    template: np.ndarray = field(repr=False)  # (n_leads, span) float32 mV (beat_template)
    leads: tuple[str, ...] = ()  # the rows' lead names (SignalSpec.lead_order); (): not sent
    v: int = WINDOW_VERSION
    kind: str = "beat"


@dataclass(frozen=True, slots=True)
class RhythmWindow:
    """A fixed-length stretch (e.g. 10 s, 2 s hop) with its beats and quality."""

    device_id: str
    unit: str
    spec_id: str
    segment: int
    window_index: int
    start_time_us: int
    end_time_us: int
    last_sample_time_us: int
    fs_hz: float                  # sample rate of ``samples`` (may be decimated)
    beat_times_us: tuple[int, ...]
    quality: tuple[str, ...]      # one per lead
    sqi: tuple[float, ...]        # one per lead, 0 (unusable) .. 1 (clean)
    samples: np.ndarray = field(repr=False)   # (n_leads, n) float32 mV
    leads: tuple[str, ...] = ()  # the rows' lead names (SignalSpec.lead_order); (): not sent
    v: int = WINDOW_VERSION
    kind: str = "rhythm"


Window = BeatWindow | RhythmWindow
_WINDOW_TYPES: dict[str, type] = {"beat": BeatWindow, "rhythm": RhythmWindow}
_WINDOW_HEAD = struct.Struct("<2sBI")  # magic, version, header length


# float32 arrays of each window kind, in payload order (not in the JSON header)
_ARRAYS: dict[str, tuple[str, ...]] = {"beat": ("samples", "template"), "rhythm": ("samples",)}
_ARRAY_FIELDS = frozenset(name for names in _ARRAYS.values() for name in names)


@lru_cache(maxsize=8)
def _header_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in _ARRAY_FIELDS)


def encode_window(win: Window) -> bytes:
    # field by field, not asdict(): asdict deep-copies the samples array only to drop it
    # (half the encoding cost); the JSON bytes are the same.
    header = {k: getattr(win, k) for k in _header_fields(type(win))}
    header["shape"] = list(win.samples.shape)
    hbytes = _compact_json(header)
    arrays = [getattr(win, name) for name in _ARRAYS[win.kind]]
    if any(a.shape != win.samples.shape for a in arrays):
        raise ValueError(f"{win.kind} window arrays must share the samples' shape "
                         f"{win.samples.shape}, got {[a.shape for a in arrays]}")
    payload = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)
    return _WINDOW_HEAD.pack(_WINDOW_MAGIC, win.v, len(hbytes)) + hbytes + payload


def decode_window(buf: bytes) -> Window:
    _require(isinstance(buf, (bytes, bytearray)), "bad_type", type(buf).__name__)
    _require(len(buf) >= _WINDOW_HEAD.size, "truncated", f"{len(buf)} bytes")
    magic, v, hlen = _WINDOW_HEAD.unpack_from(buf)
    _require(magic == _WINDOW_MAGIC, "bad_magic", magic.hex())
    _require(v in WINDOW_VERSIONS, "bad_version", f"v={v}")
    _require(_WINDOW_HEAD.size + hlen <= len(buf), "truncated", "header")
    header = _json_obj(bytes(buf[_WINDOW_HEAD.size:_WINDOW_HEAD.size + hlen]))
    shape = header.pop("shape", None)
    _require(isinstance(shape, list) and len(shape) == 2
             and all(type(s) is int and s > 0 for s in shape), "bad_sizes", repr(shape))
    kind = str(header.get("kind", ""))
    cls = _WINDOW_TYPES.get(kind)
    _require(cls is not None, "bad_kind", repr(header.get("kind")))
    names = _ARRAYS[kind]
    payload = buf[_WINDOW_HEAD.size + hlen:]
    _require(len(payload) == 4 * len(names) * shape[0] * shape[1], "bad_sizes",
             "payload length")
    flat = np.frombuffer(payload, dtype="<f4").astype(np.float32)
    _require(bool(np.isfinite(flat).all()), "not_finite", "window samples")
    arrays = dict(zip(names, flat.reshape(len(names), *shape), strict=True))
    for key in ("beat_times_us", "quality", "sqi", "leads"):
        if key in header and isinstance(header[key], list):
            header[key] = tuple(header[key])
    try:
        win = cls(**arrays, **header)
    except TypeError as exc:
        raise SchemaError("missing_field", str(exc)[:200]) from None
    _check_device_id(win.device_id)
    _check_window_leads(win.leads, shape[0])
    return win


def _check_window_leads(leads: object, n_rows: int) -> None:
    """A window's lead names: none (a v2 producer) or one valid name per row."""
    if leads == ():
        return
    if not (isinstance(leads, tuple) and len(leads) == n_rows and _lead_names_ok(leads)):
        raise SchemaError("bad_leads", f"window leads {leads!r} for {n_rows} rows")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class BeatResult:
    device_id: str
    unit: str
    segment: int
    beat_index: int
    r_time_us: int
    last_sample_time_us: int
    label: str                    # AAMI class: N S V F Q
    probs: tuple[float, ...]
    rr_prev_s: float
    quality: str
    model_version: str
    v: int = SCHEMA_VERSION
    kind: str = "beat"


@dataclass(frozen=True, slots=True)
class RhythmResult:
    device_id: str
    unit: str
    segment: int
    window_index: int
    start_time_us: int
    end_time_us: int
    last_sample_time_us: int
    rhythm: str                   # MIT rhythm code without "(": N AFIB AFL VT VFL SVTA B T ...
    probs: tuple[float, ...]
    hr_bpm: float
    quality: tuple[str, ...]
    model_version: str
    v: int = SCHEMA_VERSION
    kind: str = "rhythm"


Result = BeatResult | RhythmResult
_RESULT_TYPES: dict[str, type] = {"beat": BeatResult, "rhythm": RhythmResult}


def encode_result(res: Result) -> bytes:
    # shallow field dict: results hold only scalars and flat tuples, and dataclasses.asdict's
    # recursive deep copy was the worker's largest per-window cost after the model
    doc = {name: getattr(res, name) for name in res.__dataclass_fields__}
    return _compact_json(doc)


def decode_result(buf: bytes) -> Result:
    doc = _json_obj(bytes(buf))
    cls = _RESULT_TYPES.get(str(doc.get("kind", "")))
    _require(cls is not None, "bad_kind", repr(doc.get("kind")))
    for key in ("probs", "quality"):
        if isinstance(doc.get(key), list):
            doc[key] = tuple(doc[key])
    try:
        return cls(**doc)
    except TypeError as exc:
        raise SchemaError("missing_field", str(exc)[:200]) from None


# --------------------------------------------------------------------------- alarms


@dataclass(frozen=True, slots=True)
class Alarm:
    """One clinical or technical alarm transition (raised or cleared) with its evidence."""

    alarm_id: str                 # deterministic: same condition + onset → same id
    device_id: str
    unit: str
    type: str                     # e.g. "asystole", "vt", "afib", "leads_off"
    severity: str                 # "red" | "yellow" | "technical"
    state: str                    # "raised" | "cleared"
    onset_time_us: int
    time_us: int                  # device time of this transition
    last_sample_time_us: int      # device time of the last sample the decision needed
    message: str
    strip_fs_hz: float = 0.0
    strip_mv: tuple[float, ...] = ()           # evidence ECG strip (lead 0, downsampled)
    strip_start_us: int = 0
    beats: tuple[tuple[int, str], ...] = ()    # (r_time_us, label) that triggered it
    lead: int = -1                # row of a per-lead (technical) alarm's lead, -1: none or gone
    lead_name: str = ""           # that lead's name (the window's ``leads``), "": unknown
    v: int = SCHEMA_VERSION


def alarm_id(device_id: str, alarm_type: str, onset_time_us: int, state: str) -> str:
    """Stable id: a redelivered window reproduces the same id, so Redis dedups it."""
    raw = f"{device_id}|{alarm_type}|{onset_time_us}|{state}".encode()
    return hashlib.sha256(raw).hexdigest()[:24]


def encode_alarm(alarm: Alarm) -> bytes:
    return _compact_json(asdict(alarm))


def decode_alarm(buf: bytes) -> Alarm:
    doc = _json_obj(bytes(buf))
    try:
        doc["strip_mv"] = tuple(doc.get("strip_mv", ()))
        doc["beats"] = tuple(tuple(b) for b in doc.get("beats", ()))
        return Alarm(**doc)
    except TypeError as exc:
        raise SchemaError("missing_field", str(exc)[:200]) from None


# --------------------------------------------------------------------------- dead letters


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why a message was refused, with its coordinates and raw bytes (base64)."""

    reason: str
    detail: str
    source_topic: str
    partition: int
    offset: int
    key_b64: str
    raw_b64: str
    stage: str                    # "processor" | "inference"
    time_us: int
    v: int = SCHEMA_VERSION

    @classmethod
    def of(cls, err: SchemaError, raw: bytes | None, key: bytes | None, topic: str,
           partition: int, offset: int, stage: str, time_us: int) -> DeadLetter:
        return cls(err.reason, err.detail[:500], topic, partition, offset,
                   base64.b64encode(key or b"").decode(), base64.b64encode(raw or b"").decode(),
                   stage, time_us)


def encode_dead_letter(dl: DeadLetter) -> bytes:
    return _compact_json(asdict(dl))


def decode_dead_letter(buf: bytes) -> DeadLetter:
    try:
        return DeadLetter(**_json_obj(bytes(buf)))
    except TypeError as exc:
        raise SchemaError("missing_field", str(exc)[:200]) from None
