"""The validated settings: frozen dataclasses whose repr never shows a secret.

Secret fields (passwords) hold a `Secret`.  Other fields hold plain values even when they
came from a ``${...}`` reference, so a caller can use them directly; such fields are named
in ``masked`` and shown as '******' by repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from conductor.config.secrets import MASK, Secret, is_secret_key


class Masked:
    """Mixin: a dataclass repr that shows the fields named in ``self.masked`` as '******'."""

    masked: frozenset[str]

    def __repr__(self) -> str:
        shown = (
            f"{f.name}={MASK if f.name in self.masked else repr(getattr(self, f.name))}"
            for f in fields(self)  # type: ignore[arg-type]
            if f.repr
        )
        return f"{type(self).__name__}({', '.join(shown)})"


# Consumer overrides that mean the same to KafkaProducer (connection settings).
PRODUCER_SHARED = frozenset(
    {
        "request_timeout_ms", "retry_backoff_ms", "reconnect_backoff_ms",
        "reconnect_backoff_max_ms", "metadata_max_age_ms", "connections_max_idle_ms",
        "receive_buffer_bytes", "send_buffer_bytes",
    }
)  # fmt: skip


# Records per write-and-commit for a Cassandra connector (see ConnectorConfig.sink_batch_size).
CASSANDRA_WORKER_BATCH = 2000


def masked_field() -> Any:
    return field(default=frozenset(), repr=False, compare=False)


def _reveal(secret: Secret | None) -> str | None:
    return None if secret is None else secret.reveal()


@dataclass(frozen=True, repr=False)
class KafkaSettings(Masked):
    """How the workers consume: bootstrap servers, security, and consumer overrides.

    ``None`` for a tuning field means "the client's default".  ``extra`` holds further
    consumer overrides as kafka-python kwargs (``consumer.override.client.id`` -> client_id).
    """

    bootstrap_servers: str
    group_id: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    sasl_kerberos_service_name: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: Secret | None = None
    ssl_check_hostname: bool = True
    auto_offset_reset: str = "earliest"
    max_poll_records: int | None = None
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    max_poll_interval_ms: int | None = None
    fetch_max_bytes: int | None = None
    max_partition_fetch_bytes: int | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    masked: frozenset[str] = masked_field()

    def to_kafka_python_kwargs(self, producer: bool = False) -> dict[str, Any]:
        """kafka-python KafkaConsumer kwargs; the only place the Kafka secrets are revealed.

        Includes ``group_id`` and ``enable_auto_commit=False`` (conductor commits after the
        write); the caller adds ``group_instance_id`` for static membership.  With
        ``producer=True``: KafkaProducer kwargs, connection and security only (for the DLQ).
        """
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
        }
        security = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": _reveal(self.sasl_password),
            "sasl_kerberos_service_name": self.sasl_kerberos_service_name,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "ssl_password": _reveal(self.ssl_password),
        }
        kwargs.update({k: v for k, v in security.items() if v is not None})
        if "SSL" in self.security_protocol:
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
        if producer:
            kwargs.update({k: v for k, v in self.extra.items() if k in PRODUCER_SHARED})
            return kwargs
        tuning = {
            "max_poll_records": self.max_poll_records,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "fetch_max_bytes": self.fetch_max_bytes,
            "max_partition_fetch_bytes": self.max_partition_fetch_bytes,
        }
        kwargs.update(group_id=self.group_id, enable_auto_commit=False)
        kwargs["auto_offset_reset"] = self.auto_offset_reset
        kwargs.update({k: v for k, v in tuning.items() if v is not None})
        kwargs.update(self.extra)
        return kwargs


@dataclass(frozen=True, repr=False)
class ElasticSettings(Masked):
    """The Elasticsearch sink: ``hosts`` are full URLs (protocol://host:port)."""

    hosts: tuple[str, ...]
    protocol: str = "http"
    port: int = 9200
    username: str | None = None
    password: Secret | None = None
    batch_size: int = 4000
    write_timeout_ms: int = 300_000
    pk_separator: str = "-"
    index_prefix: str | None = None
    cluster_name: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: Secret | None = None
    ssl_verify_hostname: bool = True
    ssl_truststore_location: str | None = None
    ssl_truststore_password: Secret | None = None
    ssl_keystore_location: str | None = None
    ssl_keystore_password: Secret | None = None
    masked: frozenset[str] = masked_field()

    def to_client_kwargs(self) -> dict[str, Any]:
        """elasticsearch.Elasticsearch(...) kwargs; reveals the password.  Retries are left to
        the caller (the error policy decides them)."""
        kwargs: dict[str, Any] = {
            "hosts": list(self.hosts),
            "request_timeout": self.write_timeout_ms / 1000,
        }
        if self.username:
            kwargs["basic_auth"] = (self.username, _reveal(self.password) or "")
        if any(host.startswith("https://") for host in self.hosts):
            optional = {
                "ca_certs": self.ssl_cafile,
                "client_cert": self.ssl_certfile,
                "client_key": self.ssl_keyfile,
            }
            kwargs.update({k: v for k, v in optional.items() if v})
            if not self.ssl_verify_hostname:
                kwargs["ssl_assert_hostname"] = False
        return kwargs


@dataclass(frozen=True, repr=False)
class CassandraSettings(Masked):
    """The Cassandra sink (Stream-Reactor's connect.cassandra.* keys).

    ``consistency_level``, ``default_value`` and ``load_balancing_policy`` are None for the
    driver's default.  ``ssl_cafile/certfile/keyfile`` are PEM paths (Python cannot read JKS).
    """

    contact_points: tuple[str, ...]
    keyspace: str
    port: int = 9042
    username: str | None = None
    password: Secret | None = None
    consistency_level: str | None = None
    load_balancing_policy: str | None = None
    batch_size: int = 100  # statements per unlogged batch (with unlogged_batches)
    max_in_flight: int = 128  # requests a worker keeps in flight
    unlogged_batches: bool = False  # group a batch's rows by partition key
    ssl_enabled: bool = False
    ssl_client_cert_auth: bool = False
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    trust_store_path: str | None = None
    trust_store_password: Secret | None = None
    key_store_path: str | None = None
    key_store_password: Secret | None = None
    delete_enabled: bool = False
    delete_statement: str | None = None
    delete_struct_fields: tuple[str, ...] = ()
    default_value: str | None = None
    connect_timeout_ms: int = 5000
    read_timeout_ms: int = 12000
    masked: frozenset[str] = masked_field()


@dataclass(frozen=True, repr=False)
class WorkerSettings(Masked):
    """conductor's own keys (conductor.*): batching, worker limits, restarts, status."""

    # Records a worker gathers before it writes and commits; None: the sink's default below.
    batch_max_records: int | None = None
    batch_max_bytes: int = 5_000_000
    linger_ms: int = 500
    rss_limit_mb: int = 1024  # 0 = no limit
    heartbeat_timeout_s: float = 60.0
    drain_timeout_s: float = 30.0
    restart_backoff_initial_s: float = 1.0
    restart_backoff_max_s: float = 300.0
    restart_max: int = 10  # failed-task restarts before giving up; 0 = never restart
    index_suffix_clock: str = "record"  # "record" | "wallclock"
    status_port: int = 0  # 0 = no status server
    static_membership: bool = True
    masked: frozenset[str] = masked_field()


@dataclass(frozen=True, repr=False)
class ConnectorConfig(Masked):
    """One connector config, validated.

    Fields: ``name``; ``connector_class`` (None if not given); ``sink`` ("elasticsearch" or
    "cassandra"); ``topics`` / ``topics_regex`` (exactly one is set; ``topics`` is () with a
    regex); ``tasks_max``; ``kcql`` (the chosen sink's KCQL text, unparsed); the sink's
    ``error_policy`` ("NOOP" | "THROW" | "RETRY"), ``max_retries``, ``retry_interval_ms``;
    Kafka Connect's ``errors_tolerance`` ("none" | "all"), ``errors_retry_timeout_ms``,
    ``errors_retry_delay_max_ms``, ``errors_log_enable``, ``errors_log_include_messages``,
    ``dlq_topic`` (None = no DLQ), ``dlq_replication_factor``, ``dlq_context_headers``;
    the converters as given (``key_converter``, ``value_converter``, and their
    ``*_schemas_enable``, None when unset); ``progress_enabled``; the sections ``kafka``,
    ``elastic`` (None unless sink == "elasticsearch"), ``cassandra`` (None unless sink ==
    "cassandra") and ``worker``; ``raw``: every key as given after ${...} resolution, secret
    values as `Secret`; ``defaults``: the default used for each known key not given;
    ``warnings``; ``source``: where it came from (the file path).
    """

    name: str
    connector_class: str | None
    sink: str
    topics: tuple[str, ...]
    topics_regex: str | None
    tasks_max: int
    kcql: str
    error_policy: str
    max_retries: int
    retry_interval_ms: int
    errors_tolerance: str
    errors_retry_timeout_ms: int
    errors_retry_delay_max_ms: int
    errors_log_enable: bool
    errors_log_include_messages: bool
    dlq_topic: str | None
    dlq_replication_factor: int
    dlq_context_headers: bool
    key_converter: str | None
    value_converter: str | None
    key_converter_schemas_enable: bool | None
    value_converter_schemas_enable: bool | None
    progress_enabled: bool
    kafka: KafkaSettings
    elastic: ElasticSettings | None
    cassandra: CassandraSettings | None
    worker: WorkerSettings
    raw: Mapping[str, str | Secret] = field(repr=False)
    defaults: Mapping[str, str] = field(repr=False)
    warnings: tuple[str, ...] = ()
    source: str = "config"
    masked: frozenset[str] = masked_field()

    @property
    def group_id(self) -> str:
        """Kafka Connect's consumer group for a sink connector."""
        return f"connect-{self.name}"

    @property
    def sink_batch_size(self) -> int:
        """Records per write-and-commit: conductor.batch.max.records if given; else, for
        Elasticsearch, connect.elastic.batch.size (one bulk, as in Stream-Reactor); for
        Cassandra, CASSANDRA_WORKER_BATCH. connect.cassandra.batch.size (default 100) bounds
        an unlogged batch statement there: a commit per 100 rows would stall the writes."""
        if self.worker.batch_max_records is not None:
            return self.worker.batch_max_records
        if self.elastic is not None:
            return self.elastic.batch_size
        assert self.cassandra is not None, "a ConnectorConfig always holds its sink's settings"
        return CASSANDRA_WORKER_BATCH

    def describe(self) -> dict[str, str]:
        """Every setting (given, or the default used), secrets as '******'; sorted by key."""
        merged: dict[str, str | Secret] = {**self.raw, **self.defaults}  # defaults: keys left empty
        return {
            key: MASK if isinstance(value, Secret) or is_secret_key(key) else value
            for key, value in sorted(merged.items())
        }
