"""The worker harness passes Settings to the child through CARDIOSTREAM_* variables."""

from __future__ import annotations

from pydantic import SecretStr

from cardiostream.settings import Settings, load_settings
from streamer.harness import settings_env


def test_settings_env_round_trips_the_broker_groups(monkeypatch):
    base = load_settings()
    s = base.model_copy(update={
        "kafka": base.kafka.model_copy(update={
            "bootstrap_servers": "h1:1,h2:2", "security_protocol": "SASL_PLAINTEXT",
            "sasl_username": "u", "sasl_password": SecretStr("p w")}),
        "topics": base.topics.model_copy(update={"samples": "s.x", "partitions": 3}),
        "processor": base.processor.model_copy(update={"app_id": "a", "warmup_s": 2.5})})
    for key, value in settings_env(s).items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child.kafka == s.kafka
    assert child.topics == s.topics
    assert child.processor == s.processor
