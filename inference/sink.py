"""Redis side of the worker: alarm streams, live patient state, pub/sub, latency.

Keys (``{unit}`` = care unit, ``{dev}`` = device id):

* ``cs:alarms:{unit}``   Stream, one entry per alarm transition (XADD MAXLEN ~).
* ``cs:alarm:{id}``      dedup marker of an alarm id (SET NX, expires after ``DEDUP_TTL_S``).
* ``cs:active:{dev}``    Hash: condition key (``vt``, ``leads_off:V1``...) -> raised alarm JSON;
                         what a restarted worker resumes from (``alarms.seed_active``).
* ``cs:patient:{dev}``   Hash: hr_bpm, rhythm, quality, sqi, active, last_beat_us, unit, ...
* ``cs:live:{unit}``     Pub/sub channel for live screens (JSON messages, best effort).

One Lua script does "dedup check + active-set update + XADD" atomically, so a
redelivered window (same alarm id) and a restarted worker (condition already
active) add nothing to the stream. The script stamps each entry with Redis' own
clock (``redis_time_us``): device time of the last sample the decision needed
to that wall time is the alarm latency, also observed into the Prometheus
histogram ``cardiostream_e2e_latency_seconds{stage="alarm"}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from cardiostream import metrics
from cardiostream.schemas import Alarm, encode_alarm
from cardiostream.settings import RedisSettings

log = logging.getLogger(__name__)
DEDUP_TTL_S = 7 * 86_400
_US = 1_000_000

# KEYS: dedup, stream, active.  ARGV: maxlen, alarm json, state, cond key, ttl, id, type,
# severity, device, last_sample_time_us.  Returns 1 when written, 0 for a duplicate.
_ALARM_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then return 0 end
local active = redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1
if ARGV[3] == 'raised' then
  if active then return 0 end
  redis.call('HSET', KEYS[3], ARGV[4], ARGV[2])
else
  if not active then return 0 end
  redis.call('HDEL', KEYS[3], ARGV[4])
end
local t = redis.call('TIME')
local now_us = tostring(t[1]) .. string.format('%06d', tonumber(t[2]))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'alarm_id', ARGV[6], 'type', ARGV[7],
           'severity', ARGV[8], 'state', ARGV[3], 'device_id', ARGV[9],
           'last_sample_time_us', ARGV[10], 'redis_time_us', now_us, 'alarm', ARGV[2])
return 1
"""

RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def alarm_stream(unit: str) -> str:
    return f"cs:alarms:{unit}"


def patient_key(device_id: str) -> str:
    return f"cs:patient:{device_id}"


def active_key(device_id: str) -> str:
    return f"cs:active:{device_id}"


def live_channel(unit: str) -> str:
    return f"cs:live:{unit}"


def condition_key(alarm: Alarm) -> str:
    """The engine's condition key of an alarm: ``type``, or ``type:lead`` for per-lead ones."""
    return f"{alarm.type}:{alarm.lead}" if alarm.lead >= 0 else alarm.type


def make_client(cfg: RedisSettings) -> redis.Redis:
    """A client from settings; secrets leave their SecretStr only here."""
    password = cfg.password.get_secret_value() if cfg.password is not None else None
    return redis.Redis.from_url(cfg.url, username=cfg.username, password=password,
                                socket_timeout=5.0, socket_connect_timeout=5.0)


@dataclass(frozen=True, slots=True)
class WriteReport:
    written: int          # alarm transitions added to a stream
    duplicates: int       # refused by the dedup script (redelivery, restart)


@dataclass
class Backoff:
    """Exponential back-off between retries of one write (seconds)."""

    first_s: float = 0.1
    max_s: float = 5.0

    def delays(self):
        delay = self.first_s
        while True:
            yield delay
            delay = min(self.max_s, delay * 2)


class RedisSink:
    """Writes one batch's alarms and patient states; retries the whole batch until it lands."""

    def __init__(self, client: redis.Redis, maxlen: int, backoff: Backoff | None = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.maxlen = maxlen
        self.backoff = backoff or Backoff()
        self.should_stop = should_stop
        self.sleep = sleep
        self._script = client.register_script(_ALARM_LUA)

    def write(self, alarms: list[Alarm], states: dict[str, dict[str, object]]) -> WriteReport:
        """Alarms in order, then each patient's live state; blocks until Redis has them.

        Raises ``InterruptedError`` if ``should_stop()`` turns true while Redis is down
        (the caller then exits without committing offsets, so nothing is lost).
        """
        for delay in self.backoff.delays():
            try:
                return self._write_once(alarms, states)
            except RETRYABLE as exc:
                if self.should_stop():
                    raise InterruptedError("stopping while Redis is unreachable") from exc
                log.warning("redis unreachable (%s); retrying %d alarms, %d patients in %.1fs",
                            exc, len(alarms), len(states), delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - delays() never ends

    def _write_once(self, alarms: list[Alarm], states: dict[str, dict[str, object]]
                    ) -> WriteReport:
        pipe = self.client.pipeline(transaction=False)
        for a in alarms:
            self._script(keys=[f"cs:alarm:{a.alarm_id}", alarm_stream(a.unit),
                               active_key(a.device_id)],
                         args=[self.maxlen, encode_alarm(a), a.state, condition_key(a),
                               DEDUP_TTL_S, a.alarm_id, a.type, a.severity, a.device_id,
                               a.last_sample_time_us], client=pipe)
        for device_id, state in states.items():
            fields = {k: json.dumps(v) for k, v in state.items()}
            pipe.hset(patient_key(device_id), mapping=fields)
            pipe.publish(live_channel(str(state.get("unit", "ward-1"))),
                         json.dumps({"device_id": device_id, **state}))
        replies = pipe.execute()
        now = time.time()
        written = 0
        for a, ok in zip(alarms, replies[:len(alarms)], strict=True):
            if ok:
                written += 1
                metrics.ALARMS.labels(a.type, a.severity, a.state).inc()
                metrics.ALARMS_ACTIVE.labels(a.type, a.severity).inc(
                    1 if a.state == "raised" else -1)
                metrics.observe_latency("alarm", a.last_sample_time_us / _US, now)
        for state in states.values():
            last = state.get("last_sample_time_us")
            if isinstance(last, int):
                metrics.observe_latency("inference", last / _US, now)
        return WriteReport(written, len(alarms) - written)

    def active_alarms(self, device_id: str) -> dict[str, int]:
        """Condition key -> onset (µs) of the device's alarms raised and not yet cleared."""
        for delay in self.backoff.delays():
            try:
                raw = self.client.hgetall(active_key(device_id))
                break
            except RETRYABLE as exc:
                if self.should_stop():
                    raise InterruptedError("stopping while Redis is unreachable") from exc
                self.sleep(delay)
        return {k.decode(): int(json.loads(v)["onset_time_us"]) for k, v in raw.items()}
