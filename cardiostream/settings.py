"""Typed, frozen settings for every cardiostream service.

Built once in the entry point (``cardiostream.cli``) from environment variables
(prefix ``CARDIOSTREAM_``, nested groups joined with ``__``, e.g.
``CARDIOSTREAM_KAFKA__BOOTSTRAP_SERVERS``) and CLI flags, then passed down.
Library code never reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Group):
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    client_id: str = "cardiostream"
    # the longest a broker may hold a consumer's fetch for more data, for every consumer: the
    # processor's (Faust hard-codes 1500, which held records back: streamer/fetch.py) and the
    # kafka-python ones (default 500; no difference measured at the demo's load)
    fetch_max_wait_ms: int = Field(100, ge=1, le=1500)


class RedisSettings(_Group):
    url: str = "redis://127.0.0.1:16379/0"
    username: str | None = None
    password: SecretStr | None = None
    alarm_stream_maxlen: int = Field(100_000, gt=0)


class TopicSettings(_Group):
    samples: str = "ecg.samples.v1"
    windows: str = "ecg.windows.v2"     # v2: beat windows carry the template; v3 windows
    #   (lead names) share the topic: decoders take both, so upgrade inference before processors
    results: str = "ecg.results.v1"
    dead_letter: str = "ecg.deadletter.v1"
    segments: str = "ecg.segments.v1"     # processor: device -> current segment start (compacted)
    partitions: int = Field(8, ge=1)
    replication_factor: int = Field(1, ge=1)


class PathSettings(_Group):
    data_dir: Path = REPO_ROOT.parent / "shared" / "data"
    model_dir: Path = REPO_ROOT / "models" / "default"
    run_dir: Path = REPO_ROOT / ".run"
    cache_dir: Path = Path.home() / ".cache" / "cardiostream"

    @property
    def mitdb(self) -> Path:
        return self.data_dir / "mitdb"

    @property
    def nstdb(self) -> Path:
        return self.data_dir / "nstdb"


class InfraSettings(_Group):
    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    redis_port: int = 16379
    prometheus_port: int = 19090
    # `cardiostream infra up --secure`: a second broker (SASL/SCRAM) and a second Redis (ACL).
    kafka_secure_port: int = 19094
    kafka_secure_controller_port: int = 19095
    redis_secure_port: int = 16380
    kafka_heap: str = "1g"
    prometheus_scrape_s: float = Field(1.0, gt=0)


class InferenceSettings(_Group):
    max_batch: int = Field(256, ge=1)
    max_wait_ms: float = Field(50.0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    half_precision: bool = True
    group_id: str = "cardiostream-inference"
    care_unit_default: str = "ward-1"
    torch_threads: int = Field(1, ge=0)           # CPU intra-op threads; 0 = torch default


class AlarmSettings(_Group):
    """Alarm thresholds (see docs/alarms.md). Times in seconds, rates in beats per minute."""

    asystole_s: float = Field(4.0, gt=0)          # no QRS this long on good signal: red
    vt_min_beats: int = Field(3, ge=2)            # consecutive V beats that make a VT run
    vt_min_rate_bpm: float = Field(100.0, gt=0)   # ... at or above this rate (slower: PVC run)
    vt_sustained_s: float = Field(30.0, gt=0)     # a VT condition this long: sustained VT
    vt_from_rhythm_model: bool = True             # rhythm windows classified VT also raise VT
    beat_min_prob: float = Field(0.0, ge=0, le=1)  # less sure beats are "?" (break patterns)
    vt_min_v_prob: float = Field(0.8, ge=0, le=1)  # mean P(V) over a VT run's newest beats
    extreme_brady_bpm: float = Field(40.0, gt=0)
    extreme_tachy_bpm: float = Field(180.0, gt=0)
    hr_beats: int = Field(8, ge=2)                # beats in the median-RR heart rate
    pause_s: float = Field(2.5, gt=0)             # RR at least this long: pause (yellow)
    svt_min_beats: int = Field(5, ge=3)           # consecutive S beats ...
    svt_min_rate_bpm: float = Field(150.0, gt=0)  # ... at or above this rate: SVT
    bigeminy_cycles: int = Field(4, ge=2)         # (non-V, V) pairs in a row
    trigeminy_cycles: int = Field(3, ge=2)        # (non-V, non-V, V) triples in a row
    pvc_rate_per_min: float = Field(10.0, gt=0)   # V beats in the last minute: high PVC rate
    rhythm_on_windows: int = Field(2, ge=1)       # consecutive rhythm windows to raise VF/SVT
    af_on_windows: int = Field(11, ge=1)          # ... to raise AF: 11 windows of 10 s at a 2 s
    #   hop span 30 s, the shortest AF episode of the ESC 2020 guideline (docs/rhythm_af.md)
    rhythm_off_windows: int = Field(3, ge=1)      # ... and not-that-rhythm windows to clear
    clear_after_s: float = Field(10.0, ge=0)      # beat conditions: false this long to clear
    event_hold_s: float = Field(60.0, ge=0)       # couplet/pause/run alarms stay up this long
    technical_on_windows: int = Field(1, ge=1)    # windows with a bad lead to raise leads-off/noisy
    technical_off_windows: int = Field(2, ge=1)   # good windows to clear it
    noisy_on_windows: int = Field(3, ge=1)        # noisy windows in a row to raise 'noisy'
    asystole_max_ptp_mv: float = Field(0.5, gt=0)  # a lead not 'good' counts for asystole
    #   only when it is this quiet (a larger signal without QRS is noise hiding beats)
    strip_s: float = Field(10.0, gt=0)            # evidence strip length around onset
    strip_fs_hz: float = Field(60.0, gt=0)        # evidence strip sample rate


class ProcessorSettings(_Group):
    """The Faust stream processor (streamer/); see docs/processor.md."""

    app_id: str = "cardiostream-processor"     # Faust app id = consumer group id
    warmup_s: float = Field(10.0, ge=0, le=10.0)    # DSP warm-up re-read per device (+2 s slack)
    warmup_max_messages: int = Field(100_000, ge=0)  # per partition, bounds the re-read
    reorder_max_held: int = Field(8, ge=0)           # chunks held behind a sequence hole
    reorder_max_wait_s: float = Field(2.0, ge=0)     # device time a hole may stay open
    time_tolerance_s: float = Field(0.02, gt=0)      # t0 jump above this is a gap
    idle_flush_s: float = Field(5.0, gt=0)           # wall time before held chunks are flushed
    device_idle_s: float = Field(120.0, gt=0)        # silent this long: segment closed, forgotten
    session_timeout_s: float = Field(10.0, gt=0)     # a killed worker's partitions move after this
    commit_interval_s: float = Field(1.0, gt=0)
    producer_linger_ms: float = Field(10.0, ge=0)    # batch windows: one request per batch
    producer_max_batch_bytes: int = Field(1_048_576, gt=0)
    web_port: int | None = None                      # Faust web UI; None = disabled


class MetricsSettings(_Group):
    simulator_port: int = 9101
    processor_port: int = 9102
    inference_port: int = 9103
    max_patient_series: int = Field(256, ge=0)


class GrafanaSettings(_Group):
    url: str = "http://127.0.0.1:3000"
    token: SecretStr | None = None
    folder_uid: str = "cardiostream"
    datasource_uid: str = "cardiostream-prometheus"
    prometheus_url: str = "http://prometheus:9090"


class Settings(BaseSettings):
    """Everything configurable, one object per process."""

    model_config = SettingsConfigDict(
        env_prefix="CARDIOSTREAM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    topics: TopicSettings = TopicSettings()
    paths: PathSettings = PathSettings()
    infra: InfraSettings = InfraSettings()
    inference: InferenceSettings = InferenceSettings()
    alarms: AlarmSettings = AlarmSettings()
    processor: ProcessorSettings = ProcessorSettings()
    metrics: MetricsSettings = MetricsSettings()
    grafana: GrafanaSettings = GrafanaSettings()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with CLI flag values (already typed) on top."""
    base = Settings()
    if not overrides:
        return base
    merged = base.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        group, _, key = dotted.partition("__")
        merged[group][key] = value
    return Settings.model_validate(merged)
