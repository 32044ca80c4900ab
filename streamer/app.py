"""The Faust app of the stream processor, built from ``Settings``.

``create_app(settings)`` is the factory used by ``cardiostream process``, the
tests and the benchmark. ``faust -A streamer.app worker`` also works: the
module attribute ``app`` is built on first access from the environment
(``CARDIOSTREAM_*``), which makes this module an entry point for that command.

Kafka: keys and values are raw bytes (``cardiostream.schemas`` encodes them;
never faust.Record, never pickle); key = device id, so one device's chunks stay
in one partition, in order, on one worker. The producer waits for all in-sync
replicas (acks=all) and Faust flushes it before every offset commit, so an
offset is committed only after the windows of every earlier record are stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cardiostream.settings import KafkaSettings, Settings, load_settings

if TYPE_CHECKING:
    import faust

    from streamer.agents import Processor
    from streamer.pipeline import Dsp


def broker_url(kafka: KafkaSettings) -> str:
    """``kafka://host:port;kafka://host2:port`` as Faust expects it."""
    servers = [s.strip() for s in kafka.bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise ValueError("kafka.bootstrap_servers is empty (host:port[,host:port])")
    return ";".join(f"kafka://{s}" for s in servers)


def _credentials(kafka: KafkaSettings) -> Any:
    import faust
    from aiokafka.helpers import create_ssl_context

    ssl_context = None
    if kafka.security_protocol.endswith("SSL"):
        ssl_context = create_ssl_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile
                                         else None)
    if kafka.security_protocol.startswith("SASL"):
        if not kafka.sasl_username or kafka.sasl_password is None:
            raise ValueError(f"security_protocol={kafka.security_protocol} needs "
                             "kafka.sasl_username and kafka.sasl_password")
        return faust.SASLCredentials(username=kafka.sasl_username,
                                     password=kafka.sasl_password.get_secret_value(),
                                     mechanism=kafka.sasl_mechanism, ssl_context=ssl_context)
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def _lean_monitor() -> type:
    """Faust's Monitor without its per-event bookkeeping.

    The default Monitor updates counters, deques and timestamps for every message in,
    event in/out, message out and send; nothing reads them here (no Faust web, our own
    Prometheus metrics). Kept: ``stream_inbound_time``, which Faust's consumer reads to
    warn about a stream that stopped moving.
    """
    from time import monotonic

    from faust.sensors import Monitor

    class LeanMonitor(Monitor):
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
            self.stream_inbound_time[tp] = monotonic()

        def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                                state: Any = None) -> None:
            return None

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_send_initiated(self, producer: Any, topic: str, message: Any,
                              keysize: int, valsize: int) -> None:
            return None

        def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
            return None

    return LeanMonitor


def worker(app: faust.App, loglevel: str) -> faust.Worker:
    """A Faust worker for ``app`` without the terminal spinner.

    At ``--loglevel warning`` or above, Faust's spinner sets the root logger to DEBUG so
    it can spin on every record: each aiokafka debug call then builds a LogRecord that
    the handler drops (~10 % of the worker's CPU in a profile).
    """
    import faust

    w = faust.Worker(app, loglevel=loglevel, quiet=True)
    w.spinner = None
    return w


def create_app(settings: Settings, *, app_id: str | None = None,
               dsp: Dsp | None = None) -> faust.App:
    """A Faust app with the processor agent registered on it (``app.processor``).

    ``dsp`` replaces ``cardiostream.processing`` (unit tests only).
    """
    import faust

    from streamer.agents import register
    from streamer.fetch import transport_with_fetch_wait

    cfg = settings.processor
    faust_dir = settings.paths.run_dir / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)      # Faust creates only the last level
    app = faust.App(
        app_id or cfg.app_id,
        broker=broker_url(settings.kafka),
        broker_credentials=_credentials(settings.kafka),
        broker_client_id=settings.kafka.client_id,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        store="memory://",
        # Faust's default is "<app id>-data" in the current folder: keep it with the
        # other run-time files, never in the operator's (or the repository's) folder.
        datadir=str(faust_dir / "{conf.name}-data"),
        autodiscover=False,
        web_enabled=cfg.web_port is not None,
        web_port=cfg.web_port or 6066,
        producer_acks=-1,
        producer_linger=cfg.producer_linger_ms / 1000.0,
        producer_max_batch_size=cfg.producer_max_batch_bytes,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=cfg.session_timeout_s,
        broker_heartbeat_interval=max(0.5, cfg.session_timeout_s / 5),
        broker_commit_interval=cfg.commit_interval_s,
        Monitor=_lean_monitor(),
        # Acks are held back on purpose (streamer/ackgate.py): a rebalance or a stop must not
        # wait for them; the records not acked are processed again by the next owner.
        stream_wait_empty=False,
    )
    app.transport = transport_with_fetch_wait(app, settings.kafka.fetch_max_wait_ms)
    app.processor = register(app, settings, dsp=dsp)
    return app


def processor_of(app: faust.App) -> Processor:
    return app.processor  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    """``faust -A streamer.app`` entry point: build the app from the environment once."""
    if name != "app":
        raise AttributeError(name)
    built = create_app(load_settings())
    globals()["app"] = built
    return built
