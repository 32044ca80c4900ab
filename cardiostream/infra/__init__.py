"""Local infrastructure for development and tests: Kafka (KRaft), Redis, Prometheus.

Thin shells that render configs from ``infra/`` templates into the run folder,
start the processes detached and stop them again. Used by ``cardiostream infra``,
by ``tests/conftest.py`` and by the fault-injection suite; never by the services.
"""
